// Recovery code and the encrypted server-side backup of the identity key
// (taube.crypto.backup, same code format, blob, associated data and limits).
//
// Recovery code: 24 characters of Crockford's base32 (0-9 A-Z without
// I L O U), 120 random bits, shown as six groups of four. Reading it back
// forgives case, spaces, dashes and the look-alikes O→0, I/L→1. The 15
// decoded bytes, not the text, are the secret.
//
// Blob (IdentityBackup JSON, version 1): the identity key's 32-byte seed,
// AES-256-GCM under a key derived with argon2id (default t=3, m=64 MiB,
// p=4, 16-byte salt) from the code's bytes. The associated data is
// "taube.backup.v1\n" + the blob's canonical JSON without `ciphertext`, so
// every field in the clear is authenticated.
import { argon2id } from "hash-wasm";
import type { IdentityBackup } from "../gen/proto";
import { b64decode, b64encode, buf, concatBytes, fromUtf8, randomBytes, utf8, type Bytes } from "./base64";
import { canonicalJson } from "./canonical";
import { CryptoError } from "./errors";
import { KEY, parseJsonObject, USER } from "./fields";
import { IdentityKeyPair } from "./keys";

export type { IdentityBackup };

export const RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
export const CODE_LENGTH = 24;
export const CODE_BYTES = (CODE_LENGTH * 5) / 8;
const GROUP = 4;
const DOMAIN = "taube.backup.v1";
const SALT_BYTES = 16;
const NONCE_BYTES = 12;

/** argon2id cost parameters (`memory_cost` in KiB). */
export interface KdfParams {
  time_cost: number;
  memory_cost: number;
  parallelism: number;
}

/** RFC 9106's second recommended option */
export const DEFAULT_KDF: Readonly<KdfParams> = { time_cost: 3, memory_cost: 64 * 1024, parallelism: 4 };
/** the most a stored blob may ask of this device (1 GiB, 10 passes) */
export const MAX_KDF: Readonly<KdfParams> = { time_cost: 10, memory_cost: 1024 * 1024, parallelism: 16 };

// ==================================================================== the code

/** A fresh code to show the user once (never store or log it). */
export function newRecoveryCode(): string {
  // 256 is a multiple of 32: `byte & 31` is uniform
  const text = [...randomBytes(CODE_LENGTH)].map((b) => RECOVERY_ALPHABET[b & 31]!).join("");
  const groups: string[] = [];
  for (let i = 0; i < CODE_LENGTH; i += GROUP) groups.push(text.slice(i, i + GROUP));
  return groups.join("-");
}

/** Normalise a typed base32 code: upper case, look-alikes, no spaces or dashes. */
export function normaliseCode(code: string): string {
  return code
    .toUpperCase()
    .replace(/[ -]/g, "")
    .replace(/O/g, "0")
    .replace(/[IL]/g, "1");
}

/** The big-endian value of a normalised base32 text. */
export function base32Value(text: string): bigint {
  let value = 0n;
  for (const ch of text) value = (value << 5n) | BigInt(RECOVERY_ALPHABET.indexOf(ch));
  return value;
}

export function bigintBytes(value: bigint, length: number): Bytes {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** The 15 secret bytes of a typed code; `wrong_recovery_code` if malformed. */
export function recoveryCodeBytes(code: string): Bytes {
  const text = normaliseCode(code);
  if ([...text].length !== CODE_LENGTH || [...text].some((ch) => !RECOVERY_ALPHABET.includes(ch))) {
    throw new CryptoError("wrong_recovery_code", `a recovery code is ${CODE_LENGTH} letters and digits`);
  }
  return bigintBytes(base32Value(text), CODE_BYTES);
}

// ==================================================================== the blob

type FullBackup = Required<IdentityBackup>;

/** Decode an IdentityBackup as Python's struct does (unknown fields refused,
 * defaults filled in); `bad_payload` if it is not one. */
export function parseIdentityBackup(data: Uint8Array): FullBackup {
  const fail = (m: string) => new CryptoError("bad_payload", `not an identity key backup: ${m}`);
  let text: string;
  try {
    text = fromUtf8(data);
  } catch {
    throw fail("invalid UTF-8");
  }
  const f = parseJsonObject(text, fail).onlyKnown([
    "v",
    "user",
    "identity_key",
    "kdf",
    "time_cost",
    "memory_cost",
    "parallelism",
    "salt",
    "nonce",
    "ciphertext",
  ]);
  return {
    v: f.int("v", { default: 1 }),
    user: f.string("user", USER),
    identity_key: f.string("identity_key", KEY),
    kdf: f.string("kdf", { default: "argon2id" }),
    time_cost: f.int("time_cost", { min: 1 }),
    memory_cost: f.int("memory_cost", { min: 8 }),
    parallelism: f.int("parallelism", { min: 1 }),
    salt: f.string("salt", { max: 200 }),
    nonce: f.string("nonce", { max: 200 }),
    ciphertext: f.string("ciphertext", { max: 200 }),
  };
}

/** The blob's bytes, fields in the Python struct's order (all of them). */
function backupBytes(b: FullBackup): Bytes {
  const { v, user, identity_key, kdf, time_cost, memory_cost, parallelism, salt, nonce, ciphertext } = b;
  return utf8(JSON.stringify({ v, user, identity_key, kdf, time_cost, memory_cost, parallelism, salt, nonce, ciphertext }));
}

function associatedData(b: FullBackup): Bytes {
  return concatBytes(utf8(`${DOMAIN}\n`), canonicalJson(b, "ciphertext"));
}

async function derive(secret: Uint8Array, salt: Uint8Array, p: KdfParams): Promise<CryptoKey> {
  const raw = await argon2id({
    password: secret,
    salt,
    iterations: p.time_cost,
    memorySize: p.memory_cost,
    parallelism: p.parallelism,
    hashLength: 32,
    outputType: "binary",
  });
  return crypto.subtle.importKey("raw", buf(raw), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** Encrypt `identity` for the server with a key derived from `code`: the
 * IdentityBackup JSON bytes (`KeyBackup.sealed`). */
export async function sealBackup(identity: IdentityKeyPair, user: string, code: string, params: KdfParams = DEFAULT_KDF): Promise<Bytes> {
  const secret = recoveryCodeBytes(code);
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const blob: FullBackup = {
    v: 1,
    user,
    identity_key: identity.publicKey,
    kdf: "argon2id",
    time_cost: params.time_cost,
    memory_cost: params.memory_cost,
    parallelism: params.parallelism,
    salt: b64encode(salt),
    nonce: b64encode(nonce),
    ciphertext: "",
  };
  const key = await derive(secret, salt, params);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: associatedData(blob) }, key, buf(identity.seed()));
  return backupBytes({ ...blob, ciphertext: b64encode(new Uint8Array(sealed)) });
}

/** The identity key in a backup blob. `wrong_recovery_code` if `code` does
 * not open it (or the blob was changed); `bad_payload` if the blob is
 * malformed, belongs to another user, or asks for more than MAX_KDF. */
export async function openBackup(data: Uint8Array, user: string, code: string): Promise<IdentityKeyPair> {
  const blob = parseIdentityBackup(data);
  if (blob.v !== 1 || blob.kdf !== "argon2id") throw new CryptoError("bad_payload", "unknown backup format");
  if (blob.user !== user) throw new CryptoError("bad_payload", "the backup belongs to another user");
  if (
    blob.time_cost > MAX_KDF.time_cost ||
    blob.memory_cost > MAX_KDF.memory_cost ||
    blob.parallelism > MAX_KDF.parallelism ||
    blob.memory_cost < 8 * blob.parallelism
  ) {
    throw new CryptoError("bad_payload", "the backup's KDF parameters are out of range");
  }
  let salt: Bytes, nonce: Bytes, sealed: Bytes;
  try {
    [salt, nonce, sealed] = [b64decode(blob.salt), b64decode(blob.nonce), b64decode(blob.ciphertext)];
  } catch {
    throw new CryptoError("bad_payload", "malformed backup");
  }
  if (salt.length < SALT_BYTES || nonce.length !== NONCE_BYTES) throw new CryptoError("bad_payload", "malformed backup");
  const secret = recoveryCodeBytes(code);
  const key = await derive(secret, salt, blob);
  let seed: Bytes;
  try {
    seed = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: associatedData(blob) }, key, sealed));
  } catch {
    throw new CryptoError("wrong_recovery_code", "the recovery code does not open this backup");
  }
  const identity = await IdentityKeyPair.fromSeed(seed);
  if (identity.publicKey !== blob.identity_key) throw new CryptoError("bad_payload", "the backup holds another key than it names");
  return identity;
}
