// The local message rows: every conversation's rows as stored, turned into
// what the user sees (edits, deletes, reactions and receipts applied), plus
// search, read markers and the expiry of disappearing messages. In a
// portal, what the user's connector brought in from another network is
// shown as written by its remote author, and the connector's relay
// annotations say how the user's messages went on (see portals.ts).
import { MESSAGE_TYPE } from "../gen/proto";
import { entriesList, entriesOf } from "./attachments";
import { callEventOf } from "./calls";
import type { Db, MessageRow } from "./db";
import type { MessageView, Remote } from "./model";
import { SearchIndex } from "./search";
import { PORTAL, RELAY, portalOf, relayedOf, remoteOf, type PortalLog } from "./portals";
import type { Account, MessageLog, ReceivedRows, RowArchive, SentRows } from "./types";

/** Types that change another message (or a contact) instead of showing one. */
export const ANNOTATIONS = new Set<string>([
  MESSAGE_TYPE.reaction,
  MESSAGE_TYPE.edit,
  MESSAGE_TYPE.delete,
  MESSAGE_TYPE.receipt,
  MESSAGE_TYPE.profile,
  MESSAGE_TYPE.stateKey,
  MESSAGE_TYPE.avatar,
  PORTAL,
  RELAY,
]);

/** Who wrote `row` on another network. Only a connector brings messages
 * in: a device of the user's own, or the device serving the conversation's
 * portal (`connector`, in a group with other members); `remote` from
 * anyone else is ignored, so nobody can write in a remote person's name. */
export function remoteAuthor(row: MessageRow, me: string, connector: string | null): Remote | null {
  if (row.sender !== me && (connector === null || row.senderDevice !== connector)) return null;
  return remoteOf(row.content.remote);
}

/** Written by someone other than the user (a contact, or a remote author). */
function fromOthers(row: MessageRow, me: string, connector: string | null): boolean {
  return row.sender !== me || remoteAuthor(row, me, connector) !== null;
}

/** Oldest first: by the server's order, then (not yet sent) by local order. */
function byLogOrder(a: MessageRow, b: MessageRow): number {
  return (a.seq ?? Infinity) - (b.seq ?? Infinity) || a.order - b.order;
}

export class Messages implements SentRows, ReceivedRows, MessageLog, RowArchive, PortalLog {
  private readonly byConversation = new Map<string, MessageRow[]>();
  /** conversation → order of the last row read */
  private readonly read = new Map<string, number>();
  private order = Date.now() * 1000;
  /** rows stored while a batch of frames is handled, written with it */
  private batch: MessageRow[] | null = null;
  /** the search index (search.ts), built at the first search */
  private readonly index = new SearchIndex();
  private indexed = false;
  /** the index being built while the page is idle: conversations still to
   * read, and the messages read so far */
  private warming: { conversations: string[]; views: MessageView[] } | null = null;
  /** messages whose words may have changed since the index looked: [conversation, id] */
  private readonly unindexed = new Map<string, [string, string]>();

  constructor(
    private readonly account: Account,
    private readonly db: Db,
    /** the rows changed: the screens redraw */
    private readonly changed: () => void,
  ) {}

  /** The rows of the profile; `queued` are the ids still in the outbox. */
  async load(queued: Set<string>): Promise<void> {
    for (const row of await this.db.all("messages")) {
      if (row.status === "pending" && !queued.has(row.id)) row.status = "failed"; // an upload cut off
      this.addRow(row);
      this.order = Math.max(this.order, row.order + 1);
    }
    const reads = await this.db.get("kv", "read");
    for (const [c, o] of Object.entries((reads?.value as Record<string, number>) ?? {})) this.read.set(c, o);
  }

  /** Read the rows again (a history from another device was stored). */
  async reload(queued: Set<string>): Promise<void> {
    this.byConversation.clear();
    this.index.clear();
    this.indexed = false;
    this.warming = null;
    this.unindexed.clear();
    await this.load(queued);
  }

  nextOrder(): number {
    return this.order++;
  }

  rows(): MessageRow[] {
    return [...this.byConversation.values()].flat();
  }

  newRow(conversation: string, id: string, type: string, content: Record<string, unknown>, status: MessageRow["status"]): MessageRow {
    const keys = this.account.need();
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

  /** The message a row shows or changes the words of (an edit, a
   * deletion) is looked at again before the next search. */
  private touched(row: MessageRow): void {
    if (!this.indexed && !this.warming) return;
    const target = row.content.target;
    if (!ANNOTATIONS.has(row.type)) this.unindexed.set(`${row.conversation}\u0000${row.id}`, [row.conversation, row.id]);
    else if ((row.type === MESSAGE_TYPE.edit || row.type === MESSAGE_TYPE.delete) && typeof target === "string")
      this.unindexed.set(`${row.conversation}\u0000${target}`, [row.conversation, target]);
  }

  private addRow(row: MessageRow): void {
    this.touched(row);
    const list = this.byConversation.get(row.conversation) ?? [];
    list.push(row);
    this.byConversation.set(row.conversation, list);
  }

  findRow(conversation: string, id: string): MessageRow | undefined {
    return this.byConversation.get(conversation)?.find((r) => r.id === id);
  }

  replaceRow(row: MessageRow): void {
    this.touched(row);
    const list = this.byConversation.get(row.conversation) ?? [];
    const at = list.findIndex((r) => r.id === row.id);
    if (at >= 0) list[at] = row;
    else list.push(row);
    this.byConversation.set(row.conversation, list);
  }

  beginBatch(): void {
    this.batch = [];
  }

  endBatch(): MessageRow[] {
    const rows = this.batch ?? [];
    this.batch = null;
    return rows;
  }

  /** Keep a row; inside a frame batch it is written with the batch. A
   * deletion for everyone wipes what it deletes (see `wipe`). */
  async storeRow(row: MessageRow): Promise<void> {
    this.replaceRow(row);
    const { rows, blobs } = this.wipe(row);
    const put = rows.some((r) => r.id === row.id) ? rows : [row, ...rows];
    if (this.batch) {
      this.batch.push(...put);
    } else {
      for (const r of put) await this.db.put("messages", r);
      this.changed();
    }
    for (const blob of blobs) await this.db.delete("attachments", blob);
  }

  /** Deleted for everyone by its author: the message's text, its earlier
   * versions and its attachments (keys and the saved files) leave the
   * profile, whichever of message and deletion came first; the row stays,
   * empty, to show "deleted" in its place. Returns the rows it changed and
   * the saved files no other message names. */
  wipe(row: MessageRow): { rows: MessageRow[]; blobs: string[] } {
    const list = this.byConversation.get(row.conversation) ?? [];
    const deletes = (r: MessageRow, id: string): boolean =>
      r.type === MESSAGE_TYPE.delete && r.sender === row.sender && r.content.target === id;
    let target: string | null = null;
    if (row.type === MESSAGE_TYPE.delete && typeof row.content.target === "string") target = row.content.target;
    else if (!ANNOTATIONS.has(row.type) && list.some((r) => deletes(r, row.id))) target = row.id;
    if (target === null) return { rows: [], blobs: [] };
    const rows: MessageRow[] = [];
    const blobs: string[] = [];
    list.forEach((r, at) => {
      if (r.sender !== row.sender) return;
      if (r.id === target && Object.keys(r.content).length > 0) {
        blobs.push(...entriesOf(r.content.attachments).map((a) => a.blob));
        list[at] = { ...r, content: {} };
      } else if (r.type === MESSAGE_TYPE.edit && r.content.target === target && Object.keys(r.content).length > 1) {
        list[at] = { ...r, content: { target } };
      } else return;
      rows.push(list[at]!);
    });
    const named = new Set(list.flatMap((r) => entriesOf(r.content.attachments).map((a) => a.blob)));
    return { rows, blobs: blobs.filter((b) => !named.has(b)) };
  }

  async setStatus(conversation: string, id: string, status: MessageRow["status"]): Promise<void> {
    const row = this.findRow(conversation, id);
    if (!row) return;
    await this.storeRow({ ...row, status });
  }

  /** The conversation as the user sees it: oldest first, annotations applied. */
  history(conversation: string, only?: string): MessageView[] {
    const me = this.account.keys?.user ?? "";
    const all = this.byConversation.get(conversation) ?? [];
    // `only`: that message alone (and what changes it), for search results
    const rows = (
      only === undefined ? [...all] : all.filter((r) => r.id === only || r.content.target === only || r.type === MESSAGE_TYPE.receipt)
    ).sort(byLogOrder);
    const connector = this.connector(conversation);
    const shown = new Map<string, MessageView>();
    for (const row of rows) {
      if (ANNOTATIONS.has(row.type)) continue;
      const remote = remoteAuthor(row, me, connector);
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
        mine: row.sender === me && remote === null,
        remote,
        relayed: null,
        call: row.type === MESSAGE_TYPE.call ? callEventOf(row.content) : null,
      });
    }
    for (const row of rows) {
      if (row.type === MESSAGE_TYPE.receipt) {
        // a receipt the connector brought in is the remote reader's
        const reader = remoteAuthor(row, me, connector)?.sender ?? row.sender;
        for (const [field, list] of [["read", "readBy"], ["delivered", "deliveredTo"]] as const) {
          const ids = Array.isArray(row.content[field]) ? (row.content[field] as unknown[]) : [];
          for (const id of ids) {
            const message = shown.get(String(id));
            if (message && !message[list].includes(reader) && reader !== (message.remote?.sender ?? message.sender)) message[list].push(reader);
          }
        }
        continue;
      }
      const target = typeof row.content.target === "string" ? shown.get(row.content.target) : undefined;
      if (!target) continue;
      // only the author edits or deletes (or relays: their connector)
      if ((row.type === MESSAGE_TYPE.edit || row.type === MESSAGE_TYPE.delete || row.type === RELAY) && row.sender !== target.sender) continue;
      if (row.type === RELAY) {
        if (target.mine) target.relayed = relayedOf(row.content);
      } else if (row.type === MESSAGE_TYPE.edit && !target.deleted) {
        target.text = String(row.content.body ?? "");
        target.edited = true;
      } else if (row.type === MESSAGE_TYPE.delete) {
        target.text = "";
        target.deleted = true;
        target.attachments = [];
      } else if (row.type === MESSAGE_TYPE.reaction) {
        const key = String(row.content.key ?? "");
        const users = target.reactions[key] ?? [];
        // a reaction the connector brought in is the remote person's
        const who = remoteAuthor(row, me, connector)?.sender ?? row.sender;
        // a second identical reaction by the same user takes it back
        target.reactions[key] = users.includes(who) ? users.filter((u) => u !== who) : [...users, who];
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

  /** The newest row of `type` per conversation (or in `only`): its content
   * and the device that sent it. */
  latest(type: string, only?: string): Map<string, { content: Record<string, unknown>; device: string }> {
    const found = new Map<string, { content: Record<string, unknown>; device: string }>();
    for (const [conversation, list] of this.byConversation) {
      if (only !== undefined && conversation !== only) continue;
      const newest = list.filter((r) => r.type === type).sort(byLogOrder).at(-1);
      if (newest) found.set(conversation, { content: newest.content, device: newest.senderDevice });
    }
    return found;
  }

  /** The device serving the conversation's portal, if it is one. */
  private connector(conversation: string): string | null {
    const found = this.latest(PORTAL, conversation).get(conversation);
    return found ? (portalOf(found.content, found.device)?.by ?? null) : null;
  }

  /** The messages of every conversation with these words (see search.ts),
   * newest first, as the user sees them: deleted or expired ones never. */
  search(text: string, limit = 50): MessageView[] {
    this.updateIndex();
    const found: MessageView[] = [];
    for (const hit of this.index.search(text, limit)) {
      const view = this.history(hit.conversation, hit.id).find((v) => v.id === hit.id);
      if (view && !view.deleted) found.push(view);
    }
    return found;
  }

  /** Bring the search index up to date: all of it the first time, then
   * the messages changed since. */
  updateIndex(): void {
    if (!this.indexed) {
      const { conversations, views } = this.warming ?? { conversations: [...this.byConversation.keys()], views: [] };
      for (const conversation of conversations) views.push(...this.history(conversation));
      this.warming = null;
      this.index.clear();
      // newest last, so that the index's order (newest first) is by time
      views.sort((a, b) => a.ts - b.ts);
      for (const view of views) this.indexView(view);
      this.indexed = true;
      // what changed while it was being built is looked at again below
    }
    for (const [conversation, id] of this.unindexed.values()) {
      const view = this.history(conversation, id).find((v) => v.id === id);
      if (view) this.indexView(view);
      else this.index.remove(conversation, id);
    }
    this.unindexed.clear();
  }

  /** Start building the search index, a few milliseconds at a time while
   * the page is idle, so that the first search does not wait for it all
   * (a search before it is done finishes it). */
  warmIndex(): void {
    if (this.indexed || this.warming) return;
    const warming = { conversations: [...this.byConversation.keys()], views: [] as MessageView[] };
    this.warming = warming;
    const step = () => {
      if (this.warming !== warming) return; // done by a search, or the profile was read again
      const until = performance.now() + 8;
      while (warming.conversations.length && performance.now() < until) {
        warming.views.push(...this.history(warming.conversations.pop() as string));
      }
      if (warming.conversations.length) setTimeout(step, 0);
      else this.updateIndex();
    };
    setTimeout(step, 0);
  }

  private indexView(view: MessageView): void {
    if (view.deleted || !view.text) this.index.remove(view.conversation, view.id);
    else this.index.set(view.conversation, view.id, view.ts, view.text);
  }

  /** Messages of others not read yet. */
  unread(conversation: string): number {
    const me = this.account.keys?.user ?? "";
    const readUpTo = this.read.get(conversation) ?? 0;
    const connector = this.connector(conversation);
    return (this.byConversation.get(conversation) ?? []).filter((r) => fromOthers(r, me, connector) && !ANNOTATIONS.has(r.type) && r.order > readUpTo).length;
  }

  /** Mark the conversation read here; the ids newly read, for the read receipt. */
  async markRead(conversation: string): Promise<string[]> {
    const keys = this.account.keys;
    if (!keys) return [];
    const last = this.read.get(conversation) ?? 0;
    const connector = this.connector(conversation);
    const unread = (this.byConversation.get(conversation) ?? []).filter(
      (r) => fromOthers(r, keys.user, connector) && !ANNOTATIONS.has(r.type) && r.order > last,
    );
    if (unread.length === 0) return [];
    this.read.set(conversation, Math.max(...unread.map((r) => r.order)));
    await this.db.put("kv", { key: "read", value: Object.fromEntries(this.read) });
    this.changed();
    return unread.map((r) => r.id);
  }

  /** Delete the disappearing messages whose time is up, and the Megolm
   * sessions no message left here needs. */
  async expire(): Promise<void> {
    const keys = this.account.keys;
    if (!keys) return;
    const now = Date.now();
    const gone: MessageRow[] = [];
    for (const list of this.byConversation.values()) for (const row of list) if (row.expiresMs !== null && row.expiresMs <= now) gone.push(row);
    if (!gone.length) return;
    for (const row of gone) {
      this.touched(row);
      const list = this.byConversation.get(row.conversation) ?? [];
      this.byConversation.set(row.conversation, list.filter((r) => r.id !== row.id));
    }
    await this.db.write(["messages"], (_put, del) => {
      for (const row of gone) del("messages", [row.conversation, row.id]);
    });
    const sessions = new Set(gone.filter((r) => r.session).map((r) => `${r.conversation}|${r.session}`));
    let forgot = 0;
    for (const pair of sessions) {
      const [conversation, session] = pair.split("|") as [string, string];
      if (!(this.byConversation.get(conversation) ?? []).some((r) => r.session === session)) forgot += keys.inbound.forget(conversation, session);
    }
    if (forgot) await keys.save();
    this.changed();
  }
}
