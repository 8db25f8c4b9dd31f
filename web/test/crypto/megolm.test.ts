import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessagePayload } from "../../src/gen/proto";
import { b64decode, b64encode, fromUtf8, utf8 } from "../../src/crypto/base64";
import { acceptRoomKey, shareRoomKey } from "../../src/crypto/keyshare";
import {
  InboundGroupStore,
  MAX_AGE_MS,
  MAX_MESSAGES,
  OutboundGroup,
  parseMegolmCiphertext,
  SessionExpired,
} from "../../src/crypto/megolm";
import { initOlm } from "../../src/crypto/olm";
import { roomKeyContent } from "../../src/crypto/payload";
import {
  connect,
  CONVERSATION,
  freeDevice,
  kindOf,
  makeDevice,
  messageId,
  NOW,
  OTHER_CONVERSATION,
  PICKLE_KEY,
  type Device,
} from "./helpers";

beforeAll(initOlm);

const made: Device[] = [];
const groups: OutboundGroup[] = [];
async function device(user = "alice@example.org"): Promise<Device> {
  const d = await makeDevice(user);
  made.push(d);
  return d;
}
function group(conversation = CONVERSATION, now = NOW): OutboundGroup {
  const g = OutboundGroup.create(conversation, now);
  groups.push(g);
  return g;
}
afterAll(() => {
  made.forEach(freeDevice);
  groups.forEach((g) => g.free());
});

function payload(sender: Device, n: number, conversation = CONVERSATION, content: Record<string, unknown> = { text: `hello ${n}` }): MessagePayload {
  return { sender: sender.user, sender_device: sender.device, conversation, message_id: messageId(n), type: "text", content };
}

/** alice shares `g` with bob over Olm; bob accepts it. */
async function share(alice: Device, bob: Device, g: OutboundGroup): Promise<void> {
  if (!alice.olm.hasSession(bob.verified)) await connect(alice, bob);
  const { messages, withoutSession } = shareRoomKey(alice.olm, g, [bob.verified]);
  expect(withoutSession).toEqual([]);
  expect(messages).toHaveLength(1);
  const body = b64decode(messages[0]!.body);
  expect(acceptRoomKey(bob.inbound, alice.verified, bob.olm.decryptToDevice(alice.verified, body))).toBe(true);
  g.markShared([bob.verified]);
}

describe("Megolm", () => {
  it("encrypts for the members, who decrypt once each", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const g = group();
    await share(alice, bob, g);
    const body = g.encryptPayload(payload(alice, 0), NOW);
    const message = parseMegolmCiphertext(body);
    expect(message.session_id).toBe(g.sessionId);
    expect(JSON.parse(fromUtf8(body))).toEqual({ algorithm: "taube.megolm.v1", session_id: g.sessionId, ciphertext: message.ciphertext });
    const out = bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), body);
    expect(out.payload).toEqual(payload(alice, 0));
    expect(out.index).toBe(0);
    expect(out.sessionId).toBe(g.sessionId);
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), body))).toBe("replayed");
    expect(g.messageIndex()).toBe(1);
  });

  it("marks gaps, and decrypts out of order", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const g = group();
    await share(alice, bob, g);
    const bodies = [0, 1, 2, 3].map((n) => g.encryptPayload(payload(alice, n), NOW));
    bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(3), bodies[3]!);
    bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), bodies[0]!);
    expect(bob.inbound.gaps(CONVERSATION, alice.verified.curve25519, g.sessionId)).toEqual([1, 2]);
    bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(2), bodies[2]!);
    expect(bob.inbound.gaps(CONVERSATION, alice.verified.curve25519, g.sessionId)).toEqual([1]);
    expect(bob.inbound.gaps(CONVERSATION, alice.verified.curve25519, "x".repeat(43))).toEqual([]);
  });

  it("checks the binding of the payload before recording the index", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const g = group();
    await share(alice, bob, g);
    const body = g.encryptPayload(payload(alice, 7), NOW);
    // a spliced envelope (another message id) is refused and does not use up the index
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(8), body))).toBe("bad_payload");
    // posted into another conversation: no key there
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, OTHER_CONVERSATION, messageId(7), body))).toBe("unknown_session");
    expect(bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(7), body).payload.message_id).toBe(messageId(7));
    // a payload naming someone else than its sender
    const carol = await device("carol@example.org");
    const lie = g.encryptPayload({ ...payload(alice, 9), sender: carol.user }, NOW);
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(9), lie))).toBe("bad_payload");
    expect(() => g.encryptPayload(payload(alice, 10, OTHER_CONVERSATION), NOW)).toThrow();
  });

  it("accepts keys only from their creator: forwarded keys are useless", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const mallory = await device("mallory@example.org");
    const g = group();
    await share(alice, mallory, g);
    // mallory forwards alice's key to bob as if it were hers
    await connect(mallory, bob);
    const forwarded = mallory.olm.encryptToDevice(bob.verified, "taube.room_key", roomKeyContent(g.roomKey()));
    expect(acceptRoomKey(bob.inbound, mallory.verified, bob.olm.decryptToDevice(mallory.verified, forwarded))).toBe(true);
    const body = g.encryptPayload(payload(alice, 0), NOW);
    // alice's message does not decrypt with the key filed under mallory
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), body))).toBe("unknown_session");
    // and claiming mallory sent it fails the binding
    expect(await kindOf(() => bob.inbound.decryptMessage(mallory.verified, CONVERSATION, messageId(0), body))).toBe("bad_payload");
    // a payload from the wrong sender is refused by acceptRoomKey
    const p = bob.olm.decryptToDevice(mallory.verified, mallory.olm.encryptToDevice(bob.verified, "taube.room_key", roomKeyContent(g.roomKey())));
    expect(await kindOf(() => acceptRoomKey(bob.inbound, alice.verified, p))).toBe("bad_payload");
    expect(await kindOf(() => acceptRoomKey(bob.inbound, mallory.verified, { ...p, type: "other" }))).toBe("bad_payload");
    expect(await kindOf(() => acceptRoomKey(bob.inbound, mallory.verified, { ...p, content: { ...p.content, algorithm: "x" } }))).toBe("bad_payload");
    expect(await kindOf(() => acceptRoomKey(bob.inbound, mallory.verified, { ...p, content: { ...p.content, session_id: "A".repeat(43) } }))).toBe("bad_payload");
    expect(await kindOf(() => acceptRoomKey(bob.inbound, mallory.verified, { ...p, content: { ...p.content, session_key: "AAAA" } }))).toBe("bad_payload");
  });

  it("shares with devices that need the key, and names those without a session", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const carol = await device("carol@example.org");
    const g = group();
    await connect(alice, bob);
    const first = shareRoomKey(alice.olm, g, [bob.verified, carol.verified]);
    expect(first.messages.map((m) => m.device)).toEqual([bob.device]);
    expect(first.messages[0]!.body).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    expect(first.messages[0]!.body.length % 4).toBe(0);
    expect(first.withoutSession).toEqual([carol.verified]);
    g.markShared([bob.verified]);
    expect(shareRoomKey(alice.olm, g, [bob.verified]).messages).toEqual([]);
    expect(g.needsKey(bob.verified)).toBe(false);
    expect(g.hasDeparted([bob.verified, carol.verified])).toBe(false);
    expect(g.hasDeparted([carol.verified])).toBe(true);
  });

  it("rotates after 100 messages, a week, or a departure", () => {
    const g = group(CONVERSATION, NOW);
    expect(g.needsRotation(NOW)).toBe(false);
    expect(g.needsRotation(NOW, true)).toBe(true);
    expect(g.needsRotation(NOW + MAX_AGE_MS)).toBe(true);
    expect(g.needsRotation(NOW - 1)).toBe(true);
    for (let i = 0; i < MAX_MESSAGES; i++) g.encrypt("x", NOW);
    expect(g.needsRotation(NOW)).toBe(true);
    expect(() => g.encrypt("x", NOW)).toThrow(SessionExpired);
  });

  it("refuses messages older than the key, tampered or malformed", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const g = group();
    const early = g.encryptPayload(payload(alice, 0), NOW);
    await share(alice, bob, g);
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), early))).toBe("unknown_session");
    const body = g.encryptPayload(payload(alice, 1), NOW);
    const message = parseMegolmCiphertext(body);
    const raw = b64decode(message.ciphertext);
    raw[10] = raw[10]! ^ 1;
    const tampered = utf8(JSON.stringify({ ...message, ciphertext: b64encode(raw) }));
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(1), tampered))).toBe("decryption_failed");
    for (const bad of ["", "{}", '{"session_id":"x","ciphertext":"y"}', JSON.stringify({ ...message, algorithm: "other" }), JSON.stringify({ ...message, extra: 1 })]) {
      expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(1), utf8(bad))), bad).toBe("decryption_failed");
    }
    const notJson = g.encrypt("not json", NOW);
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(3), utf8(JSON.stringify(notJson))))).toBe("bad_payload");
    expect(bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(1), body).index).toBe(1);
  });

  it("exports and imports at an index", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const bob2 = await device("bob@example.org");
    const g = group();
    await share(alice, bob, g);
    const bodies = [0, 1, 2].map((n) => g.encryptPayload(payload(alice, n), NOW));
    const exported = bob.inbound.exportSession(CONVERSATION, alice.verified.curve25519, g.sessionId, 1);
    expect(exported.first_index).toBe(1);
    expect(exported.creator_device).toBe(alice.device);
    expect(bob2.inbound.importSession(exported)).toBe(true);
    expect(bob2.inbound.importSession(exported)).toBe(false);
    expect(await kindOf(() => bob2.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), bodies[0]!))).toBe("unknown_session");
    expect(bob2.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(2), bodies[2]!).index).toBe(2);
    // an earlier copy replaces a later one
    expect(bob2.inbound.importSession(bob.inbound.exportSession(CONVERSATION, alice.verified.curve25519, g.sessionId))).toBe(true);
    expect(bob2.inbound.sessions()[0]!.firstKnownIndex).toBe(0);
    expect(await kindOf(() => bob2.inbound.importSession({ ...exported, first_index: 0 }))).toBe("bad_payload");
    expect(await kindOf(() => bob2.inbound.importSession({ ...exported, session_id: "A".repeat(43) }))).toBe("bad_payload");
    expect(await kindOf(() => bob.inbound.exportSession(CONVERSATION, alice.verified.curve25519, "A".repeat(43)))).toBe("unknown_session");
    const later = bob2.inbound.exportSession(CONVERSATION, alice.verified.curve25519, g.sessionId, 2);
    const bob3 = await device("bob@example.org");
    bob3.inbound.importSession(later);
    expect(await kindOf(() => bob3.inbound.exportSession(CONVERSATION, alice.verified.curve25519, g.sessionId, 1))).toBe("unknown_session");
  });

  it("forgets a session's keys but keeps its seen indexes", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const g = group();
    await share(alice, bob, g);
    const body = g.encryptPayload(payload(alice, 0), NOW);
    bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), body);
    expect(bob.inbound.forget(CONVERSATION, g.sessionId)).toBe(1);
    expect(bob.inbound.size).toBe(0);
    expect(bob.inbound.seen.has(g.sessionId, 0)).toBe(true);
    expect(await kindOf(() => bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), body))).toBe("unknown_session");
  });

  it("pickles both sides with their metadata", async () => {
    const alice = await device();
    const bob = await device("bob@example.org");
    const g = group();
    await share(alice, bob, g);
    const b0 = g.encryptPayload(payload(alice, 0), NOW);
    bob.inbound.decryptMessage(alice.verified, CONVERSATION, messageId(0), b0);
    const g2 = OutboundGroup.fromPickle(g.pickle(PICKLE_KEY), PICKLE_KEY);
    groups.push(g2);
    expect([g2.sessionId, g2.messageIndex(), g2.createdMs, g2.conversation]).toEqual([g.sessionId, 1, NOW, CONVERSATION]);
    expect(g2.needsKey(bob.verified)).toBe(false);
    const store = InboundGroupStore.fromPickle(bob.inbound.pickle(PICKLE_KEY), PICKLE_KEY);
    const b1 = g2.encryptPayload(payload(alice, 1), NOW);
    expect(store.decryptMessage(alice.verified, CONVERSATION, messageId(1), b1).index).toBe(1);
    expect(await kindOf(() => store.decryptMessage(alice.verified, CONVERSATION, messageId(0), b0))).toBe("replayed");
    expect(store.sessions()[0]).toMatchObject({ creator: alice.user, creatorDevice: alice.device, imported: false });
    const wrong = PICKLE_KEY.map((x) => x ^ 7);
    expect(await kindOf(() => InboundGroupStore.fromPickle(bob.inbound.pickle(PICKLE_KEY), wrong))).toBe("decryption_failed");
    expect(await kindOf(() => OutboundGroup.fromPickle(g.pickle(PICKLE_KEY), wrong))).toBe("decryption_failed");
    expect(await kindOf(() => OutboundGroup.fromPickle(bob.inbound.pickle(PICKLE_KEY), PICKLE_KEY))).toBe("decryption_failed");
    store.free();
  });
});
