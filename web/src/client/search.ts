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
// ("hal wor" finds "Hallo World"), newest first. The words are kept sorted
// so that a prefix is a range found by binary search, not a walk over all.

/** A message in the index. */
interface Entry {
  conversation: string;
  id: string;
  ts: number;
  words: string[];
}

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

  get size(): number {
    return this.entries.size;
  }

  /** Index a message with this text (again: its old words go). */
  set(conversation: string, id: string, ts: number, text: string): void {
    const key = keyOf(conversation, id);
    this.drop(key);
    const words = wordsOf(text);
    if (!words.length) return;
    this.entries.set(key, { conversation, id, ts, words });
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
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    for (const word of entry.words) {
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
    // the longest word has the fewest messages, usually: start from it
    const [first, ...rest] = [...wanted].sort((a, b) => b.length - a.length) as [string, ...string[]];
    const candidates = new Set<string>();
    for (const word of this.wordsStarting(first)) for (const key of this.postings.get(word) ?? []) candidates.add(key);
    const hits: Entry[] = [];
    for (const key of candidates) {
      const entry = this.entries.get(key) as Entry;
      if (rest.every((w) => entry.words.some((word) => word.startsWith(w)))) hits.push(entry);
    }
    hits.sort((a, b) => b.ts - a.ts);
    return hits.slice(0, limit).map(({ conversation, id, ts }) => ({ conversation, id, ts }));
  }
}
