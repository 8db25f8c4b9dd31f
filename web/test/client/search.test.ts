// The web app's search index (search.ts) and how messages.ts keeps it as
// the user sees the messages: edits replace the words, a deletion for
// everyone and an expired timer take the message out, in any order.
import { describe, expect, it } from "vitest";
import type { Db, MessageRow } from "../../src/client/db";
import type { Keys } from "../../src/client/keys";
import { Messages } from "../../src/client/messages";
import { SearchIndex, marked, wordsOf } from "../../src/client/search";
import type { Account } from "../../src/client/types";

const ME = "mara@taube.example";
const BEN = "ben@taube.example";

function account(): Account {
  const keys = { user: ME, device: "web", inbound: { forget: () => 0 }, save: async () => undefined } as unknown as Keys;
  return { keys, need: () => keys };
}

function memoryDb(): Db {
  return { put: async () => undefined, delete: async () => undefined, write: async () => undefined } as unknown as Db;
}

let order = 0;
function row(conversation: string, type: string, content: Record<string, unknown>, sender = BEN): MessageRow {
  order += 1;
  return {
    conversation,
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

function log(): Messages {
  return new Messages(account(), memoryDb(), () => undefined);
}

const texts = (messages: Messages, query: string) => messages.search(query).map((m) => m.text);

describe("SearchIndex", () => {
  it("splits words without case or diacritics", () => {
    expect(wordsOf("Café  au-lait, CAFÉ! 42")).toEqual(["cafe", "au", "lait", "42"]);
    expect(wordsOf("  ...  ")).toEqual([]);
  });

  it("finds every word as the start of a word, newest first", () => {
    const index = new SearchIndex();
    index.set("c1", "a", 1, "Hallo World");
    index.set("c2", "b", 3, "hallo welt");
    index.set("c1", "c", 2, "hello world");
    expect(index.search("hal").map((h) => h.id)).toEqual(["b", "a"]);
    expect(index.search("wor hal").map((h) => h.id)).toEqual(["a"]);
    expect(index.search("orld")).toEqual([]); // the start of a word only
    expect(index.search("h", 2).map((h) => h.id)).toEqual(["c", "b"]); // the order they came in
    expect(index.search("")).toEqual([]);
    expect(index.search("hallo wxyz")).toEqual([]);
  });

  it("walks newest first when every word is common, and skips removed messages", () => {
    const index = new SearchIndex();
    for (let i = 0; i < 5000; i += 1) index.set("c1", `m${i}`, i, `common words ${i % 2 ? "odd" : "even"}`);
    index.remove("c1", "m4999");
    index.set("c1", "m4997", 4997, "common words edited"); // keeps its place
    expect(index.search("comm odd", 3).map((h) => h.id)).toEqual(["m4995", "m4993", "m4991"]);
    expect(index.search("common", 2).map((h) => h.id)).toEqual(["m4998", "m4997"]);
    expect(index.search("common edit").map((h) => h.id)).toEqual(["m4997"]);
    for (let i = 0; i < 4000; i += 1) index.remove("c1", `m${i}`); // compacted on the way
    expect(index.size).toBe(999);
    expect(index.search("even", 2).map((h) => h.id)).toEqual(["m4998", "m4996"]);
    expect(index.search("common", 1000).at(-1)?.id).toBe("m4000");
  });

  it("marks the words a query finds, and cuts a long lead", () => {
    expect(marked("Meet me at the Harbour, at dawn", "harb DAWN")).toEqual([
      { text: "Meet me at the ", hit: false },
      { text: "Harbour", hit: true },
      { text: ", at ", hit: false },
      { text: "dawn", hit: true },
    ]);
    expect(marked("Ein Café", "cafe")).toEqual([
      { text: "Ein ", hit: false },
      { text: "Café", hit: true },
    ]);
    const long = marked(`${"word ".repeat(30)}target here`, "targ");
    expect(long[0]?.text.startsWith("…")).toBe(true);
    expect(long[0]?.text.length).toBeLessThanOrEqual(31);
    expect(long[1]).toEqual({ text: "target", hit: true });
  });

  it("forgets the old words of a message set again, and removed messages", () => {
    const index = new SearchIndex();
    index.set("c1", "a", 1, "first words");
    index.search("first"); // sorted once
    index.set("c1", "a", 1, "second thoughts");
    expect(index.search("first")).toEqual([]);
    expect(index.search("second").map((h) => h.id)).toEqual(["a"]);
    index.remove("c1", "a");
    expect(index.search("second")).toEqual([]);
    expect(index.size).toBe(0);
  });

  it("finds one message among many, and a word's start among many words", () => {
    const index = new SearchIndex();
    for (let i = 0; i < 20_000; i += 1) index.set(`c${i % 40}`, `m${i}`, i, `message number w${i} about topic${i % 100}`);
    expect(index.size).toBe(20_000);
    expect(index.search("w19999").map((h) => h.id)).toEqual(["m19999"]);
    // "topic7" starts topic7 and topic70..79
    expect(index.search("topic7 about", 3).map((h) => h.id)).toEqual(["m19979", "m19978", "m19977"]);
    expect(index.search("topic7 w1990").map((h) => h.id)).toEqual(["m19907"]);
  });
});

describe("Messages.search", () => {
  it("searches every conversation, as the user sees them", async () => {
    const messages = log();
    const a = row("c1", "text", { body: "the pigeon flies" });
    const b = row("c2", "text", { body: "pigeons everywhere" });
    for (const r of [a, b, row("c2", "reaction", { target: b.id, key: "🕊" })]) await messages.storeRow(r);
    expect(texts(messages, "pigeon")).toEqual(["pigeons everywhere", "the pigeon flies"]);
    expect(messages.search("pigeon").map((m) => m.conversation)).toEqual(["c2", "c1"]);
  });

  it("follows edits: the new words are found, the old are not (only the author's)", async () => {
    const messages = log();
    const a = row("c1", "text", { body: "meet at noon" });
    await messages.storeRow(a);
    expect(texts(messages, "noon")).toEqual(["meet at noon"]); // the index is built
    await messages.storeRow(row("c1", "edit", { target: a.id, body: "meet at dawn" }));
    expect(texts(messages, "noon")).toEqual([]);
    expect(texts(messages, "dawn")).toEqual(["meet at dawn"]);
    await messages.storeRow(row("c1", "edit", { target: a.id, body: "forged by someone else" }, ME));
    expect(texts(messages, "forged")).toEqual([]);
    expect(messages.search("dawn")[0]?.edited).toBe(true);
  });

  it("never finds a message deleted for everyone, whichever came first", async () => {
    const messages = log();
    const a = row("c1", "text", { body: "secret plan" });
    const b = row("c1", "text", { body: "secret recipe" });
    await messages.storeRow(a);
    expect(texts(messages, "secret")).toEqual(["secret plan"]);
    await messages.storeRow(row("c1", "delete", { target: a.id }));
    await messages.storeRow(row("c1", "delete", { target: b.id })); // before its message
    await messages.storeRow(b);
    expect(texts(messages, "secret")).toEqual([]);
    expect(texts(messages, "plan")).toEqual([]);
  });

  it("never finds a message whose time ran out", async () => {
    const messages = log();
    const stays = row("c1", "text", { body: "vanishing act stays" });
    const goes = { ...row("c1", "text", { body: "vanishing soon" }), expiresMs: Date.now() - 1 };
    await messages.storeRow(stays);
    await messages.storeRow(goes);
    expect(texts(messages, "vanishing").sort()).toEqual(["vanishing act stays", "vanishing soon"]);
    await messages.expire();
    expect(texts(messages, "vanishing")).toEqual(["vanishing act stays"]);
  });

  it("builds the index while idle; what changes meanwhile is found as it is now", async () => {
    const messages = log();
    const rows = Array.from({ length: 30 }, (_, i) => row(`w${i}`, "text", { body: `warm start ${i}` }));
    for (const r of rows) await messages.storeRow(r);
    messages.warmIndex();
    await messages.storeRow(row("w0", "edit", { target: rows[0]!.id, body: "warm changed" }));
    await messages.storeRow(row("w1", "delete", { target: rows[1]!.id }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(texts(messages, "start")).toHaveLength(28);
    expect(texts(messages, "changed")).toEqual(["warm changed"]);
    const ids = messages.search("warm").map((m) => m.id);
    expect(ids).toContain(rows[0]!.id);
    expect(ids).not.toContain(rows[1]!.id);
    // a search before the build is done finishes it
    const other = log();
    for (const r of rows.slice(2)) await other.storeRow(r);
    other.warmIndex();
    expect(texts(other, "start")).toHaveLength(28);
  });

  it("finds messages stored before the first search and after it", async () => {
    const messages = log();
    await messages.storeRow(row("c1", "text", { body: "early bird" }));
    expect(texts(messages, "bird")).toEqual(["early bird"]);
    await messages.storeRow(row("c3", "text", { body: "late bird" }));
    expect(texts(messages, "bird")).toEqual(["late bird", "early bird"]);
  });
});
