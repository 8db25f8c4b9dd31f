// Notices that stay (as the SDK's taube.client.notices): missing-messages
// markers and key-change warnings are kept in the profile and read back on
// the next visit; other notices are not.
import { describe, expect, it } from "vitest";
import type { Db } from "../../src/client/db";
import type { Notice } from "../../src/client/model";
import { NOTICES_KEPT, NOTICES_KEY, NoticeStore, lasting } from "../../src/client/notices";

/** A Db with a kv store in memory (what a reload reads back). */
function memoryDb(): { db: Db; kv: Map<string, unknown>; writes: () => number } {
  const kv = new Map<string, unknown>();
  let writes = 0;
  const db = {
    get: async (_store: string, key: string) => (kv.has(key) ? { key, value: structuredClone(kv.get(key)) } : undefined),
    put: async (_store: string, row: { key: string; value: unknown }) => {
      writes += 1;
      kv.set(row.key, structuredClone(row.value));
    },
  } as unknown as Db;
  return { db, kv, writes: () => writes };
}

const missing: Notice = { kind: "missing", conversation: "c1", sender: "ben@x", count: 2, before: "m5", ts: 10 };
const keyChanged: Notice = { kind: "key-changed", conversation: "c1", user: "ben@x", verified: true, reason: "identity key changed", ts: 20 };
const timer: Notice = { kind: "timer", conversation: "c1", seconds: 60, ts: 30 };
const undecryptable: Notice = { kind: "undecryptable", conversation: "c1", sender: "ben@x", id: "m9", reason: "no key", ts: 40 };

describe("NoticeStore", () => {
  it("keeps missing-messages markers and key changes across a reload, in order", async () => {
    const { db } = memoryDb();
    const store = new NoticeStore(db);
    expect(await store.load()).toEqual([]);
    await store.keep(missing);
    await store.keep(timer);
    await store.keep(keyChanged);
    await store.keep(undecryptable);
    const again = new NoticeStore(db); // the page reloaded
    expect(await again.load()).toEqual([missing, keyChanged]);
  });

  it("writes one after another: nothing is lost when notices come at once", async () => {
    const { db, writes } = memoryDb();
    const store = new NoticeStore(db);
    await store.load();
    const many = Array.from({ length: 20 }, (_, i): Notice => ({ ...missing, before: `m${i}`, ts: i }));
    await Promise.all(many.map((n) => store.keep(n)));
    expect(await new NoticeStore(db).load()).toEqual(many);
    expect(writes()).toBeLessThanOrEqual(2);
  });

  it("keeps the newest notices only", async () => {
    const { db } = memoryDb();
    const store = new NoticeStore(db);
    await store.load();
    for (let i = 0; i < NOTICES_KEPT + 3; i += 1) void store.keep({ ...missing, conversation: i % 2 ? "c1" : "c2", ts: i });
    await store.keep(keyChanged);
    const kept = await new NoticeStore(db).load();
    expect(kept).toHaveLength(NOTICES_KEPT);
    expect(kept[0]?.ts).toBe(4);
    expect(kept.at(-1)).toEqual(keyChanged);
  });

  it("ignores damaged or unknown entries in the profile", async () => {
    const { db, kv } = memoryDb();
    kv.set(NOTICES_KEY, [missing, null, 7, { kind: "timer", conversation: "c1", ts: 1 }, { kind: "missing" }, keyChanged]);
    expect(await new NoticeStore(db).load()).toEqual([missing, keyChanged]);
    kv.set(NOTICES_KEY, "not a list");
    expect(await new NoticeStore(db).load()).toEqual([]);
  });

  it("says which notices last", () => {
    expect([missing, keyChanged, timer, undecryptable].map(lasting)).toEqual([true, true, false, false]);
  });
});
