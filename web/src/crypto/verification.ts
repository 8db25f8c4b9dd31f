// Verifying a contact: safety number, emoji / decimal SAS, and QR codes
// (taube.crypto.verification + the constants of taube.client.sas).
//
// Safety number: Signal's numeric fingerprint (version 0, 5200 iterations of
// SHA-512) over the raw Ed25519 identity key and the UTF-8 address; the two
// 30-digit halves joined smaller first, shown as 12 groups of 5.
//
// SAS: a Curve25519 exchange (libolm's SAS, interoperable with vodozemac's
// `Sas`), 7 emoji from the first 42 bits or three numbers 1000-9191 of
// HKDF(shared secret, info), info = "TAUBE_SAS_V1|<txn>|" + the two devices
// as "user|device|sas_key", sorted. MACs are HKDF-HMAC-SHA-256 with
// *correct* base64 (vodozemac's `calculate_mac` = libolm's
// `calculate_mac_fixed_base64`; libolm's plain `calculate_mac` has the old
// broken base64 and does not interoperate). The side that reveals its key
// last first sends a commitment to it.
//
// QR: "TAUBE" || 0x01 || identity key (32) || secret (16) || address (UTF-8).
import { createSHA512 } from "hash-wasm";
import { b64decode, b64encode, bytesEqual, concatBytes, fromUtf8, randomBytes, randomId, utf8, type Bytes } from "./base64";
import { compareCodePoints } from "./canonical";
import { CryptoError } from "./errors";
import { ADDRESS_RE } from "./fields";
import { checkCurve25519, ed25519KeyBytes } from "./keys";
import { olmLib, type OlmSas } from "./olm";

// ==================================================================== safety number

export const SAFETY_NUMBER_VERSION = 0;
export const SAFETY_NUMBER_ITERATIONS = 5200;

/** One user's 30 digits from their raw key and identifier bytes. */
export async function fingerprintHalf(key: Uint8Array, identifier: Uint8Array, iterations = SAFETY_NUMBER_ITERATIONS): Promise<string> {
  const sha512 = await createSHA512();
  let digest: Uint8Array = concatBytes(new Uint8Array([SAFETY_NUMBER_VERSION >> 8, SAFETY_NUMBER_VERSION & 0xff]), key, identifier);
  for (let i = 0; i < iterations; i++) digest = sha512.init().update(digest).update(key).digest("binary");
  let out = "";
  for (let i = 0; i < 30; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) value = value * 256 + digest[i + j]!;
    out += String(value % 100000).padStart(5, "0");
  }
  return out;
}

/** The smaller half first, so both sides agree. */
export function combineHalves(own: string, theirs: string): string {
  return own <= theirs ? own + theirs : theirs + own;
}

function identityKeyBytes(key: string): Uint8Array {
  try {
    return ed25519KeyBytes(key);
  } catch (err) {
    throw err instanceof CryptoError ? new CryptoError("bad_key", `unusable identity key: ${err.message}`) : err;
  }
}

/** The 60-digit safety number of two users; `bad_key` for an unusable key. */
export async function safetyNumber(ownUser: string, ownIdentityKey: string, theirUser: string, theirIdentityKey: string): Promise<string> {
  const own = identityKeyBytes(ownIdentityKey);
  const theirs = identityKeyBytes(theirIdentityKey);
  return combineHalves(await fingerprintHalf(own, utf8(ownUser)), await fingerprintHalf(theirs, utf8(theirUser)));
}

/** "12345 67890 ...": groups of five, as people read them out. */
export function formatSafetyNumber(number: string): string {
  return (number.match(/.{1,5}/g) ?? []).join(" ");
}

// ==================================================================== SAS

/** The SAS emoji of the Matrix spec: index → [emoji, English description]. */
export const SAS_EMOJI: readonly (readonly [string, string])[] = [
  ["🐶", "Dog"], ["🐱", "Cat"], ["🦁", "Lion"], ["🐎", "Horse"],
  ["🦄", "Unicorn"], ["🐷", "Pig"], ["🐘", "Elephant"], ["🐰", "Rabbit"],
  ["🐼", "Panda"], ["🐓", "Rooster"], ["🐧", "Penguin"], ["🐢", "Turtle"],
  ["🐟", "Fish"], ["🐙", "Octopus"], ["🦋", "Butterfly"], ["🌷", "Flower"],
  ["🌳", "Tree"], ["🌵", "Cactus"], ["🍄", "Mushroom"], ["🌏", "Globe"],
  ["🌙", "Moon"], ["☁️", "Cloud"], ["🔥", "Fire"], ["🍌", "Banana"],
  ["🍎", "Apple"], ["🍓", "Strawberry"], ["🌽", "Corn"], ["🍕", "Pizza"],
  ["🎂", "Cake"], ["❤️", "Heart"], ["😀", "Smiley"], ["🤖", "Robot"],
  ["🎩", "Hat"], ["👓", "Glasses"], ["🔧", "Spanner"], ["🎅", "Santa"],
  ["👍", "Thumbs Up"], ["☂️", "Umbrella"], ["⌛", "Hourglass"], ["⏰", "Clock"],
  ["🎁", "Gift"], ["💡", "Light Bulb"], ["📕", "Book"], ["✏️", "Pencil"],
  ["📎", "Paperclip"], ["✂️", "Scissors"], ["🔒", "Lock"], ["🔑", "Key"],
  ["🔨", "Hammer"], ["☎️", "Telephone"], ["🏁", "Flag"], ["🚂", "Train"],
  ["🚲", "Bicycle"], ["✈️", "Aeroplane"], ["🚀", "Rocket"], ["🏆", "Trophy"],
  ["⚽", "Ball"], ["🎸", "Guitar"], ["🎺", "Trumpet"], ["🔔", "Bell"],
  ["⚓", "Anchor"], ["🎧", "Headphones"], ["📁", "Folder"], ["📌", "Pin"],
];

/** To-device payload types of the SAS flow (taube.client.sas). */
export const SAS_START = "taube.sas.start";
export const SAS_KEY = "taube.sas.key";
export const SAS_MAC = "taube.sas.mac";
export const SAS_CANCEL = "taube.sas.cancel";
export const SAS_TYPES: ReadonlySet<string> = new Set([SAS_START, SAS_KEY, SAS_MAC, SAS_CANCEL]);

const TRANSACTION_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** A new SAS transaction id (16 URL-safe characters, as Python's token_urlsafe(12)). */
export function newTransaction(): string {
  return randomId(12);
}

export interface SasParty {
  user: string;
  device: string;
  publicKey: string;
}

function label(p: SasParty): string {
  return `${p.user}|${p.device}|${p.publicKey}`;
}

async function commitmentOf(key: string, transactionId: string): Promise<string> {
  const data = utf8(`taube.sas.commitment.v1\n${key}\n${transactionId}`);
  return b64encode(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
}

/** The libolm SAS object, shared by a SasVerification and its EstablishedSas. */
class SasHolder {
  sas: OlmSas | null;
  constructor(sas: OlmSas) {
    this.sas = sas;
  }
  get raw(): OlmSas {
    if (this.sas === null) throw new Error("the SAS was freed");
    return this.sas;
  }
  free(): void {
    this.sas?.free();
    this.sas = null;
  }
}

/** One device's side of a SAS verification (one `establish`). `free()` it
 * (or the EstablishedSas) when done. */
export class SasVerification {
  readonly transactionId: string;
  readonly own: SasParty;
  #holder: SasHolder;
  #used = false;

  constructor(user: string, device: string, transactionId: string) {
    if (!TRANSACTION_ID.test(transactionId)) throw new Error("a transaction id is 8-64 characters of [A-Za-z0-9_-]");
    const sas = new (olmLib().SAS)();
    this.#holder = new SasHolder(sas);
    this.transactionId = transactionId;
    let publicKey: string;
    try {
      publicKey = sas.get_pubkey();
    } catch (err) {
      sas.free();
      throw err;
    }
    this.own = { user, device, publicKey };
  }

  get publicKey(): string {
    return this.own.publicKey;
  }

  /** A hash binding this side's key, sent before the other side's key is seen. */
  commitment(): Promise<string> {
    return commitmentOf(this.publicKey, this.transactionId);
  }

  /** `untrusted_device` unless `theirKey` is the key committed to. */
  async checkCommitment(theirKey: string, commitment: string): Promise<void> {
    if (!bytesEqual(utf8(await commitmentOf(theirKey, this.transactionId)), utf8(commitment))) {
      throw new CryptoError("untrusted_device", "the SAS key does not match its commitment");
    }
  }

  /** The shared secret with the other device's SAS key; `bad_key` for an unusable key. */
  async establish(theirUser: string, theirDevice: string, theirKey: string): Promise<EstablishedSas> {
    try {
      await checkCurve25519(theirKey);
    } catch (err) {
      throw err instanceof CryptoError ? new CryptoError("bad_key", `unusable SAS key: ${err.message}`) : err;
    }
    if (this.#used) throw new Error("a SasVerification is used once");
    this.#used = true;
    try {
      this.#holder.raw.set_their_key(b64encode(b64decode(theirKey)));
    } catch {
      throw new CryptoError("bad_key", "unusable SAS key");
    }
    return new EstablishedSas(this.#holder, this.own, { user: theirUser, device: theirDevice, publicKey: theirKey }, this.transactionId);
  }

  free(): void {
    this.#holder.free();
  }
}

/** The emoji, decimals and key MACs of an established SAS. */
export class EstablishedSas {
  readonly own: SasParty;
  readonly their: SasParty;
  readonly transactionId: string;
  #holder: SasHolder;

  constructor(holder: SasHolder, own: SasParty, their: SasParty, transactionId: string) {
    this.#holder = holder;
    this.own = own;
    this.their = their;
    this.transactionId = transactionId;
  }

  #info(): string {
    const [first, second] = [label(this.own), label(this.their)].sort(compareCodePoints);
    return `TAUBE_SAS_V1|${this.transactionId}|${first}|${second}`;
  }

  #bytes(): Uint8Array {
    return this.#holder.raw.generate_bytes(this.#info(), 6);
  }

  emojiIndices(): number[] {
    const b = this.#bytes();
    // 42 bits in 7 groups of 6, from the top
    let bits = 0n;
    for (let i = 0; i < 6; i++) bits = (bits << 8n) | BigInt(b[i]!);
    return [42, 36, 30, 24, 18, 12, 6].map((shift) => Number((bits >> BigInt(shift)) & 63n));
  }

  /** Seven [emoji, description] pairs to compare. */
  emoji(): (readonly [string, string])[] {
    return this.emojiIndices().map((i) => SAS_EMOJI[i]!);
  }

  /** Three numbers from 1000 to 9191 to compare. */
  decimals(): [number, number, number] {
    const b = this.#bytes();
    const first = (b[0]! << 5) | (b[1]! >> 3);
    const second = ((b[1]! & 0x7) << 10) | (b[2]! << 2) | (b[3]! >> 6);
    const third = ((b[3]! & 0x3f) << 7) | (b[4]! >> 1);
    return [first + 1000, second + 1000, third + 1000];
  }

  #macInfo(sender: SasParty, receiver: SasParty, keyId: string): string {
    return `TAUBE_SAS_MAC_V1|${sender.user}|${sender.device}|${receiver.user}|${receiver.device}|${this.transactionId}|${keyId}`;
  }

  /** MAC of one of this side's keys (e.g. the identity key) for the other side. */
  mac(keyId: string, key: string): string {
    return this.#holder.raw.calculate_mac_fixed_base64(key, this.#macInfo(this.own, this.their, keyId));
  }

  /** `untrusted_device` unless `tag` is the other side's MAC of `key`. */
  verifyMac(keyId: string, key: string, tag: string): void {
    const expected = this.#holder.raw.calculate_mac_fixed_base64(key, this.#macInfo(this.their, this.own, keyId));
    let given: Uint8Array;
    try {
      given = b64decode(tag);
    } catch {
      throw new CryptoError("untrusted_device", "the SAS MAC does not match");
    }
    if (!bytesEqual(b64decode(expected), given)) throw new CryptoError("untrusted_device", "the SAS MAC does not match");
  }

  free(): void {
    this.#holder.free();
  }
}

// ==================================================================== QR code

export const QR_MAGIC = utf8("TAUBE");
export const QR_VERSION = 1;
export const QR_SECRET_BYTES = 16;
const QR_HEADER = QR_MAGIC.length + 1;

/** Python's `parse_address`: trimmed, lower case, `name@domain`; null if not one. */
export function parseAddress(text: string): string | null {
  const address = text.trim().toLowerCase();
  return address.length <= 320 && ADDRESS_RE.test(address) ? address : null;
}

/** The payload of a verification QR code. */
export class VerificationQr {
  readonly user: string;
  readonly identityKey: string;
  readonly #secret: Bytes;

  constructor(user: string, identityKey: string, secret: Uint8Array) {
    this.user = user;
    this.identityKey = identityKey;
    this.#secret = new Uint8Array(secret);
  }

  /** A code for `user`'s `identityKey` with a fresh random secret. */
  static create(user: string, identityKey: string): VerificationQr {
    identityKeyBytes(identityKey);
    return new VerificationQr(user, identityKey, randomBytes(QR_SECRET_BYTES));
  }

  get secret(): Bytes {
    return this.#secret.slice();
  }

  toBytes(): Bytes {
    return concatBytes(QR_MAGIC, new Uint8Array([QR_VERSION]), identityKeyBytes(this.identityKey), this.#secret, utf8(this.user));
  }

  /** Parse a scanned code; `bad_payload` if it is not one of ours. */
  static fromBytes(data: Uint8Array): VerificationQr {
    if (data.length <= QR_HEADER + 32 + QR_SECRET_BYTES || !bytesEqual(data.subarray(0, QR_MAGIC.length), QR_MAGIC)) {
      throw new CryptoError("bad_payload", "not a taube verification code");
    }
    if (data[QR_MAGIC.length] !== QR_VERSION) throw new CryptoError("bad_payload", "unknown verification code version");
    const key = data.slice(QR_HEADER, QR_HEADER + 32);
    const secret = data.slice(QR_HEADER + 32, QR_HEADER + 32 + QR_SECRET_BYTES);
    let address: string;
    try {
      address = fromUtf8(data.subarray(QR_HEADER + 32 + QR_SECRET_BYTES));
      ed25519KeyBytes(b64encode(key));
    } catch {
      throw new CryptoError("bad_payload", "malformed verification code");
    }
    const user = parseAddress(address);
    if (user === null) throw new CryptoError("bad_payload", "malformed verification code");
    if (user !== address) throw new CryptoError("bad_payload", "the address in the code is not normalised");
    return new VerificationQr(user, b64encode(key), secret);
  }

  /** Whether the scanner sent back this code's secret (constant time). */
  checkSecret(secret: Uint8Array): boolean {
    return bytesEqual(this.#secret, secret);
  }
}

/** The text of a QR code to show for `user`'s `identityKey`: the payload as
 * unpadded base64 (a fresh secret each time; use VerificationQr.create to
 * keep the secret and check the scanner's answer). `_peer` is not part of
 * the code (it is the same for every peer). */
export function verificationQr(user: string, identityKey: string, _peer?: string): string {
  return b64encode(VerificationQr.create(user, identityKey).toBytes());
}
