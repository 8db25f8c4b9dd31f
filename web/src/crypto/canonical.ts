// Canonical JSON: what is signed (taube.proto.signing).
//
// The bytes are those of Python's `msgspec.json.encode(obj minus field,
// order="sorted")` for the object *as it is on the wire*: keys sorted by code
// point at every level, no white space, UTF-8, msgspec's string escaping
// (`\b \t \n \f \r`, other control characters as `\u00xx`, everything else
// raw, U+2028 included), which is exactly JSON.stringify's for well-formed
// strings. Wire types leave fields at their default value out; an object
// built here must do the same (e.g. no `fallback: false` on a OneTimeKey).
//
// Numbers: signed objects carry integers only. Integers print as integers;
// an integral float (Python `1.0`) cannot be told from an integer here.
// Non-integers print in JavaScript's shortest form with `e+` shortened to
// `e` (close to, not always equal to, msgspec). `Uint8Array` values print
// as padded base64, as msgspec prints `bytes`. Lone surrogates, undefined in
// arrays, non-finite numbers and unsafe integers are refused.
import { b64encodePadded, concatBytes, utf8, type Bytes } from "./base64";
import { CryptoError } from "./errors";

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Compare by Unicode code point (Python's str order), not UTF-16 unit. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function encodeString(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new CryptoError("bad_payload", "a string holds a lone surrogate");
  return JSON.stringify(s);
}

function encodeNumber(x: number): string {
  if (!Number.isFinite(x)) throw new CryptoError("bad_payload", "a number is not finite");
  if (Number.isInteger(x)) {
    if (!Number.isSafeInteger(x)) throw new CryptoError("bad_payload", "an integer is too large");
    return Object.is(x, -0) ? "0" : String(x);
  }
  return String(x).replace("e+", "e");
}

function encodeValue(value: unknown, depth: number): string {
  if (depth > 64) throw new CryptoError("bad_payload", "nested too deeply");
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return encodeString(value);
    case "number":
      return encodeNumber(value);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      throw new CryptoError("bad_payload", `cannot encode a ${typeof value}`);
  }
  if (value instanceof Uint8Array) return JSON.stringify(b64encodePadded(value));
  if (Array.isArray(value)) {
    return `[${value
      .map((item: unknown) => {
        if (item === undefined) throw new CryptoError("bad_payload", "undefined in an array");
        return encodeValue(item, depth + 1);
      })
      .join(",")}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  entries.sort(([a], [b]) => compareCodePoints(a, b));
  return `{${entries.map(([k, v]) => `${encodeString(k)}:${encodeValue(v, depth + 1)}`).join(",")}}`;
}

/** The canonical JSON string of `value` (sorted keys, every level). */
export function canonicalString(value: unknown): string {
  return encodeValue(value, 0);
}

/** The canonical JSON bytes of `obj` without its top-level field `without`. */
export function canonicalJson(obj: object, without = "signature"): Bytes {
  const copy: Record<string, unknown> = { ...(obj as Record<string, unknown>) };
  delete copy[without];
  return utf8(canonicalString(copy));
}

/** What is signed: the domain label, a newline, the canonical JSON. */
export function signingBytes(domain: string, obj: object): Bytes {
  return concatBytes(utf8(`${domain}\n`), canonicalJson(obj));
}
