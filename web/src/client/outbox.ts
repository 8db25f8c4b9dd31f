// The outbox and sending. What the user sends is stored (outbox row and
// the message row shown as pending) before anything leaves; the outbox
// then goes through its rows in order, one at a time: it uploads a waiting
// file, shares the Megolm key with the members' devices that lack it,
// encrypts once (a retry sends the same bytes) and hands the envelope to
// the carrier. A transient failure retries the whole outbox after a short
// random pause; any other marks the message failed.
import { b64encodePadded, randomId } from "../crypto/base64";
import { shareRoomKey } from "../crypto/keyshare";
import { OutboundGroup } from "../crypto/megolm";
import { MESSAGE_TYPE, type ClaimResponse, type MessagePayload } from "../gen/proto";
import { ServerError, type Api } from "./api";
import { entriesOf, kindOf, type Attachments } from "./attachments";
import type { Carrier } from "./carrier";
import type { Db, OutboxRow, PendingUpload } from "./db";
import type { AttachmentEntry } from "./model";
import { ClientError, Disconnected, type Account, type ChainSource, type Retry, type Sender, type SentRows } from "./types";

export class Outbox implements Sender, Retry {
  private running = false;
  private again = false;

  constructor(
    private readonly account: Account,
    private readonly db: Db,
    private readonly api: Api,
    private readonly chains: ChainSource,
    private readonly rows: SentRows,
    private readonly attachments: Attachments,
    private readonly carrier: Carrier,
    /** a message failed for good: tell the user */
    private readonly report: (error: unknown) => void,
    /** the rows changed: the screens redraw */
    private readonly changed: () => void,
  ) {}

  /** The ids of the messages still queued. */
  async queued(): Promise<Set<string>> {
    return new Set((await this.db.all("outbox")).map((r) => r.id));
  }

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

  /** Put a message in the outbox; it is sent as soon as possible. */
  async send(
    conversation: string,
    type: string,
    content: Record<string, unknown>,
    reuseId?: string,
    upload?: PendingUpload,
  ): Promise<string> {
    const keys = this.account.need();
    const { state } = await this.chains.chain(conversation);
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
    const row = this.rows.newRow(conversation, id, type, content, "pending");
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
    this.rows.replaceRow(row);
    await this.db.write(["outbox", "messages"], (put) => {
      put("outbox", outbox);
      put("messages", row);
    });
    this.changed();
    this.wake();
    return id;
  }

  /** Go through the outbox (again, if it is being gone through). */
  wake(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      do {
        this.again = false;
        if (!this.carrier.ready()) return;
        const rows = (await this.db.all("outbox")).sort((a, b) => a.order - b.order);
        for (const row of rows) {
          try {
            await this.sendOne(row);
          } catch (e) {
            if ((e instanceof ServerError && e.transient) || e instanceof Disconnected) {
              window.setTimeout(() => this.wake(), 500 + Math.random() * 1000);
              return;
            }
            console.warn("send failed for good", e);
            this.report(e);
            await this.db.write(["outbox", "attachments"], (_put, del) => {
              del("outbox", row.id);
              del("attachments", pendingKey(row.id));
            });
            await this.rows.setStatus(row.conversation, row.id, "failed");
          }
        }
      } while (this.again);
    } finally {
      this.running = false;
    }
  }

  private async sendOne(queued: OutboxRow): Promise<void> {
    const keys = this.account.need();
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
    const seq = await this.carrier.deliver({ conversation: row.conversation, id: row.id, body, blobs, expireMs: row.expireMs });
    await this.db.delete("outbox", row.id);
    const stored = this.rows.findRow(row.conversation, row.id);
    if (stored) {
      const next = { ...stored, seq, status: "sent" as const };
      this.rows.replaceRow(next);
      await this.db.put("messages", next);
      this.changed();
    }
  }

  /** Encrypt and upload an outbox entry's file; the payload then names it. */
  private async uploadPending(row: OutboxRow, upload: PendingUpload): Promise<OutboxRow> {
    const stored = await this.db.get("attachments", pendingKey(row.id));
    if (!stored) throw new ClientError("the file to send is gone from this browser");
    const entry = await this.attachments.upload(stored.data, upload.name, upload.kind as AttachmentEntry["kind"], row.id, upload.extra);
    const payload = JSON.parse(row.payload) as MessagePayload;
    const content = { ...(payload.content ?? {}), body: upload.caption, attachments: [entry] };
    const next: OutboxRow = { ...row, payload: JSON.stringify({ ...payload, content }), upload: null };
    const message = this.rows.findRow(row.conversation, row.id);
    const shown = message ? { ...message, content } : null;
    if (shown) this.rows.replaceRow(shown);
    await this.db.write(["outbox", "messages", "attachments"], (put, del) => {
      put("outbox", next);
      if (shown) put("messages", shown);
      del("attachments", pendingKey(row.id));
    });
    this.changed();
    return next;
  }

  /** The conversation's Megolm session (a new one when members left, it is
   * old, or the timer says so), its key shared with every member device
   * that lacks it. */
  private async shareKeys(conversation: string): Promise<OutboundGroup> {
    const keys = this.account.need();
    const { state } = await this.chains.chain(conversation);
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
      await keys.save();
      await this.carrier.sendToDevices(messages);
      group.markShared(devices.filter((d) => shared.has(`${d.user}|${d.device}`)));
    }
    await keys.save();
    return group;
  }
}

/** where a file waiting in the outbox is kept */
function pendingKey(id: string): string {
  return `pending:${id}`;
}
