import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b64decode, b64encode, concatBytes, fromHex, utf8 } from "../../src/crypto/base64";
import { initOlm } from "../../src/crypto/olm";
import {
  combineHalves,
  EstablishedSas,
  fingerprintHalf,
  formatSafetyNumber,
  newTransaction,
  SAS_EMOJI,
  safetyNumber,
  SasVerification,
  verificationQr,
  VerificationQr,
} from "../../src/crypto/verification";
import { kindOf, LOW_ORDER_CURVE25519 } from "./helpers";

const ALICE = "alice@example.org";
const BOB = "bob@example.org";
const ALICE_DEVICE = "A".repeat(22);
const BOB_DEVICE = "B".repeat(22);
/** the public keys of RFC 8032's Ed25519 test vectors 1 and 2 */
const ALICE_KEY = b64encode(fromHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
const BOB_KEY = b64encode(fromHex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"));

beforeAll(initOlm);

describe("safety number (Python's known answers)", () => {
  it("passes libsignal's published vector", async () => {
    const alice = fromHex("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868");
    const bob = fromHex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b");
    const own = await fingerprintHalf(alice, utf8("+14152222222"));
    const theirs = await fingerprintHalf(bob, utf8("+14153333333"));
    const expected = "300354477692869396892869876765458257569162576843440918079131";
    expect(combineHalves(own, theirs)).toBe(expected);
    expect(combineHalves(theirs, own)).toBe(expected);
  });

  it("gives taube's known answer, the same from both sides", async () => {
    const number = await safetyNumber(ALICE, ALICE_KEY, BOB, BOB_KEY);
    expect(number).toBe("095174171840932887398285009437518343022568198807543950771810");
    expect(await safetyNumber(BOB, BOB_KEY, ALICE, ALICE_KEY)).toBe(number);
    expect(formatSafetyNumber(number)).toBe("09517 41718 40932 88739 82850 09437 51834 30225 68198 80754 39507 71810");
    expect(await fingerprintHalf(b64decode(BOB_KEY), utf8(BOB))).toBe("518343022568198807543950771810");
  });

  it("changes with the key or the address, and refuses bad keys", async () => {
    const number = await safetyNumber(ALICE, ALICE_KEY, BOB, BOB_KEY);
    expect(await safetyNumber("carol@example.org", ALICE_KEY, BOB, BOB_KEY)).not.toBe(number);
    expect(await safetyNumber(ALICE, BOB_KEY, BOB, BOB_KEY)).not.toBe(number);
    for (const bad of ["AAAA", "!!", b64encode(new Uint8Array(32))]) {
      expect(await kindOf(() => safetyNumber(ALICE, bad, BOB, BOB_KEY))).toBe("bad_key");
    }
  });
});

describe("SAS", () => {
  const open: (SasVerification | EstablishedSas)[] = [];
  afterAll(() => open.forEach((s) => s.free()));

  function pair(txn = "txn-00000001"): [SasVerification, SasVerification] {
    const a = new SasVerification(ALICE, ALICE_DEVICE, txn);
    const b = new SasVerification(BOB, BOB_DEVICE, txn);
    open.push(a, b);
    return [a, b];
  }

  it("uses the Matrix emoji table", () => {
    expect(SAS_EMOJI).toHaveLength(64);
    expect(new Set(SAS_EMOJI.map(([e]) => e)).size).toBe(64);
    expect(new Set(SAS_EMOJI.map(([, n]) => n)).size).toBe(64);
    expect(SAS_EMOJI[0]).toEqual(["\u{1f436}", "Dog"]);
    expect(SAS_EMOJI[21]).toEqual(["\u2601\ufe0f", "Cloud"]);
    expect(SAS_EMOJI[36]).toEqual(["\u{1f44d}", "Thumbs Up"]);
    expect(SAS_EMOJI[38]).toEqual(["\u231b", "Hourglass"]);
    expect(SAS_EMOJI[53]).toEqual(["\u2708\ufe0f", "Aeroplane"]);
    expect(SAS_EMOJI[63]).toEqual(["\u{1f4cc}", "Pin"]);
  });

  it("shows both sides the same emoji and decimals", async () => {
    const [a, b] = pair();
    const onAlice = await a.establish(BOB, BOB_DEVICE, b.publicKey);
    const onBob = await b.establish(ALICE, ALICE_DEVICE, a.publicKey);
    expect(onAlice.emoji()).toEqual(onBob.emoji());
    expect(onAlice.emoji()).toHaveLength(7);
    expect(onAlice.emojiIndices().every((i) => i >= 0 && i < 64)).toBe(true);
    expect(onAlice.decimals()).toEqual(onBob.decimals());
    expect(onAlice.decimals().every((d) => d >= 1000 && d <= 9191)).toBe(true);
  });

  it("shows a man in the middle different emoji", async () => {
    const [a, b] = pair();
    const mallory = new SasVerification(BOB, BOB_DEVICE, "txn-00000001");
    open.push(mallory);
    const onAlice = await a.establish(BOB, BOB_DEVICE, mallory.publicKey);
    const onBob = await b.establish(ALICE, ALICE_DEVICE, mallory.publicKey);
    expect(onAlice.emojiIndices()).not.toEqual(onBob.emojiIndices());
  });

  it("commits to a key", async () => {
    const [a, b] = pair();
    const commitment = await a.commitment();
    await b.checkCommitment(a.publicKey, commitment);
    expect(await kindOf(() => b.checkCommitment(b.publicKey, commitment))).toBe("untrusted_device");
    const [, c] = pair("txn-00000002");
    expect(await kindOf(() => c.checkCommitment(a.publicKey, commitment))).toBe("untrusted_device");
  });

  it("MACs keys for the other side only", async () => {
    const [a, b] = pair();
    const onAlice = await a.establish(BOB, BOB_DEVICE, b.publicKey);
    const onBob = await b.establish(ALICE, ALICE_DEVICE, a.publicKey);
    const tag = onAlice.mac("identity", ALICE_KEY);
    expect(b64decode(tag)).toHaveLength(32);
    expect(tag).not.toContain("=");
    onBob.verifyMac("identity", ALICE_KEY, tag);
    onBob.verifyMac("identity", ALICE_KEY, `${tag}=`);
    expect(await kindOf(() => onBob.verifyMac("identity", BOB_KEY, tag))).toBe("untrusted_device");
    expect(await kindOf(() => onBob.verifyMac("other", ALICE_KEY, tag))).toBe("untrusted_device");
    expect(await kindOf(() => onAlice.verifyMac("identity", ALICE_KEY, tag))).toBe("untrusted_device");
    expect(await kindOf(() => onBob.verifyMac("identity", ALICE_KEY, "!!"))).toBe("untrusted_device");
  });

  it("refuses low-order keys, and a second establish", async () => {
    const [a, b] = pair();
    for (const key of LOW_ORDER_CURVE25519) expect(await kindOf(() => a.establish(BOB, BOB_DEVICE, key))).toBe("bad_key");
    await a.establish(BOB, BOB_DEVICE, b.publicKey);
    await expect(a.establish(BOB, BOB_DEVICE, b.publicKey)).rejects.toThrow(/used once/);
  });

  it("checks transaction ids", () => {
    for (const bad of ["short", "x".repeat(65), "has space!", "ümlaut00"]) expect(() => new SasVerification(ALICE, ALICE_DEVICE, bad)).toThrow();
    const txn = newTransaction();
    expect(txn).toMatch(/^[A-Za-z0-9_-]{16}$/);
    open.push(new SasVerification(ALICE, ALICE_DEVICE, txn));
  });
});

describe("verification QR code", () => {
  it("round-trips and checks the secret", () => {
    const code = VerificationQr.create(ALICE, ALICE_KEY);
    const data = code.toBytes();
    expect(data).toHaveLength(6 + 32 + 16 + ALICE.length);
    const scanned = VerificationQr.fromBytes(data);
    expect([scanned.user, scanned.identityKey]).toEqual([ALICE, ALICE_KEY]);
    expect(code.checkSecret(scanned.secret)).toBe(true);
    expect(code.checkSecret(new Uint8Array(16))).toBe(false);
    expect(b64decode(verificationQr(ALICE, ALICE_KEY))).toHaveLength(data.length);
  });

  it("refuses what is not one of ours", async () => {
    const good = VerificationQr.create(ALICE, ALICE_KEY).toBytes();
    const header = good.slice(0, 6);
    const body = good.slice(6, 54);
    const bad = [
      new Uint8Array(0),
      utf8("TAUBE"),
      good.slice(0, 54),
      concatBytes(utf8("TAUBX"), good.slice(5)),
      concatBytes(utf8("TAUBE"), new Uint8Array([2]), good.slice(6)),
      concatBytes(header, body, utf8("Alice@Example.org")),
      concatBytes(header, body, utf8("not an address")),
      concatBytes(header, body, new Uint8Array([0xff, 0xfe])),
      concatBytes(header, new Uint8Array(32), good.slice(38)),
    ];
    for (const data of bad) expect(await kindOf(() => VerificationQr.fromBytes(data))).toBe("bad_payload");
    expect(await kindOf(() => VerificationQr.create(ALICE, "AAAA"))).toBe("bad_key");
  });
});
