// The driver of `python -m bench websearch` (see bench/websearch.py): the
// web app's Messages and its search index (web/src/client/search.ts) in
// Node, on synthetic rows; prints one JSON object.
import type { Db, MessageRow } from "../web/src/client/db";
import type { Keys } from "../web/src/client/keys";
import { Messages } from "../web/src/client/messages";
import type { Account } from "../web/src/client/types";

const args = JSON.parse(process.argv[2] ?? "{}") as {
  messages: number;
  chats: number;
  vocabulary: number;
  repeat: number;
  seed: number;
  queries: string[] | null;
};

let state = args.seed >>> 0 || 1;
function random(): number {
  // xorshift32: the same rows for the same seed
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 4294967296;
}
const SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "be", "do", "fi", "gu", "sa", "we", "zo", "pe"];
const words = new Set<string>();
while (words.size < args.vocabulary) {
  const n = 2 + Math.floor(random() * 4);
  words.add(Array.from({ length: n }, () => SYLLABLES[Math.floor(random() * SYLLABLES.length)]).join(""));
}
const vocabulary = [...words];
/** Zipf-like: a few words in almost every message, most words rare */
const word = () => vocabulary[Math.floor(vocabulary.length * random() ** 3)] as string;

const ME = "me@bench.example";
const keys = { user: ME, device: "web", inbound: { forget: () => 0 }, save: async () => undefined } as unknown as Keys;
const account: Account = { keys, need: () => keys };
const db = { put: async () => undefined, delete: async () => undefined, write: async () => undefined, all: async () => [], get: async () => undefined } as unknown as Db;

const rows: MessageRow[] = [];
for (let i = 0; i < args.messages; i += 1) {
  const sender = i % 3 ? `p${i % 7}@bench.example` : ME;
  const body = Array.from({ length: 4 + Math.floor(random() * 12) }, word).join(" ");
  rows.push({ conversation: `c${i % args.chats}`, id: `m${i}`, seq: i, sender, senderDevice: `${sender}-d`, ts: 1_700_000_000_000 + i * 1000, type: "text", content: { body }, status: "received", expiresMs: null, session: null, order: i });
  if (i % 100 === 0) rows.push({ ...rows.at(-1)!, id: `e${i}`, seq: i + 0.5, type: "edit", content: { target: `m${i}`, body: `${body} edited` }, order: i + 0.5 });
  if (i % 200 === 1) rows.push({ ...rows.at(-1)!, id: `d${i}`, seq: i + 0.5, type: "delete", content: { target: `m${i}` }, order: i + 0.5 });
}

const messages = new Messages(account, db, () => undefined);
// as a reload reads the profile: every row at once
(messages as unknown as { db: Db }).db = { ...db, all: async () => rows } as unknown as Db;
await messages.load(new Set());

const ms = (t0: number) => performance.now() - t0;
let t0 = performance.now();
messages.updateIndex();
const build = ms(t0);

const queries = args.queries ?? [vocabulary[0]!, vocabulary[0]!.slice(0, 2), vocabulary[Math.floor(vocabulary.length / 2)]!, `${vocabulary[1]} ${vocabulary[2]!.slice(0, 3)}`, vocabulary.at(-1)!, "zzzz"];
const results = queries.map((query) => {
  const times: number[] = [];
  let hits = 0;
  for (let r = 0; r < args.repeat; r += 1) {
    t0 = performance.now();
    hits = messages.search(query).length;
    times.push(ms(t0));
  }
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!;
  return { query, hits, p50: at(50), p99: at(99) };
});

// a new message and an edit, then the next query (the index follows)
const fresh: MessageRow = { ...rows[0]!, conversation: "c0", id: "fresh", seq: null, ts: Date.now(), content: { body: "brandnewword here" }, order: args.messages * 2 };
t0 = performance.now();
await messages.storeRow(fresh);
const followHits = messages.search("brandnewword").length;
const follow = ms(t0);

console.log(JSON.stringify({ rows: rows.length, build, results, follow, followHits }));
