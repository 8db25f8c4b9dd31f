// The message history leaving or joining this device: the chats, messages
// and contacts in the SDK's history format, encrypted and uploaded like an
// attachment (a new device being linked gets it), and imported from one.
import { decryptAttachment, type AttachmentKey } from "../crypto/attachments";
import { fromUtf8 } from "../crypto/base64";
import type { Api } from "./api";
import type { Attachments } from "./attachments";
import type { Db } from "./db";
import type { AttachmentEntry } from "./model";
import type { ChainArchive, HistoryTransfer, RowArchive } from "./types";

/** The SDK's history dump: rows as arrays, as its tables have them. */
interface HistoryDump {
  conversations?: [string, string, string, number][];
  messages?: [string, string, number | null, string, string, number, string, string, string, number | null][];
  profiles?: [string, string, unknown, number][];
}

export class History implements HistoryTransfer {
  constructor(
    private readonly db: Db,
    private readonly api: Api,
    private readonly attachments: Attachments,
    private readonly chains: ChainArchive,
    private readonly archive: RowArchive,
  ) {}

  async exportHistory(): Promise<AttachmentEntry> {
    const dump = {
      conversations: [...this.chains.all()].map(([c, { state, events }]) => [c, state.kind, JSON.stringify(events), Date.now()]),
      messages: this.archive.rows().filter((r) => r.status !== "pending" && r.status !== "failed").map((r) => [
        r.conversation, r.id, r.seq, r.sender, r.senderDevice, r.ts, r.type, JSON.stringify(r.content), r.status, r.expiresMs,
      ]),
      profiles: (await this.db.all("profiles")).map((p) => [p.user, p.name, null, p.ts]),
    };
    const blob = new Blob([JSON.stringify(dump)], { type: "application/json" });
    return this.attachments.upload(blob, "history.json", "file", null);
  }

  /** Store a shared history in the profile (before it is loaded); a history
   * that cannot be read is skipped, not a reason to fail the link. */
  async importHistory(entry: AttachmentEntry): Promise<void> {
    try {
      const data = await this.api.download(`/blobs/${entry.blob}`);
      const dump = JSON.parse(fromUtf8(await decryptAttachment(data, entry.key as AttachmentKey))) as HistoryDump;
      await this.db.write(["chains", "messages", "profiles"], (put) => {
        for (const [conversation, , events, updated] of dump.conversations ?? []) {
          put("chains", { conversation, events: JSON.parse(events) as unknown[], updatedMs: updated });
        }
        for (const m of dump.messages ?? []) {
          put("messages", {
            conversation: m[0], id: m[1], seq: m[2], sender: m[3], senderDevice: m[4], ts: m[5], type: m[6],
            content: JSON.parse(m[7]) as Record<string, unknown>, status: m[8] === "received" ? "received" : "sent",
            expiresMs: m[9], session: null, order: this.archive.nextOrder(),
          });
        }
        for (const [user, name, , ts] of dump.profiles ?? []) put("profiles", { user, name, avatar: null, ts });
      });
    } catch (e) {
      console.warn("the shared history could not be imported", e);
    }
  }
}
