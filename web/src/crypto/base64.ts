// Base64, UTF-8 and randomness, without Node's Buffer (the browser has none).
//
// Keys, signatures and Olm bodies travel as standard base64 *without* padding
// (the form of libolm and vodozemac); msgspec writes `bytes` fields padded.
// Decoding accepts both, and like Python's `b64decode(validate=True)` it
// refuses anything outside the alphabet (white space included).
import { CryptoError } from "./errors";

/** Bytes backed by a plain ArrayBuffer: what WebCrypto takes. */
export type Bytes = Uint8Array<ArrayBuffer>;

const STANDARD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < STANDARD.length; i++) DECODE[STANDARD.charCodeAt(i)] = i;

function encode(b: Uint8Array, alphabet: string, pad: boolean): string {
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + alphabet[n & 63]!;
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i]! << 16;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + (pad ? "==" : "");
  } else if (rest === 2) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8);
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + (pad ? "=" : "");
  }
  return out;
}

/** Standard base64 without padding (keys, signatures, Olm bodies). */
export function b64encode(b: Uint8Array): string {
  return encode(b, STANDARD, false);
}

/** Standard base64 with padding (msgspec `bytes` fields on the wire). */
export function b64encodePadded(b: Uint8Array): string {
  return encode(b, STANDARD, true);
}

/** URL-safe base64 without padding (random ids). */
export function b64urlencode(b: Uint8Array): string {
  return encode(b, URLSAFE, false);
}

/** Standard base64, padding optional; `CryptoError("bad_payload")` on garbage. */
export function b64decode(s: string): Bytes {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 61 /* = */) end--;
  if (end % 4 === 1) throw new CryptoError("bad_payload", "invalid base64");
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? DECODE[c]! : -1;
    if (v < 0) throw new CryptoError("bad_payload", "invalid base64");
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8(s: string): Bytes {
  return new Uint8Array(encoder.encode(s));
}

/** Strict UTF-8: `CryptoError("bad_payload")` for invalid bytes. */
export function fromUtf8(b: Uint8Array): string {
  try {
    return strictDecoder.decode(b);
  } catch {
    throw new CryptoError("bad_payload", "invalid UTF-8");
  }
}

export function randomBytes(n: number): Bytes {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes per call
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

/** A random id: URL-safe unpadded base64 of `nbytes` (16: 22 characters). */
export function randomId(nbytes = 16): string {
  return b64urlencode(randomBytes(nbytes));
}

export function toHex(b: Uint8Array): string {
  let out = "";
  for (const x of b) out += x.toString(16).padStart(2, "0");
  return out;
}

/** Lower- or upper-case hex, even length; `CryptoError("bad_payload")` otherwise. */
export function fromHex(s: string): Bytes {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new CryptoError("bad_payload", "invalid hex");
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Constant-time comparison of two byte strings (length is not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** The same bytes typed for WebCrypto (every array here is ArrayBuffer-backed). */
export function buf(b: Uint8Array): Bytes {
  return b.buffer instanceof ArrayBuffer ? (b as Bytes) : new Uint8Array(b);
}
