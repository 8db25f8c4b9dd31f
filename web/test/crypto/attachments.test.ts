import { describe, expect, it } from "vitest";
import {
  ATTACHMENT_ALGORITHM,
  CHUNK_SIZE,
  decryptAttachment,
  encryptAttachment,
  TAG_SIZE,
} from "../../src/crypto/attachments";
import { b64decode, b64encode, bytesEqual, randomBytes } from "../../src/crypto/base64";
import { kindOf } from "./helpers";

async function bytesOf(blob: Blob): Promise<Uint8Array> {
  return new Uint8Array(await blob.arrayBuffer());
}

describe("attachments", () => {
  it("round-trips at the chunk boundaries", async () => {
    for (const size of [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 5]) {
      const data = randomBytes(size);
      const { ciphertext, key } = await encryptAttachment(new Blob([data]));
      const chunks = Math.max(1, Math.ceil(size / CHUNK_SIZE));
      expect(ciphertext.size, `size ${size}`).toBe(size + chunks * TAG_SIZE);
      expect(key.algorithm).toBe(ATTACHMENT_ALGORITHM);
      expect(b64decode(key.key)).toHaveLength(32);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await ciphertext.arrayBuffer()));
      expect(key.sha256).toBe(b64encode(digest));
      expect(bytesEqual(await decryptAttachment(ciphertext, key), data)).toBe(true);
      expect(bytesEqual(await decryptAttachment(await bytesOf(ciphertext), key), data)).toBe(true);
    }
  });

  it("is deterministic under a given key, fresh otherwise", async () => {
    const data = randomBytes(1000);
    const key = randomBytes(32);
    const a = await encryptAttachment(data, undefined, key);
    const b = await encryptAttachment(data, undefined, key);
    expect(await bytesOf(a.ciphertext)).toEqual(await bytesOf(b.ciphertext));
    const c = await encryptAttachment(data);
    expect(c.key.key).not.toBe(a.key.key);
    await expect(encryptAttachment(data, undefined, new Uint8Array(16))).rejects.toThrow();
  });

  it("reports progress", async () => {
    const seen: [number, number][] = [];
    const data = randomBytes(2 * CHUNK_SIZE + 1);
    const { ciphertext, key } = await encryptAttachment(new Blob([data]), (done, total) => seen.push([done, total]));
    expect(seen).toEqual([
      [CHUNK_SIZE, data.length],
      [2 * CHUNK_SIZE, data.length],
      [data.length, data.length],
    ]);
    const back: [number, number][] = [];
    await decryptAttachment(ciphertext, key, (done, total) => back.push([done, total]));
    expect(back.at(-1)).toEqual([2 * ciphertext.size, 2 * ciphertext.size]);
  });

  it("fails closed: hash first, then every chunk", async () => {
    const data = randomBytes(CHUNK_SIZE + 10);
    const { ciphertext, key } = await encryptAttachment(data);
    const raw = await bytesOf(ciphertext);
    const flipped = raw.slice();
    flipped[5] = flipped[5]! ^ 1;
    expect(await kindOf(() => decryptAttachment(flipped, key))).toBe("decryption_failed");
    // even with a matching hash, a changed chunk does not open
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", flipped));
    expect(await kindOf(() => decryptAttachment(flipped, { ...key, sha256: b64encode(digest) }))).toBe("decryption_failed");
    // cut at a chunk boundary: the last chunk is not marked last
    const cut = raw.slice(0, CHUNK_SIZE + TAG_SIZE);
    const cutDigest = new Uint8Array(await crypto.subtle.digest("SHA-256", cut));
    expect(await kindOf(() => decryptAttachment(cut, { ...key, sha256: b64encode(cutDigest) }))).toBe("decryption_failed");
    const tiny = raw.slice(0, CHUNK_SIZE + TAG_SIZE + 3);
    const tinyDigest = new Uint8Array(await crypto.subtle.digest("SHA-256", tiny));
    expect(await kindOf(() => decryptAttachment(tiny, { ...key, sha256: b64encode(tinyDigest) }))).toBe("decryption_failed");
    const empty = new Uint8Array(0);
    const emptyDigest = new Uint8Array(await crypto.subtle.digest("SHA-256", empty));
    expect(await kindOf(() => decryptAttachment(empty, { ...key, sha256: b64encode(emptyDigest) }))).toBe("decryption_failed");
  });

  it("refuses malformed keys", async () => {
    const { ciphertext, key } = await encryptAttachment(randomBytes(10));
    for (const bad of [
      { ...key, algorithm: "other" },
      { ...key, key: "AAAA" },
      { ...key, sha256: "!!" },
      { ...key, key: b64encode(randomBytes(32)) },
    ]) {
      const expected = bad.key.length === 43 && bad.algorithm === ATTACHMENT_ALGORITHM && bad.sha256 === key.sha256 ? "decryption_failed" : "bad_payload";
      expect(await kindOf(() => decryptAttachment(ciphertext, bad))).toBe(expected);
    }
  });
});
