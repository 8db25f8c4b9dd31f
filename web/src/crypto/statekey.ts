// Sealing a conversation's title and avatar from the server
// (taube.client.statekey, byte-compatible).
//
// Title and avatar are signed state events whose content is sealed:
// AES-256-GCM under the conversation's state key, the key's id in front.
// Sealed form: `key id (8 bytes) || nonce (12) || ciphertext`; the
// associated data binds it to the conversation and the field.
import { buf, concatBytes, fromHex, randomBytes, toHex, utf8, type Bytes } from "./base64";

/** MessagePayload.type of the message that hands a state key to members
 * (content `{id, key}`: the id and the key as hex). */
export const STATE_KEY_TYPE = "statekey";
export const KEY_ID_BYTES = 8;

export type StateField = "title" | "avatar";

/** A fresh state key and its id (16 hex characters). */
export function newStateKey(): { id: string; key: Bytes } {
  return { id: toHex(randomBytes(KEY_ID_BYTES)), key: randomBytes(32) };
}

function aad(conversation: string, field: string): Bytes {
  return utf8(`taube.state.sealed.v1|${conversation}|${field}`);
}

export async function sealState(keyId: string, key: Uint8Array, conversation: string, field: StateField, text: Uint8Array): Promise<Bytes> {
  const id = fromHex(keyId);
  if (id.length !== KEY_ID_BYTES) throw new Error("a state key id is 8 bytes of hex");
  const nonce = randomBytes(12);
  const aes = await crypto.subtle.importKey("raw", buf(key), { name: "AES-GCM" }, false, ["encrypt"]);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad(conversation, field) }, aes, buf(text));
  return concatBytes(id, nonce, new Uint8Array(sealed));
}

/** The id of the key a sealed value was made with (hex). */
export function keyIdOf(sealed: Uint8Array): string {
  return toHex(sealed.subarray(0, KEY_ID_BYTES));
}

/** The plaintext, or null if the key, conversation or field is wrong or the value was changed. */
export async function unsealState(key: Uint8Array, conversation: string, field: StateField, sealed: Uint8Array): Promise<Bytes | null> {
  const body = sealed.subarray(KEY_ID_BYTES);
  if (body.length < 12 + 16) return null;
  try {
    const aes = await crypto.subtle.importKey("raw", buf(key), { name: "AES-GCM" }, false, ["decrypt"]);
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: buf(body.slice(0, 12)), additionalData: aad(conversation, field) },
      aes,
      buf(body.slice(12)),
    );
    return new Uint8Array(plain);
  } catch {
    return null;
  }
}
