// The plaintexts inside encrypted messages, and the checks that bind them to
// their envelopes (taube.crypto.payload).
//
// Every plaintext is UTF-8 JSON (binary goes inside as base64). Each payload
// repeats what its envelope claims and the receiver compares the two:
// - MessagePayload (Megolm): sender, sender device, conversation, message
//   id: `checkBinding`;
// - ToDevicePayload (Olm): sender user/device/Ed25519 key and recipient
//   user/device/Curve25519 key: `checkToDeviceBinding`.
// Room keys travel in a ToDevicePayload of type TYPE_ROOM_KEY and are
// accepted only from the session's creator (see keyshare.ts).
//
// Decoders apply the constraints of the Python structs and accept (and drop)
// unknown fields, so newer clients can add fields. Encoders leave `content`
// out when empty and `algorithm` when at its default, as msgspec's
// `omit_defaults` does.
import type { MessagePayload, RoomKey, ToDevicePayload } from "../gen/proto";
import { MEGOLM_ALGORITHM, TYPE_ROOM_KEY } from "../gen/proto";
import { fromUtf8, utf8, type Bytes } from "./base64";
import { CryptoError } from "./errors";
import { Fields, KEY, parseJsonObject, RANDOM_ID, USER, type StringRule } from "./fields";
import type { VerifiedDevice } from "./keys";

export { MEGOLM_ALGORITHM, TYPE_ROOM_KEY };
export type { MessagePayload, RoomKey, ToDevicePayload };

const PAYLOAD_TYPE: StringRule = { min: 1, max: 100 };
export const SESSION_ID: StringRule = { min: 43, max: 44 };
export const SESSION_KEY: StringRule = { min: 1, max: 1000 };

function isEmpty(content: Record<string, unknown> | undefined): boolean {
  return content === undefined || Object.keys(content).length === 0;
}

/** The JSON text of a MessagePayload (fields in the Python struct's order). */
export function encodeMessagePayload(p: MessagePayload): string {
  const { sender, sender_device, conversation, message_id, type, content } = p;
  const out: MessagePayload = { sender, sender_device, conversation, message_id, type };
  if (!isEmpty(content)) out.content = content;
  return JSON.stringify(out);
}

/** The JSON text of a ToDevicePayload. */
export function encodeToDevicePayload(p: ToDevicePayload): string {
  const { sender, sender_device, sender_key, recipient, recipient_device, recipient_key, type, content } = p;
  const out: ToDevicePayload = { sender, sender_device, sender_key, recipient, recipient_device, recipient_key, type };
  if (!isEmpty(content)) out.content = content;
  return JSON.stringify(out);
}

/** A RoomKey as plain data (the `content` of its ToDevicePayload). */
export function roomKeyContent(key: RoomKey): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (key.algorithm !== undefined && key.algorithm !== MEGOLM_ALGORITHM) out.algorithm = key.algorithm;
  out.conversation = key.conversation;
  out.session_id = key.session_id;
  out.session_key = key.session_key;
  return out;
}

/** UTF-8 JSON bytes of a payload (Python's `encode_payload`). */
export function encodePayload(p: MessagePayload | ToDevicePayload | RoomKey): Bytes {
  if ("sender_key" in p) return utf8(encodeToDevicePayload(p));
  if ("message_id" in p) return utf8(encodeMessagePayload(p));
  return utf8(JSON.stringify(roomKeyContent(p)));
}

function payloadFields(data: Uint8Array | string, kind: string): Fields {
  const fail = (m: string) => new CryptoError("bad_payload", `not a valid ${kind}: ${m}`);
  let text: string;
  if (typeof data === "string") text = data;
  else {
    try {
      text = fromUtf8(data);
    } catch {
      throw fail("invalid UTF-8");
    }
  }
  return parseJsonObject(text, fail);
}

export function decodeMessagePayload(data: Uint8Array | string): MessagePayload {
  return messagePayloadOf(payloadFields(data, "MessagePayload"));
}

function messagePayloadOf(f: Fields): MessagePayload {
  const out: MessagePayload = {
    sender: f.string("sender", USER),
    sender_device: f.string("sender_device", RANDOM_ID),
    conversation: f.string("conversation", RANDOM_ID),
    message_id: f.string("message_id", RANDOM_ID),
    type: f.string("type", PAYLOAD_TYPE),
    content: f.object("content", {}),
  };
  return out;
}

export function decodeToDevicePayload(data: Uint8Array | string): ToDevicePayload {
  const f = payloadFields(data, "ToDevicePayload");
  return {
    sender: f.string("sender", USER),
    sender_device: f.string("sender_device", RANDOM_ID),
    sender_key: f.string("sender_key", KEY),
    recipient: f.string("recipient", USER),
    recipient_device: f.string("recipient_device", RANDOM_ID),
    recipient_key: f.string("recipient_key", KEY),
    type: f.string("type", PAYLOAD_TYPE),
    content: f.object("content", {}),
  };
}

/** Decode and validate a plaintext; `bad_payload` for anything else. */
export function decodePayload(data: Uint8Array | string, kind: "message"): MessagePayload;
export function decodePayload(data: Uint8Array | string, kind: "to_device"): ToDevicePayload;
export function decodePayload(data: Uint8Array | string, kind: "message" | "to_device"): MessagePayload | ToDevicePayload {
  return kind === "message" ? decodeMessagePayload(data) : decodeToDevicePayload(data);
}

/** Refuse a Megolm payload that names another sender, place or id than its envelope. */
export function checkBinding(
  payload: MessagePayload,
  envelopeSender: string,
  envelopeDevice: string,
  conversation: string,
  messageId: string,
): void {
  if (payload.sender !== envelopeSender) throw new CryptoError("bad_payload", "the payload names another sender than the envelope");
  if (payload.sender_device !== envelopeDevice) {
    throw new CryptoError("bad_payload", "the payload names another sender device than the envelope");
  }
  if (payload.conversation !== conversation) throw new CryptoError("bad_payload", "the payload belongs to another conversation");
  if (payload.message_id !== messageId) throw new CryptoError("bad_payload", "the payload carries another message id than the envelope");
}

/** Refuse an Olm payload not from `sender` to this very device. */
export function checkToDeviceBinding(
  payload: ToDevicePayload,
  sender: VerifiedDevice,
  recipient: string,
  recipientDevice: string,
  recipientKey: string,
): void {
  if (payload.sender !== sender.user) throw new CryptoError("bad_payload", "the payload names another sender than the envelope");
  if (payload.sender_device !== sender.device) {
    throw new CryptoError("bad_payload", "the payload names another sender device than the envelope");
  }
  if (payload.sender_key !== sender.ed25519) throw new CryptoError("bad_payload", "the payload names another sender key than the certificate");
  if (payload.recipient !== recipient) throw new CryptoError("bad_payload", "the payload is for another user");
  if (payload.recipient_device !== recipientDevice) throw new CryptoError("bad_payload", "the payload is for another device");
  if (payload.recipient_key !== recipientKey) throw new CryptoError("bad_payload", "the payload is for another device key");
}

/** The RoomKey in a (binding-checked) to-device payload. */
export function roomKeyOf(payload: ToDevicePayload): RoomKey {
  if (payload.type !== TYPE_ROOM_KEY) throw new CryptoError("bad_payload", `not a room key: ${JSON.stringify(payload.type)}`);
  const f = Fields.of(payload.content ?? {}, (m) => new CryptoError("bad_payload", `not a valid RoomKey: ${m}`));
  const key: RoomKey = {
    algorithm: f.string("algorithm", { default: MEGOLM_ALGORITHM }),
    conversation: f.string("conversation", RANDOM_ID),
    session_id: f.string("session_id", SESSION_ID),
    session_key: f.string("session_key", SESSION_KEY),
  };
  if (key.algorithm !== MEGOLM_ALGORITHM) throw new CryptoError("bad_payload", `unknown room key algorithm ${JSON.stringify(key.algorithm)}`);
  return key;
}
