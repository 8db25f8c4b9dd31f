// The Megolm indexes a device has accepted: replay detection and gaps
// (taube.crypto.replay). Megolm decrypts the same message again without
// complaint, so the receiver keeps every (session id, message index) it
// accepted and refuses a repeat; the same bookkeeping gives the gaps for
// "missing message" markers.
import { CryptoError } from "./errors";

/** The largest index accepted: beyond any rotation limit, small enough that
 * a hostile index cannot make `gaps` build a huge list. */
export const MAX_INDEX = 1 << 20;

export class SeenIndexes {
  #seen = new Map<string, Set<number>>();

  get size(): number {
    let n = 0;
    for (const s of this.#seen.values()) n += s.size;
    return n;
  }

  has(sessionId: string, index: number): boolean {
    return this.#seen.get(sessionId)?.has(index) ?? false;
  }

  /** `replayed` if the pair was accepted before. */
  check(sessionId: string, index: number): void {
    if (this.has(sessionId, index)) throw new CryptoError("replayed", `message ${index} of session ${sessionId} was seen before`);
  }

  /** Record an accepted message; `replayed` on a repeat. */
  add(sessionId: string, index: number): void {
    if (!Number.isInteger(index) || index < 0 || index > MAX_INDEX) throw new CryptoError("bad_payload", "Megolm message index out of range");
    this.check(sessionId, index);
    let set = this.#seen.get(sessionId);
    if (set === undefined) this.#seen.set(sessionId, (set = new Set()));
    set.add(index);
  }

  indexes(sessionId: string): number[] {
    return [...(this.#seen.get(sessionId) ?? [])].sort((a, b) => a - b);
  }

  /** Indexes from `firstIndex` up to the highest seen that are missing. */
  gaps(sessionId: string, firstIndex = 0): number[] {
    const seen = this.#seen.get(sessionId);
    if (seen === undefined || seen.size === 0) return [];
    const top = Math.max(...seen);
    const out: number[] = [];
    for (let i = firstIndex; i < top; i++) if (!seen.has(i)) out.push(i);
    return out;
  }

  /** `{session_id: [index, ...]}`, sorted (Python's `to_bytes`, as data). */
  toJSON(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const sid of [...this.#seen.keys()].sort()) out[sid] = this.indexes(sid);
    return out;
  }

  static fromJSON(data: unknown): SeenIndexes {
    const seen = new SeenIndexes();
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw new CryptoError("bad_payload", "not a stored set of seen Megolm indexes");
    }
    for (const [sid, indexes] of Object.entries(data as Record<string, unknown>)) {
      if (!Array.isArray(indexes)) throw new CryptoError("bad_payload", "not a stored set of seen Megolm indexes");
      for (const i of indexes) {
        if (typeof i !== "number" || !Number.isInteger(i) || i < 0 || i > MAX_INDEX) {
          throw new CryptoError("bad_payload", "Megolm message index out of range");
        }
      }
      seen.#seen.set(sid, new Set(indexes as number[]));
    }
    return seen;
  }
}
