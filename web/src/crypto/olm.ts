// The adapter around libolm (WebAssembly, @towns-protocol/olm): the ONE
// module that imports it. Device accounts and pairwise Olm sessions live
// here (taube.crypto.account + taube.crypto.olm); megolm.ts and
// verification.ts reach the library through `olmLib()`.
//
// libolm is wire-compatible with vodozemac, but laxer: it accepts malleated
// Ed25519 signatures and builds sessions on all-zero keys. So signatures are
// verified with WebCrypto (keys.ts) and every Curve25519 key is checked for
// low order before a session is made. Every wasm object is `.free()`d,
// on error paths too.
//
// libolm zeroes every Uint8Array it is given (keys, messages) after use, so
// it only ever gets copies.
//
// Olm messages travel as `{"type": 0|1, "body": "<unpadded base64>"}`;
// decoders accept padding. Sessions are kept per peer Curve25519 key, most
// recently used first.
import Olm from "@towns-protocol/olm";
import type { Account, OlmImpl, Session } from "@towns-protocol/olm";
import wasmUrl from "@towns-protocol/olm/olm.wasm?url";
import type { DeviceKeys, OlmCiphertext, OneTimeKey, ToDevicePayload } from "../gen/proto";
import { DOMAIN } from "../gen/proto";
import { b64decode, b64encode, fromUtf8, utf8, type Bytes } from "./base64";
import { signingBytes } from "./canonical";
import { CryptoError } from "./errors";
import { checkCurve25519, UNSIGNED, verifySignature, type VerifiedDevice } from "./keys";
import { checkToDeviceBinding, decodeToDevicePayload, encodeToDevicePayload } from "./payload";
import { Fields, parseJsonObject } from "./fields";

export type {
  Account as OlmAccount,
  InboundGroupSession as OlmInboundGroupSession,
  OutboundGroupSession as OlmOutboundGroupSession,
  SAS as OlmSas,
  Session as OlmSession,
} from "@towns-protocol/olm";

export const PRE_KEY = 0;
export const NORMAL = 1;
export const PICKLE_KEY_BYTES = 32;
const MAX_BODY = 8 * 1024 * 1024;

let lib: OlmImpl | null = null;
let loading: Promise<OlmImpl> | null = null;

function inNode(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof proc?.versions?.node === "string";
}

/** Load the wasm once (idempotent). In the browser the bundler serves
 * `olm.wasm`; in Node (vitest) the node build finds it itself. */
export async function initOlm(): Promise<void> {
  if (lib !== null) return;
  loading ??= Olm.initAsync(inNode() ? {} : { locateFile: () => wasmUrl });
  lib = await loading;
}

/** The loaded library; throws if `initOlm()` has not finished. */
export function olmLib(): OlmImpl {
  if (lib === null) throw new Error("call initOlm() first");
  return lib;
}

/** Pickle keys are exactly 32 bytes (vodozemac's rule, kept here). */
export function checkPickleKey(key: Uint8Array): void {
  if (key.length !== PICKLE_KEY_BYTES) throw new Error("a pickle key is exactly 32 bytes");
}

/** libolm's error code ("OLM.BAD_MESSAGE_MAC" → "BAD_MESSAGE_MAC"), or "". */
export function olmErrorCode(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const match = /OLM\.([A-Z_]+)/.exec(message);
  return match?.[1] ?? "";
}

/** Our own pickle envelope: a version, a kind, and the fields of that kind. */
export function parsePickle(pickle: string, kind: string): Fields {
  const fields = parseJsonObject(pickle, (m) => new CryptoError("decryption_failed", `the ${kind} pickle does not open: ${m}`));
  if (fields.int("v") !== 1 || fields.string("kind") !== kind) {
    throw new CryptoError("decryption_failed", `not a ${kind} pickle`);
  }
  return fields;
}

/** Run `f`, freeing `obj` if it throws. */
export function freeOnError<T extends { free(): void }, R>(obj: T, f: (obj: T) => R): R {
  try {
    return f(obj);
  } catch (err) {
    obj.free();
    throw err;
  }
}

// ==================================================================== account

/** One device's Olm account: Curve25519 + Ed25519 keys, signed one-time and
 * fallback keys. Keys stay "unpublished" until `markPublished()`: call it
 * once the server acknowledged the upload, so a failed upload is retried
 * with the same keys. */
export class DeviceAccount {
  readonly curve25519: string;
  readonly ed25519: string;
  #account: Account | null;

  private constructor(account: Account) {
    this.#account = account;
    const keys = JSON.parse(account.identity_keys()) as { curve25519: string; ed25519: string };
    this.curve25519 = keys.curve25519;
    this.ed25519 = keys.ed25519;
  }

  /** A new account with fresh long-term keys (after `initOlm()`). */
  static create(): DeviceAccount {
    const account = new (olmLib().Account)();
    return freeOnError(account, (a) => {
      a.create();
      return new DeviceAccount(a);
    });
  }

  /** The wrapped libolm account (for this module). */
  get raw(): Account {
    if (this.#account === null) throw new Error("the DeviceAccount was freed");
    return this.#account;
  }

  /** How many unpublished one-time keys the account keeps at most. */
  get maxOneTimeKeys(): number {
    return this.raw.max_number_of_one_time_keys();
  }

  toString(): string {
    return `DeviceAccount(${this.curve25519})`;
  }

  /** Sign `obj`'s canonical JSON under `domain` with the device key. */
  sign(domain: string, obj: object): string {
    return this.raw.sign(signingBytes(domain, obj));
  }

  /** The device's keys, unsigned: certify them with the identity key. */
  deviceKeys(user: string, device: string): DeviceKeys {
    return { user, device, curve25519: this.curve25519, ed25519: this.ed25519, signature: UNSIGNED };
  }

  /** Generate `count` one-time keys; returns every unpublished one, signed
   * (a retried upload carries the same keys). At most `maxOneTimeKeys`. */
  async oneTimeKeys(user: string, device: string, count: number): Promise<OneTimeKey[]> {
    if (!Number.isInteger(count) || count < 0 || count > this.maxOneTimeKeys) {
      throw new Error(`count must be between 0 and ${this.maxOneTimeKeys}`);
    }
    if (count > 0) this.raw.generate_one_time_keys(count);
    const keys = (JSON.parse(this.raw.one_time_keys()) as { curve25519: Record<string, string> }).curve25519;
    return Object.keys(keys)
      .sort()
      .map((id) => this.#signedKey(user, device, id, keys[id]!, false));
  }

  /** Generate a new fallback key and return it signed (`fallback: true`).
   * The previous one stays usable for sessions already under way. */
  async fallbackKey(user: string, device: string): Promise<OneTimeKey> {
    this.raw.generate_fallback_key();
    const keys = (JSON.parse(this.raw.unpublished_fallback_key()) as { curve25519: Record<string, string> }).curve25519;
    const [entry] = Object.entries(keys);
    if (entry === undefined) throw new Error("libolm made no fallback key");
    return this.#signedKey(user, device, entry[0], entry[1], true);
  }

  /** The server has the keys: stop returning them as unpublished. */
  markPublished(): void {
    this.raw.mark_keys_as_published();
  }

  #signedKey(user: string, device: string, keyId: string, key: string, fallback: boolean): OneTimeKey {
    // a wire type leaves `fallback` out at its default (false)
    const unsigned: OneTimeKey = fallback
      ? { user, device, key_id: keyId, key, fallback: true, signature: UNSIGNED }
      : { user, device, key_id: keyId, key, signature: UNSIGNED };
    return { ...unsigned, signature: this.sign(DOMAIN.oneTimeKey, unsigned) };
  }

  /** The account as a string (libolm-encrypted under the 32-byte `key`). */
  pickle(key: Uint8Array): string {
    checkPickleKey(key);
    return JSON.stringify({ v: 1, kind: "account", account: this.raw.pickle(key.slice()) });
  }

  /** `decryption_failed` for a wrong key or a damaged pickle. */
  static fromPickle(p: string, key: Uint8Array): DeviceAccount {
    checkPickleKey(key);
    const fields = parsePickle(p, "account");
    const account = new (olmLib().Account)();
    return freeOnError(account, (a) => {
      try {
        a.unpickle(key.slice(), fields.string("account"));
      } catch {
        throw new CryptoError("decryption_failed", "the account pickle does not open");
      }
      return new DeviceAccount(a);
    });
  }

  free(): void {
    this.#account?.free();
    this.#account = null;
  }
}

// ==================================================================== Olm sessions

/** Parse a `ToDeviceMessage.body` (JSON `{type, body}`); `decryption_failed` if malformed. */
export function parseOlmCiphertext(body: Uint8Array | string): OlmCiphertext {
  const fail = (m: string) => new CryptoError("decryption_failed", `not an Olm message: ${m}`);
  const fields = parseJsonObject(typeof body === "string" ? body : fromUtf8Loose(body, fail), fail);
  fields.onlyKnown(["type", "body"]);
  return { type: fields.int("type", { min: PRE_KEY, max: NORMAL }), body: fields.string("body", { min: 1, max: MAX_BODY }) };
}

function fromUtf8Loose(b: Uint8Array, fail: (m: string) => CryptoError): string {
  try {
    return fromUtf8(b);
  } catch {
    throw fail("invalid UTF-8");
  }
}

/** The JSON bytes of an Olm message (a `ToDeviceMessage.body`). */
export function olmCiphertextBytes(message: OlmCiphertext): Bytes {
  return utf8(JSON.stringify({ type: message.type, body: message.body }));
}

/** The Olm sessions of one device (`user`, `device`) with its peers. The
 * account is the caller's: `free()` frees the sessions, not the account.
 * Decrypting a pre-key message removes the used one-time key from the
 * account, so persist the account *and* the machine after decrypting. */
export class OlmMachine {
  readonly account: DeviceAccount;
  readonly user: string;
  readonly device: string;
  /** peer Curve25519 key → its sessions, most recently used first */
  #sessions = new Map<string, Session[]>();

  constructor(account: DeviceAccount, user: string, device: string) {
    this.account = account;
    this.user = user;
    this.device = device;
  }

  toString(): string {
    return `OlmMachine(${this.user}, ${this.device}, peers=${this.#sessions.size})`;
  }

  /** Start a session with `device` on a one-time key claimed for it.
   * `untrusted_device` if the key is not the device's or its signature does
   * not verify, `bad_key` for an unusable key; no session is made then.
   * Returns the new session's id. */
  async createOutboundSession(device: VerifiedDevice, otk: OneTimeKey): Promise<string> {
    if (otk.user !== device.user || otk.device !== device.device) {
      throw new CryptoError("untrusted_device", "the one-time key belongs to another device");
    }
    const { user, device: deviceId, key_id, key, fallback, signature } = otk;
    const signed = fallback === true ? { user, device: deviceId, key_id, key, fallback } : { user, device: deviceId, key_id, key };
    try {
      await verifySignature(DOMAIN.oneTimeKey, signed, device.ed25519, signature);
    } catch (err) {
      if (err instanceof CryptoError) {
        throw new CryptoError("untrusted_device", "the one-time key's signature does not verify");
      }
      throw err;
    }
    for (const k of [key, device.curve25519]) {
      try {
        await checkCurve25519(k);
      } catch (err) {
        throw err instanceof CryptoError ? new CryptoError("bad_key", `unusable Curve25519 key: ${err.message}`) : err;
      }
    }
    const session = new (olmLib().Session)();
    freeOnError(session, (s) => {
      try {
        s.create_outbound(this.account.raw, device.curve25519, key);
      } catch {
        throw new CryptoError("bad_key", "no session can be built on these keys");
      }
    });
    this.#remember(device.curve25519, session);
    return session.session_id();
  }

  hasSession(device: VerifiedDevice): boolean {
    return (this.#sessions.get(device.curve25519)?.length ?? 0) > 0;
  }

  /** The ids of the sessions with `device`, the one in use first. */
  sessionIds(device: VerifiedDevice): string[] {
    return (this.#sessions.get(device.curve25519) ?? []).map((s) => s.session_id());
  }

  #remember(peer: string, session: Session): void {
    const sessions = this.#sessions.get(peer) ?? [];
    const at = sessions.indexOf(session);
    if (at >= 0) sessions.splice(at, 1);
    sessions.unshift(session);
    this.#sessions.set(peer, sessions);
  }

  /** Encrypt a (UTF-8 text) plaintext for `device`; `unknown_session` without a session. */
  encrypt(device: VerifiedDevice, plaintext: string): OlmCiphertext {
    const session = this.#sessions.get(device.curve25519)?.[0];
    if (session === undefined) throw new CryptoError("unknown_session", "no Olm session with this device: claim a one-time key");
    const message = session.encrypt(plaintext);
    return { type: message.type, body: message.body };
  }

  /** Decrypt a message from `sender` (a pre-key message creates the inbound
   * session). `decryption_failed` for a tampered, duplicated or foreign
   * message; `unknown_session` for a normal message without any session. */
  decrypt(sender: VerifiedDevice, message: OlmCiphertext): string {
    let body: string;
    try {
      body = b64encode(b64decode(message.body)); // libolm wants it unpadded
    } catch {
      throw new CryptoError("decryption_failed", "not an Olm message");
    }
    if (body.length === 0 || (message.type !== PRE_KEY && message.type !== NORMAL)) {
      throw new CryptoError("decryption_failed", "not an Olm message");
    }
    const peer = sender.curve25519;
    const sessions = [...(this.#sessions.get(peer) ?? [])];
    if (message.type === PRE_KEY) {
      for (const session of sessions) {
        let matches = false;
        try {
          matches = session.matches_inbound_from(peer, body);
        } catch {
          throw new CryptoError("decryption_failed", "not an Olm pre-key message");
        }
        if (!matches) continue;
        let plaintext: string;
        try {
          plaintext = session.decrypt(PRE_KEY, body);
        } catch {
          throw new CryptoError("decryption_failed", "the Olm message does not decrypt");
        }
        this.#remember(peer, session);
        return plaintext;
      }
      return this.#createInbound(peer, body);
    }
    if (sessions.length === 0) throw new CryptoError("unknown_session", "no Olm session with this device");
    for (const session of sessions) {
      let plaintext: string;
      try {
        plaintext = session.decrypt(NORMAL, body);
      } catch {
        continue;
      }
      this.#remember(peer, session);
      return plaintext;
    }
    throw new CryptoError("decryption_failed", "no Olm session with this device decrypts the message");
  }

  #createInbound(peer: string, body: string): string {
    const session = new (olmLib().Session)();
    const plaintext = freeOnError(session, (s) => {
      try {
        s.create_inbound_from(this.account.raw, peer, body);
        return s.decrypt(PRE_KEY, body);
      } catch {
        // unknown (used up) one-time key, another sender's key, or tampered
        throw new CryptoError("decryption_failed", "the pre-key message starts no session");
      }
    });
    try {
      this.account.raw.remove_one_time_keys(session);
    } catch {
      // a fallback key: it stays (libolm keeps it, as vodozemac does)
    }
    this.#remember(peer, session);
    return plaintext;
  }

  /** A `ToDevicePayload` for `device`, encrypted: the bytes of a `ToDeviceMessage.body`. */
  encryptToDevice(device: VerifiedDevice, type: string, content: Record<string, unknown>): Bytes {
    const payload: ToDevicePayload = {
      sender: this.user,
      sender_device: this.device,
      sender_key: this.account.ed25519,
      recipient: device.user,
      recipient_device: device.device,
      recipient_key: device.curve25519,
      type,
      content,
    };
    return olmCiphertextBytes(this.encrypt(device, encodeToDevicePayload(payload)));
  }

  /** Decrypt a `ToDevice.body` from `sender` (the device the envelope names,
   * resolved through its certificate) and check that the payload is from
   * that device to this one. */
  decryptToDevice(sender: VerifiedDevice, body: Uint8Array): ToDevicePayload {
    const plaintext = this.decrypt(sender, parseOlmCiphertext(body));
    const payload = decodeToDevicePayload(plaintext);
    checkToDevicePayload(payload, sender, this);
    return payload;
  }

  /** Every session, libolm-encrypted under the 32-byte `key`, with the peers
   * they belong to (the account pickles on its own). */
  pickle(key: Uint8Array): string {
    checkPickleKey(key);
    const sessions: Record<string, string[]> = {};
    for (const [peer, list] of this.#sessions) sessions[peer] = list.map((s) => s.pickle(key.slice()));
    return JSON.stringify({ v: 1, kind: "olm", user: this.user, device: this.device, account: this.account.curve25519, sessions });
  }

  /** `decryption_failed` for a wrong key, a damaged pickle or another account's. */
  static fromPickle(p: string, key: Uint8Array, account: DeviceAccount): OlmMachine {
    checkPickleKey(key);
    const fields = parsePickle(p, "olm");
    if (fields.string("account") !== account.curve25519) {
      throw new CryptoError("decryption_failed", "the Olm pickle belongs to another account");
    }
    const machine = new OlmMachine(account, fields.string("user"), fields.string("device"));
    const sessions = fields.object("sessions");
    try {
      for (const [peer, pickles] of Object.entries(sessions)) {
        if (!Array.isArray(pickles)) throw new CryptoError("decryption_failed", "the Olm pickle is damaged");
        const list: Session[] = [];
        machine.#sessions.set(peer, list);
        for (const pickled of pickles) {
          const session = new (olmLib().Session)();
          freeOnError(session, (s) => {
            try {
              s.unpickle(key.slice(), String(pickled));
            } catch {
              throw new CryptoError("decryption_failed", "the Olm pickle does not open");
            }
          });
          list.push(session);
        }
      }
    } catch (err) {
      machine.free();
      throw err;
    }
    return machine;
  }

  free(): void {
    for (const list of this.#sessions.values()) for (const s of list) s.free();
    this.#sessions.clear();
  }
}

function checkToDevicePayload(payload: ToDevicePayload, sender: VerifiedDevice, machine: OlmMachine): void {
  checkToDeviceBinding(payload, sender, machine.user, machine.device, machine.account.curve25519);
}
