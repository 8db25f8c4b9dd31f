// The outbox: what the user sent, kept until a carrier delivered it (the
// SDK's taube.client.outbox). What the user sends is stored (outbox row and
// the message row shown as pending) before anything leaves; the outbox then
// goes through its rows in order, one at a time: it uploads a waiting file
// and hands the plaintext item to the carrier that serves its conversation
// (the taube server unless `route` sent it elsewhere), which encrypts and
// delivers it (see carrier.ts). A transient failure retries the whole outbox
// after a short random pause; any other marks the message failed.
import { randomId } from "../crypto/base64";
import { MESSAGE_TYPE, type MessagePayload } from "../gen/proto";
import { ServerError } from "./api";
import { kindOf, type Attachments } from "./attachments";
import type { Carrier, Outgoing } from "./carrier";
import type { Db, OutboxRow, PendingUpload } from "./db";
import type { AttachmentEntry } from "./model";
import type { ConversationState } from "./state";
import { ClientError, Disconnected, type Account, type ChainSource, type Retry, type Sender, type SentRows } from "./types";

/** does a carrier serve this conversation? */
export type Serves = (conversation: string, state: ConversationState) => boolean;

export class Outbox implements Sender, Retry {
  private running = false;
  private again = false;
  private readonly routes: [Serves, Carrier][] = [];

  constructor(
    private readonly account: Account,
    private readonly db: Db,
    private readonly chains: ChainSource,
    private readonly rows: SentRows,
    private readonly attachments: Attachments,
    /** the default carrier (its `ready` says when the outbox can be gone through) */
    private readonly carrier: Carrier,
    /** a message failed for good: tell the user */
    private readonly report: (error: unknown) => void,
    /** the rows changed: the screens redraw */
    private readonly changed: () => void,
  ) {}

  /** Send the conversations `serves` picks through `carrier` (the first
   * route that serves a conversation wins). */
  route(serves: Serves, carrier: Carrier): void {
    this.routes.push([serves, carrier]);
  }

  private async carrierFor(conversation: string): Promise<Carrier> {
    if (this.routes.length) {
      const { state } = await this.chains.chain(conversation);
      for (const [serves, carrier] of this.routes) if (serves(conversation, state)) return carrier;
    }
    return this.carrier;
  }

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
          let carrier = this.carrier;
          try {
            carrier = await this.carrierFor(row.conversation);
            await this.sendOne(row, carrier);
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
            await carrier.settle(row.id);
            await this.rows.setStatus(row.conversation, row.id, "failed");
          }
        }
      } while (this.again);
    } finally {
      this.running = false;
    }
  }

  private async sendOne(queued: OutboxRow, carrier: Carrier): Promise<void> {
    const row = queued.upload ? await this.uploadPending(queued, queued.upload) : queued;
    const item: Outgoing = {
      id: row.id,
      conversation: row.conversation,
      payload: JSON.parse(row.payload) as MessagePayload,
      expireMs: row.expireMs,
    };
    const seq = await carrier.deliver(item);
    await this.db.delete("outbox", row.id);
    await carrier.settle(row.id);
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
}

/** where a file waiting in the outbox is kept */
function pendingKey(id: string): string {
  return `pending:${id}`;
}
