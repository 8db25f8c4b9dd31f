// Attachments: files encrypted on the client under a fresh key per file
// (taube.crypto.attachments, byte-compatible).
//
// AES-256-GCM in 64 KiB chunks, the STREAM construction: chunk i is sealed
// with the nonce `i (11 bytes, big-endian) || last (1 byte: 1 for the final
// chunk, else 0)` and the associated data "taube.attachment.v1". Every chunk
// but the last is exactly 64 KiB of plaintext; the last holds the rest (an
// empty file is one empty final chunk). The key and the SHA-256 of the whole
// ciphertext travel inside the encrypted message.
//
// Decryption is fail-closed: the whole ciphertext is hashed and compared
// before anything is decrypted, and each chunk is authenticated again.
import { createSHA256, type IHasher } from "hash-wasm";
import { b64decode, b64encode, buf, bytesEqual, randomBytes, utf8, type Bytes } from "./base64";
import { CryptoError } from "./errors";

export const ATTACHMENT_ALGORITHM = "taube.attachment.v1";
export const CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
export const KEY_SIZE = 32;
const AAD = utf8("taube.attachment.v1");

/** What a message carries about an encrypted blob (never send it in clear). */
export interface AttachmentKey {
  algorithm: string;
  /** the 256-bit file key, unpadded base64 */
  key: string;
  /** SHA-256 of the whole ciphertext, unpadded base64 */
  sha256: string;
}

export type Progress = (done: number, total: number) => void;

function nonce(counter: number, last: boolean): Bytes {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setUint32(7, counter); // counters stay far below 2**32
  out[11] = last ? 1 : 0;
  return out;
}

/** `[key, sha256]` as bytes; `bad_payload` if malformed. */
export function attachmentKeyBytes(key: AttachmentKey): [Bytes, Bytes] {
  if (key.algorithm !== ATTACHMENT_ALGORITHM) throw new CryptoError("bad_payload", `unknown attachment algorithm ${JSON.stringify(key.algorithm)}`);
  let raw: Bytes;
  let digest: Bytes;
  try {
    raw = b64decode(key.key);
    digest = b64decode(key.sha256);
  } catch {
    throw new CryptoError("bad_payload", "malformed attachment key");
  }
  if (raw.length !== KEY_SIZE || digest.length !== 32) throw new CryptoError("bad_payload", "malformed attachment key");
  return [raw, digest];
}

function aesKey(raw: Uint8Array, usage: KeyUsage): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", buf(raw), { name: "AES-GCM" }, false, [usage]);
}

async function read(source: Blob | Uint8Array, start: number, end: number): Promise<Bytes> {
  if (source instanceof Uint8Array) return buf(source.subarray(start, end));
  return new Uint8Array(await source.slice(start, end).arrayBuffer());
}

function chunkCount(size: number, chunk: number): number {
  return Math.max(1, Math.ceil(size / chunk));
}

async function sha256Hasher(): Promise<IHasher> {
  return (await createSHA256()).init();
}

/** Encrypt a file under a fresh random key (or `fileKey`, to repeat a failed
 * upload byte for byte). `onProgress` counts plaintext bytes. */
export async function encryptAttachment(
  data: Blob | Uint8Array,
  onProgress?: Progress,
  fileKey?: Uint8Array,
): Promise<{ ciphertext: Blob; key: AttachmentKey }> {
  const raw = fileKey === undefined ? randomBytes(KEY_SIZE) : buf(fileKey);
  if (raw.length !== KEY_SIZE) throw new Error("an attachment key is 32 bytes");
  const key = await aesKey(raw, "encrypt");
  const hash = await sha256Hasher();
  const size = data instanceof Uint8Array ? data.length : data.size;
  const n = chunkCount(size, CHUNK_SIZE);
  const parts: Bytes[] = [];
  for (let i = 0; i < n; i++) {
    const start = i * CHUNK_SIZE;
    const end = Math.min(size, start + CHUNK_SIZE);
    const plain = await read(data, start, end);
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce(i, i === n - 1), additionalData: AAD, tagLength: 128 }, key, plain),
    );
    hash.update(sealed);
    parts.push(sealed);
    onProgress?.(end, size);
  }
  return {
    ciphertext: new Blob(parts, { type: "application/octet-stream" }),
    key: { algorithm: ATTACHMENT_ALGORITHM, key: b64encode(raw), sha256: b64encode(hash.digest("binary")) },
  };
}

/** Check the ciphertext's SHA-256, then decrypt it. `decryption_failed` if
 * the hash does not match (before anything is decrypted), a chunk was
 * changed, or the file was cut short; `bad_payload` for a malformed key.
 * `onProgress` counts the hash pass and then the decryption pass over the
 * ciphertext (total: twice its size). */
export async function decryptAttachment(ciphertext: Blob | Uint8Array, key: AttachmentKey, onProgress?: Progress): Promise<Uint8Array> {
  const [raw, expected] = attachmentKeyBytes(key);
  const size = ciphertext instanceof Uint8Array ? ciphertext.length : ciphertext.size;
  const sealedChunk = CHUNK_SIZE + TAG_SIZE;
  const hash = await sha256Hasher();
  for (let start = 0; start < size; start += 16 * sealedChunk) {
    const end = Math.min(size, start + 16 * sealedChunk);
    hash.update(await read(ciphertext, start, end));
    onProgress?.(end, 2 * size);
  }
  if (!bytesEqual(hash.digest("binary"), expected)) throw new CryptoError("decryption_failed", "the attachment's SHA-256 does not match");
  const aes = await aesKey(raw, "decrypt");
  const n = chunkCount(size, sealedChunk);
  if (size - (n - 1) * sealedChunk < TAG_SIZE) throw new CryptoError("decryption_failed", "the attachment is cut short");
  const out = new Uint8Array(size - n * TAG_SIZE);
  let o = 0;
  for (let i = 0; i < n; i++) {
    const start = i * sealedChunk;
    const end = Math.min(size, start + sealedChunk);
    let plain: ArrayBuffer;
    try {
      plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce(i, i === n - 1), additionalData: AAD, tagLength: 128 },
        aes,
        await read(ciphertext, start, end),
      );
    } catch {
      throw new CryptoError("decryption_failed", "the attachment was changed");
    }
    out.set(new Uint8Array(plain), o);
    o += plain.byteLength;
    onProgress?.(size + end, 2 * size);
  }
  return out;
}
