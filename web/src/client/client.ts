// The client engine: the browser's port of taube.client.Client. It owns the
// profile (IndexedDB), the keys, the live connection and the outbox, and
// publishes what the screens show through the signals of model.ts.
//
// Guarantees, as in the SDK (DESIGN §6): a message is stored before it is
// acknowledged (nothing lost), a message id is shown once however often it
// arrives (nothing twice), and the outbox keeps what was typed until the
// server confirmed it durable, across reloads and offline periods.
import { computed, signal } from "@preact/signals";
import { decryptAttachment, encryptAttachment, type AttachmentKey } from "../crypto/attachments";
import { openBackup, newRecoveryCode, sealBackup } from "../crypto/backup";
import { b64decode, b64encode, b64encodePadded, fromUtf8, randomId, toHex, utf8 } from "../crypto/base64";
import { CryptoError } from "../crypto/errors";
import { acceptRoomKey, shareRoomKey } from "../crypto/keyshare";
import { IdentityKeyPair, verifyDevice, verifyIdentityKey, type VerifiedDevice } from "../crypto/keys";
import {
  checkLinkSecret,
  decodeLinkEnvelope,
  envelopeOlmBody,
  LINK_TTL_S,
  linkRequestBody,
  makeLinkCode,
  matchesFingerprint,
  parseLinkCode,
  provisionalDevice,
  TYPE_LINK_GRANT,
  TYPE_LINK_REQUEST,
} from "../crypto/linking";
import { OutboundGroup } from "../crypto/megolm";
import { DeviceAccount, initOlm, OlmMachine } from "../crypto/olm";
import { keyIdOf, newStateKey, sealState, unsealState } from "../crypto/statekey";
import {
  EstablishedSas,
  formatSafetyNumber,
  newTransaction,
  safetyNumber,
  SAS_CANCEL,
  SAS_KEY,
  SAS_MAC,
  SAS_START,
  SAS_TYPES,
  SasVerification,
  VerificationQr,
  verificationQr,
} from "../crypto/verification";
import {
  MESSAGE_TYPE,
  PROTOCOL_VERSION,
  TO_DEVICE_TYPE,
  type BlobCreated,
  type ClaimResponse,
  type ClientFrame,
  type ConversationInfo,
  type ConversationList,
  type DeviceList,
  type KeyBackup,
  type KeysResponse,
  type ToDeviceMessage,
  type Message as MessageFrame,
  type MessagePayload,
  type ServerFrame,
  type Session as SessionBody,
  type State as StateFrame,
  type StateChain,
  type StateContent,
  type StateEvent,
  type ToDevice as ToDeviceFrame,
} from "../gen/proto";
import { Api, ServerError } from "./api";
import { checkSignature, newChain, signEvent, verifyChain } from "./chain";
import { Db, type MessageRow, type OutboxRow, type PendingUpload } from "./db";
import { Keys, type KeyChange } from "./keys";
import type {
  AttachmentEntry,
  Client,
  Connection,
  Contact,
  ConversationView,
  DeviceView,
  MessageView,
  NewAccount,
  Notice,
  Role,
  Session,
  Settings,
  Transfer,
  Verification,
} from "./model";
import { applyEvent, type ConversationState } from "./state";
import { Vault } from "./vault";

/** Types that change another message (or a contact) instead of showing one. */
const ANNOTATIONS = new Set<string>([
  MESSAGE_TYPE.reaction,
  MESSAGE_TYPE.edit,
  MESSAGE_TYPE.delete,
  MESSAGE_TYPE.receipt,
  MESSAGE_TYPE.profile,
  MESSAGE_TYPE.stateKey,
  MESSAGE_TYPE.avatar,
]);
const SEND_TIMEOUT_MS = 15_000;
/** delivery receipts go out in conversations up to this size (as in the SDK) */
const DELIVERY_RECEIPTS_UP_TO = 20;
/** frames handled per IndexedDB commit (and per round of acks) */
const BATCH_FRAMES = 200;
/** an idle connection is pinged this often; no pong in PONG_TIMEOUT_MS: reconnect */
const PING_EVERY_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;
const THUMBNAIL_SIZE = 320;
const ADDRESS = /^[a-z0-9][a-z0-9._-]{0,63}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?$/;

export class ClientError extends Error {}

export function parseAddress(text: string): string {
  const address = text.trim().toLowerCase();
  if (address.length > 320 || !ADDRESS.test(address)) throw new ClientError("an address looks like name@example.org");
  return address;
}

interface Chain {
  events: StateEvent[];
  state: ConversationState;
}

interface Waiter {
  resolve: (frame: ServerFrame) => void;
  reject: (error: Error) => void;
}

const DEFAULT_SETTINGS: Settings = { theme: "system", notifications: false, name: "" };

export class Engine implements Client {
  // ---------------------------------------------------------------- signals
  private readonly sessionSig = signal<Session | null>(null);
  private readonly connectionSig = signal<Connection>("offline");
  private readonly openSig = signal<string | null>(null);
  /** bumped on every change of messages or conversations */
  private readonly version = signal(0);
  private readonly noticesSig = signal<Notice[]>([]);
  private readonly contactsSig = signal<Record<string, Contact>>({});
  private readonly transfersSig = signal<Transfer[]>([]);
  private readonly verificationSig = signal<Verification | null>(null);
  private readonly settingsSig = signal<Settings>(DEFAULT_SETTINGS);
  private readonly errorSig = signal<string | null>(null);
  private readonly typingSig = signal<Record<string, string[]>>({});

  readonly state = {
    session: this.sessionSig,
    connection: this.connectionSig,
    conversations: computed(() => {
      void this.version.value;
      void this.typingSig.value;
      void this.contactsSig.value;
      return this.conversationViews();
    }),
    messages: computed(() => {
      void this.version.value;
      const open = this.openSig.value;
      return open ? this.history(open) : [];
    }),
    notices: computed(() => {
      const open = this.openSig.value;
      return this.noticesSig.value.filter((n) => n.conversation === open);
    }),
    contacts: this.contactsSig,
    transfers: this.transfersSig,
    verification: this.verificationSig,
    settings: this.settingsSig,
    error: this.errorSig,
  };

  // ---------------------------------------------------------------- internals
  private keys: Keys | null = null;
  private readonly chains = new Map<string, Chain>();
  private readonly rows = new Map<string, MessageRow[]>();
  private readonly read = new Map<string, number>();
  private readonly stateKeys = new Map<string, { current: string; keys: Record<string, string> }>();
  private readonly urls = new Map<string, string>();
  private readonly titles = new Map<string, string | null>();
  private readonly avatars = new Map<string, string | null>();
  private order = Date.now() * 1000;
  private ws: WebSocket | null = null;
  private closing = false;
  private backoffMs = 200;
  private readonly waiting = new Map<string, Waiter>();
  private readonly inbox: { ws: WebSocket; frame: ServerFrame }[] = [];
  private draining = false;
  /** what the frames of the batch being handled stored */
  private batch: { rows: MessageRow[]; undecrypted: [string, number][]; keys: boolean } | null = null;
  private lastPong = 0;
  private pingSent = 0;
  private outboxRunning = false;
  private outboxAgain = false;
  private queueEmpty: (() => void)[] = [];
  private typingTimers = new Map<string, number>();
  private pendingLink: PendingLink | null = null;
  private readonly flows = new Map<string, Flow>();

  private constructor(
    private readonly db: Db,
    private readonly vault: Vault,
    private readonly api: Api,
  ) {}

  static async create(): Promise<Engine> {
    await holdProfileLock();
    await initOlm();
    const db = await Db.open();
    const engine = new Engine(db, await Vault.open(db), new Api());
    await engine.resume();
    return engine;
  }

  // ================================================================ start-up

  private async resume(): Promise<void> {
    const settings = await this.db.get("kv", "settings");
    if (settings) this.settingsSig.value = { ...DEFAULT_SETTINGS, ...(settings.value as Settings) };
    const keys = await Keys.load(this.db, this.vault, this.api);
    if (keys === null) return;
    await this.begin(keys);
  }

  private async begin(keys: Keys): Promise<void> {
    this.keys = keys;
    this.api.token = keys.token;
    keys.onChange = () => this.emitKeyChanges();
    const outbox = new Set((await this.db.all("outbox")).map((r) => r.id));
    for (const row of await this.db.all("messages")) {
      if (row.status === "pending" && !outbox.has(row.id)) row.status = "failed"; // an upload cut off
      this.addRow(row);
      this.order = Math.max(this.order, row.order + 1);
    }
    for (const row of await this.db.all("chains")) {
      try {
        const events = row.events as StateEvent[];
        this.chains.set(row.conversation, { events, state: await verifyChain(keys, events) });
      } catch (e) {
        console.warn("stored chain no longer verifies", e);
      }
    }
    const reads = await this.db.get("kv", "read");
    for (const [c, o] of Object.entries((reads?.value as Record<string, number>) ?? {})) this.read.set(c, o);
    const sealedKeys = await this.db.get("kv", "statekeys");
    if (sealedKeys) {
      const all = await this.vault.open<Record<string, { current: string; keys: Record<string, string> }>>(
        sealedKeys.value as Uint8Array,
      );
      for (const [c, v] of Object.entries(all)) this.stateKeys.set(c, v);
    }
    const contacts: Record<string, Contact> = {};
    for (const p of await this.db.all("profiles")) contacts[p.user] = this.contactOf(p.user, p.name, p.avatar);
    this.contactsSig.value = contacts;
    this.sessionSig.value = { user: keys.user, device: keys.device, server: location.origin };
    await this.refreshDerived();
    this.bump();
    this.connect();
    window.setInterval(() => void this.expire(), 1000);
    window.setInterval(() => this.heartbeat(), PING_EVERY_MS / 2);
    window.addEventListener("online", () => this.reconnectSoon());
    // the browser knows the network is gone before the socket does
    window.addEventListener("offline", () => this.ws?.close(4001, "offline"));
  }

  private bump(): void {
    this.version.value++;
  }

  // ================================================================ account

  async register(address: string, password: string, deviceName: string): Promise<NewAccount> {
    const user = parseAddress(address);
    const session = await this.api.call<SessionBody>("POST", "/accounts", { address: user, password, device_name: deviceName });
    this.api.token = session.token;
    const identity = await IdentityKeyPair.generate();
    const keys = await Keys.create(this.db, this.vault, this.api, session, identity);
    await keys.publish();
    const code = newRecoveryCode();
    const sealed = await sealBackup(identity, user, code);
    await this.api.call("PUT", "/keys/backup", { sealed: b64encodePadded(sealed) } satisfies KeyBackup);
    this.updateSettings({ name: deviceName ? this.settingsSig.value.name : "" });
    await this.begin(keys);
    return { user, recoveryCode: code };
  }

  async loginWithRecoveryCode(address: string, password: string, code: string, deviceName: string): Promise<void> {
    const user = parseAddress(address);
    const session = await this.api.call<SessionBody>("POST", "/sessions", { address: user, password, device_name: deviceName });
    this.api.token = session.token;
    let identity: IdentityKeyPair;
    try {
      const backup = await this.api.call<KeyBackup>("GET", "/keys/backup");
      identity = await openBackup(b64decode(backup.sealed), user, code);
    } catch (e) {
      await this.api.call("DELETE", "/sessions/current").catch(() => undefined);
      this.api.token = null;
      throw e;
    }
    const keys = await Keys.create(this.db, this.vault, this.api, session, identity);
    await keys.publish();
    await this.begin(keys);
  }

  /** On the new device: log in, then get the identity key from the
   * existing device showing `code` (its user confirms there). */
  async loginWithLinkCode(address: string, password: string, code: string, deviceName: string): Promise<void> {
    const { secret, fingerprint } = parseLinkCode(code);
    const user = parseAddress(address);
    const session = await this.api.call<SessionBody>("POST", "/sessions", { address: user, password, device_name: deviceName });
    this.api.token = session.token;
    const olm = new OlmMachine(DeviceAccount.create(), user, session.device);
    try {
      const found = await this.api.call<KeysResponse>("POST", "/keys/query", { users: [user] });
      const entry = found.users.find((u) => u.user === user);
      if (!entry?.identity) throw new ClientError("the account has no identity key");
      const identityKey = await verifyIdentityKey(entry.identity);
      if (!(await matchesFingerprint(identityKey, fingerprint))) {
        throw new ClientError("the code does not match this account: check it and try again");
      }
      const peers: VerifiedDevice[] = [];
      for (const keys of entry.devices ?? []) {
        try {
          peers.push(await verifyDevice(identityKey, keys));
        } catch {
          // a device without a valid certificate is not asked
        }
      }
      const claimed = peers.length
        ? await this.api.call<ClaimResponse>("POST", "/keys/claim", { devices: peers.map((p) => ({ user: p.user, device: p.device })) })
        : { keys: [] };
      const messages: ToDeviceMessage[] = [];
      for (const peer of peers) {
        const key = claimed.keys.find((k) => k.device === peer.device);
        if (!key) continue;
        await olm.createOutboundSession(peer, key);
        messages.push({ user, device: peer.device, body: b64encodePadded(linkRequestBody(olm, peer, secret, deviceName)) });
      }
      if (!messages.length) throw new ClientError("no device of this account can be reached");
      const grant = await this.awaitGrant(session.token, olm, peers, messages, secret);
      const identity = await IdentityKeyPair.fromSeed(b64decode(String(grant.identity ?? "")));
      if (identity.publicKey !== identityKey) throw new ClientError("the granted identity key is not the account's");
      const keys = await Keys.create(this.db, this.vault, this.api, session, identity, olm);
      await keys.publish();
      if (isEntry(grant.history)) await this.importHistory(grant.history, keys);
      await this.begin(keys);
    } catch (e) {
      olm.account.free();
      olm.free();
      await this.api.call("DELETE", "/sessions/current").catch(() => undefined);
      this.api.token = null;
      throw e;
    }
  }

  /** A socket of its own until an existing device grants the link. */
  private awaitGrant(
    token: string,
    olm: OlmMachine,
    peers: VerifiedDevice[],
    messages: ToDeviceMessage[],
    secret: Uint8Array,
  ): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/api/v1/ws");
      const timer = window.setTimeout(() => {
        ws.close();
        reject(new ClientError("the other device did not confirm in time"));
      }, LINK_TTL_S * 1000);
      const finish = (error: Error | null, grant?: Record<string, unknown>) => {
        window.clearTimeout(timer);
        ws.close();
        if (error) reject(error);
        else resolve(grant ?? {});
      };
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, token, client: "taube-web" }));
        ws.send(JSON.stringify({ type: "todevice.send", id: randomId(), messages }));
      };
      ws.onclose = () => finish(new ClientError("the connection closed before the link was confirmed"));
      ws.onmessage = (event) => {
        const frame = JSON.parse(String(event.data)) as ServerFrame;
        if (frame.type !== "todevice") return;
        ws.send(JSON.stringify({ type: "todevice.ack", seq: frame.seq }));
        const peer = peers.find((p) => p.device === frame.sender_device && p.user === frame.sender);
        if (!peer) return;
        try {
          const payload = olm.decryptToDevice(peer, b64decode(frame.body));
          const content = (payload.content ?? {}) as Record<string, unknown>;
          if (payload.type === TYPE_LINK_GRANT && checkLinkSecret(secret, String(content.secret ?? ""))) {
            ws.onclose = null;
            finish(null, content);
          }
        } catch {
          // not for us, or not from the device it claims
        }
      };
    });
  }

  /** On an existing device: a code (and QR) for the new device, and the
   * request it sends with it. */
  async linkStart(): Promise<{ code: string; request: Promise<{ device: string; name: string }> }> {
    const keys = this.need();
    const { code, secret } = await makeLinkCode(keys.identity.publicKey);
    let deliver: (request: { device: string; name: string }) => void = () => undefined;
    const request = new Promise<{ device: string; name: string }>((resolve) => (deliver = resolve));
    this.pendingLink = { secret, expires: Date.now() + LINK_TTL_S * 1000, used: false, peer: null, deliver };
    return { code, request };
  }

  /** The user confirmed the new device: send it the identity key over Olm
   * (and this device's history, encrypted like an attachment, if asked). */
  async linkConfirm(device: string, shareHistory: boolean): Promise<void> {
    const keys = this.need();
    const pending = this.pendingLink;
    if (!pending || pending.used || !pending.peer || pending.peer.device !== device) throw new ClientError("no link request is waiting");
    const content: Record<string, unknown> = { identity: b64encode(keys.identity.seed()), secret: toHex(pending.secret) };
    if (shareHistory) content.history = await this.exportHistory();
    const body = keys.olm.encryptToDevice(pending.peer, TYPE_LINK_GRANT, content);
    const ref = randomId();
    await this.request({ type: "todevice.send", id: ref, messages: [{ user: keys.user, device, body: b64encodePadded(body) }] }, ref);
    pending.used = true;
    this.pendingLink = null;
    await keys.save();
  }

  private async onLinkRequest(frame: ToDeviceFrame): Promise<boolean> {
    const keys = this.need();
    const pending = this.pendingLink;
    const envelope = pending ? decodeLinkEnvelope(b64decode(frame.body)) : null;
    if (!pending || !envelope) return false;
    if (frame.sender !== keys.user || pending.used || Date.now() > pending.expires) return true;
    const peer = provisionalDevice(keys.user, envelope, frame.sender_device, keys.identity.publicKey);
    try {
      const payload = keys.olm.decryptToDevice(peer, envelopeOlmBody(envelope));
      const content = (payload.content ?? {}) as Record<string, unknown>;
      if (payload.type !== TYPE_LINK_REQUEST || !checkLinkSecret(pending.secret, String(content.secret ?? ""))) return true;
      await this.keysChanged();
      pending.peer = peer;
      pending.deliver({ device: frame.sender_device, name: String(content.name ?? "").slice(0, 100) });
    } catch (e) {
      console.warn("link request refused", e);
    }
    return true;
  }

  /** This device's chats, messages and contacts in the SDK's history format,
   * encrypted and uploaded like an attachment. */
  private async exportHistory(): Promise<AttachmentEntry> {
    const dump = {
      conversations: [...this.chains].map(([c, { state, events }]) => [c, state.kind, JSON.stringify(events), Date.now()]),
      messages: [...this.rows.values()].flat().filter((r) => r.status !== "pending" && r.status !== "failed").map((r) => [
        r.conversation, r.id, r.seq, r.sender, r.senderDevice, r.ts, r.type, JSON.stringify(r.content), r.status, r.expiresMs,
      ]),
      profiles: (await this.db.all("profiles")).map((p) => [p.user, p.name, null, p.ts]),
    };
    const blob = new Blob([JSON.stringify(dump)], { type: "application/json" });
    return this.upload(blob, "history.json", "file", null);
  }

  private async importHistory(entry: AttachmentEntry, keys: Keys): Promise<void> {
    try {
      const data = await this.api.download(`/blobs/${entry.blob}`);
      const dump = JSON.parse(fromUtf8(await decryptAttachment(data, entry.key as AttachmentKey))) as {
        conversations?: [string, string, string, number][];
        messages?: [string, string, number | null, string, string, number, string, string, string, number | null][];
        profiles?: [string, string, unknown, number][];
      };
      let order = this.order;
      await this.db.write(["chains", "messages", "profiles"], (put) => {
        for (const [conversation, , events, updated] of dump.conversations ?? []) {
          put("chains", { conversation, events: JSON.parse(events) as unknown[], updatedMs: updated });
        }
        for (const m of dump.messages ?? []) {
          put("messages", {
            conversation: m[0], id: m[1], seq: m[2], sender: m[3], senderDevice: m[4], ts: m[5], type: m[6],
            content: JSON.parse(m[7]) as Record<string, unknown>, status: m[8] === "received" ? "received" : "sent",
            expiresMs: m[9], session: null, order: order++,
          });
        }
        for (const [user, name, , ts] of dump.profiles ?? []) put("profiles", { user, name, avatar: null, ts });
      });
      this.order = order;
    } catch (e) {
      console.warn("the shared history could not be imported", e);
    }
    void keys;
  }

  async logout(): Promise<void> {
    this.closing = true;
    this.ws?.close();
    await this.api.call("DELETE", "/sessions/current").catch(() => undefined);
    this.keys?.free();
    this.db.close();
    await Db.destroy();
    location.reload();
  }

  async devices(): Promise<DeviceView[]> {
    const list = await this.api.call<DeviceList>("GET", "/devices");
    return list.devices.map((d) => ({
      device: d.device,
      name: d.name,
      createdMs: d.created_ms,
      lastSeenMs: d.last_seen_ms,
      current: d.current ?? false,
    }));
  }

  async renameDevice(device: string, name: string): Promise<void> {
    await this.api.call("PATCH", `/devices/${encodeURIComponent(device)}`, { name });
  }

  async removeDevice(device: string, password: string): Promise<void> {
    await this.api.call("DELETE", `/devices/${encodeURIComponent(device)}`, { password });
  }

  /** Set the display name (and picture; `null` keeps the current one) and
   * share them, encrypted, in every conversation. The picture is kept here
   * and uploaded afresh for each conversation: the server deletes a blob
   * once the members of the conversation that named it have it. */
  async setProfile(name: string, avatar: Blob | null): Promise<void> {
    const content: Record<string, unknown> = { name: name.slice(0, 100) };
    const previous = (await this.db.get("kv", "own_profile"))?.value as Record<string, unknown> | undefined;
    if (avatar) {
      await this.db.put("attachments", { blob: OWN_AVATAR, data: avatar });
      content.avatar_name = "avatar.jpg";
    } else if (previous?.avatar_name) content.avatar_name = previous.avatar_name;
    await this.db.put("kv", { key: "own_profile", value: content });
    this.updateSettings({ name });
    for (const conversation of this.chains.keys()) await this.sendProfile(conversation);
  }

  private async sendProfile(conversation: string): Promise<void> {
    const own = (await this.db.get("kv", "own_profile"))?.value as Record<string, unknown> | undefined;
    if (!own) return;
    const content: Record<string, unknown> = { name: own.name ?? "" };
    const picture = own.avatar_name ? await this.db.get("attachments", OWN_AVATAR) : undefined;
    if (picture) {
      const entry = await this.upload(picture.data, String(own.avatar_name), "image", null);
      content.avatar = entry;
      content.attachments = [entry];
    }
    await this.send(conversation, MESSAGE_TYPE.profile, content);
  }

  updateSettings(change: Partial<Settings>): void {
    this.settingsSig.value = { ...this.settingsSig.value, ...change };
    void this.db.put("kv", { key: "settings", value: this.settingsSig.value });
  }

  dismissError(): void {
    this.errorSig.value = null;
  }

  private fail(e: unknown): void {
    this.errorSig.value = e instanceof Error ? e.message : String(e);
  }

  private need(): Keys {
    if (!this.keys) throw new ClientError("sign up or log in first");
    return this.keys;
  }

  // ================================================================ conversations

  open(conversation: string | null): void {
    this.openSig.value = conversation;
  }

  private async chain(conversation: string, refresh = false): Promise<Chain> {
    const keys = this.need();
    const cached = this.chains.get(conversation);
    if (cached && !refresh) return cached;
    let events: StateEvent[];
    try {
      events = (await this.api.call<StateChain>("GET", `/conversations/${conversation}/state`)).events;
    } catch (e) {
      if (e instanceof ServerError && e.code === "not_found") throw new ClientError(`not a member of ${conversation}`);
      throw e;
    }
    const state = await verifyChain(keys, events);
    await this.remember(conversation, events, state);
    return { events, state };
  }

  private async remember(conversation: string, events: StateEvent[], state: ConversationState): Promise<void> {
    this.chains.set(conversation, { events, state });
    await this.db.put("chains", { conversation, events, updatedMs: Date.now() });
    await this.refreshDerived(conversation);
    this.bump();
  }

  async startChat(address: string): Promise<string> {
    const keys = this.need();
    const other = parseAddress(address);
    if (other === keys.user) throw new ClientError("that is your own address");
    for (const [id, { state }] of this.chains) {
      const members = Object.keys(state.members);
      if (state.kind === "direct" && members.length === 2 && members.includes(other)) return id;
    }
    return this.create("direct", [other]);
  }

  async createGroup(title: string, members: string[]): Promise<string> {
    const keys = this.need();
    const users = [...new Set(members.map(parseAddress))].filter((u) => u !== keys.user);
    const conversation = await this.create("group", users);
    if (title.trim()) await this.rename(conversation, title.trim());
    return conversation;
  }

  private async create(kind: "direct" | "group", members: string[]): Promise<string> {
    const keys = this.need();
    await keys.refresh(members);
    for (const member of members) {
      if (!keys.pinned(member)) throw new ClientError(`${member} has no taube account here`);
    }
    const conversation = randomId();
    const events = await newChain(keys, conversation, kind, members, Date.now());
    await this.api.call<ConversationInfo>("POST", "/conversations", { events });
    await this.remember(conversation, events, await verifyChain(keys, events));
    await this.sendProfile(conversation);
    return conversation;
  }

  private async append(conversation: string, content: StateContent): Promise<void> {
    const keys = this.need();
    for (let attempt = 0; attempt < 3; attempt++) {
      const { state } = await this.chain(conversation, true);
      const event = await signEvent(keys, conversation, state.depth + 1, state.head, content, Date.now());
      try {
        await this.api.call("POST", `/conversations/${conversation}/state`, event);
      } catch (e) {
        if (e instanceof ServerError && e.code === "conflict") continue;
        throw e;
      }
      await this.chain(conversation, true);
      return;
    }
    throw new ClientError("the conversation keeps changing; try again");
  }

  async addMember(conversation: string, address: string, role: Role = "member"): Promise<void> {
    const keys = this.need();
    const user = parseAddress(address);
    await keys.refresh([user]);
    if (!keys.pinned(user)) throw new ClientError(`${user} has no taube account here`);
    const content: StateContent = role === "member"
      ? { type: "member", target: user, membership: "join" }
      : { type: "member", target: user, membership: "join", role };
    await this.append(conversation, content);
    await this.sendStateKey(conversation);
  }

  async removeMember(conversation: string, address: string): Promise<void> {
    await this.append(conversation, { type: "member", target: parseAddress(address), membership: "leave" });
    if (this.stateKeys.has(conversation)) {
      const { id, key } = newStateKey();
      await this.addStateKey(conversation, id, key);
      await this.sendStateKey(conversation);
    }
  }

  async setRole(conversation: string, address: string, role: Role): Promise<void> {
    const target = parseAddress(address);
    const content: StateContent = role === "member"
      ? { type: "member", target, membership: "join" }
      : { type: "member", target, membership: "join", role };
    await this.append(conversation, content);
  }

  async leave(conversation: string): Promise<void> {
    await this.append(conversation, { type: "member", target: this.need().user, membership: "leave" });
  }

  async rename(conversation: string, title: string): Promise<void> {
    const sealed = await this.seal(conversation, "title", utf8(title.slice(0, 200)));
    await this.append(conversation, { type: "title", sealed: b64encodePadded(sealed) });
  }

  async setAvatar(conversation: string, image: Blob): Promise<void> {
    const entry = await this.upload(image, "avatar.jpg", "image", null);
    await this.send(conversation, MESSAGE_TYPE.avatar, { attachments: [entry] });
    const sealed = await this.seal(conversation, "avatar", utf8(JSON.stringify(entry)));
    await this.append(conversation, { type: "avatar", sealed: b64encodePadded(sealed) });
  }

  async setTimer(conversation: string, seconds: number): Promise<void> {
    await this.append(conversation, { type: "timer", seconds });
  }

  private async seal(conversation: string, field: "title" | "avatar", data: Uint8Array): Promise<Uint8Array> {
    let entry = this.stateKeys.get(conversation);
    if (!entry || !entry.keys[entry.current]) {
      const { id, key } = newStateKey();
      await this.addStateKey(conversation, id, key);
      await this.sendStateKey(conversation);
      entry = this.stateKeys.get(conversation)!;
    }
    return sealState(entry.current, hexToBytes(entry.keys[entry.current]!), conversation, field, data);
  }

  private async addStateKey(conversation: string, id: string, key: Uint8Array, makeCurrent = true): Promise<void> {
    const entry = this.stateKeys.get(conversation) ?? { current: id, keys: {} };
    entry.keys[id] = bytesToHex(key);
    if (makeCurrent) entry.current = id;
    this.stateKeys.set(conversation, entry);
    await this.db.put("kv", { key: "statekeys", value: await this.vault.seal(Object.fromEntries(this.stateKeys)) });
    await this.refreshDerived(conversation);
  }

  private async sendStateKey(conversation: string): Promise<void> {
    const entry = this.stateKeys.get(conversation);
    const key = entry?.keys[entry.current];
    if (entry && key) await this.send(conversation, MESSAGE_TYPE.stateKey, { id: entry.current, key });
  }

  /** Title and avatar: unsealed from the latest signed state event. */
  private async refreshDerived(only?: string): Promise<void> {
    for (const [conversation, { events }] of this.chains) {
      if (only && conversation !== only) continue;
      this.titles.set(conversation, await this.unsealed(conversation, events, "title"));
      const avatar = await this.unsealed(conversation, events, "avatar");
      let url: string | null = null;
      if (avatar) {
        try {
          url = await this.attachmentUrl(JSON.parse(avatar) as AttachmentEntry);
        } catch {
          url = null; // its message has not arrived yet
        }
      }
      this.avatars.set(conversation, url);
    }
  }

  private async unsealed(conversation: string, events: StateEvent[], field: "title" | "avatar"): Promise<string | null> {
    for (let i = events.length - 1; i >= 0; i--) {
      const content = events[i]!.content;
      if (content.type !== field) continue;
      const sealed = b64decode(content.sealed);
      const key = this.stateKeys.get(conversation)?.keys[keyIdOf(sealed)];
      if (!key) return null;
      const text = await unsealState(hexToBytes(key), conversation, field, sealed);
      return text === null ? null : fromUtf8(text);
    }
    return null;
  }

  search(text: string): MessageView[] {
    const needle = text.trim().toLowerCase();
    if (!needle) return [];
    const found: MessageView[] = [];
    for (const conversation of this.rows.keys()) {
      for (const view of this.history(conversation)) {
        if (!view.deleted && view.text.toLowerCase().includes(needle)) found.push(view);
      }
    }
    return found.sort((a, b) => b.ts - a.ts).slice(0, 50);
  }

  // ================================================================ sending

  async sendText(conversation: string, text: string, replyTo?: string): Promise<string> {
    const content: Record<string, unknown> = { body: text };
    if (replyTo) content.reply_to = replyTo;
    return this.send(conversation, MESSAGE_TYPE.text, content);
  }

  async react(conversation: string, target: string, emoji: string): Promise<void> {
    await this.send(conversation, MESSAGE_TYPE.reaction, { target, key: emoji });
  }

  async edit(conversation: string, target: string, text: string): Promise<void> {
    await this.send(conversation, MESSAGE_TYPE.edit, { target, body: text });
  }

  async deleteForEveryone(conversation: string, target: string): Promise<void> {
    await this.send(conversation, MESSAGE_TYPE.delete, { target });
  }

  async markRead(conversation: string): Promise<void> {
    const keys = this.keys;
    if (!keys) return;
    const last = this.read.get(conversation) ?? 0;
    const unread = (this.rows.get(conversation) ?? []).filter(
      (r) => r.sender !== keys.user && !ANNOTATIONS.has(r.type) && r.order > last,
    );
    if (unread.length === 0) return;
    this.read.set(conversation, Math.max(...unread.map((r) => r.order)));
    await this.db.put("kv", { key: "read", value: Object.fromEntries(this.read) });
    this.bump();
    await this.send(conversation, MESSAGE_TYPE.receipt, { read: unread.map((r) => r.id) });
  }

  typing(conversation: string, active: boolean): void {
    this.frame({ type: "typing", conversation, active });
  }

  async sendFile(
    conversation: string,
    file: Blob,
    name: string,
    caption = "",
    kind?: AttachmentEntry["kind"],
    extra?: { duration_ms?: number },
  ): Promise<string> {
    const mime = file.type || "application/octet-stream";
    const chosen = kind ?? kindOf(mime);
    const placeholder = { name, mime, size: file.size, kind: chosen };
    const id = randomId();
    // the file waits in the profile and goes out through the outbox, like
    // text: offline, it is sent once the network is back
    await this.db.put("attachments", { blob: pendingKey(id), data: file });
    const upload: PendingUpload = { name, kind: chosen, caption, extra: { ...extra } };
    return this.send(conversation, MESSAGE_TYPE.text, { body: caption, attachments: [placeholder] }, id, upload);
  }

  /** Encrypt and upload an outbox entry's file; the payload then names it. */
  private async uploadPending(row: OutboxRow, upload: PendingUpload): Promise<OutboxRow> {
    const stored = await this.db.get("attachments", pendingKey(row.id));
    if (!stored) throw new ClientError("the file to send is gone from this browser");
    const entry = await this.upload(stored.data, upload.name, upload.kind as AttachmentEntry["kind"], row.id, upload.extra);
    const payload = JSON.parse(row.payload) as MessagePayload;
    const content = { ...(payload.content ?? {}), body: upload.caption, attachments: [entry] };
    const next: OutboxRow = { ...row, payload: JSON.stringify({ ...payload, content }), upload: null };
    const message = this.findRow(row.conversation, row.id);
    const shown = message ? { ...message, content } : null;
    if (shown) this.replaceRow(shown);
    await this.db.write(["outbox", "messages", "attachments"], (put, del) => {
      put("outbox", next);
      if (shown) put("messages", shown);
      del("attachments", pendingKey(row.id));
    });
    this.bump();
    return next;
  }

  private async upload(
    file: Blob,
    name: string,
    kind: AttachmentEntry["kind"],
    transfer: string | null,
    extra: Record<string, unknown> = {},
  ): Promise<AttachmentEntry> {
    const more: Record<string, unknown> = { ...extra };
    if (kind === "image") {
      const thumb = await thumbnail(file);
      if (thumb) {
        more.width = thumb.width;
        more.height = thumb.height;
        more.thumbnail = await this.upload(thumb.blob, "thumbnail.jpg", "thumbnail", null);
      }
    }
    const { ciphertext, key } = await encryptAttachment(file);
    const progress = transfer ? (done: number, total: number) => this.progress(transfer, name, "up", done, total) : undefined;
    const created = await this.api.upload<BlobCreated>("/blobs", ciphertext, progress);
    if (transfer) this.progress(transfer, name, "up", -1, 0);
    await this.db.put("attachments", { blob: created.blob, data: file });
    return {
      blob: created.blob,
      name,
      mime: file.type || "application/octet-stream",
      size: file.size,
      encrypted_size: ciphertext.size,
      kind,
      key: key as AttachmentEntry["key"],
      ...more,
    } as AttachmentEntry;
  }

  private progress(id: string, name: string, direction: "up" | "down", done: number, total: number): void {
    const others = this.transfersSig.value.filter((t) => t.id !== id);
    this.transfersSig.value = done < 0 ? others : [...others, { id, name, direction, done, total }];
  }

  /** Put a message in the outbox; it is sent as soon as possible. */
  private async send(
    conversation: string,
    type: string,
    content: Record<string, unknown>,
    reuseId?: string,
    upload?: PendingUpload,
  ): Promise<string> {
    const keys = this.need();
    const { state } = await this.chain(conversation);
    if (!(keys.user in state.members)) throw new ClientError("you are not a member of this conversation");
    const blocked = keys.blocked(Object.keys(state.members));
    if (blocked.length) throw new ClientError(`verify ${blocked.join(", ")} again before sending: their key changed`);
    const id = reuseId ?? randomId();
    const payload: MessagePayload = {
      sender: keys.user,
      sender_device: keys.device,
      conversation,
      message_id: id,
      type,
      content,
    };
    const now = Date.now();
    const row = this.rowOf(conversation, id, type, content, "pending");
    row.expiresMs = state.timerSeconds ? now + state.timerSeconds * 1000 : null;
    const outbox: OutboxRow = {
      id,
      conversation,
      payload: JSON.stringify(payload),
      createdMs: now,
      expireMs: state.timerSeconds ? state.timerSeconds * 1000 : null,
      body: null,
      order: row.order,
      upload: upload ?? null,
    };
    this.replaceRow(row);
    await this.db.write(["outbox", "messages"], (put) => {
      put("outbox", outbox);
      put("messages", row);
    });
    this.bump();
    this.kickOutbox();
    return id;
  }

  private rowOf(conversation: string, id: string, type: string, content: Record<string, unknown>, status: MessageRow["status"]): MessageRow {
    const keys = this.need();
    return {
      conversation,
      id,
      seq: null,
      sender: keys.user,
      senderDevice: keys.device,
      ts: Date.now(),
      type,
      content,
      status,
      expiresMs: null,
      session: null,
      order: this.order++,
    };
  }

  private kickOutbox(): void {
    if (this.outboxRunning) {
      this.outboxAgain = true;
      return;
    }
    void this.runOutbox();
  }

  private async runOutbox(): Promise<void> {
    this.outboxRunning = true;
    try {
      do {
        this.outboxAgain = false;
        if (this.connectionSig.value !== "online") return;
        const rows = (await this.db.all("outbox")).sort((a, b) => a.order - b.order);
        for (const row of rows) {
          try {
            await this.sendOne(row);
          } catch (e) {
            if ((e instanceof ServerError && e.transient) || e instanceof Disconnected) {
              window.setTimeout(() => this.kickOutbox(), 500 + Math.random() * 1000);
              return;
            }
            console.warn("send failed for good", e);
            this.fail(e);
            await this.db.write(["outbox", "attachments"], (_put, del) => {
              del("outbox", row.id);
              del("attachments", pendingKey(row.id));
            });
            await this.setStatus(row.conversation, row.id, "failed");
          }
        }
      } while (this.outboxAgain);
    } finally {
      this.outboxRunning = false;
    }
  }

  private async sendOne(queued: OutboxRow): Promise<void> {
    const keys = this.need();
    const row = queued.upload ? await this.uploadPending(queued, queued.upload) : queued;
    let body = row.body;
    const payload = JSON.parse(row.payload) as MessagePayload;
    if (body === null) {
      const group = await this.shareKeys(row.conversation);
      body = b64encodePadded(group.encryptPayload(payload, Date.now()));
      await this.db.put("outbox", { ...row, body });
      await keys.save();
    }
    const blobs = entriesOf(payload.content?.attachments).map((e) => e.blob).filter((b): b is string => !!b);
    const frame: ClientFrame = { type: "msg.send", conversation: row.conversation, id: row.id, body };
    if (blobs.length) frame.blobs = blobs;
    if (row.expireMs) frame.expire_ms = row.expireMs;
    const sent = await this.request(frame, row.id);
    if (sent.type !== "msg.sent") throw new ClientError("unexpected answer to a send");
    await this.db.delete("outbox", row.id);
    const stored = this.findRow(row.conversation, row.id);
    if (stored) {
      const next = { ...stored, seq: sent.seq, status: "sent" as const };
      this.replaceRow(next);
      await this.db.put("messages", next);
      this.bump();
    }
  }

  private async shareKeys(conversation: string): Promise<OutboundGroup> {
    const keys = this.need();
    const { state } = await this.chain(conversation);
    const members = Object.keys(state.members).sort();
    const devices = (await keys.devicesOf(members)).filter((d) => !(d.user === keys.user && d.device === keys.device));
    const blocked = keys.blocked(members);
    if (blocked.length) throw new ClientError(`verify ${blocked.join(", ")} again before sending`);
    const now = Date.now();
    let group = keys.outbound.get(conversation);
    const timerMs = state.timerSeconds * 1000;
    if (!group || group.needsRotation(now, group.hasDeparted(devices)) || (timerMs && now - group.createdMs >= timerMs)) {
      group?.free();
      group = OutboundGroup.create(conversation, now);
      keys.outbound.set(conversation, group);
    }
    let { messages, withoutSession } = shareRoomKey(keys.olm, group, devices);
    if (withoutSession.length) {
      const claimed = await this.api.call<ClaimResponse>("POST", "/keys/claim", {
        devices: withoutSession.map((d) => ({ user: d.user, device: d.device })),
      });
      for (const device of withoutSession) {
        const key = claimed.keys.find((k) => k.user === device.user && k.device === device.device);
        if (!key) continue;
        try {
          await keys.olm.createOutboundSession(device, key);
        } catch (e) {
          console.warn("no session with a device", e);
        }
      }
      messages = messages.concat(shareRoomKey(keys.olm, group, withoutSession).messages);
    }
    if (messages.length) {
      const shared = new Set(messages.map((m) => `${m.user}|${m.device}`));
      const ref = randomId();
      await keys.save();
      await this.request({ type: "todevice.send", id: ref, messages }, ref);
      group.markShared(devices.filter((d) => shared.has(`${d.user}|${d.device}`)));
    }
    await keys.save();
    return group;
  }

  private request(frame: ClientFrame, ref: string): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || this.connectionSig.value !== "online") {
        reject(new Disconnected("not connected"));
        return;
      }
      const timer = window.setTimeout(() => {
        this.waiting.delete(ref);
        reject(new Disconnected("no answer from the server"));
      }, SEND_TIMEOUT_MS);
      this.waiting.set(ref, {
        resolve: (f) => {
          window.clearTimeout(timer);
          this.waiting.delete(ref);
          if (f.type === "error") {
            const transient = ["rate_limited", "unavailable", "internal"].includes(f.code);
            reject(new ServerError(f.code, f.message, transient ? 503 : 400));
          } else resolve(f);
        },
        reject: (e) => {
          window.clearTimeout(timer);
          this.waiting.delete(ref);
          reject(e);
        },
      });
      ws.send(JSON.stringify(frame));
    });
  }

  private frame(frame: ClientFrame): void {
    if (this.ws && this.connectionSig.value === "online") this.ws.send(JSON.stringify(frame));
  }

  // ================================================================ connection

  private connect(): void {
    if (this.closing || this.ws) return;
    const keys = this.need();
    this.connectionSig.value = "connecting";
    const url = location.origin.replace(/^http/, "ws") + "/api/v1/ws";
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, token: keys.token, client: "taube-web" }));
    ws.onmessage = (event) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(event.data)) as ServerFrame;
      } catch {
        return; // not JSON: nothing a server of ours sends
      }
      this.inbox.push({ ws, frame });
      void this.drainInbox();
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this.ws = null;
      this.connectionSig.value = "offline";
      for (const waiter of [...this.waiting.values()]) waiter.reject(new Disconnected("disconnected"));
      if (event.code === 4401) {
        this.fail(new Error("this device was logged out"));
        this.closing = true;
      }
      if (!this.closing) {
        const delay = this.backoffMs * (0.5 + Math.random());
        this.backoffMs = Math.min(this.backoffMs * 2, 15_000);
        window.setTimeout(() => this.connect(), delay);
      }
    };
  }

  /** A connection that died silently (no close from the network) shows up
   * as a missing pong: close it, and the reconnect loop takes over. */
  private heartbeat(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.connectionSig.value !== "online") return;
    const now = Date.now();
    if (this.pingSent && this.lastPong < this.pingSent && now - this.pingSent > PONG_TIMEOUT_MS) {
      ws.close(4002, "no pong");
      return;
    }
    if (now - this.pingSent >= PING_EVERY_MS) {
      this.pingSent = now;
      ws.send(JSON.stringify({ type: "ping", ref: String(now) }));
    }
  }

  private reconnectSoon(): void {
    this.backoffMs = 200;
    if (!this.ws) this.connect();
  }

  /** Resolves when the backlog is in (tests and the first render use it). */
  whenSynced(): Promise<void> {
    return new Promise((resolve) => this.queueEmpty.push(resolve));
  }

  /** Handle what arrived in batches: every frame of a batch is handled in
   * order, then what they stored is committed in one IndexedDB transaction
   * (and the keys sealed once), and only then are they acknowledged, one
   * ack per conversation. A frame that fails closes the socket before its
   * ack, so the server sends it again. */
  private async drainInbox(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.inbox.length) {
        const batch = this.inbox.splice(0, BATCH_FRAMES);
        this.batch = { rows: [], undecrypted: [], keys: false };
        const acks = new Map<string, { ws: WebSocket; frame: ClientFrame }>();
        let broken: WebSocket | null = null;
        for (const { ws, frame } of batch) {
          if (ws === broken) continue;
          try {
            const ack = await this.onFrame(ws, frame);
            if (ack) acks.set(ack.type === "msg.ack" ? `c:${ack.conversation}` : "d", { ws, frame: ack });
          } catch (e) {
            console.error("a frame failed; reconnecting to get it again", e);
            broken = ws;
          }
        }
        const { rows, undecrypted, keys } = this.batch;
        this.batch = null;
        if (rows.length || undecrypted.length) {
          await this.db.write(["messages", "undecrypted"], (put, del) => {
            for (const row of rows) put("messages", row);
            for (const key of undecrypted) del("undecrypted", key);
          });
          this.bump();
        }
        if (keys) await this.need().save();
        for (const { ws, frame } of acks.values()) {
          if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
        }
        if (broken) broken.close(4000, "a frame failed");
        this.confirmDelivery(rows);
      }
    } finally {
      this.draining = false;
    }
  }

  /** Tell the senders in direct chats and small groups that their messages
   * arrived: one receipt per conversation and batch (as the SDK does). */
  private confirmDelivery(rows: MessageRow[]): void {
    const me = this.keys?.user;
    const arrived = new Map<string, string[]>();
    for (const row of rows) {
      if (row.status !== "received" || row.sender === me || ANNOTATIONS.has(row.type)) continue;
      const members = Object.keys(this.chains.get(row.conversation)?.state.members ?? {}).length;
      if (members === 0 || members > DELIVERY_RECEIPTS_UP_TO) continue;
      arrived.set(row.conversation, [...(arrived.get(row.conversation) ?? []), row.id]);
    }
    for (const [conversation, ids] of arrived) {
      this.send(conversation, MESSAGE_TYPE.receipt, { delivered: ids }).catch((e: unknown) => console.info("no delivery receipt", e));
    }
  }

  /** Within a batch: mark the keys for saving before the acks go out. */
  private async keysChanged(): Promise<void> {
    if (this.batch) this.batch.keys = true;
    else await this.need().save();
  }

  /** Handle one frame; returns its acknowledgement, sent once it is stored. */
  private async onFrame(ws: WebSocket, frame: ServerFrame): Promise<ClientFrame | null> {
    void ws;
    switch (frame.type) {
      case "welcome":
        this.connectionSig.value = "online";
        this.backoffMs = 200;
        this.pingSent = this.lastPong = 0;
        void this.afterWelcome();
        return null;
      case "msg":
        await this.onMessage(frame);
        return { type: "msg.ack", conversation: frame.conversation, seq: frame.seq };
      case "state":
        await this.onState(frame);
        return { type: "msg.ack", conversation: frame.conversation, seq: frame.seq };
      case "todevice":
        await this.onToDevice(frame);
        return { type: "todevice.ack", seq: frame.seq };
      case "keys.changed":
        this.need().forget(frame.user);
        await this.need().refresh([frame.user]);
        return { type: "todevice.ack", seq: frame.seq };
      case "typing.event":
        this.onTyping(frame.conversation, frame.user, frame.active);
        return null;
      case "queue.empty":
        for (const resolve of this.queueEmpty.splice(0)) resolve();
        return null;
      case "msg.sent":
      case "todevice.sent":
        this.waiting.get(frame.id)?.resolve(frame);
        return null;
      case "pong":
        this.lastPong = Date.now();
        return null;
      case "error":
        if (frame.ref) this.waiting.get(frame.ref)?.resolve(frame);
        else console.warn("server error", frame.code, frame.message);
        return null;
      default:
        return null; // a frame type from a newer server: ignored
    }
  }

  private async afterWelcome(): Promise<void> {
    const keys = this.need();
    try {
      await keys.replenish();
      const list = await this.api.call<ConversationList>("GET", "/conversations");
      for (const info of list.conversations) {
        const known = this.chains.get(info.conversation);
        if (!known || known.state.depth < info.depth) await this.chain(info.conversation, true).catch((e: unknown) => console.warn(e));
      }
    } catch (e) {
      console.warn("after welcome", e);
    }
    this.kickOutbox();
  }

  private onTyping(conversation: string, user: string, active: boolean): void {
    const key = `${conversation}|${user}`;
    const current = { ...this.typingSig.value };
    const list = (current[conversation] ?? []).filter((u) => u !== user);
    if (active) list.push(user);
    current[conversation] = list;
    this.typingSig.value = current;
    window.clearTimeout(this.typingTimers.get(key));
    if (active) this.typingTimers.set(key, window.setTimeout(() => this.onTyping(conversation, user, false), 6000));
  }

  // ================================================================ receiving

  private async onMessage(frame: MessageFrame): Promise<void> {
    const keys = this.need();
    if (frame.body == null) {
      // our own send, echoed without a body
      const row = this.findRow(frame.conversation, frame.id);
      if (row && row.seq === null) await this.storeRow({ ...row, seq: frame.seq, status: "sent" });
      return;
    }
    if (this.findRow(frame.conversation, frame.id)) return; // delivered again: shown once
    const sender = await keys.findDevice(frame.sender, frame.sender_device);
    this.emitKeyChanges();
    if (!sender) {
      this.warn(frame, "from a device without a valid certificate");
      return;
    }
    let decrypted: { payload: MessagePayload; sessionId: string; index: number };
    let gapsBefore = 0;
    let sessionId = "";
    try {
      sessionId = (JSON.parse(fromUtf8(b64decode(frame.body))) as { session_id: string }).session_id;
      gapsBefore = keys.inbound.gaps(frame.conversation, sender.curve25519, sessionId).length;
      decrypted = keys.inbound.decryptMessage(sender, frame.conversation, frame.id, b64decode(frame.body));
    } catch (e) {
      if (e instanceof CryptoError && e.kind === "unknown_session") {
        await this.db.put("undecrypted", { conversation: frame.conversation, seq: frame.seq, session: sessionId, frame: JSON.stringify(frame) });
        return;
      }
      if (e instanceof CryptoError && e.kind === "replayed") return;
      this.warn(frame, e instanceof Error ? e.message : String(e));
      return;
    }
    const payload = decrypted.payload;
    const missing = Math.max(0, keys.inbound.gaps(frame.conversation, sender.curve25519, decrypted.sessionId).length - gapsBefore);
    const expires = this.expiryOf(frame);
    for (const entry of entriesOf(payload.content?.attachments)) {
      try {
        await this.fetchAttachment(entry); // before the ack: the blob goes once every device has it
      } catch (e) {
        this.warn(frame, `attachment not available: ${(e as Error).message}`);
      }
    }
    const row: MessageRow = {
      conversation: frame.conversation,
      id: frame.id,
      seq: frame.seq,
      sender: frame.sender,
      senderDevice: frame.sender_device,
      ts: frame.ts,
      type: payload.type,
      content: (payload.content ?? {}) as Record<string, unknown>,
      status: "received",
      expiresMs: expires,
      session: decrypted.sessionId,
      order: this.order++,
    };
    await this.storeRow(row);
    await this.keysChanged();
    if (payload.type === MESSAGE_TYPE.profile) await this.rememberProfile(frame.sender, frame.ts, row.content);
    else if (payload.type === MESSAGE_TYPE.stateKey) {
      const id = String(row.content.id ?? "");
      const key = String(row.content.key ?? "");
      if (/^[0-9a-f]{16}$/.test(id) && /^[0-9a-f]{64}$/.test(key)) await this.addStateKey(frame.conversation, id, hexToBytes(key));
      this.bump();
    } else if (payload.type === MESSAGE_TYPE.avatar) {
      await this.refreshDerived(frame.conversation);
      this.bump();
    }
    if (missing) {
      this.addNotice({ kind: "missing", conversation: frame.conversation, sender: frame.sender, count: missing, before: frame.id, ts: frame.ts });
    }
  }

  private expiryOf(frame: MessageFrame): number | null {
    const timer = this.chains.get(frame.conversation)?.state.timerSeconds ?? 0;
    const given = frame.expires_ms ?? null;
    if (!timer) return given;
    const latest = Date.now() + timer * 1000;
    return given === null ? latest : Math.min(given, latest);
  }

  private warn(frame: MessageFrame, reason: string): void {
    this.addNotice({ kind: "undecryptable", conversation: frame.conversation, sender: frame.sender, id: frame.id, reason, ts: frame.ts });
  }

  private addNotice(notice: Notice): void {
    this.noticesSig.value = [...this.noticesSig.value, notice];
  }

  private emitKeyChanges(): void {
    const keys = this.keys;
    if (!keys) return;
    while (keys.changes.length) {
      const change = keys.changes.shift() as KeyChange;
      for (const [conversation, { state }] of this.chains) {
        if (change.user in state.members) {
          this.addNotice({ kind: "key-changed", conversation, user: change.user, verified: change.verified, reason: change.reason, ts: Date.now() });
        }
      }
    }
  }

  private async onState(frame: StateFrame): Promise<void> {
    const keys = this.need();
    const conversation = frame.conversation;
    const cached = this.chains.get(conversation);
    const before = cached ? { ...cached.state.members } : {};
    let state: ConversationState;
    try {
      if (cached && frame.event.depth === cached.state.depth + 1) {
        await checkSignature(keys, frame.event);
        state = await applyEvent(cached.state, frame.event);
        await this.remember(conversation, [...cached.events, frame.event], state);
      } else if (!cached || frame.event.depth > cached.state.depth) {
        state = (await this.chain(conversation, true)).state;
        if (!cached) await this.sendProfile(conversation);
      } else return;
    } catch (e) {
      console.warn("state refused", e);
      return;
    }
    const content = frame.event.content;
    const name = (u: string) => this.contactsSig.value[u]?.name || u;
    if (content.type === "member" && cached) {
      const verb = content.membership === "leave"
        ? content.target === frame.event.sender ? "left" : `was removed by ${name(frame.event.sender)}`
        : before[content.target] ? `is now ${content.role ?? "member"}` : `was added by ${name(frame.event.sender)}`;
      this.addNotice({ kind: "membership", conversation, text: `${name(content.target)} ${verb}`, ts: frame.event.ts });
    } else if (content.type === "timer") {
      this.addNotice({ kind: "timer", conversation, seconds: content.seconds, ts: frame.event.ts });
    }
  }

  private async onToDevice(frame: ToDeviceFrame): Promise<void> {
    const keys = this.need();
    if (await this.onLinkRequest(frame)) return;
    const sender = await keys.findDevice(frame.sender, frame.sender_device);
    if (!sender) return;
    let payload;
    try {
      payload = keys.olm.decryptToDevice(sender, b64decode(frame.body));
    } catch (e) {
      console.info("to-device message refused", e);
      return;
    }
    if (SAS_TYPES.has(payload.type)) {
      await this.onSas(sender, payload.type, (payload.content ?? {}) as Record<string, unknown>);
      await this.keysChanged();
      return;
    }
    if (payload.type === TO_DEVICE_TYPE.roomKey) {
      try {
        acceptRoomKey(keys.inbound, sender, payload);
      } catch (e) {
        console.info("room key refused", e);
      }
    }
    await this.keysChanged();
    await this.retryUndecrypted();
  }

  private async retryUndecrypted(): Promise<void> {
    const rows = (await this.db.all("undecrypted")).sort((a, b) => (a.conversation === b.conversation ? a.seq - b.seq : a.conversation < b.conversation ? -1 : 1));
    for (const row of rows) {
      // gone from the waiting list in the same commit that stores the message
      if (this.batch) this.batch.undecrypted.push([row.conversation, row.seq]);
      else await this.db.delete("undecrypted", [row.conversation, row.seq]);
      await this.onMessage(JSON.parse(row.frame) as MessageFrame);
    }
  }

  private async rememberProfile(user: string, ts: number, content: Record<string, unknown>): Promise<void> {
    const known = await this.db.get("profiles", user);
    if (known && known.ts >= ts) return;
    const avatar = isEntry(content.avatar) ? (content.avatar as unknown as Record<string, unknown>) : null;
    const row = { user, name: String(content.name ?? "").slice(0, 100), avatar, ts };
    await this.db.put("profiles", row);
    this.contactsSig.value = { ...this.contactsSig.value, [user]: this.contactOf(user, row.name, avatar) };
    if (avatar) {
      void this.attachmentUrl(avatar as unknown as AttachmentEntry).then((url) => {
        const current = this.contactsSig.value[user];
        if (current) this.contactsSig.value = { ...this.contactsSig.value, [user]: { ...current, avatar: url } };
      }).catch(() => undefined);
    }
  }

  private contactOf(user: string, name: string, avatar: Record<string, unknown> | null): Contact {
    const blob = avatar ? String(avatar.blob ?? "") : "";
    return { user, name, avatar: this.urls.get(blob) ?? null, verified: this.keys?.pinned(user)?.verified ?? false };
  }

  // ================================================================ attachments

  private async fetchAttachment(entry: AttachmentEntry): Promise<Blob> {
    const have = await this.db.get("attachments", entry.blob);
    if (have) return have.data;
    const data = await this.api.download(`/blobs/${entry.blob}`, (done, total) => this.progress(entry.blob, entry.name, "down", done, total));
    this.progress(entry.blob, entry.name, "down", -1, 0);
    const plain = await decryptAttachment(data, entry.key as AttachmentKey);
    const blob = new Blob([plain as BlobPart], { type: entry.mime || "application/octet-stream" });
    await this.db.put("attachments", { blob: entry.blob, data: blob });
    return blob;
  }

  async attachmentUrl(entry: AttachmentEntry): Promise<string> {
    const cached = this.urls.get(entry.blob);
    if (cached) return cached;
    const blob = await this.fetchAttachment(entry);
    const url = URL.createObjectURL(blob);
    this.urls.set(entry.blob, url);
    return url;
  }

  // ================================================================ history

  private addRow(row: MessageRow): void {
    const list = this.rows.get(row.conversation) ?? [];
    list.push(row);
    this.rows.set(row.conversation, list);
  }

  private findRow(conversation: string, id: string): MessageRow | undefined {
    return this.rows.get(conversation)?.find((r) => r.id === id);
  }

  private replaceRow(row: MessageRow): void {
    const list = this.rows.get(row.conversation) ?? [];
    const at = list.findIndex((r) => r.id === row.id);
    if (at >= 0) list[at] = row;
    else list.push(row);
    this.rows.set(row.conversation, list);
  }

  /** Keep a row; inside a frame batch it is written with the batch. */
  private async storeRow(row: MessageRow): Promise<void> {
    this.replaceRow(row);
    if (this.batch) {
      this.batch.rows.push(row);
      return;
    }
    await this.db.put("messages", row);
    this.bump();
  }

  private async setStatus(conversation: string, id: string, status: MessageRow["status"]): Promise<void> {
    const row = this.findRow(conversation, id);
    if (!row) return;
    await this.storeRow({ ...row, status });
  }

  /** The conversation as the user sees it: oldest first, annotations applied. */
  private history(conversation: string): MessageView[] {
    const me = this.keys?.user ?? "";
    const rows = [...(this.rows.get(conversation) ?? [])].sort(
      (a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity) || a.order - b.order,
    );
    const shown = new Map<string, MessageView>();
    for (const row of rows) {
      if (ANNOTATIONS.has(row.type)) continue;
      shown.set(row.id, {
        conversation,
        id: row.id,
        seq: row.seq,
        sender: row.sender,
        senderDevice: row.senderDevice,
        ts: row.ts,
        text: String(row.content.body ?? ""),
        replyTo: typeof row.content.reply_to === "string" ? row.content.reply_to : null,
        edited: false,
        deleted: false,
        reactions: {},
        readBy: [],
        deliveredTo: [],
        status: row.status === "received" ? "received" : row.status,
        expiresMs: row.expiresMs,
        attachments: entriesList(row.content.attachments),
        mine: row.sender === me,
      });
    }
    for (const row of rows) {
      if (row.type === MESSAGE_TYPE.receipt) {
        for (const [field, list] of [["read", "readBy"], ["delivered", "deliveredTo"]] as const) {
          const ids = Array.isArray(row.content[field]) ? (row.content[field] as unknown[]) : [];
          for (const id of ids) {
            const message = shown.get(String(id));
            if (message && !message[list].includes(row.sender) && row.sender !== message.sender) message[list].push(row.sender);
          }
        }
        continue;
      }
      const target = typeof row.content.target === "string" ? shown.get(row.content.target) : undefined;
      if (!target) continue;
      if ((row.type === MESSAGE_TYPE.edit || row.type === MESSAGE_TYPE.delete) && row.sender !== target.sender) continue;
      if (row.type === MESSAGE_TYPE.edit && !target.deleted) {
        target.text = String(row.content.body ?? "");
        target.edited = true;
      } else if (row.type === MESSAGE_TYPE.delete) {
        target.text = "";
        target.deleted = true;
        target.attachments = [];
      } else if (row.type === MESSAGE_TYPE.reaction) {
        const key = String(row.content.key ?? "");
        const users = target.reactions[key] ?? [];
        // a second identical reaction by the same user takes it back
        target.reactions[key] = users.includes(row.sender) ? users.filter((u) => u !== row.sender) : [...users, row.sender];
        if (target.reactions[key]!.length === 0) delete target.reactions[key];
      }
    }
    const list = [...shown.values()];
    for (const message of list) {
      if (message.mine && message.status === "sent" && message.readBy.length) message.status = "read";
      else if (message.mine && message.status === "sent" && message.deliveredTo.length) message.status = "delivered";
    }
    return list;
  }

  private conversationViews(): ConversationView[] {
    const me = this.keys?.user ?? "";
    const views: ConversationView[] = [];
    for (const [id, { state, events }] of this.chains) {
      if (!(me in state.members)) continue;
      const history = this.history(id);
      const last = history.at(-1) ?? null;
      const readUpTo = this.read.get(id) ?? 0;
      const unread = (this.rows.get(id) ?? []).filter((r) => r.sender !== me && !ANNOTATIONS.has(r.type) && r.order > readUpTo).length;
      const others = Object.keys(state.members).filter((u) => u !== me);
      const contact = (u: string) => this.contactsSig.value[u];
      const title = state.kind === "direct"
        ? contact(others[0] ?? "")?.name || others[0] || "Just you"
        : this.titles.get(id) || others.map((u) => contact(u)?.name || u.split("@")[0]).join(", ") || "New group";
      views.push({
        id,
        kind: state.kind,
        title,
        avatar: state.kind === "direct" ? contact(others[0] ?? "")?.avatar ?? null : this.avatars.get(id) ?? null,
        members: state.members,
        myRole: state.members[me] ?? null,
        unread,
        last,
        lastTs: last?.ts ?? events.at(-1)?.ts ?? 0,
        timerSeconds: state.timerSeconds,
        typing: (this.typingSig.value[id] ?? []).filter((u) => u !== me),
      });
    }
    return views.sort((a, b) => b.lastTs - a.lastTs);
  }

  private async expire(): Promise<void> {
    const keys = this.keys;
    if (!keys) return;
    const now = Date.now();
    const gone: MessageRow[] = [];
    for (const list of this.rows.values()) for (const row of list) if (row.expiresMs !== null && row.expiresMs <= now) gone.push(row);
    if (!gone.length) return;
    for (const row of gone) {
      const list = this.rows.get(row.conversation) ?? [];
      this.rows.set(row.conversation, list.filter((r) => r.id !== row.id));
    }
    await this.db.write(["messages"], (_put, del) => {
      for (const row of gone) del("messages", [row.conversation, row.id]);
    });
    const sessions = new Set(gone.filter((r) => r.session).map((r) => `${r.conversation}|${r.session}`));
    let forgot = 0;
    for (const pair of sessions) {
      const [conversation, session] = pair.split("|") as [string, string];
      if (!(this.rows.get(conversation) ?? []).some((r) => r.session === session)) forgot += keys.inbound.forget(conversation, session);
    }
    if (forgot) await keys.save();
    this.bump();
  }

  // ================================================================ trust

  async safetyNumber(user: string): Promise<string> {
    const keys = this.need();
    await keys.refresh([user]);
    const theirs = keys.pinned(user);
    if (!theirs) throw new ClientError(`no identity key known for ${user}`);
    return formatSafetyNumber(await safetyNumber(keys.user, keys.identity.publicKey, user, theirs.identityKey));
  }

  async verificationQr(user: string): Promise<string> {
    const keys = this.need();
    return verificationQr(keys.user, keys.identity.publicKey, user);
  }

  /** Verify `user` by their device's QR code: it names their identity key,
   * which must be the one pinned here (else a key change, or not them). */
  async verifyScanned(user: string, scanned: string): Promise<void> {
    const keys = this.need();
    let code: VerificationQr;
    try {
      code = VerificationQr.fromBytes(b64decode(scanned.trim()));
    } catch {
      throw new ClientError("that is not a taube verification code");
    }
    if (code.user !== user) throw new ClientError(`that code is ${code.user}'s, not ${user}'s`);
    await keys.refresh([user]);
    if (keys.pinned(user)?.identityKey !== code.identityKey) {
      throw new ClientError(`the code does not match the key of ${user} this device knows: do not trust this chat until you know why`);
    }
    await this.markVerified(user);
    this.kickOutbox();
  }

  async markVerified(user: string): Promise<void> {
    await this.need().markVerified(user);
    const current = this.contactsSig.value[user] ?? { user, name: "", avatar: null, verified: false };
    this.contactsSig.value = { ...this.contactsSig.value, [user]: { ...current, verified: true } };
  }

  /** Ask `user`'s devices to verify by emoji (SAS). */
  async verifyStart(user: string): Promise<void> {
    const keys = this.need();
    const other = parseAddress(user);
    await keys.refresh([other]);
    const devices = (await keys.devicesOf([other])).filter((d) => !(d.user === keys.user && d.device === keys.device));
    if (!devices.length) throw new ClientError(`${other} has no device to verify with`);
    const transaction = newTransaction();
    const flow: Flow = { transaction, peer: null, peers: devices, sas: new SasVerification(keys.user, keys.device, transaction), initiator: true, commitment: "", established: null, confirmed: false, theirMac: "", done: false };
    this.flows.set(transaction, flow);
    this.verificationSig.value = { stage: "waiting", transaction, user: other };
    const commitment = await flow.sas.commitment();
    for (const device of devices) await this.sendTo(device, SAS_START, { txn: transaction, commitment });
  }

  async verifyAccept(transaction: string): Promise<void> {
    const flow = this.flow(transaction);
    if (!flow.peer) throw new ClientError("nothing to accept");
    this.verificationSig.value = { stage: "waiting", transaction, user: flow.peer.user };
    await this.sendTo(flow.peer, SAS_KEY, { txn: transaction, key: flow.sas.publicKey });
  }

  async verifyConfirm(transaction: string): Promise<void> {
    const keys = this.need();
    const flow = this.flow(transaction);
    if (!flow.established || !flow.peer) throw new ClientError("nothing to confirm yet");
    flow.confirmed = true;
    const tag = flow.established.mac("identity", keys.identity.publicKey);
    await this.sendTo(flow.peer, SAS_MAC, { txn: transaction, mac: tag });
    await this.sasFinish(flow);
  }

  async verifyCancel(transaction: string): Promise<void> {
    const flow = this.flows.get(transaction);
    this.verificationSig.value = null;
    if (!flow || flow.done) return;
    flow.done = true;
    this.freeFlow(flow);
    for (const device of flow.peer ? [flow.peer] : flow.peers) {
      await this.sendTo(device, SAS_CANCEL, { txn: transaction, reason: "cancelled" }).catch(() => undefined);
    }
  }

  private flow(transaction: string): Flow {
    const flow = this.flows.get(transaction);
    if (!flow || flow.done) throw new ClientError("no such verification");
    return flow;
  }

  private freeFlow(flow: Flow): void {
    flow.established?.free();
    flow.sas.free();
    flow.established = null;
  }

  /** One Olm-encrypted to-device message (making the session if needed). */
  private async sendTo(device: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    const keys = this.need();
    if (!keys.olm.hasSession(device)) {
      const claimed = await this.api.call<ClaimResponse>("POST", "/keys/claim", { devices: [{ user: device.user, device: device.device }] });
      const key = claimed.keys[0];
      if (!key) throw new ClientError(`device ${device.device} has no keys left`);
      await keys.olm.createOutboundSession(device, key);
    }
    const body = keys.olm.encryptToDevice(device, type, content);
    await keys.save();
    const ref = randomId();
    await this.request({ type: "todevice.send", id: ref, messages: [{ user: device.user, device: device.device, body: b64encodePadded(body) }] }, ref);
  }

  private async onSas(sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    const keys = this.need();
    const transaction = String(content.txn ?? "");
    const flow = this.flows.get(transaction);
    if (type === SAS_START && !flow) {
      if (!transaction || transaction.length > 64) return;
      this.flows.set(transaction, {
        transaction, peer: sender, peers: [sender], sas: new SasVerification(keys.user, keys.device, transaction), initiator: false,
        commitment: String(content.commitment ?? ""), established: null, confirmed: false, theirMac: "", done: false,
      });
      this.verificationSig.value = { stage: "incoming", transaction, user: sender.user, device: sender.device };
      return;
    }
    if (!flow || flow.done || !flow.peers.some((p) => p.user === sender.user && p.device === sender.device)) return;
    try {
      if (type === SAS_KEY && !flow.established) {
        const key = String(content.key ?? "");
        if (flow.initiator) {
          flow.peer = sender; // the first device that answers
          flow.established = await flow.sas.establish(sender.user, sender.device, key);
          // not awaited: its acknowledgement comes through this very frame loop
          void this.sendTo(sender, SAS_KEY, { txn: transaction, key: flow.sas.publicKey }).catch((e: unknown) => this.fail(e));
        } else {
          await flow.sas.checkCommitment(key, flow.commitment);
          flow.established = await flow.sas.establish(sender.user, sender.device, key);
        }
        this.verificationSig.value = {
          stage: "emoji", transaction, user: sender.user,
          emoji: flow.established.emoji().map(([e, n]) => [e, n] as [string, string]), decimals: flow.established.decimals(),
        };
      } else if (type === SAS_MAC && flow.peer && flow.peer.device === sender.device && flow.peer.user === sender.user) {
        flow.theirMac = String(content.mac ?? "");
        await this.sasFinish(flow);
      } else if (type === SAS_CANCEL) {
        flow.done = true;
        this.freeFlow(flow);
        this.verificationSig.value = { stage: "done", transaction, user: sender.user, verified: false, reason: String(content.reason ?? "cancelled").slice(0, 200) };
      }
    } catch (e) {
      flow.done = true;
      this.freeFlow(flow);
      this.verificationSig.value = { stage: "done", transaction, user: sender.user, verified: false, reason: (e as Error).message };
    }
  }

  /** Both confirmed and the peer's MAC is in: check it against the pinned key. */
  private async sasFinish(flow: Flow): Promise<void> {
    if (!flow.confirmed || !flow.theirMac || !flow.established || flow.done || !flow.peer) return;
    flow.done = true;
    const user = flow.peer.user;
    const pinned = this.need().pinned(user);
    try {
      if (!pinned) throw new ClientError("no identity key pinned");
      flow.established.verifyMac("identity", pinned.identityKey, flow.theirMac);
    } catch (e) {
      this.freeFlow(flow);
      this.verificationSig.value = { stage: "done", transaction: flow.transaction, user, verified: false, reason: (e as Error).message };
      return;
    }
    this.freeFlow(flow);
    await this.markVerified(user);
    this.verificationSig.value = { stage: "done", transaction: flow.transaction, user, verified: true, reason: "" };
    this.kickOutbox();
  }
}

interface PendingLink {
  secret: Uint8Array;
  expires: number;
  used: boolean;
  peer: VerifiedDevice | null;
  deliver: (request: { device: string; name: string }) => void;
}

interface Flow {
  transaction: string;
  /** the other device (null until one answers a start) */
  peer: VerifiedDevice | null;
  /** devices a start went to */
  peers: VerifiedDevice[];
  sas: SasVerification;
  initiator: boolean;
  /** the initiator's, as received (responder side) */
  commitment: string;
  established: EstablishedSas | null;
  /** our user said the emoji match */
  confirmed: boolean;
  /** held until our user confirms */
  theirMac: string;
  done: boolean;
}

class Disconnected extends Error {}

/** where this user's own profile picture is kept */
const OWN_AVATAR = "own-avatar";

/** where a file waiting in the outbox is kept */
function pendingKey(id: string): string {
  return `pending:${id}`;
}

function kindOf(mime: string): AttachmentEntry["kind"] {
  if (mime === "application/pdf") return "pdf";
  for (const prefix of ["image", "video", "audio"] as const) if (mime.startsWith(prefix + "/")) return prefix;
  return "file";
}

function isEntry(value: unknown): value is AttachmentEntry {
  return typeof value === "object" && value !== null && typeof (value as { blob?: unknown }).blob === "string";
}

function entriesList(value: unknown): AttachmentEntry[] {
  return Array.isArray(value) ? value.filter((v): v is AttachmentEntry => typeof v === "object" && v !== null) : [];
}

/** Every encrypted blob a message's attachments name: files and thumbnails. */
function entriesOf(value: unknown): AttachmentEntry[] {
  const found: AttachmentEntry[] = [];
  for (const entry of entriesList(value)) {
    if (!isEntry(entry)) continue;
    found.push(entry);
    if (isEntry(entry.thumbnail)) found.push(entry.thumbnail);
  }
  return found;
}

async function thumbnail(file: Blob): Promise<{ blob: Blob; width: number; height: number } | null> {
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, THUMBNAIL_SIZE / Math.max(bitmap.width, bitmap.height));
    const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)));
    canvas.getContext("2d")?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.8 });
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return { blob, ...size };
  } catch {
    return null;
  }
}

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function bytesToHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** One tab at a time owns the profile: two engines on one IndexedDB would
 * both send from the outbox and both encrypt, skipping Megolm indexes. The
 * lock is held until the tab closes. */
async function holdProfileLock(): Promise<void> {
  if (!("locks" in navigator)) return;
  const got = await new Promise<boolean>((resolve) => {
    void navigator.locks.request("taube-profile", { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock === null ? undefined : new Promise<void>(() => undefined);
    });
  });
  if (!got) throw new ClientError("taube is already open in another tab of this browser: use that one, or close it and reload");
}

export async function createClient(): Promise<Client> {
  return Engine.create();
}
