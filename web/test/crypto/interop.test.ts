// Interop with the Python SDK, both directions, live: a Python peer process
// (tests/web/interop_peer.py, real taube.crypto on vodozemac) makes and
// opens what this side opens and makes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceKeys, IdentityKey, MessagePayload, OneTimeKey, ToDevicePayload } from "../../src/gen/proto";
import { DOMAIN } from "../../src/gen/proto";
import { decryptAttachment, encryptAttachment, type AttachmentKey } from "../../src/crypto/attachments";
import { openBackup, recoveryCodeBytes, sealBackup } from "../../src/crypto/backup";
import { b64decode, b64encode, b64encodePadded, bytesEqual, fromUtf8, randomBytes, toHex, utf8 } from "../../src/crypto/base64";
import { canonicalJson } from "../../src/crypto/canonical";
import { CryptoError } from "../../src/crypto/errors";
import { acceptRoomKey, shareRoomKey } from "../../src/crypto/keyshare";
import { IdentityKeyPair, verifyDevice, verifyIdentityKey, verifySignature, type VerifiedDevice } from "../../src/crypto/keys";
import {
  decodeLinkEnvelope,
  envelopeOlmBody,
  fingerprint,
  linkRequestBody,
  makeLinkCode,
  parseLinkCode,
  provisionalDevice,
  TYPE_LINK_REQUEST,
} from "../../src/crypto/linking";
import { OutboundGroup, type ExportedRoomKey } from "../../src/crypto/megolm";
import { initOlm } from "../../src/crypto/olm";
import { encodePayload, decodeMessagePayload, decodeToDevicePayload } from "../../src/crypto/payload";
import { keyIdOf, newStateKey, sealState, unsealState } from "../../src/crypto/statekey";
import { formatSafetyNumber, safetyNumber, SasVerification, VerificationQr } from "../../src/crypto/verification";
import { CONVERSATION, freeDevice, kindOf, LOW_ORDER_CURVE25519, makeDevice, messageId, NOW, SMALL_ORDER_ED25519, type Device } from "./helpers";
import { PythonPeer, SKIP_INTEROP, SKIP_REASON } from "./peer";

/** What a Python device looks like from here. */
interface PyDevice {
  name: string;
  user: string;
  device: string;
  identity_key: string;
  certificate: DeviceKeys;
  verified: VerifiedDevice;
}

/** A JS device as the Python peer names it. */
function spec(d: Device): { identity_key: string; certificate: DeviceKeys } {
  return { identity_key: d.identity.publicKey, certificate: d.certificate };
}

function pyspec(d: PyDevice): { identity_key: string; certificate: DeviceKeys } {
  return { identity_key: d.identity_key, certificate: d.certificate };
}

let deviceCounter = 0;

describe.skipIf(SKIP_INTEROP)(`interop with Python${SKIP_REASON}`, () => {
  let py: PythonPeer;
  const made: Device[] = [];

  beforeAll(async () => {
    await initOlm();
    py = PythonPeer.start();
  });
  afterAll(() => {
    py?.close();
    made.forEach(freeDevice);
  });

  async function jsDevice(user = "alice@example.org"): Promise<Device> {
    const d = await makeDevice(user);
    made.push(d);
    return d;
  }

  async function pyDevice(user = "bob@example.org"): Promise<PyDevice> {
    const name = `py${deviceCounter++}`;
    const device = `P${String(deviceCounter).padStart(21, "0")}`;
    const made = await py.call<{ identity_key: string; certificate: DeviceKeys }>("device", { name, user, device });
    // Python's certificate verifies here
    const verified = await verifyDevice(made.identity_key, made.certificate);
    return { name, user, device, ...made, verified };
  }

  /** JS alice and Python bob with an Olm session from alice to bob. */
  async function jsToPy(jsUser = "alice@example.org", pyUser = "bob@example.org"): Promise<[Device, PyDevice]> {
    const alice = await jsDevice(jsUser);
    const bob = await pyDevice(pyUser);
    const [otk] = await py.call<OneTimeKey[]>("one_time_keys", { name: bob.name, n: 1 });
    await alice.olm.createOutboundSession(bob.verified, otk!);
    return [alice, bob];
  }

  /** Python bob and JS alice with an Olm session from bob to alice. */
  async function pyToJs(pyUser = "bob@example.org", jsUser = "alice@example.org"): Promise<[PyDevice, Device]> {
    const bob = await pyDevice(pyUser);
    const alice = await jsDevice(jsUser);
    const [otk] = await alice.account.oneTimeKeys(alice.user, alice.device, 1);
    alice.account.markPublished();
    await py.call("olm_outbound", { name: bob.name, peer: spec(alice), otk });
    return [bob, alice];
  }

  // ================================================================ canonical JSON and signatures

  it("writes canonical JSON byte for byte as msgspec", async () => {
    const control = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join("");
    const objects: object[] = [
      { b: 1, a: 2, signature: "dropped" },
      { s: `${control}"\\/\x7f`, t: "\u2028\u2029\u0085\ufeff\ufffe", u: "😀👍🏽é", v: "ä\u0301" },
      { "\uffff": 1, "😀": 2, é: 3, Z: 4, e: 5, "": 6 },
      { nested: { z: [1, { y: null, x: [true, false] }], a: {} }, list: [], n: -12345678901, zero: 0 },
      { user: "alice@example.org", device: "A".repeat(22), curve25519: "k".repeat(43), ed25519: "e".repeat(43), signature: "x" },
      { conversation: "C".repeat(22), depth: 3, prev: "p", sender: "a@b.c", ts: 1700000000000, content: { type: "member", target: "b@c.d", membership: "join" } },
    ];
    for (const obj of objects) {
      const mine = canonicalJson(obj);
      const theirs = b64decode(await py.call<string>("canonical", { obj }));
      expect(fromUtf8(mine)).toBe(fromUtf8(theirs));
      expect(mine).toEqual(theirs);
    }
    const theirs = b64decode(await py.call<string>("canonical", { obj: { ciphertext: "x", b: 1 }, without: "ciphertext" }));
    expect(canonicalJson({ ciphertext: "x", b: 1 }, "ciphertext")).toEqual(theirs);
  });

  it("verifies Python's signatures, and Python verifies ours", async () => {
    const theirs = await py.call<{ public_key: string; seed: string }>("identity", { name: "signer" });
    const obj = { z: "é😀\n", a: [1, 2, { b: null }], signature: "" };
    const signature = await py.call<string>("sign", { name: "signer", domain: DOMAIN.state, obj });
    await verifySignature(DOMAIN.state, obj, theirs.public_key, signature);
    expect(await kindOf(() => verifySignature(DOMAIN.device, obj, theirs.public_key, signature))).toBe("bad_signature");
    // the same seed gives the same key pair, and the same (deterministic) signature
    const same = await IdentityKeyPair.fromSeed(b64decode(theirs.seed));
    expect(same.publicKey).toBe(theirs.public_key);
    expect(await same.sign(DOMAIN.state, obj)).toBe(signature);
    const mine = await IdentityKeyPair.generate();
    const sig = await mine.sign(DOMAIN.identity, obj);
    expect(await py.call("verify", { domain: DOMAIN.identity, obj, key: mine.publicKey, signature: sig })).toBe(true);
    expect(await py.failure("verify", { domain: DOMAIN.state, obj, key: mine.publicKey, signature: sig })).toBe("ProtocolError");
  });

  it("agrees on identity keys and device certificates", async () => {
    const mine = await IdentityKeyPair.generate();
    const published = await mine.identityKey("alice@example.org");
    expect(await py.call("verify_identity_key", { key: published })).toBe(mine.publicKey);
    await py.call("identity", { name: "id2" });
    const theirs = await py.call<IdentityKey>("identity_key", { name: "id2", user: "bob@example.org" });
    expect(await verifyIdentityKey(theirs)).toBe(theirs.identity_key);
    // Python certifies a JS device; JS checks it, and the other way round
    const alice = await jsDevice();
    const certified = await py.call<DeviceKeys>("certify", { name: "id2", device_keys: alice.account.deviceKeys(alice.user, alice.device) });
    // Ed25519 is deterministic: the same identity key certifies byte for byte alike here
    const seed = (await py.call<{ seed: string }>("identity", { name: "id3" })).seed;
    const again = await py.call<DeviceKeys>("certify", { name: "id3", device_keys: alice.account.deviceKeys(alice.user, alice.device) });
    const here = await (await IdentityKeyPair.fromSeed(b64decode(seed))).certify(alice.account.deviceKeys(alice.user, alice.device));
    expect(here).toEqual(again);
    await verifyDevice(theirs.identity_key, certified);
    expect(await kindOf(() => verifyDevice(theirs.identity_key, { ...certified, ed25519: alice.account.curve25519 }))).toBe("untrusted_device");
    const verified = await py.call<Record<string, string>>("verify_device", { identity_key: alice.identity.publicKey, certificate: alice.certificate });
    expect(verified.curve25519).toBe(alice.account.curve25519);
  });

  it("refuses the same low-order and small-order keys", async () => {
    for (const key of LOW_ORDER_CURVE25519) expect(await py.failure("check_curve25519", { key }), key).toBe("ProtocolError");
    for (const key of SMALL_ORDER_ED25519) expect(await py.failure("check_ed25519", { key }), key).toBe("ProtocolError");
    const alice = await jsDevice();
    expect(await py.call("check_curve25519", { key: alice.account.curve25519 })).toBe(true);
  });

  // ================================================================ Olm

  it("Olm: JS starts, Python answers", async () => {
    const [alice, bob] = await jsToPy();
    const content = { text: "hallo ä😀 \u0000\u2028", n: [1, 2] };
    const first = alice.olm.encryptToDevice(bob.verified, "test", content);
    const received = await py.call<ToDevicePayload>("olm_decrypt_to_device", { name: bob.name, sender: spec(alice), body: b64encode(first) });
    expect(received.content).toEqual(content);
    expect(received.recipient_key).toBe(bob.certificate.curve25519);
    // Python refuses the replayed pre-key message
    expect(await py.failure("olm_decrypt_to_device", { name: bob.name, sender: spec(alice), body: b64encode(first) })).toBe("DecryptionFailed");
    const replies = await Promise.all([1, 2, 3].map((n) => py.call<string>("olm_encrypt_to_device", { name: bob.name, peer: spec(alice), type: "reply", content: { n } })));
    // out of order
    for (const n of [3, 1, 2]) {
      const payload = alice.olm.decryptToDevice(bob.verified, b64decode(replies[n - 1]!));
      expect(payload.content).toEqual({ n });
      expect(payload.sender_key).toBe(bob.certificate.ed25519);
    }
    expect(await kindOf(() => alice.olm.decryptToDevice(bob.verified, b64decode(replies[0]!)))).toBe("decryption_failed");
    const next = alice.olm.encryptToDevice(bob.verified, "test", {});
    expect(JSON.parse(fromUtf8(next)).type).toBe(1);
    expect(await py.call<ToDevicePayload>("olm_decrypt_to_device", { name: bob.name, sender: spec(alice), body: b64encode(next) })).toMatchObject({ type: "test" });
  });

  it("Olm: Python starts, JS answers (one-time and fallback keys)", async () => {
    const [bob, alice] = await pyToJs();
    const pre = b64decode(await py.call<string>("olm_encrypt_to_device", { name: bob.name, peer: spec(alice), type: "hi", content: { a: 1 } }));
    expect(JSON.parse(fromUtf8(pre)).type).toBe(0);
    expect(alice.olm.decryptToDevice(bob.verified, pre).content).toEqual({ a: 1 });
    const reply = alice.olm.encryptToDevice(bob.verified, "re", { b: 2 });
    expect((await py.call<ToDevicePayload>("olm_decrypt_to_device", { name: bob.name, sender: spec(alice), body: b64encode(reply) })).content).toEqual({ b: 2 });
    // a raw (non-payload) Olm message, padded the way msgspec writes bytes
    const raw = await py.call<{ type: number; body: string }>("olm_encrypt", { name: bob.name, peer: spec(alice), plaintext: "plain ✓" });
    expect(alice.olm.decrypt(bob.verified, { type: raw.type, body: b64encodePadded(b64decode(raw.body)) })).toBe("plain ✓");
    // the fallback key
    const carol = await pyDevice("carol@example.org");
    const fallback = await alice.account.fallbackKey(alice.user, alice.device);
    await py.call("olm_outbound", { name: carol.name, peer: spec(alice), otk: fallback });
    const viaFallback = b64decode(await py.call<string>("olm_encrypt_to_device", { name: carol.name, peer: spec(alice), type: "fb", content: {} }));
    expect(alice.olm.decryptToDevice(carol.verified, viaFallback).type).toBe("fb");
    // and JS on Python's fallback key
    const dave = await jsDevice("dave@example.org");
    const pyFallback = await py.call<OneTimeKey>("fallback_key", { name: bob.name });
    expect(pyFallback.fallback).toBe(true);
    await dave.olm.createOutboundSession(bob.verified, pyFallback);
    const msg = dave.olm.encryptToDevice(bob.verified, "fb", { d: 1 });
    expect((await py.call<ToDevicePayload>("olm_decrypt_to_device", { name: bob.name, sender: spec(dave), body: b64encode(msg) })).content).toEqual({ d: 1 });
  });

  it("Olm: both sides check the binding", async () => {
    const [bob, alice] = await pyToJs();
    const good: ToDevicePayload = {
      sender: bob.user,
      sender_device: bob.device,
      sender_key: bob.certificate.ed25519,
      recipient: alice.user,
      recipient_device: alice.device,
      recipient_key: alice.account.curve25519,
      type: "t",
    };
    const wrong: Partial<ToDevicePayload>[] = [
      { sender: "eve@example.org" },
      { sender_device: "E".repeat(22) },
      { sender_key: alice.account.ed25519 },
      { recipient: "eve@example.org" },
      { recipient_device: "E".repeat(22) },
      { recipient_key: bob.certificate.curve25519 },
    ];
    const body = b64decode(await py.call<string>("olm_encrypt_payload", { name: bob.name, peer: spec(alice), payload: good }));
    expect(alice.olm.decryptToDevice(bob.verified, body).type).toBe("t");
    for (const change of wrong) {
      const bad = b64decode(await py.call<string>("olm_encrypt_payload", { name: bob.name, peer: spec(alice), payload: { ...good, ...change } }));
      expect(await kindOf(() => alice.olm.decryptToDevice(bob.verified, bad)), JSON.stringify(change)).toBe("bad_payload");
    }
    // Python refuses a JS payload decrypted as from another device of the same user
    const [alice2, bob2] = await jsToPy();
    const msg = alice2.olm.encryptToDevice(bob2.verified, "t", {});
    const impostor = await jsDevice(alice2.user);
    const cert = { ...alice2.certificate, device: impostor.device };
    const forged = { identity_key: alice2.identity.publicKey, certificate: { ...cert, signature: await alice2.identity.sign(DOMAIN.device, cert) } };
    expect(await py.failure("olm_decrypt_to_device", { name: bob2.name, sender: forged, body: b64encode(msg) })).toBe("BadPayload");
  });

  // ================================================================ Megolm and key sharing

  function payload(sender: { user: string; device: string }, n: number, content: Record<string, unknown> = { text: `msg ${n} ✓` }): MessagePayload {
    return { sender: sender.user, sender_device: sender.device, conversation: CONVERSATION, message_id: messageId(n), type: "text", content };
  }

  it("Megolm: JS sends, Python reads (key shared over Olm)", async () => {
    const [alice, bob] = await jsToPy();
    const group = OutboundGroup.create(CONVERSATION, NOW);
    const { messages, withoutSession } = shareRoomKey(alice.olm, group, [bob.verified]);
    expect(withoutSession).toEqual([]);
    expect(await py.call("megolm_accept", { name: bob.name, sender: spec(alice), body: messages[0]!.body })).toBe(true);
    group.markShared([bob.verified]);
    const bodies = [0, 1, 2].map((n) => group.encryptPayload(payload(alice, n), NOW));
    for (const n of [2, 0]) {
      const out = await py.call<{ payload: MessagePayload; index: number; session_id: string }>("megolm_decrypt", {
        name: bob.name, sender: spec(alice), conversation: CONVERSATION, message_id: messageId(n), body: b64encode(bodies[n]!),
      });
      expect(out.payload).toEqual(payload(alice, n));
      expect(out.index).toBe(n);
      expect(out.session_id).toBe(group.sessionId);
    }
    expect(await py.call("megolm_gaps", { name: bob.name, conversation: CONVERSATION, creator_key: alice.account.curve25519, session_id: group.sessionId })).toEqual([1]);
    expect(await py.failure("megolm_decrypt", { name: bob.name, sender: spec(alice), conversation: CONVERSATION, message_id: messageId(0), body: b64encode(bodies[0]!) })).toBe("ReplayedMessage");
    expect(await py.failure("megolm_decrypt", { name: bob.name, sender: spec(alice), conversation: CONVERSATION, message_id: messageId(5), body: b64encode(bodies[1]!) })).toBe("BadPayload");
    // an exported session from Python opens here
    const exported = await py.call<ExportedRoomKey>("megolm_export", { name: bob.name, conversation: CONVERSATION, creator_key: alice.account.curve25519, session_id: group.sessionId, index: 1 });
    const alice2 = await jsDevice(alice.user);
    expect(alice2.inbound.importSession(exported)).toBe(true);
    expect(alice2.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(1), bodies[1]!).payload).toEqual(payload(alice, 1));
    group.free();
  });

  it("Megolm: Python sends, JS reads; exports go back", async () => {
    const [bob, alice] = await pyToJs();
    const sessionId = await py.call<string>("megolm_create", { name: bob.name, conversation: CONVERSATION, now: NOW });
    const shared = await py.call<{ messages: { user: string; device: string; body: string }[]; without_session: string[] }>("megolm_share", {
      name: bob.name, conversation: CONVERSATION, peers: [spec(alice)],
    });
    expect(shared.without_session).toEqual([]);
    const message = shared.messages[0]!;
    expect(message.body.length % 4).toBe(0); // msgspec writes bytes padded
    const keyPayload = alice.olm.decryptToDevice(bob.verified, b64decode(message.body));
    expect(keyPayload.type).toBe("taube.room_key");
    expect(keyPayload.content).not.toHaveProperty("algorithm"); // left out at its default, as here
    expect(acceptRoomKey(alice.inbound, bob.verified, keyPayload)).toBe(true);
    const bodies: Uint8Array[] = [];
    for (const n of [0, 1, 2, 3]) {
      bodies.push(b64decode(await py.call<string>("megolm_encrypt", { name: bob.name, conversation: CONVERSATION, payload: payload(bob, n, { n, text: "ü\u0000😀" }), now: NOW })));
    }
    for (const n of [3, 0, 2]) {
      const out = alice.inbound.decryptMessage(bob.verified, CONVERSATION, messageId(n), bodies[n]!);
      expect(out.payload).toEqual(payload(bob, n, { n, text: "ü\u0000😀" }));
      expect(out.index).toBe(n);
      expect(out.sessionId).toBe(sessionId);
    }
    expect(alice.inbound.gaps(CONVERSATION, bob.verified.curve25519, sessionId)).toEqual([1]);
    expect(await kindOf(() => alice.inbound.decryptMessage(bob.verified, CONVERSATION, messageId(3), bodies[3]!))).toBe("replayed");
    expect(await kindOf(() => alice.inbound.decryptMessage(bob.verified, CONVERSATION, messageId(9), bodies[1]!))).toBe("bad_payload");
    // a JS export opens in Python
    const bob2 = await pyDevice(bob.user);
    const exported = alice.inbound.exportSession(CONVERSATION, bob.verified.curve25519, sessionId, 1);
    expect(await py.call("megolm_import", { name: bob2.name, exported })).toBe(true);
    const out = await py.call<{ payload: MessagePayload }>("megolm_decrypt", {
      name: bob2.name, sender: pyspec(bob), conversation: CONVERSATION, message_id: messageId(1), body: b64encode(bodies[1]!),
    });
    expect(out.payload.content).toEqual({ n: 1, text: "ü\u0000😀" });
    // raw (non-JSON) Megolm plaintext from Python is a bad payload here
    const raw = b64decode(await py.call<string>("megolm_encrypt_raw", { name: bob.name, conversation: CONVERSATION, plaintext: "nope", now: NOW }));
    expect(await kindOf(() => alice.inbound.decryptMessage(bob.verified, CONVERSATION, messageId(4), raw))).toBe("bad_payload");
  });

  // ================================================================ payloads

  it("payloads: each side decodes what the other encodes, unknown fields included", async () => {
    const alice = await jsDevice();
    const message = payload(alice, 1, { text: "x", nested: { a: [1, "ü"] } });
    const py1 = await py.call<{ decoded: MessagePayload; encoded: string }>("payload", { kind: "message", data: b64encode(encodePayload(message)) });
    expect(py1.decoded).toEqual(message);
    expect(fromUtf8(b64decode(py1.encoded))).toBe(fromUtf8(encodePayload(message)));
    const empty = { ...message, content: {} };
    const py2 = await py.call<{ encoded: string }>("payload", { kind: "message", data: b64encode(encodePayload(empty)) });
    expect(fromUtf8(b64decode(py2.encoded))).toBe(fromUtf8(encodePayload(empty)));
    expect(fromUtf8(encodePayload(empty))).not.toContain("content");
    const extra = utf8(JSON.stringify({ ...message, future: { x: 1 } }));
    expect(decodeMessagePayload(extra)).toEqual(message);
    expect((await py.call<{ decoded: MessagePayload }>("payload", { kind: "message", data: b64encode(extra) })).decoded).toEqual(message);
    const bad: Record<string, unknown>[] = [
      { ...message, sender: "Not An Address" },
      { ...message, sender_device: "short" },
      { ...message, conversation: "C".repeat(23) },
      { ...message, type: "" },
      { ...message, type: "t".repeat(101) },
      { ...message, content: [] },
      { ...message, content: null },
      { ...message, message_id: 5 },
      { sender: message.sender },
    ];
    for (const b of bad) {
      const data = utf8(JSON.stringify(b));
      expect(await kindOf(() => decodeMessagePayload(data)), JSON.stringify(b)).toBe("bad_payload");
      expect(await py.failure("payload", { kind: "message", data: b64encode(data) }), JSON.stringify(b)).toBe("BadPayload");
    }
    const toDevice: ToDevicePayload = {
      sender: alice.user, sender_device: alice.device, sender_key: alice.account.ed25519,
      recipient: "bob@example.org", recipient_device: "B".repeat(22), recipient_key: alice.account.curve25519, type: "t", content: { k: "v" },
    };
    const py3 = await py.call<{ decoded: ToDevicePayload; encoded: string }>("payload", { kind: "to_device", data: b64encode(encodePayload(toDevice)) });
    expect(py3.decoded).toEqual(toDevice);
    expect(decodeToDevicePayload(b64decode(py3.encoded))).toEqual(toDevice);
    const badKey = utf8(JSON.stringify({ ...toDevice, sender_key: "short" }));
    expect(await kindOf(() => decodeToDevicePayload(badKey))).toBe("bad_payload");
    expect(await py.failure("payload", { kind: "to_device", data: b64encode(badKey) })).toBe("BadPayload");
  });

  // ================================================================ attachments, state, backup

  it("attachments: byte-identical for a fixed key, and open both ways", async () => {
    for (const size of [0, 1, 65535, 65536, 65537, 3 * 65536, 200_001]) {
      const data = randomBytes(size);
      const key = randomBytes(32);
      const mine = await encryptAttachment(new Blob([data]), undefined, key);
      const theirs = await py.call<{ ciphertext: string; key: AttachmentKey }>("attachment_encrypt", { data: b64encode(data), key: b64encode(key) });
      const ciphertext = new Uint8Array(await mine.ciphertext.arrayBuffer());
      expect(b64encode(ciphertext) === b64encode(b64decode(theirs.ciphertext)), `size ${size}`).toBe(true);
      expect(mine.key).toEqual(theirs.key);
      const fresh = await py.call<{ ciphertext: string; key: AttachmentKey }>("attachment_encrypt", { data: b64encode(data) });
      expect(bytesEqual(await decryptAttachment(b64decode(fresh.ciphertext), fresh.key), data)).toBe(true);
      const ours = await encryptAttachment(new Blob([data]));
      const opened = await py.call<string>("attachment_decrypt", { ciphertext: b64encode(new Uint8Array(await ours.ciphertext.arrayBuffer())), key: ours.key });
      expect(bytesEqual(b64decode(opened), data)).toBe(true);
    }
  });

  it("state keys seal and unseal both ways", async () => {
    const { id, key } = newStateKey();
    const text = utf8("Gruppe ✓ 😀");
    const sealed = await sealState(id, key, CONVERSATION, "title", text);
    expect(keyIdOf(sealed)).toBe(id);
    expect(b64decode((await py.call<string>("state_unseal", { key: b64encode(key), conversation: CONVERSATION, field: "title", sealed: b64encode(sealed) }))!)).toEqual(text);
    expect(await py.call("state_unseal", { key: b64encode(key), conversation: CONVERSATION, field: "avatar", sealed: b64encode(sealed) })).toBeNull();
    const theirs = b64decode(await py.call<string>("state_seal", { key_id: id, key: b64encode(key), conversation: CONVERSATION, field: "avatar", text: b64encode(text) }));
    expect(keyIdOf(theirs)).toBe(id);
    expect(await unsealState(key, CONVERSATION, "avatar", theirs)).toEqual(text);
    expect(await unsealState(key, CONVERSATION, "title", theirs)).toBeNull();
  });

  it("backup: JS seals, Python opens, and the other way round", async () => {
    const small = { time_cost: 1, memory_cost: 64, parallelism: 2 };
    const identity = await IdentityKeyPair.generate();
    const code = "7K2M-9QXA-0000-ZZZZ-1234-ABCD";
    const blob = await sealBackup(identity, "alice@example.org", code, small);
    expect(await py.call("backup_unwrap", { data: b64encode(blob), user: "alice@example.org", code: code.toLowerCase().replace(/0/g, "o") })).toBe(identity.publicKey);
    expect(await py.failure("backup_unwrap", { data: b64encode(blob), user: "alice@example.org", code: "7K2M-9QXA-0000-ZZZZ-1234-ABCE" })).toBe("WrongRecoveryCode");
    expect(await py.failure("backup_unwrap", { data: b64encode(blob), user: "bob@example.org", code })).toBe("BadPayload");
    const theirs = await py.call<{ public_key: string }>("identity", { name: "backed-up" });
    const pyBlob = b64decode(await py.call<string>("backup_wrap", { name: "backed-up", user: "bob@example.org", code, params: small }));
    expect((await openBackup(pyBlob, "bob@example.org", code.replace(/-/g, " "))).publicKey).toBe(theirs.public_key);
    expect(await kindOf(() => openBackup(pyBlob, "bob@example.org", "0000-0000-0000-0000-0000-0000"))).toBe("wrong_recovery_code");
    // a changed parameter in the clear breaks the associated data on both sides
    const changed = utf8(fromUtf8(pyBlob).replace('"time_cost":1', '"time_cost":2'));
    expect(await kindOf(() => openBackup(changed, "bob@example.org", code))).toBe("wrong_recovery_code");
    // the real parameters, once
    const full = await sealBackup(identity, "alice@example.org", code);
    expect(JSON.parse(fromUtf8(full))).toMatchObject({ v: 1, kdf: "argon2id", time_cost: 3, memory_cost: 65536, parallelism: 4 });
    expect(await py.call("backup_unwrap", { data: b64encode(full), user: "alice@example.org", code })).toBe(identity.publicKey);
  });

  it("recovery codes decode to the same bytes", async () => {
    for (const code of ["7K2M-9QXA-0000-ZZZZ-1234-ABCD", "ok2m 9qxa oooo zzzz lI34 abcd", "0123456789ABCDEFGHJKMNPQ"]) {
      expect(toHex(recoveryCodeBytes(code))).toBe(await py.call("recovery_code_bytes", { code }));
    }
    for (const code of ["7K2M-9QXA-0000-ZZZZ-1234-ABC", "7K2M-9QXA-0000-ZZZZ-1234-ABCU"]) {
      expect(() => recoveryCodeBytes(code)).toThrow(CryptoError);
      expect(await py.failure("recovery_code_bytes", { code })).toBe("WrongRecoveryCode");
    }
  });

  // ================================================================ verification

  it("safety numbers agree", async () => {
    const a = await IdentityKeyPair.generate();
    const b = await IdentityKeyPair.generate();
    const mine = await safetyNumber("alice@example.org", a.publicKey, "bob@example.org", b.publicKey);
    const theirs = await py.call<{ number: string; formatted: string }>("safety_number", {
      own_user: "bob@example.org", own_key: b.publicKey, their_user: "alice@example.org", their_key: a.publicKey,
    });
    expect(mine).toBe(theirs.number);
    expect(formatSafetyNumber(mine)).toBe(theirs.formatted);
  });

  it("SAS: both sides show the same emoji and decimals, and accept each other's MACs", async () => {
    const txn = "txn_0123456789-AB";
    const alice = await jsDevice();
    const mine = new SasVerification(alice.user, alice.device, txn);
    const theirs = await py.call<{ public_key: string; commitment: string }>("sas_new", { name: "sas1", user: "bob@example.org", device: "B".repeat(22), txn });
    // the Python side commits first; JS checks it; Python checks ours
    await mine.checkCommitment(theirs.public_key, theirs.commitment);
    expect(await py.call("sas_check_commitment", { name: "sas1", key: mine.publicKey, commitment: await mine.commitment() })).toBe(true);
    expect(await kindOf(() => mine.checkCommitment(mine.publicKey, theirs.commitment))).toBe("untrusted_device");
    const established = await mine.establish("bob@example.org", "B".repeat(22), theirs.public_key);
    const pySide = await py.call<{ emoji_indices: number[]; decimals: number[] }>("sas_establish", {
      name: "sas1", user: alice.user, device: alice.device, key: mine.publicKey,
    });
    expect(established.emojiIndices()).toEqual(pySide.emoji_indices);
    expect(established.decimals()).toEqual(pySide.decimals);
    expect(established.emoji()).toHaveLength(7);
    // MACs of the identity keys, both ways
    const bobIdentity = "Bq2a6D4W6aOxTRnJvLhQAd8+3lRwQ0l9N6i3OKbz0ng";
    const myMac = established.mac("identity", alice.identity.publicKey);
    expect(await py.call("sas_verify_mac", { name: "sas1", key_id: "identity", key: alice.identity.publicKey, tag: myMac })).toBe(true);
    expect(await py.failure("sas_verify_mac", { name: "sas1", key_id: "identity", key: bobIdentity, tag: myMac })).toBe("UntrustedDevice");
    const theirMac = await py.call<string>("sas_mac", { name: "sas1", key_id: "identity", key: bobIdentity });
    established.verifyMac("identity", bobIdentity, theirMac);
    expect(await kindOf(() => established.verifyMac("identity", alice.identity.publicKey, theirMac))).toBe("untrusted_device");
    expect(await kindOf(() => established.verifyMac("device", bobIdentity, theirMac))).toBe("untrusted_device");
    established.free();
  });

  it("QR codes parse on both sides", async () => {
    const identity = await IdentityKeyPair.generate();
    const qr = VerificationQr.create("alice@example.org", identity.publicKey);
    const parsed = await py.call<{ user: string; identity_key: string; secret: string }>("qr_parse", { data: b64encode(qr.toBytes()) });
    expect(parsed).toEqual({ user: "alice@example.org", identity_key: identity.publicKey, secret: b64encodePadded(qr.secret) });
    const theirs = b64decode(await py.call<string>("qr_create", { name: "qr1", user: "bob@example.org", identity_key: identity.publicKey }));
    const back = VerificationQr.fromBytes(theirs);
    expect([back.user, back.identityKey]).toEqual(["bob@example.org", identity.publicKey]);
    expect(await py.call("qr_check_secret", { name: "qr1", secret: b64encode(back.secret) })).toBe(true);
  });

  // ================================================================ linking

  it("link codes parse on both sides", async () => {
    const identity = await IdentityKeyPair.generate();
    const mine = await makeLinkCode(identity.publicKey);
    expect(mine.code).toMatch(/^([0-9A-HJKMNP-TV-Z]{4}-){8}[0-9A-HJKMNP-TV-Z]{4}$/);
    const parsed = await py.call<{ secret: string; fingerprint: string }>("link_parse", { code: mine.code.toLowerCase() });
    expect(parsed.secret).toBe(toHex(mine.secret));
    expect(parsed.fingerprint).toBe(toHex(await fingerprint(identity.publicKey)));
    expect(await py.call("link_fingerprint", { identity_key: identity.publicKey })).toBe(toHex(await fingerprint(identity.publicKey)));
    const theirs = await py.call<{ code: string; secret: string }>("link_make", { identity_key: identity.publicKey });
    const back = parseLinkCode(theirs.code.replace(/-/g, " "));
    expect(toHex(back.secret)).toBe(theirs.secret);
    expect(back.fingerprint).toEqual(await fingerprint(identity.publicKey));
    expect(await py.failure("link_parse", { code: "ABCD" })).toBe("LinkError");
    expect(() => parseLinkCode("ABCD")).toThrow(CryptoError);
  });

  it("link requests: each side opens the other's", async () => {
    // JS (new device) → Python (existing device) of the same account
    const [alice, bob] = await jsToPy("erin@example.org", "erin@example.org");
    const secret = randomBytes(12);
    const body = linkRequestBody(alice.olm, bob.verified, secret, "Firefox on Linux");
    const received = await py.call<ToDevicePayload>("link_receive", { name: bob.name, user: bob.user, device: alice.device, identity_key: bob.identity_key, body: b64encode(body) });
    expect(received.type).toBe(TYPE_LINK_REQUEST);
    expect(received.content).toEqual({ secret: toHex(secret), name: "Firefox on Linux" });
    // Python (new device) → JS (existing device)
    const [carol, dave] = await pyToJs("frank@example.org", "frank@example.org");
    const pyBody = b64decode(await py.call<string>("link_request", { name: carol.name, peer: spec(dave), secret: toHex(secret), device_name: "Python CLI" }));
    const envelope = decodeLinkEnvelope(pyBody);
    expect(envelope).not.toBeNull();
    const peer = provisionalDevice(dave.user, envelope!, carol.device, dave.identity.publicKey);
    const payload = dave.olm.decryptToDevice(peer, envelopeOlmBody(envelope!));
    expect(payload.content).toEqual({ secret: toHex(secret), name: "Python CLI" });
    expect(decodeLinkEnvelope(utf8("{}"))).toBeNull();
    expect(await py.call("link_decode", { body: b64encode(body) })).toMatchObject({ link: 1, curve25519: alice.account.curve25519 });
  });
});
