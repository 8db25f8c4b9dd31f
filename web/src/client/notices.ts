// Notices that stay: a missing-messages marker and a key-change warning are
// kept in the profile (IndexedDB, beside the message rows) and shown again
// in their places after a reload. Each device derives its own notices from
// what it sees; they are never sent anywhere (as in the SDK's
// taube.client.notices). Other notices (membership, timer, undecryptable)
// live as long as the page.

import type { Db } from "./db";
import type { Notice } from "./model";

/** the kv key of the kept notices */
export const NOTICES_KEY = "notices";
/** the newest this many are kept (a server cannot fill the profile with them) */
export const NOTICES_KEPT = 1000;

/** Notices worth keeping across reloads. */
export function lasting(notice: Notice): boolean {
  return notice.kind === "missing" || notice.kind === "key-changed";
}

function valid(value: unknown): value is Notice {
  if (typeof value !== "object" || value === null) return false;
  const n = value as Record<string, unknown>;
  return (n.kind === "missing" || n.kind === "key-changed") && typeof n.conversation === "string" && typeof n.ts === "number";
}

export class NoticeStore {
  private kept: Notice[] = [];
  /** writes go one after another (each writes the whole list) */
  private writing: Promise<void> = Promise.resolve();
  private queued = false;

  constructor(private readonly db: Db) {}

  /** The notices kept on earlier visits, oldest first. */
  async load(): Promise<Notice[]> {
    const row = await this.db.get("kv", NOTICES_KEY);
    const value = Array.isArray(row?.value) ? (row.value as unknown[]) : [];
    this.kept = value.filter(valid);
    return [...this.kept];
  }

  /** Keep a lasting notice (others are ignored); resolves once stored. */
  keep(notice: Notice): Promise<void> {
    if (!lasting(notice)) return this.writing;
    this.kept = [...this.kept, notice].slice(-NOTICES_KEPT);
    return this.save();
  }

  /** Write the list after the write under way (many notices at once: one
   * write of the newest list). */
  private save(): Promise<void> {
    if (this.queued) return this.writing;
    this.queued = true;
    this.writing = this.writing.then(() => {
      this.queued = false;
      return this.db.put("kv", { key: NOTICES_KEY, value: this.kept });
    });
    return this.writing;
  }
}
