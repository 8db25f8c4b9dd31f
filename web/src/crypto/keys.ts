// Signatures, public-key checks, the identity key and device certificates
// (taube.proto.signing + taube.crypto.identity), on WebCrypto.
//
// Signatures are verified with WebCrypto's Ed25519 (strict: libolm accepts
// malleated signatures), and keys of small order are refused before use, as
// in Python. `verifyDevice` is the one door from the untrusted key directory
// into the rest of this package: it returns a `VerifiedDevice`, and Olm,
// Megolm and the payload checks take only those.
import type { DeviceKeys, IdentityKey } from "../gen/proto";
import { DOMAIN } from "../gen/proto";
import { b64decode, b64encode, buf, concatBytes, fromHex, randomBytes } from "./base64";
import { signingBytes } from "./canonical";
import { CryptoError } from "./errors";

/** The `signature` of an object not signed yet (left out when signing). */
export const UNSIGNED = "";

/** A device whose certificate verified against `identityKey`. */
export interface VerifiedDevice {
  user: string;
  device: string;
  curve25519: string;
  ed25519: string;
  identityKey: string;
}

/** Encodings of the Ed25519 points of small order (sign bit cleared), the
 * non-canonical ones (y >= p) included: refused outright, as in Python. */
const ED25519_SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map(fromHex);

function decodeKey(key: string, what: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = b64decode(key);
  } catch {
    throw new CryptoError("bad_key", `${what} key is not base64`);
  }
  if (raw.length !== 32) throw new CryptoError("bad_key", `${what} key is 32 bytes`);
  return raw;
}

/** The raw 32 bytes of an Ed25519 public key; `bad_key` if malformed or of small order. */
export function ed25519KeyBytes(key: string): Uint8Array {
  const raw = decodeKey(key, "an Ed25519");
  const cleared = raw.slice();
  cleared[31] = cleared[31]! & 0x7f;
  if (ED25519_SMALL_ORDER.some((bad) => bad.every((x, i) => x === cleared[i]))) {
    throw new CryptoError("bad_key", "small-order Ed25519 key");
  }
  return raw;
}

export function checkEd25519Key(key: string): void {
  ed25519KeyBytes(key);
}

/** Raise `bad_key` / `bad_signature` unless `signature` is `publicKey`'s
 * signature of `obj`'s canonical JSON under `domain`. */
export async function verifySignature(domain: string, obj: object, publicKey: string, signature: string): Promise<void> {
  const raw = ed25519KeyBytes(publicKey);
  let sig: Uint8Array;
  try {
    sig = b64decode(signature);
  } catch {
    throw new CryptoError("bad_signature", "the signature is not base64");
  }
  if (sig.length !== 64) throw new CryptoError("bad_signature", "an Ed25519 signature is 64 bytes");
  const message = signingBytes(domain, obj);
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("raw", buf(raw), { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw new CryptoError("bad_key", "malformed Ed25519 key");
  }
  let ok = false;
  try {
    ok = await crypto.subtle.verify({ name: "Ed25519" }, key, buf(sig), buf(message));
  } catch {
    ok = false;
  }
  if (!ok) throw new CryptoError("bad_signature", "signature does not verify");
}

let probe: Promise<CryptoKey> | null = null;

function probeKey(): Promise<CryptoKey> {
  probe ??= crypto.subtle
    .generateKey({ name: "X25519" }, false, ["deriveBits"])
    .then((pair) => (pair as CryptoKeyPair).privateKey);
  return probe;
}

/** Refuse malformed, all-zero and low-order Curve25519 public keys: an
 * X25519 exchange with a low-order point gives the all-zero secret, which
 * WebCrypto refuses; that catches every low-order point in every encoding. */
export async function checkCurve25519(key: string): Promise<void> {
  const raw = decodeKey(key, "a Curve25519");
  try {
    const pub = await crypto.subtle.importKey("raw", buf(raw), { name: "X25519" }, false, []);
    await crypto.subtle.deriveBits({ name: "X25519", public: pub }, await probeKey(), 256);
  } catch {
    throw new CryptoError("bad_key", "low-order Curve25519 key");
  }
}

// ==================================================================== identity key

const PKCS8_ED25519 = fromHex("302e020100300506032b657004220420");

/** A user's Ed25519 identity key pair (the private half stays in memory). */
export class IdentityKeyPair {
  readonly publicKey: string;
  readonly #seed: Uint8Array;
  readonly #key: CryptoKey;

  private constructor(seed: Uint8Array, key: CryptoKey, publicKey: string) {
    this.#seed = seed;
    this.#key = key;
    this.publicKey = publicKey;
  }

  static generate(): Promise<IdentityKeyPair> {
    return IdentityKeyPair.fromSeed(randomBytes(32));
  }

  /** From the 32-byte Ed25519 seed (as `seed()` gives it); `bad_key` otherwise. */
  static async fromSeed(seed: Uint8Array): Promise<IdentityKeyPair> {
    if (seed.length !== 32) throw new CryptoError("bad_key", "an Ed25519 private key is 32 bytes");
    const pkcs8 = buf(concatBytes(PKCS8_ED25519, seed));
    const exportable = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", exportable);
    if (jwk.x === undefined) throw new CryptoError("bad_key", "no public key");
    const publicKey = b64encode(b64decode(jwk.x.replace(/-/g, "+").replace(/_/g, "/")));
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
    return new IdentityKeyPair(seed.slice(), key, publicKey);
  }

  /** The 32-byte seed: for the encrypted backup and device linking only. */
  seed(): Uint8Array {
    return this.#seed.slice();
  }

  toString(): string {
    return `IdentityKeyPair(${this.publicKey})`;
  }

  toJSON(): { publicKey: string } {
    return { publicKey: this.publicKey };
  }

  /** Sign `obj`'s canonical JSON under `domain`. */
  async sign(domain: string, obj: object): Promise<string> {
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, this.#key, buf(signingBytes(domain, obj)));
    return b64encode(new Uint8Array(sig));
  }

  /** The self-signed `IdentityKey` to publish for `user`. */
  async identityKey(user: string): Promise<IdentityKey> {
    const unsigned: IdentityKey = { user, identity_key: this.publicKey, signature: UNSIGNED };
    return { ...unsigned, signature: await this.sign(DOMAIN.identity, unsigned) };
  }

  /** Sign a device's keys (the device certificate); refuses unusable keys. */
  async certify(deviceKeys: DeviceKeys): Promise<DeviceKeys> {
    const { user, device, curve25519, ed25519 } = deviceKeys;
    await checkCurve(curve25519);
    checkEd25519(ed25519);
    const unsigned: DeviceKeys = { user, device, curve25519, ed25519, signature: UNSIGNED };
    return { ...unsigned, signature: await this.sign(DOMAIN.device, unsigned) };
  }
}

/** A malformed *signing key* is `bad_key`; any other failure is untrusted. */
function translate(err: unknown, message: string): unknown {
  if (!(err instanceof CryptoError)) return err;
  if (err.kind === "bad_key") return new CryptoError("bad_key", `${message}: ${err.message}`);
  return new CryptoError("untrusted_device", `${message}: ${err.message}`);
}

/** Check the self-signature of a published identity key; its base64 form. */
export async function verifyIdentityKey(key: IdentityKey): Promise<string> {
  const { user, identity_key, signature } = key;
  try {
    await verifySignature(DOMAIN.identity, { user, identity_key }, identity_key, signature);
  } catch (err) {
    throw translate(err, "the identity key is not self-signed");
  }
  return identity_key;
}

/** Check a device certificate against the user's identity key (the caller
 * matched the user). `untrusted_device` if the signature does not verify,
 * `bad_key` if a key is malformed or of low order. */
export async function verifyDevice(identityKey: string, keys: DeviceKeys): Promise<VerifiedDevice> {
  const { user, device, curve25519, ed25519, signature } = keys;
  try {
    await verifySignature(DOMAIN.device, { user, device, curve25519, ed25519 }, identityKey, signature);
  } catch (err) {
    throw translate(err, "the device certificate does not verify");
  }
  await checkCurve(curve25519);
  checkEd25519(ed25519);
  return { user, device, curve25519, ed25519, identityKey };
}

async function checkCurve(key: string): Promise<void> {
  try {
    await checkCurve25519(key);
  } catch (err) {
    throw err instanceof CryptoError ? new CryptoError("bad_key", `unusable Curve25519 key: ${err.message}`) : err;
  }
}

function checkEd25519(key: string): void {
  try {
    checkEd25519Key(key);
  } catch (err) {
    throw err instanceof CryptoError ? new CryptoError("bad_key", `unusable Ed25519 key: ${err.message}`) : err;
  }
}
