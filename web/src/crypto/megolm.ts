// Megolm: one outbound ratchet per sending device and conversation
// (taube.crypto.megolm), on libolm's group sessions.
//
// Rotation: a new session after MAX_MESSAGES messages, after MAX_AGE_MS (a
// week), and whenever a member or one of their devices leaves. Time is
// passed in, never read here; `encrypt` refuses to go past the limits.
//
// Receiving: a session is filed under (conversation, creator's Curve25519
// key, session id). The creator is the device whose Olm message delivered
// the key; a message decrypts only with a session whose creator is the
// device its envelope names, in the conversation it arrived in. Every
// accepted (session id, index) is kept; a repeat is `replayed`, and the pair
// is recorded only after the payload's binding checked out.
import type { MegolmCiphertext, MessagePayload, RoomKey } from "../gen/proto";
import { MEGOLM_ALGORITHM } from "../gen/proto";
import { b64decode, b64encode, fromUtf8, utf8, type Bytes } from "./base64";
import { CryptoError } from "./errors";
import { Fields, KEY, parseJsonObject, RANDOM_ID } from "./fields";
import type { VerifiedDevice } from "./keys";
import {
  checkPickleKey,
  freeOnError,
  olmErrorCode,
  olmLib,
  parsePickle,
  type OlmInboundGroupSession,
  type OlmOutboundGroupSession,
} from "./olm";
import { checkBinding, decodeMessagePayload, encodeMessagePayload, SESSION_ID, SESSION_KEY } from "./payload";
import { SeenIndexes } from "./replay";

/** rotate after this many messages (DESIGN §5) */
export const MAX_MESSAGES = 100;
/** ... or after a week */
export const MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
const MAX_CIPHERTEXT = 8 * 1024 * 1024;
/** libolm advances a copy of the ratchet to export at a later index; bound it. */
const MAX_INDEX_EXPORT = 1 << 20;

/** An inbound session exported at an index, with what it is bound to
 * (Python's `ExportedRoomKey`; JSON field names as there). */
export interface ExportedRoomKey {
  algorithm: string;
  conversation: string;
  session_id: string;
  /** libolm/vodozemac's exported form, starting at `first_index` */
  session_key: string;
  first_index: number;
  creator: string;
  creator_device: string;
  creator_key: string;
  creator_ed25519: string;
}

/** Validate an ExportedRoomKey decoded from JSON (`bad_payload` otherwise). */
export function parseExportedRoomKey(value: unknown): ExportedRoomKey {
  const f = Fields.of(value, (m) => new CryptoError("bad_payload", `not an exported room key: ${m}`));
  return {
    algorithm: f.string("algorithm", { default: MEGOLM_ALGORITHM }),
    conversation: f.string("conversation", RANDOM_ID),
    session_id: f.string("session_id", SESSION_ID),
    session_key: f.string("session_key", SESSION_KEY),
    first_index: f.int("first_index", { min: 0 }),
    creator: f.string("creator"),
    creator_device: f.string("creator_device"),
    creator_key: f.string("creator_key", KEY),
    creator_ed25519: f.string("creator_ed25519", KEY),
  };
}

/** Parse a Megolm message body (`Send.body`); `decryption_failed` if it is not one. */
export function parseMegolmCiphertext(body: Uint8Array | string): MegolmCiphertext {
  const fail = (m: string) => new CryptoError("decryption_failed", `not a Megolm message: ${m}`);
  let text: string;
  if (typeof body === "string") text = body;
  else {
    try {
      text = fromUtf8(body);
    } catch {
      throw fail("invalid UTF-8");
    }
  }
  const f = parseJsonObject(text, fail).onlyKnown(["algorithm", "session_id", "ciphertext"]);
  const message: MegolmCiphertext = {
    algorithm: f.string("algorithm", { default: MEGOLM_ALGORITHM }),
    session_id: f.string("session_id", SESSION_ID),
    ciphertext: f.string("ciphertext", { min: 1, max: MAX_CIPHERTEXT }),
  };
  if (message.algorithm !== MEGOLM_ALGORITHM) throw fail(`unknown algorithm ${JSON.stringify(message.algorithm)}`);
  return message;
}

/** The JSON bytes of a Megolm message (as Python writes them: algorithm included). */
export function megolmCiphertextBytes(message: MegolmCiphertext): Bytes {
  return utf8(
    JSON.stringify({ algorithm: message.algorithm ?? MEGOLM_ALGORITHM, session_id: message.session_id, ciphertext: message.ciphertext }),
  );
}

type DeviceRef = readonly [user: string, device: string, curve25519: string];

function deviceRef(d: VerifiedDevice): string {
  return JSON.stringify([d.user, d.device, d.curve25519] satisfies DeviceRef);
}

// ==================================================================== outbound

/** This device's sending session in one conversation. */
export class OutboundGroup {
  readonly conversation: string;
  readonly createdMs: number;
  #session: OlmOutboundGroupSession | null;
  #sharedWith: Set<string>;

  private constructor(session: OlmOutboundGroupSession, conversation: string, createdMs: number, sharedWith: Iterable<string>) {
    this.#session = session;
    this.conversation = conversation;
    this.createdMs = createdMs;
    this.#sharedWith = new Set(sharedWith);
  }

  static create(conversation: string, nowMs: number): OutboundGroup {
    const session = new (olmLib().OutboundGroupSession)();
    return freeOnError(session, (s) => {
      s.create();
      return new OutboundGroup(s, conversation, nowMs, []);
    });
  }

  get #raw(): OlmOutboundGroupSession {
    if (this.#session === null) throw new Error("the OutboundGroup was freed");
    return this.#session;
  }

  get sessionId(): string {
    return this.#raw.session_id();
  }

  /** The index the next message gets (= messages sent so far). */
  messageIndex(): number {
    return this.#raw.message_index();
  }

  toString(): string {
    return `OutboundGroup(${this.conversation}, ${this.sessionId}, index=${this.messageIndex()})`;
  }

  /** At the message limit or the age limit (or the clock went back). */
  expired(nowMs: number): boolean {
    const age = nowMs - this.createdMs;
    return this.messageIndex() >= MAX_MESSAGES || !(age >= 0 && age < MAX_AGE_MS);
  }

  /** Whether to replace this session before the next message: expired, or
   * `membersChanged` (a member or one of their devices left). */
  needsRotation(nowMs: number, membersChanged = false): boolean {
    return membersChanged || this.expired(nowMs);
  }

  /** The devices the key was given to, as `[user, device, curve25519]`. */
  sharedWith(): DeviceRef[] {
    return [...this.#sharedWith].map((s) => JSON.parse(s) as DeviceRef);
  }

  /** Whether the key went to a device not among `devices` (the member
   * devices admitted now): then it must rotate. */
  hasDeparted(devices: VerifiedDevice[]): boolean {
    const now = new Set(devices.map(deviceRef));
    for (const ref of this.#sharedWith) if (!now.has(ref)) return true;
    return false;
  }

  needsKey(d: VerifiedDevice): boolean {
    return !this.#sharedWith.has(deviceRef(d));
  }

  /** Record that these devices have the key (once the server took it). */
  markShared(ds: VerifiedDevice[]): void {
    for (const d of ds) this.#sharedWith.add(deviceRef(d));
  }

  /** The key to share, at the current index (`algorithm` left at its default). */
  roomKey(): RoomKey {
    return { conversation: this.conversation, session_id: this.sessionId, session_key: this.#raw.session_key() };
  }

  /** Encrypt one (UTF-8 text) message; `Error` once the session must rotate
   * (Python's SessionExpired: a programming error, check `needsRotation`). */
  encrypt(plaintext: string, nowMs: number): MegolmCiphertext {
    if (this.expired(nowMs)) throw new SessionExpired();
    return { algorithm: MEGOLM_ALGORITHM, session_id: this.sessionId, ciphertext: this.#raw.encrypt(plaintext) };
  }

  /** Encrypt a MessagePayload of this conversation: the `Send.body` bytes. */
  encryptPayload(p: MessagePayload, nowMs: number): Bytes {
    if (p.conversation !== this.conversation) throw new CryptoError("bad_payload", "the payload belongs to another conversation");
    return megolmCiphertextBytes(this.encrypt(encodeMessagePayload(p), nowMs));
  }

  pickle(key: Uint8Array): string {
    checkPickleKey(key);
    return JSON.stringify({
      v: 1,
      kind: "megolm.outbound",
      session: this.#raw.pickle(key.slice()),
      conversation: this.conversation,
      created_ms: this.createdMs,
      shared_with: this.sharedWith().sort(),
    });
  }

  static fromPickle(p: string, key: Uint8Array): OutboundGroup {
    checkPickleKey(key);
    const f = parsePickle(p, "megolm.outbound");
    const conversation = f.string("conversation");
    const createdMs = f.int("created_ms");
    const shared = f.array("shared_with").map((ref) => {
      if (!Array.isArray(ref) || ref.length !== 3 || !ref.every((x) => typeof x === "string")) {
        throw new CryptoError("decryption_failed", "the outbound session pickle is damaged");
      }
      return JSON.stringify(ref);
    });
    const session = new (olmLib().OutboundGroupSession)();
    return freeOnError(session, (s) => {
      try {
        s.unpickle(key.slice(), f.string("session"));
      } catch {
        throw new CryptoError("decryption_failed", "the outbound session pickle does not open");
      }
      return new OutboundGroup(s, conversation, createdMs, shared);
    });
  }

  free(): void {
    this.#session?.free();
    this.#session = null;
  }
}

/** An outbound session reached its message or age limit: rotate first. */
export class SessionExpired extends Error {
  constructor() {
    super("the Megolm session must be rotated");
    this.name = "SessionExpired";
  }
}

// ==================================================================== inbound

/** What an inbound session is bound to. */
export interface InboundGroupInfo {
  conversation: string;
  sessionId: string;
  creator: string;
  creatorDevice: string;
  creatorKey: string;
  creatorEd25519: string;
  firstKnownIndex: number;
  imported: boolean;
}

interface Inbound {
  session: OlmInboundGroupSession;
  conversation: string;
  creator: string;
  creatorDevice: string;
  creatorKey: string;
  creatorEd25519: string;
  imported: boolean;
}

function refOf(conversation: string, creatorKey: string, sessionId: string): string {
  return JSON.stringify([conversation, creatorKey, sessionId]);
}

/** Every inbound Megolm session of a device, and the indexes it accepted. */
export class InboundGroupStore {
  readonly seen: SeenIndexes;
  #sessions = new Map<string, Inbound>();

  constructor(seen?: SeenIndexes) {
    this.seen = seen ?? new SeenIndexes();
  }

  get size(): number {
    return this.#sessions.size;
  }

  toString(): string {
    return `InboundGroupStore(sessions=${this.#sessions.size}, seen=${this.seen.size})`;
  }

  #info(e: Inbound): InboundGroupInfo {
    return {
      conversation: e.conversation,
      sessionId: e.session.session_id(),
      creator: e.creator,
      creatorDevice: e.creatorDevice,
      creatorKey: e.creatorKey,
      creatorEd25519: e.creatorEd25519,
      firstKnownIndex: e.session.first_known_index(),
      imported: e.imported,
    };
  }

  sessions(): InboundGroupInfo[] {
    return [...this.#sessions.values()].map((e) => this.#info(e));
  }

  get(conversation: string, creatorKey: string, sessionId: string): InboundGroupInfo | null {
    const e = this.#sessions.get(refOf(conversation, creatorKey, sessionId));
    return e === undefined ? null : this.#info(e);
  }

  /** Delete the keys of a session (every copy in `conversation`), for
   * disappearing messages. The seen indexes stay. Returns how many went. */
  forget(conversation: string, sessionId: string): number {
    let n = 0;
    for (const [ref, e] of [...this.#sessions]) {
      if (e.conversation === conversation && e.session.session_id() === sessionId) {
        e.session.free();
        this.#sessions.delete(ref);
        n++;
      }
    }
    return n;
  }

  /** File a room key that `sender` sent over Olm; `sender` is its creator
   * (use keyshare.acceptRoomKey). Returns whether the store changed: a copy
   * of a known session is kept only if it reaches further back. */
  addRoomKey(key: RoomKey, sender: VerifiedDevice): boolean {
    const algorithm = key.algorithm ?? MEGOLM_ALGORITHM;
    if (algorithm !== MEGOLM_ALGORITHM) throw new CryptoError("bad_payload", `unknown room key algorithm ${JSON.stringify(algorithm)}`);
    const session = new (olmLib().InboundGroupSession)();
    freeOnError(session, (s) => {
      try {
        s.create(key.session_key);
      } catch {
        throw new CryptoError("bad_payload", "not a Megolm session key");
      }
    });
    return this.#file(
      {
        session,
        conversation: key.conversation,
        creator: sender.user,
        creatorDevice: sender.device,
        creatorKey: sender.curve25519,
        creatorEd25519: sender.ed25519,
        imported: false,
      },
      key.session_id,
    );
  }

  /** File an exported session from a *trusted* source (one's own verified
   * device during linking, or one's own backup): the creator it names is
   * taken on trust. Keys from others go through `addRoomKey`. */
  importSession(e: ExportedRoomKey): boolean {
    const exported = parseExportedRoomKey(e);
    if (exported.algorithm !== MEGOLM_ALGORITHM) {
      throw new CryptoError("bad_payload", `unknown room key algorithm ${JSON.stringify(exported.algorithm)}`);
    }
    const session = new (olmLib().InboundGroupSession)();
    freeOnError(session, (s) => {
      try {
        s.import_session(exported.session_key);
      } catch {
        throw new CryptoError("bad_payload", "not an exported Megolm session key");
      }
      if (s.first_known_index() !== exported.first_index) {
        throw new CryptoError("bad_payload", "the exported key starts at another index than it says");
      }
    });
    return this.#file(
      {
        session,
        conversation: exported.conversation,
        creator: exported.creator,
        creatorDevice: exported.creator_device,
        creatorKey: exported.creator_key,
        creatorEd25519: exported.creator_ed25519,
        imported: true,
      },
      exported.session_id,
    );
  }

  #file(entry: Inbound, claimedSessionId: string): boolean {
    const sessionId = entry.session.session_id();
    if (sessionId !== claimedSessionId) {
      entry.session.free();
      throw new CryptoError("bad_payload", "the session key does not match its session id");
    }
    const ref = refOf(entry.conversation, entry.creatorKey, sessionId);
    const known = this.#sessions.get(ref);
    if (known !== undefined && known.session.first_known_index() <= entry.session.first_known_index()) {
      entry.session.free();
      return false;
    }
    known?.session.free();
    this.#sessions.set(ref, entry);
    return true;
  }

  /** Export a session at `index` (default: its first known index). */
  exportSession(conversation: string, creatorKey: string, sessionId: string, index?: number): ExportedRoomKey {
    const e = this.#sessions.get(refOf(conversation, creatorKey, sessionId));
    if (e === undefined) throw new CryptoError("unknown_session", "no such inbound session");
    const at = index ?? e.session.first_known_index();
    if (!Number.isInteger(at) || at < e.session.first_known_index() || at > MAX_INDEX_EXPORT) {
      throw new CryptoError("unknown_session", "the session is not known at that index");
    }
    let sessionKey: string;
    try {
      sessionKey = e.session.export_session(at);
    } catch {
      throw new CryptoError("unknown_session", "the session is not known at that index");
    }
    return {
      algorithm: MEGOLM_ALGORITHM,
      conversation: e.conversation,
      session_id: sessionId,
      session_key: sessionKey,
      first_index: at,
      creator: e.creator,
      creator_device: e.creatorDevice,
      creator_key: e.creatorKey,
      creator_ed25519: e.creatorEd25519,
    };
  }

  /** Decrypt a `Message.body` that `sender` sent in `conversation` and check
   * it against its envelope. `unknown_session` (key not here yet: keep the
   * message and retry when a key arrives), `decryption_failed`, `replayed`
   * or `bad_payload`. */
  decryptMessage(
    sender: VerifiedDevice,
    conversation: string,
    messageId: string,
    body: Uint8Array,
  ): { payload: MessagePayload; sessionId: string; index: number } {
    const message = parseMegolmCiphertext(body);
    const e = this.#sessions.get(refOf(conversation, sender.curve25519, message.session_id));
    if (e === undefined || e.creator !== sender.user || e.creatorDevice !== sender.device) {
      throw new CryptoError("unknown_session", "no key from this device for this session and conversation");
    }
    let ciphertext: string;
    try {
      ciphertext = b64encode(b64decode(message.ciphertext)); // libolm wants it unpadded
    } catch {
      throw new CryptoError("decryption_failed", "not a Megolm message");
    }
    let decrypted: { message_index: number; plaintext: string };
    try {
      decrypted = e.session.decrypt(ciphertext);
    } catch (err) {
      if (olmErrorCode(err) === "UNKNOWN_MESSAGE_INDEX") {
        throw new CryptoError("unknown_session", "the message is older than the key this device holds");
      }
      throw new CryptoError("decryption_failed", "the Megolm message does not decrypt");
    }
    this.seen.check(message.session_id, decrypted.message_index);
    const payload = decodeMessagePayload(decrypted.plaintext);
    checkBinding(payload, sender.user, sender.device, conversation, messageId);
    this.seen.add(message.session_id, decrypted.message_index);
    return { payload, sessionId: message.session_id, index: decrypted.message_index };
  }

  /** Indexes of a session that were skipped: "missing message" markers. */
  gaps(conversation: string, creatorKey: string, sessionId: string): number[] {
    const e = this.#sessions.get(refOf(conversation, creatorKey, sessionId));
    if (e === undefined) return [];
    return this.seen.gaps(sessionId, e.session.first_known_index());
  }

  /** Every session (libolm-encrypted under the 32-byte `key`), what each is
   * bound to, and the seen indexes. */
  pickle(key: Uint8Array): string {
    checkPickleKey(key);
    return JSON.stringify({
      v: 1,
      kind: "megolm.inbound",
      sessions: [...this.#sessions.values()].map((e) => ({
        session: e.session.pickle(key.slice()),
        conversation: e.conversation,
        creator: e.creator,
        creator_device: e.creatorDevice,
        creator_key: e.creatorKey,
        creator_ed25519: e.creatorEd25519,
        imported: e.imported,
      })),
      seen: this.seen.toJSON(),
    });
  }

  static fromPickle(p: string, key: Uint8Array): InboundGroupStore {
    checkPickleKey(key);
    const f = parsePickle(p, "megolm.inbound");
    let seen: SeenIndexes;
    try {
      seen = SeenIndexes.fromJSON(f.object("seen"));
    } catch {
      throw new CryptoError("decryption_failed", "the inbound session pickle is damaged");
    }
    const store = new InboundGroupStore(seen);
    try {
      for (const item of f.array("sessions")) {
        const g = Fields.of(item, f.fail);
        const entry = {
          conversation: g.string("conversation"),
          creator: g.string("creator"),
          creatorDevice: g.string("creator_device"),
          creatorKey: g.string("creator_key"),
          creatorEd25519: g.string("creator_ed25519"),
          imported: g.bool("imported"),
        };
        const session = new (olmLib().InboundGroupSession)();
        freeOnError(session, (s) => {
          try {
            s.unpickle(key.slice(), g.string("session"));
          } catch {
            throw new CryptoError("decryption_failed", "the inbound session pickle does not open");
          }
        });
        store.#sessions.get(refOf(entry.conversation, entry.creatorKey, session.session_id()))?.session.free();
        store.#sessions.set(refOf(entry.conversation, entry.creatorKey, session.session_id()), { session, ...entry });
      }
    } catch (err) {
      store.free();
      throw err;
    }
    return store;
  }

  free(): void {
    for (const e of this.#sessions.values()) e.session.free();
    this.#sessions.clear();
  }
}
