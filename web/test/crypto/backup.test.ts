import { describe, expect, it } from "vitest";
import { fromUtf8, toHex, utf8 } from "../../src/crypto/base64";
import {
  CODE_BYTES,
  newRecoveryCode,
  openBackup,
  parseIdentityBackup,
  recoveryCodeBytes,
  sealBackup,
} from "../../src/crypto/backup";
import { IdentityKeyPair } from "../../src/crypto/keys";
import { kindOf } from "./helpers";

const SMALL = { time_cost: 1, memory_cost: 64, parallelism: 1 };
const USER = "alice@example.org";

describe("recovery code", () => {
  it("is 24 characters of Crockford base32 in six groups", () => {
    const code = newRecoveryCode();
    expect(code).toMatch(/^([0-9A-HJKMNP-TV-Z]{4}-){5}[0-9A-HJKMNP-TV-Z]{4}$/);
    expect(newRecoveryCode()).not.toBe(code);
    expect(recoveryCodeBytes(code)).toHaveLength(CODE_BYTES);
  });

  it("forgives case, spaces, dashes and look-alikes", () => {
    const exact = recoveryCodeBytes("0123-4567-89AB-CDEF-GHJK-MNPQ");
    expect(toHex(exact)).toBe("00443214c74254b635cf84653a56d7");
    expect(recoveryCodeBytes("o123 4567 89ab cdef ghjk mnpq")).toEqual(exact);
    expect(recoveryCodeBytes("0123456789ABCDEFGHJKMNPQ")).toEqual(exact);
    expect(toHex(recoveryCodeBytes("1111-1111-1111-1111-1111-1111"))).toBe(toHex(recoveryCodeBytes("IiLl-1111-1111-1111-1111-1111")));
  });

  it("refuses malformed codes", async () => {
    for (const bad of ["", "0123-4567-89AB-CDEF-GHJK-MNP", "0123-4567-89AB-CDEF-GHJK-MNPQR", "0123-4567-89AB-CDEF-GHJK-MNPU", "0123_4567_89AB_CDEF_GHJK_MNPQ"]) {
      expect(await kindOf(() => recoveryCodeBytes(bad)), bad).toBe("wrong_recovery_code");
    }
  });
});

describe("identity key backup", () => {
  it("round-trips, authenticates everything in the clear", async () => {
    const identity = await IdentityKeyPair.generate();
    const code = newRecoveryCode();
    const blob = await sealBackup(identity, USER, code, SMALL);
    const parsed = parseIdentityBackup(blob);
    expect(Object.keys(JSON.parse(fromUtf8(blob)))).toEqual([
      "v", "user", "identity_key", "kdf", "time_cost", "memory_cost", "parallelism", "salt", "nonce", "ciphertext",
    ]);
    expect(parsed).toMatchObject({ v: 1, user: USER, identity_key: identity.publicKey, kdf: "argon2id", ...SMALL });
    expect(fromUtf8(blob)).not.toContain(code);
    const back = await openBackup(blob, USER, code.toLowerCase());
    expect(back.publicKey).toBe(identity.publicKey);
    expect(back.seed()).toEqual(identity.seed());
    const text = fromUtf8(blob);
    expect(await kindOf(() => openBackup(blob, USER, newRecoveryCode()))).toBe("wrong_recovery_code");
    expect(await kindOf(() => openBackup(blob, "bob@example.org", code))).toBe("bad_payload");
    expect(await kindOf(() => openBackup(utf8(text.replace('"memory_cost":64', '"memory_cost":72')), USER, code))).toBe("wrong_recovery_code");
    const other = await IdentityKeyPair.generate();
    expect(await kindOf(() => openBackup(utf8(text.replace(identity.publicKey, other.publicKey)), USER, code))).toBe("wrong_recovery_code");
  });

  it("refuses malformed blobs and parameters beyond the limits", async () => {
    const identity = await IdentityKeyPair.generate();
    const code = newRecoveryCode();
    const blob = JSON.parse(fromUtf8(await sealBackup(identity, USER, code, SMALL))) as Record<string, unknown>;
    const bad: Record<string, unknown>[] = [
      { ...blob, v: 2 },
      { ...blob, kdf: "scrypt" },
      { ...blob, time_cost: 11 },
      { ...blob, memory_cost: 1024 * 1024 + 1 },
      { ...blob, parallelism: 17 },
      { ...blob, parallelism: 9, memory_cost: 64 },
      { ...blob, time_cost: 0 },
      { ...blob, salt: "AAAA" },
      { ...blob, nonce: "AAAA" },
      { ...blob, salt: "!!!" },
      { ...blob, extra: 1 },
      { ...blob, identity_key: "short" },
    ];
    for (const b of bad) expect(await kindOf(() => openBackup(utf8(JSON.stringify(b)), USER, code)), JSON.stringify(b)).toBe("bad_payload");
    expect(await kindOf(() => openBackup(utf8("not json"), USER, code))).toBe("bad_payload");
    // defaults may be left out, as msgspec allows
    const { v: _v, kdf: _kdf, ...minimal } = blob;
    expect((await openBackup(utf8(JSON.stringify(minimal)), USER, code)).publicKey).toBe(identity.publicKey);
  });
});
