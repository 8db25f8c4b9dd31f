// Receiving: the frames the connection hands over, in batches. Messages
// are decrypted (a message whose Megolm session has not arrived waits, and
// is tried again when a room key comes), state events are verified onto
// their chain, to-device messages carry room keys, emoji verification and
// link requests. Replays are dropped, gaps and undecryptable messages shown
// as notices, and delivery receipts sent once a batch is acknowledged.
import { signal } from "@preact/signals";
import { b64decode, fromUtf8 } from "../crypto/base64";
import { CryptoError } from "../crypto/errors";
import type { VerifiedDevice } from "../crypto/keys";
import { acceptRoomKey } from "../crypto/keyshare";
import { SAS_TYPES } from "../crypto/verification";
import {
  MESSAGE_TYPE,
  TO_DEVICE_TYPE,
  type ClientFrame,
  type Message as MessageFrame,
  type MessagePayload,
  type ServerFrame,
  type State as StateFrame,
  type ToDevice as ToDeviceFrame,
} from "../gen/proto";
import { entriesOf, type Attachments } from "./attachments";
import { checkSignature } from "./chain";
import { CONNECTOR, type ConnectorInbox } from "./connectors";
import type { FrameSink } from "./connection";
import type { Db, MessageRow } from "./db";
import type { KeyChange } from "./keys";
import { ANNOTATIONS } from "./messages";
import type { Notice } from "./model";
import type { NoticeStore } from "./notices";
import { applyEvent, type ConversationState } from "./state";
import type { Account, ChainStore, LinkRequests, Profiles, ReceivedRows, SasInbox, Sender } from "./types";

/** delivery receipts go out in conversations up to this size (as in the SDK) */
const DELIVERY_RECEIPTS_UP_TO = 20;
/** a typing indicator nobody renews goes away after this long */
const TYPING_SHOWN_MS = 6000;

/** What the receiver hands incoming content to. */
export interface ReceiverParts {
  account: Account;
  db: Db;
  rows: ReceivedRows;
  chains: ChainStore;
  profiles: Profiles;
  attachments: Attachments;
  links: LinkRequests;
  sas: SasInbox;
  /** connector devices' statuses (taube.connector.*) */
  connectors: ConnectorInbox;
  /** to-device payloads for other parts, by type prefix (invite proofs, history for an own device) */
  inboxes: { prefix: string; onMessage(sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> }[];
  /** for delivery receipts */
  sender: Sender;
  /** messages or conversations changed: the screens redraw */
  changed: () => void;
  /** where lasting notices are kept (missing messages, key changes) */
  noticeStore?: NoticeStore;
}

export class Receiver implements FrameSink {
  readonly notices = signal<Notice[]>([]);
  /** conversation → users typing there now */
  readonly typing = signal<Record<string, string[]>>({});
  private readonly typingTimers = new Map<string, number>();
  /** what the frames of the batch being handled changed besides rows */
  private batch: { undecrypted: [string, number][]; keys: boolean } | null = null;
  /** the rows the last batch stored (for its delivery receipts) */
  private committed: MessageRow[] = [];

  constructor(private readonly parts: ReceiverParts) {}

  // ---------------------------------------------------------------- batches

  beginBatch(): void {
    this.parts.rows.beginBatch();
    this.batch = { undecrypted: [], keys: false };
  }

  /** Store what the batch's frames stored in one IndexedDB transaction (and
   * seal the keys once), before the acks go out. */
  async commitBatch(): Promise<void> {
    const rows = this.parts.rows.endBatch();
    const { undecrypted, keys } = this.batch ?? { undecrypted: [], keys: false };
    this.batch = null;
    this.committed = rows;
    if (rows.length || undecrypted.length) {
      await this.parts.db.write(["messages", "undecrypted"], (put, del) => {
        for (const row of rows) put("messages", row);
        for (const key of undecrypted) del("undecrypted", key);
      });
      this.parts.changed();
    }
    if (keys) await this.parts.account.need().save();
  }

  batchAcked(): void {
    const rows = this.committed;
    this.committed = [];
    this.confirmDelivery(rows);
  }

  /** Within a batch: mark the keys for saving before the acks go out. */
  private async keysChanged(): Promise<void> {
    if (this.batch) this.batch.keys = true;
    else await this.parts.account.need().save();
  }

  /** Handle one frame; returns its acknowledgement, sent once it is stored. */
  async handle(frame: ServerFrame): Promise<ClientFrame | null> {
    switch (frame.type) {
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
        await this.onKeysChanged(frame.user);
        return { type: "todevice.ack", seq: frame.seq };
      case "typing.event":
        this.onTyping(frame.conversation, frame.user, frame.active);
        return null;
      default:
        return null; // a frame type from a newer server: ignored
    }
  }

  /** Tell the senders in direct chats and small groups that their messages
   * arrived: one receipt per conversation and batch (as the SDK does). */
  private confirmDelivery(rows: MessageRow[]): void {
    const me = this.parts.account.keys?.user;
    const arrived = new Map<string, string[]>();
    for (const row of rows) {
      if (row.status !== "received" || row.sender === me || ANNOTATIONS.has(row.type)) continue;
      const members = Object.keys(this.parts.chains.known(row.conversation)?.state.members ?? {}).length;
      if (members === 0 || members > DELIVERY_RECEIPTS_UP_TO) continue;
      arrived.set(row.conversation, [...(arrived.get(row.conversation) ?? []), row.id]);
    }
    for (const [conversation, ids] of arrived) {
      this.parts.sender.send(conversation, MESSAGE_TYPE.receipt, { delivered: ids }).catch((e: unknown) => console.info("no delivery receipt", e));
    }
  }

  // ---------------------------------------------------------------- frames

  /** A user's keys changed: ask the server for them again. */
  private async onKeysChanged(user: string): Promise<void> {
    const keys = this.parts.account.need();
    keys.forget(user);
    await keys.refresh([user]);
  }

  private onTyping(conversation: string, user: string, active: boolean): void {
    const key = `${conversation}|${user}`;
    const current = { ...this.typing.value };
    const list = (current[conversation] ?? []).filter((u) => u !== user);
    if (active) list.push(user);
    current[conversation] = list;
    this.typing.value = current;
    window.clearTimeout(this.typingTimers.get(key));
    if (active) this.typingTimers.set(key, window.setTimeout(() => this.onTyping(conversation, user, false), TYPING_SHOWN_MS));
  }

  private async onMessage(frame: MessageFrame): Promise<void> {
    const { account, rows, chains, profiles } = this.parts;
    const keys = account.need();
    if (frame.body == null) {
      // our own send, echoed without a body
      const row = rows.findRow(frame.conversation, frame.id);
      if (row && row.seq === null) await rows.storeRow({ ...row, seq: frame.seq, status: "sent" });
      return;
    }
    if (rows.findRow(frame.conversation, frame.id)) return; // delivered again: shown once
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
        await this.parts.db.put("undecrypted", { conversation: frame.conversation, seq: frame.seq, session: sessionId, frame: JSON.stringify(frame) });
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
        await this.parts.attachments.fetch(entry); // before the ack: the blob goes once every device has it
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
      order: rows.nextOrder(),
    };
    await rows.storeRow(row);
    await this.keysChanged();
    if (payload.type === MESSAGE_TYPE.profile) await profiles.rememberProfile(frame.sender, frame.ts, row.content);
    else if (payload.type === MESSAGE_TYPE.stateKey) {
      await chains.acceptStateKey(frame.conversation, row.content);
      this.parts.changed();
    } else if (payload.type === MESSAGE_TYPE.avatar) {
      await chains.refreshDerived(frame.conversation);
      this.parts.changed();
    }
    if (missing) {
      this.addNotice({ kind: "missing", conversation: frame.conversation, sender: frame.sender, count: missing, before: frame.id, ts: frame.ts });
    }
  }

  /** A message in a conversation with a timer disappears at the latest
   * when the timer says, whatever its sender asked. */
  private expiryOf(frame: MessageFrame): number | null {
    const timer = this.parts.chains.known(frame.conversation)?.state.timerSeconds ?? 0;
    const given = frame.expires_ms ?? null;
    if (!timer) return given;
    const latest = Date.now() + timer * 1000;
    return given === null ? latest : Math.min(given, latest);
  }

  private warn(frame: MessageFrame, reason: string): void {
    this.addNotice({ kind: "undecryptable", conversation: frame.conversation, sender: frame.sender, id: frame.id, reason, ts: frame.ts });
  }

  private addNotice(notice: Notice): void {
    this.notices.value = [...this.notices.value, notice];
    void this.parts.noticeStore?.keep(notice);
  }

  /** The key changes the keys noticed, as notices in the conversations of
   * the users concerned. */
  emitKeyChanges(): void {
    const keys = this.parts.account.keys;
    if (!keys) return;
    while (keys.changes.length) {
      const change = keys.changes.shift() as KeyChange;
      for (const [conversation, { state }] of this.parts.chains.all()) {
        if (change.user in state.members) {
          this.addNotice({ kind: "key-changed", conversation, user: change.user, verified: change.verified, reason: change.reason, ts: Date.now() });
        }
      }
    }
  }

  private async onState(frame: StateFrame): Promise<void> {
    const { account, chains, profiles } = this.parts;
    const keys = account.need();
    const conversation = frame.conversation;
    const cached = chains.known(conversation);
    const before = cached ? { ...cached.state.members } : {};
    let state: ConversationState;
    try {
      if (cached && frame.event.depth === cached.state.depth + 1) {
        await checkSignature(keys, frame.event);
        state = await applyEvent(cached.state, frame.event);
        await chains.remember(conversation, [...cached.events, frame.event], state);
      } else if (!cached || frame.event.depth > cached.state.depth) {
        state = (await chains.chain(conversation, true)).state;
        if (!cached) await profiles.sendProfile(conversation);
      } else return;
    } catch (e) {
      console.warn("state refused", e);
      return;
    }
    const content = frame.event.content;
    const name = (u: string) => profiles.contact(u)?.name || u;
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
    const keys = this.parts.account.need();
    if (await this.parts.links.onLinkRequest(frame, () => this.keysChanged())) return;
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
      await this.parts.sas.onSas(sender, payload.type, (payload.content ?? {}) as Record<string, unknown>);
      await this.keysChanged();
      return;
    }
    const inbox = this.parts.inboxes.find((i) => payload.type.startsWith(i.prefix));
    if (inbox) {
      await inbox.onMessage(sender, payload.type, (payload.content ?? {}) as Record<string, unknown>);
      await this.keysChanged();
      return;
    }
    if (payload.type.startsWith(CONNECTOR.prefix)) {
      this.parts.connectors.onMessage(sender, payload.type, (payload.content ?? {}) as Record<string, unknown>);
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

  /** Try the messages that waited for a room key again, in order. */
  private async retryUndecrypted(): Promise<void> {
    const db = this.parts.db;
    const rows = (await db.all("undecrypted")).sort((a, b) => (a.conversation === b.conversation ? a.seq - b.seq : a.conversation < b.conversation ? -1 : 1));
    for (const row of rows) {
      // gone from the waiting list in the same commit that stores the message
      if (this.batch) this.batch.undecrypted.push([row.conversation, row.seq]);
      else await db.delete("undecrypted", [row.conversation, row.seq]);
      await this.onMessage(JSON.parse(row.frame) as MessageFrame);
    }
  }
}
