// Secrets at rest: sealed with AES-256-GCM under a WebCrypto key that is
// generated non-extractable and stored as a CryptoKey object in IndexedDB.
// Script in this origin can use the key but nobody can read its bytes, so a
// copy of the profile's files is not a copy of the secrets.
import { buf, fromUtf8, randomBytes, utf8 } from "../crypto/base64";
import type { Db } from "./db";

const KEY_NAME = "vault.key";
const AAD = utf8("taube.web.vault.v1");

export class Vault {
  private constructor(private readonly key: CryptoKey) {}

  static async open(db: Db): Promise<Vault> {
    const row = await db.get("kv", KEY_NAME);
    if (row !== undefined && row.value instanceof CryptoKey) return new Vault(row.value);
    const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, [
      "encrypt",
      "decrypt",
    ]);
    await db.put("kv", { key: KEY_NAME, value: key });
    return new Vault(key);
  }

  async seal(value: unknown): Promise<Uint8Array> {
    const iv = randomBytes(12);
    const data = utf8(JSON.stringify(value));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv: buf(iv), additionalData: buf(AAD) }, this.key, buf(data)),
    );
    const out = new Uint8Array(12 + sealed.length);
    out.set(iv);
    out.set(sealed, 12);
    return out;
  }

  async open<T>(sealed: Uint8Array): Promise<T> {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: buf(sealed.subarray(0, 12)), additionalData: buf(AAD) },
      this.key,
      buf(sealed.subarray(12)),
    );
    return JSON.parse(fromUtf8(new Uint8Array(plain))) as T;
  }
}
