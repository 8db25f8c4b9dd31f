// Deleted for everyone means deleted on the device too (as the SDK's
// Messages._wipe): the text, the earlier versions and the saved files of a
// message its author deleted leave the profile, whichever came first.
import { describe, expect, it } from "vitest";
import type { Db, MessageRow } from "../../src/client/db";
import type { Keys } from "../../src/client/keys";
import { Messages } from "../../src/client/messages";
import type { Account } from "../../src/client/types";

const ME = "mara@taube.example";
const BEN = "ben@taube.example";
const C = "conversation-1";

function account(): Account {
  const keys = { user: ME, device: "web" } as unknown as Keys;
  return { keys, need: () => keys };
}

/** A Db that keeps what is put and deleted, to look at afterwards. */
function recordingDb(): { db: Db; put: Map<string, MessageRow>; deleted: unknown[] } {
  const put = new Map<string, MessageRow>();
  const deleted: unknown[] = [];
  const db = {
    put: async (_store: string, row: MessageRow) => void put.set(row.id, row),
    delete: async (_store: string, key: unknown) => void deleted.push(key),
  } as unknown as Db;
  return { db, put, deleted };
}

let order = 0;
function row(type: string, content: Record<string, unknown>, sender = BEN): MessageRow {
  order += 1;
  return {
    conversation: C,
    id: `m${order}`,
    seq: order,
    sender,
    senderDevice: `${sender}-device`,
    ts: 1_700_000_000_000 + order * 1000,
    type,
    content,
    status: "received",
    expiresMs: null,
    session: null,
    order,
  };
}

const photo = { blob: "blob-photo", key: "k", sha256: "h", name: "dove.jpg", thumbnail: { blob: "blob-thumb", key: "k2", sha256: "h2" } };

describe("delete for everyone", () => {
  it("wipes the message, its edits and its saved files", async () => {
    const { db, put, deleted } = recordingDb();
    const log = new Messages(account(), db, () => undefined);
    const message = row("text", { body: "secret words", attachments: [photo] });
    const edit = row("edit", { target: message.id, body: "more secret words" });
    const other = row("text", { body: "stays" });
    for (const r of [message, edit, other]) await log.storeRow(r);
    await log.storeRow(row("delete", { target: message.id }));
    expect(put.get(message.id)?.content).toEqual({});
    expect(put.get(edit.id)?.content).toEqual({ target: message.id });
    expect(put.get(other.id)?.content).toEqual({ body: "stays" });
    expect(deleted.sort()).toEqual(["blob-photo", "blob-thumb"]);
    const shown = log.history(C);
    expect(shown.map((m) => [m.text, m.deleted])).toEqual([["", true], ["stays", false]]);
    expect(JSON.stringify(log.rows())).not.toContain("secret");
  });

  it("wipes a message that arrives after its deletion", async () => {
    const { db, put } = recordingDb();
    const log = new Messages(account(), db, () => undefined);
    const message = row("text", { body: "late secret" });
    await log.storeRow(row("delete", { target: message.id }));
    await log.storeRow(message);
    expect(put.get(message.id)?.content).toEqual({});
    expect(JSON.stringify(log.rows())).not.toContain("secret");
  });

  it("only the author's deletion wipes, and a file another message names stays", async () => {
    const { db, put, deleted } = recordingDb();
    const log = new Messages(account(), db, () => undefined);
    const message = row("text", { body: "ben's words", attachments: [photo] });
    await log.storeRow(message);
    await log.storeRow(row("delete", { target: message.id }, ME));
    expect(put.get(message.id)?.content).toEqual({ body: "ben's words", attachments: [photo] });
    const forwarded = row("text", { body: "again", attachments: [photo] });
    await log.storeRow(forwarded);
    await log.storeRow(row("delete", { target: message.id }));
    expect(put.get(message.id)?.content).toEqual({});
    expect(deleted).toEqual([]);
  });
});
