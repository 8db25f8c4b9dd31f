import { describe, expect, it } from "vitest";
import {
  b64decode,
  b64encode,
  b64encodePadded,
  bytesEqual,
  fromHex,
  fromUtf8,
  randomBytes,
  randomId,
  toHex,
  utf8,
} from "../../src/crypto/base64";
import { CryptoError } from "../../src/crypto/errors";

describe("base64", () => {
  it("encodes like Python, unpadded and padded", () => {
    expect(b64encode(new Uint8Array([]))).toBe("");
    expect(b64encode(utf8("f"))).toBe("Zg");
    expect(b64encode(utf8("fo"))).toBe("Zm8");
    expect(b64encode(utf8("foo"))).toBe("Zm9v");
    expect(b64encodePadded(utf8("f"))).toBe("Zg==");
    expect(b64encodePadded(utf8("fo"))).toBe("Zm8=");
    expect(b64encode(new Uint8Array([0xfb, 0xff]))).toBe("+/8");
  });

  it("round-trips every length", () => {
    for (let n = 0; n < 70; n++) {
      const data = randomBytes(n);
      expect(bytesEqual(b64decode(b64encode(data)), data)).toBe(true);
      expect(bytesEqual(b64decode(b64encodePadded(data)), data)).toBe(true);
    }
  });

  it("accepts padding but refuses garbage", () => {
    expect(fromUtf8(b64decode("Zm8="))).toBe("fo");
    expect(fromUtf8(b64decode("Zm8"))).toBe("fo");
    for (const bad of ["Z", "Zm9vY", "Zm 9v", "Zm9v\n", "Zm-_", "Z=m9", "é"]) {
      expect(() => b64decode(bad), bad).toThrow(CryptoError);
    }
  });

  it("makes URL-safe random ids", () => {
    const id = randomId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(randomId(24)).toHaveLength(32);
    expect(randomId()).not.toBe(id);
  });

  it("decodes UTF-8 strictly", () => {
    expect(fromUtf8(utf8("ä😀"))).toBe("ä😀");
    expect(() => fromUtf8(new Uint8Array([0xff]))).toThrow(CryptoError);
    expect(() => fromUtf8(new Uint8Array([0xed, 0xa0, 0x80]))).toThrow(CryptoError);
  });

  it("hex", () => {
    expect(toHex(new Uint8Array([0, 255, 16]))).toBe("00ff10");
    expect([...fromHex("00FF10")]).toEqual([0, 255, 16]);
    expect(() => fromHex("0")).toThrow(CryptoError);
    expect(() => fromHex("zz")).toThrow(CryptoError);
    expect(randomBytes(100000)).toHaveLength(100000);
  });
});
