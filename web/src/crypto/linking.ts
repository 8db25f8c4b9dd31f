// Linking a new device: the code and the request envelope
// (the code and envelope parts of taube.client.linking).
//
// The existing device shows a code: 96 random bits S and the first 80 bits
// of SHA-256 of the account's identity key (as its base64 text), 180 bits in
// 36 Crockford base32 characters, groups of four. The new device sends a
// link request: its Curve25519 and Ed25519 keys beside an Olm message
// carrying S (hex) and its name (type "taube.link.request"). After the user
// confirms, the existing device sends the identity key and S again
// ("taube.link.grant").
import type { LinkEnvelope, OlmCiphertext } from "../gen/proto";
import { bytesEqual, concatBytes, fromHex, fromUtf8, randomBytes, toHex, utf8, type Bytes } from "./base64";
import { base32Value, bigintBytes, normaliseCode, RECOVERY_ALPHABET } from "./backup";
import { CryptoError } from "./errors";
import { KEY, parseJsonObject } from "./fields";
import type { VerifiedDevice } from "./keys";
import { NORMAL, olmCiphertextBytes, parseOlmCiphertext, PRE_KEY, type OlmMachine } from "./olm";

export type { LinkEnvelope };

export const LINK_SECRET_BYTES = 12;
export const LINK_FINGERPRINT_BYTES = 10;
/** 22 bytes, padded to 180 bits */
export const LINK_CODE_CHARS = 36;
export const LINK_TTL_S = 600;
export const TYPE_LINK_REQUEST = "taube.link.request";
export const TYPE_LINK_GRANT = "taube.link.grant";

/** The first 80 bits of SHA-256 of the identity key's base64 text. */
export async function fingerprint(identityKey: string): Promise<Bytes> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8(identityKey)));
  return digest.slice(0, LINK_FINGERPRINT_BYTES);
}

/** A new link code for display, and its secret. */
export async function makeLinkCode(identityKey: string): Promise<{ code: string; secret: Bytes }> {
  const secret = randomBytes(LINK_SECRET_BYTES);
  let value = 0n;
  for (const b of concatBytes(secret, await fingerprint(identityKey))) value = (value << 8n) | BigInt(b);
  value <<= 4n;
  let text = "";
  for (let i = LINK_CODE_CHARS - 1; i >= 0; i--) text += RECOVERY_ALPHABET[Number((value >> BigInt(5 * i)) & 31n)]!;
  const groups: string[] = [];
  for (let i = 0; i < LINK_CODE_CHARS; i += 4) groups.push(text.slice(i, i + 4));
  return { code: groups.join("-"), secret };
}

/** The secret and identity fingerprint of a typed code; `bad_payload` if malformed. */
export function parseLinkCode(code: string): { secret: Bytes; fingerprint: Bytes } {
  const text = normaliseCode(code);
  if ([...text].length !== LINK_CODE_CHARS || [...text].some((ch) => !RECOVERY_ALPHABET.includes(ch))) {
    throw new CryptoError("bad_payload", `a link code is ${LINK_CODE_CHARS} letters and digits`);
  }
  const raw = bigintBytes(base32Value(text) >> 4n, LINK_SECRET_BYTES + LINK_FINGERPRINT_BYTES);
  return { secret: raw.slice(0, LINK_SECRET_BYTES), fingerprint: raw.slice(LINK_SECRET_BYTES) };
}

/** Whether `identityKey` is the one a code's fingerprint names. */
export async function matchesFingerprint(identityKey: string, expected: Uint8Array): Promise<boolean> {
  return bytesEqual(await fingerprint(identityKey), expected);
}

/** Whether a request's `secret` (hex, as it travels) is the code's secret (constant time). */
export function checkLinkSecret(expected: Uint8Array, secretHex: string): boolean {
  try {
    return bytesEqual(fromHex(secretHex), expected);
  } catch {
    return false;
  }
}

/** The bytes of a link request's to-device body (Python's field order, `link` included). */
export function encodeLinkEnvelope(envelope: LinkEnvelope): Bytes {
  const olm: OlmCiphertext = { type: envelope.olm.type, body: envelope.olm.body };
  return utf8(JSON.stringify({ link: envelope.link ?? 1, curve25519: envelope.curve25519, ed25519: envelope.ed25519, olm }));
}

/** A link request's envelope, or null if the body is not one. */
export function decodeLinkEnvelope(body: Uint8Array): LinkEnvelope | null {
  try {
    const fail = (m: string) => new CryptoError("bad_payload", m);
    const f = parseJsonObject(fromUtf8(body), fail).onlyKnown(["link", "curve25519", "ed25519", "olm"]);
    const link = f.int("link", { default: 1 });
    const curve25519 = f.string("curve25519", KEY);
    const ed25519 = f.string("ed25519", KEY);
    const olm = parseOlmCiphertext(JSON.stringify(f.object("olm")));
    if (olm.type !== PRE_KEY && olm.type !== NORMAL) return null;
    return { link, curve25519, ed25519, olm };
  } catch {
    return null;
  }
}

/** The new device's link request for `peer` (an existing device of the
 * account): the secret and this device's name over Olm, keys beside it. */
export function linkRequestBody(olm: OlmMachine, peer: VerifiedDevice, secret: Uint8Array, name: string): Bytes {
  const ciphertext = parseOlmCiphertext(olm.encryptToDevice(peer, TYPE_LINK_REQUEST, { secret: toHex(secret), name }));
  return encodeLinkEnvelope({ link: 1, curve25519: olm.account.curve25519, ed25519: olm.account.ed25519, olm: ciphertext });
}

/** The requesting device as the keys beside its request name it: used only
 * to decrypt that request, whose content the code then vouches for. */
export function provisionalDevice(user: string, envelope: LinkEnvelope, device: string, identityKey: string): VerifiedDevice {
  return { user, device, curve25519: envelope.curve25519, ed25519: envelope.ed25519, identityKey };
}

/** The Olm message inside an envelope as `ToDeviceMessage.body` bytes. */
export function envelopeOlmBody(envelope: LinkEnvelope): Bytes {
  return olmCiphertextBytes(envelope.olm);
}
