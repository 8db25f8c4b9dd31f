import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOMAIN } from "../../src/gen/proto";
import { b64decode, b64encode, utf8 } from "../../src/crypto/base64";
import { verifySignature } from "../../src/crypto/keys";
import { DeviceAccount, initOlm, OlmMachine, parseOlmCiphertext } from "../../src/crypto/olm";
import { connect, freeDevice, kindOf, LOW_ORDER_CURVE25519, makeDevice, PICKLE_KEY, type Device } from "./helpers";

beforeAll(initOlm);

const made: Device[] = [];
async function device(user = "alice@example.org"): Promise<Device> {
  const d = await makeDevice(user);
  made.push(d);
  return d;
}
afterAll(() => made.forEach(freeDevice));

describe("device account", () => {
  it("signs its one-time keys and fallback key", async () => {
    const a = await device();
    const keys = await a.account.oneTimeKeys(a.user, a.device, 3);
    expect(keys).toHaveLength(3);
    for (const k of keys) {
      expect(k.fallback).toBeUndefined();
      expect(k.user).toBe(a.user);
      await verifySignature(DOMAIN.oneTimeKey, k, a.account.ed25519, k.signature);
    }
    // unpublished keys come back on a retry; published ones do not
    expect(await a.account.oneTimeKeys(a.user, a.device, 0)).toEqual(keys);
    a.account.markPublished();
    expect(await a.account.oneTimeKeys(a.user, a.device, 0)).toEqual([]);
    const fallback = await a.account.fallbackKey(a.user, a.device);
    expect(fallback.fallback).toBe(true);
    await verifySignature(DOMAIN.oneTimeKey, fallback, a.account.ed25519, fallback.signature);
    await expect(a.account.oneTimeKeys(a.user, a.device, a.account.maxOneTimeKeys + 1)).rejects.toThrow();
  });

  it("pickles under a 32-byte key", async () => {
    const account = DeviceAccount.create();
    const pickle = account.pickle(PICKLE_KEY);
    const back = DeviceAccount.fromPickle(pickle, PICKLE_KEY);
    expect([back.curve25519, back.ed25519]).toEqual([account.curve25519, account.ed25519]);
    expect(() => account.pickle(new Uint8Array(31))).toThrow();
    const wrong = PICKLE_KEY.slice();
    wrong[0] = 99;
    expect(await kindOf(() => DeviceAccount.fromPickle(pickle, wrong))).toBe("decryption_failed");
    expect(await kindOf(() => DeviceAccount.fromPickle("{}", PICKLE_KEY))).toBe("decryption_failed");
    expect(await kindOf(() => DeviceAccount.fromPickle("garbage", PICKLE_KEY))).toBe("decryption_failed");
    account.free();
    back.free();
  });
});

describe("Olm", () => {
  it("carries to-device payloads both ways, pre-key then normal", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    await connect(alice, bob);
    expect(alice.olm.hasSession(bob.verified)).toBe(true);
    const first = alice.olm.encryptToDevice(bob.verified, "test", { n: 1, text: "hi ä😀\u0000" });
    expect(parseOlmCiphertext(first).type).toBe(0);
    const payload = bob.olm.decryptToDevice(alice.verified, first);
    expect(payload.content).toEqual({ n: 1, text: "hi ä😀\u0000" });
    expect(payload.sender_key).toBe(alice.account.ed25519);
    // the used one-time key is gone: the same pre-key message cannot start a second session
    expect(await kindOf(() => bob.olm.decryptToDevice(alice.verified, first))).toBe("decryption_failed");
    const reply = bob.olm.encryptToDevice(alice.verified, "test", { n: 2 });
    expect(parseOlmCiphertext(reply).type).toBe(1);
    expect(alice.olm.decryptToDevice(bob.verified, reply).content).toEqual({ n: 2 });
    const third = alice.olm.encryptToDevice(bob.verified, "test", {});
    expect(parseOlmCiphertext(third).type).toBe(1);
    const decoded = bob.olm.decryptToDevice(alice.verified, third);
    expect(decoded.content).toEqual({});
    // duplicates are refused
    expect(await kindOf(() => bob.olm.decryptToDevice(alice.verified, third))).toBe("decryption_failed");
  });

  it("accepts padded bodies", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    await connect(alice, bob);
    const message = parseOlmCiphertext(alice.olm.encryptToDevice(bob.verified, "t", {}));
    const padded = { type: message.type, body: message.body + "=".repeat((4 - (message.body.length % 4)) % 4) };
    expect(bob.olm.decrypt(alice.verified, padded)).toContain('"type":"t"');
  });

  it("refuses one-time keys that are not the device's, or unusable", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const carol = await device("carol@example.org");
    const [otk] = await bob.account.oneTimeKeys(bob.user, bob.device, 1);
    expect(await kindOf(() => alice.olm.createOutboundSession(carol.verified, otk!))).toBe("untrusted_device");
    expect(await kindOf(() => alice.olm.createOutboundSession(bob.verified, { ...otk!, key_id: "other" }))).toBe("untrusted_device");
    const [carolKey] = await carol.account.oneTimeKeys(carol.user, carol.device, 1);
    const swapped = { ...otk!, key: carolKey!.key };
    expect(await kindOf(() => alice.olm.createOutboundSession(bob.verified, swapped))).toBe("untrusted_device");
    for (const bad of LOW_ORDER_CURVE25519.slice(0, 3)) {
      const signed = { ...otk!, key: bad };
      signed.signature = bob.account.sign(DOMAIN.oneTimeKey, signed);
      expect(await kindOf(() => alice.olm.createOutboundSession(bob.verified, signed))).toBe("bad_key");
    }
    expect(alice.olm.hasSession(bob.verified)).toBe(false);
    await alice.olm.createOutboundSession(bob.verified, otk!);
  });

  it("works on the fallback key, which stays", async () => {
    const alice = await device();
    const carol = await device("carol@example.org");
    const bob = await device("bob@example.org");
    const fallback = await bob.account.fallbackKey(bob.user, bob.device);
    bob.account.markPublished();
    for (const sender of [alice, carol]) {
      await sender.olm.createOutboundSession(bob.verified, fallback);
      const body = sender.olm.encryptToDevice(bob.verified, "t", { from: sender.user });
      expect(bob.olm.decryptToDevice(sender.verified, body).content).toEqual({ from: sender.user });
    }
  });

  it("checks the binding of to-device payloads", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const mallory = await device("mallory@example.org");
    await connect(alice, bob);
    // decrypting as if another device sent it: the session does not match
    const body = alice.olm.encryptToDevice(bob.verified, "t", {});
    expect(await kindOf(() => bob.olm.decryptToDevice(mallory.verified, body))).toBe("decryption_failed");
    // same keys, but the envelope names another device of the same user
    const impostor = { ...alice.verified, device: "X".repeat(22) };
    expect(await kindOf(() => bob.olm.decryptToDevice(impostor, body))).toBe("bad_payload");
    // a payload made for someone else (forwarded)
    await connect(alice, mallory);
    const forMallory = alice.olm.encryptToDevice(mallory.verified, "t", {});
    const plaintext = mallory.olm.decrypt(alice.verified, parseOlmCiphertext(forMallory));
    await connect(mallory, bob);
    const forwarded = mallory.olm.encrypt(bob.verified, plaintext);
    const forwardedBody = utf8(JSON.stringify(forwarded));
    expect(await kindOf(() => bob.olm.decryptToDevice(mallory.verified, forwardedBody))).toBe("bad_payload");
  });

  it("refuses malformed and tampered messages", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    expect(await kindOf(() => bob.olm.decryptToDevice(alice.verified, utf8('{"type":1,"body":"AAAA"}')))).toBe("unknown_session");
    for (const bad of ["", "[]", '{"type":2,"body":"AAAA"}', '{"type":0,"body":""}', '{"type":0,"body":"AA","x":1}', '{"type":0}']) {
      expect(await kindOf(() => bob.olm.decryptToDevice(alice.verified, utf8(bad))), bad).toBe("decryption_failed");
    }
    await connect(alice, bob);
    const message = parseOlmCiphertext(alice.olm.encryptToDevice(bob.verified, "t", {}));
    const raw = b64decode(message.body);
    raw[raw.length - 3] = raw[raw.length - 3]! ^ 1;
    expect(await kindOf(() => bob.olm.decrypt(alice.verified, { type: 0, body: b64encode(raw) }))).toBe("decryption_failed");
    expect(bob.olm.decrypt(alice.verified, message)).toContain('"type":"t"');
  });

  it("encrypts only with a session", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    expect(await kindOf(() => alice.olm.encryptToDevice(bob.verified, "t", {}))).toBe("unknown_session");
  });

  it("keeps both sessions when both sides start one", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    await connect(alice, bob);
    await connect(bob, alice);
    const a1 = alice.olm.encryptToDevice(bob.verified, "t", { from: "a" });
    const b1 = bob.olm.encryptToDevice(alice.verified, "t", { from: "b" });
    expect(bob.olm.decryptToDevice(alice.verified, a1).content).toEqual({ from: "a" });
    expect(alice.olm.decryptToDevice(bob.verified, b1).content).toEqual({ from: "b" });
    expect(alice.olm.sessionIds(bob.verified)).toHaveLength(2);
    const a2 = alice.olm.encryptToDevice(bob.verified, "t", { from: "a2" });
    expect(bob.olm.decryptToDevice(alice.verified, a2).content).toEqual({ from: "a2" });
  });

  it("pickles sessions with their peers", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    await connect(alice, bob);
    bob.olm.decryptToDevice(alice.verified, alice.olm.encryptToDevice(bob.verified, "t", {}));
    const accountPickle = bob.account.pickle(PICKLE_KEY);
    const machinePickle = bob.olm.pickle(PICKLE_KEY);
    expect(machinePickle).not.toContain("\"content\"");
    const account = DeviceAccount.fromPickle(accountPickle, PICKLE_KEY);
    const restored = OlmMachine.fromPickle(machinePickle, PICKLE_KEY, account);
    expect(restored.user).toBe(bob.user);
    expect(restored.hasSession(alice.verified)).toBe(true);
    const later = alice.olm.encryptToDevice(bob.verified, "t", { n: 5 });
    expect(restored.decryptToDevice(alice.verified, later).content).toEqual({ n: 5 });
    const other = DeviceAccount.create();
    expect(await kindOf(() => OlmMachine.fromPickle(machinePickle, PICKLE_KEY, other))).toBe("decryption_failed");
    const wrong = PICKLE_KEY.map((x) => x ^ 1);
    expect(await kindOf(() => OlmMachine.fromPickle(machinePickle, wrong, account))).toBe("decryption_failed");
    expect([...PICKLE_KEY]).toEqual(Array.from({ length: 32 }, (_, i) => i)); // libolm did not zero our key
    restored.free();
    account.free();
    other.free();
  });
});
