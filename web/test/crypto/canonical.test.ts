import { describe, expect, it } from "vitest";
import { fromUtf8 } from "../../src/crypto/base64";
import { canonicalJson, compareCodePoints, signingBytes } from "../../src/crypto/canonical";
import { CryptoError } from "../../src/crypto/errors";

const text = (o: object, without?: string) => fromUtf8(canonicalJson(o, without));

describe("canonical JSON", () => {
  it("sorts keys at every level and leaves the signature out", () => {
    expect(text({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null }, signature: "x" })).toBe(
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
    expect(text({ signature: "x", a: true }, "")).toBe('{"a":true,"signature":"x"}');
    expect(text({ ciphertext: "x", a: false }, "ciphertext")).toBe('{"a":false}');
  });

  it("sorts by code point, as Python does", () => {
    expect(text({ "\uffff": 1, "😀": 2, é: 3, Z: 4, e: 5 })).toBe('{"Z":4,"e":5,"é":3,"\uffff":1,"😀":2}');
    expect(compareCodePoints("\uffff", "😀")).toBeLessThan(0);
    expect(compareCodePoints("a", "ab")).toBeLessThan(0);
  });

  it("escapes as msgspec does", () => {
    const all = Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)).join("");
    expect(text({ s: all })).toBe(
      '{"s":"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f' +
        "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f" +
        ' !\\"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\x7f"}',
    );
    expect(text({ s: "\u2028\u2029é😀\ufeff" })).toBe('{"s":"\u2028\u2029é😀\ufeff"}');
  });

  it("skips undefined fields and writes bytes as padded base64", () => {
    expect(text({ a: undefined, b: new Uint8Array([1]) })).toBe('{"b":"AQ=="}');
  });

  it("refuses what has no canonical form", () => {
    for (const bad of [{ a: NaN }, { a: Infinity }, { a: 2 ** 60 }, { a: "\ud800" }, { a: [undefined] }, { a: () => 1 }]) {
      expect(() => canonicalJson(bad)).toThrow(CryptoError);
    }
  });

  it("prefixes the domain", () => {
    expect(fromUtf8(signingBytes("taube.device.v1", { b: 2, a: 1, signature: "" }))).toBe('taube.device.v1\n{"a":1,"b":2}');
  });
});
