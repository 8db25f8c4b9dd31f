// Checked reading of decoded JSON: the constraints msgspec applies to the
// Python structs (types, lengths, patterns, defaults, unknown fields), so
// that what Python refuses is refused here too. Internal to the crypto layer.
import { ADDRESS_PATTERN, RANDOM_ID_PATTERN } from "../gen/proto";
import type { CryptoError } from "./errors";

export const ADDRESS_RE = new RegExp(ADDRESS_PATTERN);
export const RANDOM_ID_RE = new RegExp(RANDOM_ID_PATTERN);
/** A Curve25519 / Ed25519 public key: 32 bytes of base64, padding optional. */
export const KEY_RE = /^[A-Za-z0-9+/]{43}=?$/;

export type Fail = (message: string) => CryptoError;

export interface StringRule {
  pattern?: RegExp;
  /** length in code points, as msgspec counts */
  min?: number;
  max?: number;
  default?: string;
}

export interface IntRule {
  min?: number;
  max?: number;
  default?: number;
}

/** The rules of the id fields (taube.proto.ids). */
export const USER: StringRule = { pattern: ADDRESS_RE, max: 320 };
export const RANDOM_ID: StringRule = { pattern: RANDOM_ID_RE };
export const KEY: StringRule = { pattern: KEY_RE };

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Parse `text` as a JSON object; `fail` for anything else. */
export function parseJsonObject(text: string, fail: Fail): Fields {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw fail("not JSON");
  }
  return Fields.of(value, fail);
}

export class Fields {
  readonly obj: Record<string, unknown>;
  readonly fail: Fail;

  private constructor(obj: Record<string, unknown>, fail: Fail) {
    this.obj = obj;
    this.fail = fail;
  }

  static of(value: unknown, fail: Fail): Fields {
    if (!isPlainObject(value)) throw fail("not an object");
    return new Fields(value, fail);
  }

  has(name: string): boolean {
    return Object.hasOwn(this.obj, name) && this.obj[name] !== undefined;
  }

  /** Refuse fields not in `known` (msgspec's `forbid_unknown_fields`). */
  onlyKnown(known: readonly string[]): this {
    for (const name of Object.keys(this.obj)) {
      if (!known.includes(name)) throw this.fail(`unknown field ${JSON.stringify(name)}`);
    }
    return this;
  }

  string(name: string, rule: StringRule = {}): string {
    if (!this.has(name)) {
      if (rule.default !== undefined) return rule.default;
      throw this.fail(`missing ${name}`);
    }
    const value = this.obj[name];
    if (typeof value !== "string") throw this.fail(`${name} is not a string`);
    const n = rule.min !== undefined || rule.max !== undefined ? codePoints(value) : 0;
    if (rule.min !== undefined && n < rule.min) throw this.fail(`${name} is too short`);
    if (rule.max !== undefined && n > rule.max) throw this.fail(`${name} is too long`);
    if (rule.pattern !== undefined && !rule.pattern.test(value)) throw this.fail(`${name} is malformed`);
    return value;
  }

  int(name: string, rule: IntRule = {}): number {
    if (!this.has(name)) {
      if (rule.default !== undefined) return rule.default;
      throw this.fail(`missing ${name}`);
    }
    const value = this.obj[name];
    if (typeof value !== "number" || !Number.isSafeInteger(value)) throw this.fail(`${name} is not an integer`);
    if (rule.min !== undefined && value < rule.min) throw this.fail(`${name} is too small`);
    if (rule.max !== undefined && value > rule.max) throw this.fail(`${name} is too large`);
    return value;
  }

  bool(name: string, fallback?: boolean): boolean {
    if (!this.has(name)) {
      if (fallback !== undefined) return fallback;
      throw this.fail(`missing ${name}`);
    }
    const value = this.obj[name];
    if (typeof value !== "boolean") throw this.fail(`${name} is not a boolean`);
    return value;
  }

  object(name: string, fallback?: Record<string, unknown>): Record<string, unknown> {
    if (!this.has(name)) {
      if (fallback !== undefined) return fallback;
      throw this.fail(`missing ${name}`);
    }
    const value = this.obj[name];
    if (!isPlainObject(value)) throw this.fail(`${name} is not an object`);
    return value;
  }

  array(name: string): unknown[] {
    const value = this.obj[name];
    if (!Array.isArray(value)) throw this.fail(`${name} is not a list`);
    return value;
  }

  fields(name: string): Fields {
    return Fields.of(this.object(name), this.fail);
  }
}
