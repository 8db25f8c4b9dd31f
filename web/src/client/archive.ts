// The portable history in the browser: the same file as the SDK's
// taube.client.archive (`taube export` / `taube import`), so an archive
// made here opens in the SDK and the other way round.
//
// File: `TAUBE-ARCHIVE 1\n`, a JSON header line {v, time_cost, memory_cost,
// parallelism, salt, sha256}, then a tar stream encrypted like an attachment
// (chunked AES-256-GCM, crypto/attachments.ts) under a key derived with
// argon2id from a code of the recovery code's kind, shown once. The tar
// holds `history.json` (the SDK's history dump plus `titles`, `user`,
// `secrets`) and `attachments/<blob>-<name>`, the decrypted files.
//
// Importing makes every conversation a new one of this account: a portal
// (a chat over e-mail) is a live portal again, any other chat an archived
// copy titled "… (archive)"; the messages keep their ids and come before
// anything new. The e-mail connector's account and state (in an archive
// from the SDK) cannot run in a browser: they are left out, and the
// import says so. Nothing is changed when the code or the file is wrong.
import { argon2id } from "hash-wasm";
import { decryptAttachment, encryptAttachment, type AttachmentKey, ATTACHMENT_ALGORITHM } from "../crypto/attachments";
import { DEFAULT_KDF, MAX_KDF, newRecoveryCode, recoveryCodeBytes, type KdfParams } from "../crypto/backup";
import { b64decode, b64encode, buf, concatBytes, fromUtf8, randomBytes, utf8, type Bytes } from "../crypto/base64";
import { CryptoError } from "../crypto/errors";
import type { Db, MessageRow } from "./db";
import type { Portal } from "./model";
import { PORTAL, portalOf } from "./portals";
import { ClientError, type Account, type ChainArchive } from "./types";

export const MAGIC = "TAUBE-ARCHIVE 1\n";
/** profile secrets that travel in the SDK's archives (a browser has none) */
const MOVING_SECRETS = "connector:";
/** a blob id is this long (RANDOM_ID of 24 bytes) */
const BLOB_ID_LENGTH = 32;
const BLOCK = 512;

/** `(step, done, total)`: "key", "messages", "files", "encrypt", "decrypt" */
export type ArchiveProgress = (step: string, done: number, total: number) => void;

export class ArchiveError extends ClientError {}

interface Header extends KdfParams {
  v: number;
  salt: string;
  sha256: string;
}

type DumpRow = [string, string, number | null, string, string, number, string, string, string, number | null];

/** The SDK's history dump as the archive carries it. */
export interface ArchiveDump {
  conversations: [string, string, string, number][];
  messages: DumpRow[];
  profiles: [string, string, unknown, number][];
  titles: Record<string, string | null>;
  user: string;
  secrets: Record<string, string>;
}

// ================================================================ the file

/** The 32-byte key of an archive (as taube.crypto.code_key). */
export async function codeKey(code: string, salt: Uint8Array, params: KdfParams): Promise<Bytes> {
  if (params.time_cost > MAX_KDF.time_cost || params.memory_cost > MAX_KDF.memory_cost || params.parallelism > MAX_KDF.parallelism) {
    throw new ArchiveError("the archive's key derivation asks for more than this device gives");
  }
  const raw = await argon2id({
    password: recoveryCodeBytes(code),
    salt,
    iterations: params.time_cost,
    memorySize: params.memory_cost,
    parallelism: params.parallelism,
    hashLength: 32,
    outputType: "binary",
  });
  return buf(raw);
}

/** Seal `files` (name → bytes) as an archive; returns the file and its code. */
export async function sealArchive(files: Map<string, Uint8Array>, progress: ArchiveProgress = quiet, params: KdfParams = DEFAULT_KDF): Promise<{ file: Blob; code: string }> {
  const code = newRecoveryCode();
  const salt = randomBytes(16);
  progress("key", 0, 1);
  const key = await codeKey(code, salt, params);
  progress("key", 1, 1);
  const { ciphertext, key: entry } = await encryptAttachment(tarWrite(files), (done, total) => progress("encrypt", done, total), key);
  const header: Header = { v: 1, ...params, salt: b64encode(salt), sha256: entry.sha256 };
  const file = new Blob([MAGIC, JSON.stringify(header), "\n", ciphertext], { type: "application/octet-stream" });
  return { file, code };
}

/** Open an archive with its code: name → bytes. `ArchiveError` if it is not
 * an archive, or the code does not open it. */
export async function openArchive(file: Blob, code: string, progress: ArchiveProgress = quiet): Promise<Map<string, Uint8Array>> {
  const head = new Uint8Array(await file.slice(0, MAGIC.length + 4096).arrayBuffer());
  if (fromUtf8(head.subarray(0, MAGIC.length)) !== MAGIC) throw new ArchiveError("this is not a taube archive");
  const end = head.indexOf(10, MAGIC.length);
  if (end < 0) throw new ArchiveError("the archive's header is damaged");
  const header = parseHeader(head.subarray(MAGIC.length, end));
  let key: Bytes;
  try {
    progress("key", 0, 1);
    key = await codeKey(code, b64decode(header.salt), header);
    progress("key", 1, 1);
  } catch (e) {
    if (e instanceof ArchiveError) throw e;
    throw new ArchiveError(`cannot open the archive: ${e instanceof Error ? e.message : String(e)}`);
  }
  const entry: AttachmentKey = { algorithm: ATTACHMENT_ALGORITHM, key: b64encode(key), sha256: header.sha256 };
  let tar: Uint8Array;
  try {
    tar = await decryptAttachment(file.slice(end + 1), entry, (done, total) => progress("decrypt", done, total));
  } catch (e) {
    if (e instanceof CryptoError) throw new ArchiveError("the code does not open this archive, or it is damaged");
    throw e;
  }
  return tarRead(tar);
}

function parseHeader(line: Uint8Array): Header {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(line));
  } catch {
    throw new ArchiveError("the archive's header is damaged");
  }
  const h = value as Record<string, unknown>;
  const known = new Set(["v", "time_cost", "memory_cost", "parallelism", "salt", "sha256"]);
  const ints = ["time_cost", "memory_cost", "parallelism"].every((k) => Number.isInteger(h[k]) && (h[k] as number) > 0);
  if (typeof value !== "object" || value === null || Object.keys(h).some((k) => !known.has(k)) || (h.v ?? 1) !== 1 || !ints || typeof h.salt !== "string" || typeof h.sha256 !== "string") {
    throw new ArchiveError("the archive's header is damaged");
  }
  return { v: 1, time_cost: h.time_cost as number, memory_cost: h.memory_cost as number, parallelism: h.parallelism as number, salt: h.salt, sha256: h.sha256 };
}

function quiet(): void {}

// ================================================================ tar (ustar, pax names)

/** A tar stream of regular files (a pax header carries a long or non-ASCII name). */
export function tarWrite(files: Map<string, Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  const add = (name: string, type: string, data: Uint8Array) => {
    parts.push(tarHeader(name, type, data.length), data, new Uint8Array((BLOCK - (data.length % BLOCK)) % BLOCK));
  };
  for (const [name, data] of files) {
    const raw = utf8(name);
    if (raw.length >= 100 || /[^\x20-\x7e]/.test(name)) {
      const record = (n: number) => `${n} path=${name}\n`;
      let length = utf8(record(0)).length;
      while (utf8(record(length)).length !== length) length = utf8(record(length)).length;
      add("././@PaxHeader", "x", utf8(record(length)));
      add(name.replace(/[^\x20-\x7e]/g, "_").slice(-99), "0", data);
    } else {
      add(name, "0", data);
    }
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return concatBytes(...parts);
}

function tarHeader(name: string, type: string, size: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const put = (at: number, text: string) => h.set(utf8(text), at);
  const octal = (value: number, width: number) => value.toString(8).padStart(width - 1, "0") + "\0";
  put(0, name);
  put(100, octal(0o644, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(size, 12));
  put(136, octal(Math.floor(Date.now() / 1000), 12));
  put(148, "        ");
  put(156, type);
  put(257, "ustar\x0000");
  const sum = h.reduce((a, b) => a + b, 0);
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** The regular files of a tar stream (ustar, pax and GNU long names). */
export function tarRead(tar: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  let at = 0;
  let longName: string | null = null;
  const text = (from: number, length: number) => {
    const field = tar.subarray(from, from + length);
    const zero = field.indexOf(0);
    return fromUtf8(zero < 0 ? field : field.subarray(0, zero));
  };
  while (at + BLOCK <= tar.length) {
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break;
    const size = parseInt(text(at + 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156]!);
    if (!Number.isFinite(size) || size < 0 || at + BLOCK + size > tar.length) throw new ArchiveError("the archive is damaged (tar)");
    const data = tar.subarray(at + BLOCK, at + BLOCK + size);
    const prefix = text(at + 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${text(at, 100)}` : text(at, 100));
    if (type === "x") {
      longName = paxPath(data) ?? longName;
    } else if (type === "L") {
      longName = text(at + BLOCK, size);
    } else {
      if (type === "0" || type === "\0") files.set(name, data);
      longName = null;
    }
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return files;
}

function paxPath(data: Uint8Array): string | null {
  let found: string | null = null;
  for (const record of fromUtf8(data).split("\n")) {
    const match = /^\d+ path=(.*)$/s.exec(record);
    if (match) found = match[1]!;
  }
  return found;
}

// ================================================================ the engine's side

/** What an archive needs of the engine's parts. */
export interface ArchiveParts {
  account: Account;
  db: Db;
  chains: ChainArchive;
  rows: { rows(): MessageRow[]; nextOrder(): number; replaceRow(row: MessageRow): void };
  /** the titles the chat list shows */
  titles(): Map<string, string>;
  openPortal(portal: Portal): Promise<string>;
  createGroup(title: string, members: string[]): Promise<string>;
  changed(): void;
}

const IMPORTED_STATUS: Record<string, MessageRow["status"]> = { received: "received", pending: "failed", failed: "failed" };

/** What the screens see (model.ts's `Client.archives`). */
export interface ArchivesView {
  export(progress?: ArchiveProgress): Promise<{ file: Blob; code: string }>;
  import(file: Blob, code: string, progress?: ArchiveProgress): Promise<{ messages: number; leftOut: string[] }>;
}

export class Archives implements ArchivesView {
  constructor(private readonly parts: ArchiveParts) {}

  /** Everything on this device as one encrypted archive, and its code. */
  async export(progress: ArchiveProgress = quiet): Promise<{ file: Blob; code: string }> {
    const { account, db, chains, rows } = this.parts;
    const keys = account.need();
    const all = rows.rows();
    const titles = this.parts.titles();
    const dump: ArchiveDump = {
      conversations: [...chains.all()].map(([c, { state, events }]) => [c, state.kind, JSON.stringify(events), Date.now()]),
      messages: all.map((r) => [r.conversation, r.id, r.seq, r.sender, r.senderDevice, r.ts, r.type, JSON.stringify(r.content), r.status, r.expiresMs]),
      profiles: (await db.all("profiles")).map((p) => [p.user, p.name, null, p.ts]),
      titles: Object.fromEntries([...chains.all()].map(([c]) => [c, titles.get(c) ?? null])),
      user: keys.user,
      secrets: {},
    };
    progress("messages", all.length, all.length);
    const files = new Map<string, Uint8Array>([["history.json", utf8(JSON.stringify(dump))]]);
    const entries = all.flatMap((r) => (Array.isArray(r.content.attachments) ? (r.content.attachments as { blob?: unknown; name?: unknown }[]) : []));
    let done = 0;
    for (const entry of entries) {
      done++;
      if (typeof entry.blob !== "string") continue;
      const stored = await db.get("attachments", entry.blob);
      if (stored) files.set(`attachments/${entry.blob}-${baseName(String(entry.name ?? "file"))}`, new Uint8Array(await stored.data.arrayBuffer()));
      progress("files", done, entries.length);
    }
    return sealArchive(files, progress);
  }

  /** Read an archive into this account; returns how many messages came in
   * and what was left out. */
  async import(file: Blob, code: string, progress: ArchiveProgress = quiet): Promise<{ messages: number; leftOut: string[] }> {
    const { db, rows } = this.parts;
    const me = this.parts.account.need().user;
    const files = await openArchive(file, code, progress);
    const json = files.get("history.json");
    if (!json) throw new ArchiveError("the archive holds no history");
    const dump = JSON.parse(fromUtf8(json)) as Partial<ArchiveDump>;
    const leftOut: string[] = [];
    if ([...files.keys()].some((n) => n.startsWith("connectors/")) || Object.keys(dump.secrets ?? {}).some((n) => n.startsWith(MOVING_SECRETS))) {
      leftOut.push("the e-mail connector's account and state (import the archive on the connector device: taube import)");
    }
    const byConversation = new Map<string, DumpRow[]>();
    for (const row of dump.messages ?? []) byConversation.set(row[0], [...(byConversation.get(row[0]) ?? []), row]);
    const total = dump.messages?.length ?? 0;
    let done = 0;
    for (const [conversation, kind] of dump.conversations ?? []) {
      const list = (byConversation.get(conversation) ?? []).sort((a, b) => (a[2] === null ? 1 : 0) - (b[2] === null ? 1 : 0) || (a[2] ?? 0) - (b[2] ?? 0) || a[5] - b[5]);
      const portal = latestPortal(list);
      let target: string;
      if (portal) {
        target = await this.parts.openPortal({ ...portal, by: null });
      } else {
        const others = [...new Set(list.map((r) => r[3]))].filter((u) => u !== dump.user).sort();
        const title = dump.titles?.[conversation] || (kind === "direct" ? others.join(", ") : "");
        target = await this.parts.createGroup(`${title || "Chat"} (archive)`, []);
      }
      const imported: MessageRow[] = list.map((r, index) => ({
        // what the user wrote under the old address is theirs here too
        conversation: target, id: r[1], seq: index - list.length, sender: r[3] === dump.user ? me : r[3], senderDevice: r[4], ts: r[5], type: r[6],
        content: JSON.parse(r[7]) as Record<string, unknown>, status: IMPORTED_STATUS[r[8]] ?? "sent", expiresMs: r[9], session: null, order: rows.nextOrder(),
      }));
      await db.write(["messages"], (put) => imported.forEach((row) => put("messages", row)));
      imported.forEach((row) => rows.replaceRow(row));
      done += list.length;
      progress("messages", done, total);
    }
    const attachments = [...files].filter(([name]) => name.startsWith("attachments/"));
    let stored = 0;
    for (const [name, data] of attachments) {
      const blob = name.slice("attachments/".length, "attachments/".length + BLOB_ID_LENGTH);
      if (blob.length === BLOB_ID_LENGTH && !(await db.get("attachments", blob))) await db.put("attachments", { blob, data: new Blob([buf(data)]) });
      progress("files", ++stored, attachments.length);
    }
    const known = new Set((await db.all("profiles")).map((p) => p.user));
    await db.write(["profiles"], (put) => {
      for (const [user, name, , ts] of dump.profiles ?? []) if (!known.has(user)) put("profiles", { user, name, avatar: null, ts });
    });
    this.parts.changed();
    return { messages: done, leftOut };
  }
}

function latestPortal(rows: DumpRow[]): Portal | null {
  let found: Portal | null = null;
  for (const row of rows) {
    if (row[6] !== PORTAL) continue;
    const content = JSON.parse(row[7]) as Record<string, unknown>;
    found = portalOf(content, "") ?? found;
  }
  return found;
}

function baseName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1) || "file";
}
