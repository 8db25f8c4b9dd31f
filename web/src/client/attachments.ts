// Encrypted blobs: a file is encrypted here and uploaded (with a thumbnail
// for an image), or downloaded and decrypted; either way the plain file is
// kept in the profile, and shown through one object URL per blob. The
// transfers signal shows the progress bars.
import { signal } from "@preact/signals";
import { decryptAttachment, encryptAttachment, type AttachmentKey } from "../crypto/attachments";
import type { BlobCreated } from "../gen/proto";
import type { Api } from "./api";
import type { Db } from "./db";
import type { AttachmentEntry, Transfer } from "./model";

const THUMBNAIL_SIZE = 320;

export class Attachments {
  readonly transfers = signal<Transfer[]>([]);
  /** blob id → object URL of the plain file */
  private readonly urls = new Map<string, string>();

  constructor(
    private readonly db: Db,
    private readonly api: Api,
  ) {}

  /** Encrypt and upload `file`; `transfer` names its progress bar (or none). */
  async upload(
    file: Blob,
    name: string,
    kind: AttachmentEntry["kind"],
    transfer: string | null,
    extra: Record<string, unknown> = {},
  ): Promise<AttachmentEntry> {
    const more: Record<string, unknown> = { ...extra };
    if (kind === "image") {
      const thumb = await thumbnail(file);
      if (thumb) {
        more.width = thumb.width;
        more.height = thumb.height;
        more.thumbnail = await this.upload(thumb.blob, "thumbnail.jpg", "thumbnail", null);
      }
    }
    const { ciphertext, key } = await encryptAttachment(file);
    const progress = transfer ? (done: number, total: number) => this.progress(transfer, name, "up", done, total) : undefined;
    const created = await this.api.upload<BlobCreated>("/blobs", ciphertext, progress);
    if (transfer) this.progress(transfer, name, "up", -1, 0);
    await this.db.put("attachments", { blob: created.blob, data: file });
    return {
      blob: created.blob,
      name,
      mime: file.type || "application/octet-stream",
      size: file.size,
      encrypted_size: ciphertext.size,
      kind,
      key: key as AttachmentEntry["key"],
      ...more,
    } as AttachmentEntry;
  }

  /** The plain file: from the profile, or downloaded and decrypted. */
  async fetch(entry: AttachmentEntry): Promise<Blob> {
    const have = await this.db.get("attachments", entry.blob);
    if (have) return have.data;
    const data = await this.api.download(`/blobs/${entry.blob}`, (done, total) => this.progress(entry.blob, entry.name, "down", done, total));
    this.progress(entry.blob, entry.name, "down", -1, 0);
    const plain = await decryptAttachment(data, entry.key as AttachmentKey);
    const blob = new Blob([plain as BlobPart], { type: entry.mime || "application/octet-stream" });
    await this.db.put("attachments", { blob: entry.blob, data: blob });
    return blob;
  }

  async url(entry: AttachmentEntry): Promise<string> {
    const cached = this.urls.get(entry.blob);
    if (cached) return cached;
    const blob = await this.fetch(entry);
    const url = URL.createObjectURL(blob);
    this.urls.set(entry.blob, url);
    return url;
  }

  /** The object URL of a blob already shown, if any. */
  cachedUrl(blob: string): string | null {
    return this.urls.get(blob) ?? null;
  }

  private progress(id: string, name: string, direction: "up" | "down", done: number, total: number): void {
    const others = this.transfers.value.filter((t) => t.id !== id);
    this.transfers.value = done < 0 ? others : [...others, { id, name, direction, done, total }];
  }
}

export function kindOf(mime: string): AttachmentEntry["kind"] {
  if (mime === "application/pdf") return "pdf";
  for (const prefix of ["image", "video", "audio"] as const) if (mime.startsWith(prefix + "/")) return prefix;
  return "file";
}

export function isEntry(value: unknown): value is AttachmentEntry {
  return typeof value === "object" && value !== null && typeof (value as { blob?: unknown }).blob === "string";
}

export function entriesList(value: unknown): AttachmentEntry[] {
  return Array.isArray(value) ? value.filter((v): v is AttachmentEntry => typeof v === "object" && v !== null) : [];
}

/** Every encrypted blob a message's attachments name: files and thumbnails. */
export function entriesOf(value: unknown): AttachmentEntry[] {
  const found: AttachmentEntry[] = [];
  for (const entry of entriesList(value)) {
    if (!isEntry(entry)) continue;
    found.push(entry);
    if (isEntry(entry.thumbnail)) found.push(entry.thumbnail);
  }
  return found;
}

async function thumbnail(file: Blob): Promise<{ blob: Blob; width: number; height: number } | null> {
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, THUMBNAIL_SIZE / Math.max(bitmap.width, bitmap.height));
    const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)));
    canvas.getContext("2d")?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: 0.8 });
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return { blob, ...size };
  } catch {
    return null;
  }
}
