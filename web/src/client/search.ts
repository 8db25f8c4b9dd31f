// Search across every conversation on this device: an index kept in memory
// (as the SDK's taube.client.search keeps one in the profile).
//
// One entry per message as the user sees it, holding the words of its text:
// an edit by its author replaces the words, a deletion for everyone and an
// expired timer remove the entry, so a deleted or expired message is never
// found. messages.ts tells the index which messages changed; it looks at
// them again before the next query (so a burst of edits costs one look).
//
// Words are lower case without diacritics ("Café" is found by "cafe"),
// split at everything that is not a letter or a digit. A query finds the
// messages that have, for every word of the query, a word starting with it
// ("hal wor" finds "Hallo World"), newest first: in the order the messages
// came into the index (as the SDK's rowid order), which is their time for
// the messages there when it is built and their arrival after that. The
// words are kept sorted so that a prefix is a range found by binary search.
// A query whose rarest word is in few messages looks at those only; one
// whose every word is common walks the messages newest first and stops at
// the limit (which comes soon, since most messages match).

/** A message in the index. */
interface Entry {
  conversation: string;
  id: string;
  ts: number;
  words: string[];
  /** its place in `order` (newest: highest) */
  seq: number;
  alive: boolean;
}

/** a query word in more messages than this walks the messages instead */
const WALK_FROM = 2000;

export interface Hit {
  conversation: string;
  id: string;
  ts: number;
}

/** The words of `text`, as the index keeps them. */
export function wordsOf(text: string): string[] {
  const plain = text.normalize("NFKD").replace(/\p{M}+/gu, "").toLowerCase();
  return [...new Set(plain.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0))];
}

function keyOf(conversation: string, id: string): string {
  return `${conversation}\u0000${id}`;
}

export class SearchIndex {
  private readonly entries = new Map<string, Entry>();
  /** word → the entries with it */
  private readonly postings = new Map<string, Set<string>>();
  /** every word, sorted (null: to sort again before the next query) */
  private sorted: string[] | null = [];
  /** the entries in the order they came (removed ones are dead until compacted) */
  private order: Entry[] = [];

  get size(): number {
    return this.entries.size;
  }

  /** Index a message with this text (again: its old words go). */
  set(conversation: string, id: string, ts: number, text: string): void {
    const key = keyOf(conversation, id);
    const words = wordsOf(text);
    const old = this.entries.get(key);
    if (old && words.length) {
      // changed words (an edit): the message keeps its place
      this.unpost(key, old.words);
      old.words = words;
    } else {
      this.drop(key);
      if (!words.length) return;
      const entry: Entry = { conversation, id, ts, words, seq: this.order.length, alive: true };
      this.entries.set(key, entry);
      this.order.push(entry);
    }
    for (const word of words) {
      let keys = this.postings.get(word);
      if (!keys) {
        keys = new Set();
        this.postings.set(word, keys);
        this.sorted = null;
      }
      keys.add(key);
    }
  }

  /** The message is gone (deleted, expired) or has no words any more. */
  remove(conversation: string, id: string): void {
    this.drop(keyOf(conversation, id));
  }

  clear(): void {
    this.entries.clear();
    this.postings.clear();
    this.sorted = [];
    this.order = [];
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    entry.alive = false;
    this.unpost(key, entry.words);
    if (this.order.length > 1000 && this.entries.size < this.order.length / 2) {
      this.order = this.order.filter((e) => e.alive);
      this.order.forEach((e, i) => (e.seq = i));
    }
  }

  private unpost(key: string, words: string[]): void {
    for (const word of words) {
      const keys = this.postings.get(word);
      keys?.delete(key);
      if (keys?.size === 0) {
        this.postings.delete(word);
        this.sorted = null;
      }
    }
  }

  /** The words starting with `prefix`, from the sorted list. */
  private wordsStarting(prefix: string): string[] {
    if (this.sorted === null) this.sorted = [...this.postings.keys()].sort();
    const words = this.sorted;
    let lo = 0;
    let hi = words.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((words[mid] as string) < prefix) lo = mid + 1;
      else hi = mid;
    }
    const found: string[] = [];
    for (let i = lo; i < words.length && (words[i] as string).startsWith(prefix); i += 1) found.push(words[i] as string);
    return found;
  }

  /** The messages with every word of `query` (as a word's start), newest first. */
  search(query: string, limit = 50): Hit[] {
    const wanted = wordsOf(query);
    if (!wanted.length || limit <= 0) return [];
    const has = (entry: Entry, w: string) => entry.words.some((word) => word.startsWith(w));
    // start from the word in the fewest messages
    const estimates = wanted.map((w) => {
      const words = this.wordsStarting(w);
      return { w, words, count: words.reduce((n, word) => n + (this.postings.get(word)?.size ?? 0), 0) };
    });
    estimates.sort((a, b) => a.count - b.count);
    const [rarest, ...others] = estimates as [(typeof estimates)[0], ...typeof estimates];
    const rest = others.map((e) => e.w);
    const hits: Entry[] = [];
    if (rarest.count > WALK_FROM) {
      for (let i = this.order.length - 1; i >= 0 && hits.length < limit; i -= 1) {
        const entry = this.order[i] as Entry;
        if (entry.alive && wanted.every((w) => has(entry, w))) hits.push(entry);
      }
    } else {
      const seen = new Set<string>();
      for (const word of rarest.words) {
        for (const key of this.postings.get(word) ?? []) {
          if (seen.has(key)) continue;
          seen.add(key);
          const entry = this.entries.get(key) as Entry;
          if (rest.every((w) => has(entry, w))) hits.push(entry);
        }
      }
      hits.sort((a, b) => b.seq - a.seq);
    }
    return hits.slice(0, limit).map(({ conversation, id, ts }) => ({ conversation, id, ts }));
  }
}

/** `text` cut to about `around` characters before the first word the query
 * finds, in pieces, the words it finds marked (for a result's snippet). */
export function marked(text: string, query: string, around = 30): { text: string; hit: boolean }[] {
  const wanted = wordsOf(query);
  const pieces: { text: string; hit: boolean }[] = [];
  let at = 0;
  let first = -1;
  for (const match of text.matchAll(/[\p{L}\p{N}\p{M}]+/gu)) {
    const [word] = wordsOf(match[0]);
    if (word === undefined || !wanted.some((w) => word.startsWith(w))) continue;
    const start = match.index ?? 0;
    if (first < 0) first = start;
    if (start > at) pieces.push({ text: text.slice(at, start), hit: false });
    pieces.push({ text: match[0], hit: true });
    at = start + match[0].length;
  }
  if (at < text.length) pieces.push({ text: text.slice(at), hit: false });
  if (first > around && pieces[0] && !pieces[0].hit) {
    const lead = pieces[0].text;
    const cut = lead.slice(lead.length - around);
    pieces[0] = { text: `…${cut.slice(cut.search(/\s/u) + 1 || 0)}`, hit: false };
  }
  return pieces;
}
