import { describe, expect, it } from "vitest";
import type { MessagePayload, ToDevicePayload } from "../../src/gen/proto";
import { fromUtf8, utf8 } from "../../src/crypto/base64";
import type { VerifiedDevice } from "../../src/crypto/keys";
import {
  checkBinding,
  checkToDeviceBinding,
  decodeMessagePayload,
  decodePayload,
  decodeToDevicePayload,
  encodePayload,
  roomKeyOf,
  TYPE_ROOM_KEY,
} from "../../src/crypto/payload";
import { CONVERSATION, kindOf, messageId } from "./helpers";

const KEY_A = "A".repeat(43);
const KEY_B = "B".repeat(43);
const message: MessagePayload = {
  sender: "alice@example.org",
  sender_device: "D".repeat(22),
  conversation: CONVERSATION,
  message_id: messageId(1),
  type: "text",
  content: { text: "hi" },
};
const sender: VerifiedDevice = { user: "alice@example.org", device: "D".repeat(22), curve25519: KEY_B, ed25519: KEY_A, identityKey: KEY_A };
const toDevice: ToDevicePayload = {
  sender: "alice@example.org",
  sender_device: "D".repeat(22),
  sender_key: KEY_A,
  recipient: "bob@example.org",
  recipient_device: "E".repeat(22),
  recipient_key: KEY_B,
  type: TYPE_ROOM_KEY,
  content: { conversation: CONVERSATION, session_id: "S".repeat(43), session_key: "k" },
};

describe("payloads", () => {
  it("encode in the struct's field order, empty content left out", () => {
    expect(fromUtf8(encodePayload(message))).toBe(
      `{"sender":"alice@example.org","sender_device":"${"D".repeat(22)}","conversation":"${CONVERSATION}","message_id":"${messageId(1)}","type":"text","content":{"text":"hi"}}`,
    );
    expect(fromUtf8(encodePayload({ ...message, content: {} }))).not.toContain("content");
    expect(decodeMessagePayload(encodePayload({ ...message, content: {} })).content).toEqual({});
    expect(fromUtf8(encodePayload({ conversation: CONVERSATION, session_id: "S".repeat(43), session_key: "k" }))).toBe(
      `{"conversation":"${CONVERSATION}","session_id":"${"S".repeat(43)}","session_key":"k"}`,
    );
  });

  it("decode with unknown fields dropped, invalid ones refused", async () => {
    expect(decodePayload(utf8(JSON.stringify({ ...message, later: [1] })), "message")).toEqual(message);
    expect(decodePayload(JSON.stringify(toDevice), "to_device")).toEqual(toDevice);
    for (const bad of ["", "[]", "null", '"x"', JSON.stringify({ ...message, sender: "ALICE@example.org" }), JSON.stringify({ ...message, sender: "a@b.c\n" })]) {
      expect(await kindOf(() => decodeMessagePayload(utf8(bad))), bad).toBe("bad_payload");
    }
    expect(await kindOf(() => decodeMessagePayload(new Uint8Array([0x7b, 0xff])))).toBe("bad_payload");
    expect(await kindOf(() => decodeToDevicePayload(utf8(JSON.stringify({ ...toDevice, recipient_key: `${KEY_B}==` }))))).toBe("bad_payload");
    expect(decodeToDevicePayload(utf8(JSON.stringify({ ...toDevice, recipient_key: `${KEY_B}=` }))).recipient_key).toBe(`${KEY_B}=`);
    const deep = "[".repeat(100000) + "]".repeat(100000);
    expect(await kindOf(() => decodeMessagePayload(utf8(`{"content":${deep}}`)))).toBe("bad_payload");
  });

  it("check the binding to the envelope", async () => {
    checkBinding(message, message.sender, message.sender_device, CONVERSATION, messageId(1));
    const envelopes: [string, string, string, string][] = [
      ["bob@example.org", message.sender_device, CONVERSATION, messageId(1)],
      [message.sender, "X".repeat(22), CONVERSATION, messageId(1)],
      [message.sender, message.sender_device, "X".repeat(22), messageId(1)],
      [message.sender, message.sender_device, CONVERSATION, messageId(2)],
    ];
    for (const [u, d, c, m] of envelopes) {
      expect(await kindOf(() => checkBinding(message, u, d, c, m))).toBe("bad_payload");
    }
    checkToDeviceBinding(toDevice, sender, "bob@example.org", "E".repeat(22), KEY_B);
    for (const [s, r, d, k] of [
      [{ ...sender, user: "carol@example.org" }, "bob@example.org", "E".repeat(22), KEY_B],
      [{ ...sender, device: "X".repeat(22) }, "bob@example.org", "E".repeat(22), KEY_B],
      [{ ...sender, ed25519: KEY_B }, "bob@example.org", "E".repeat(22), KEY_B],
      [sender, "carol@example.org", "E".repeat(22), KEY_B],
      [sender, "bob@example.org", "X".repeat(22), KEY_B],
      [sender, "bob@example.org", "E".repeat(22), KEY_A],
    ] as const) {
      expect(await kindOf(() => checkToDeviceBinding(toDevice, s, r, d, k))).toBe("bad_payload");
    }
  });

  it("read room keys", async () => {
    expect(roomKeyOf(toDevice)).toEqual({ algorithm: "taube.megolm.v1", ...toDevice.content });
    expect(await kindOf(() => roomKeyOf({ ...toDevice, type: "other" }))).toBe("bad_payload");
    for (const content of [{}, { ...toDevice.content, algorithm: "m.megolm.v1" }, { ...toDevice.content, session_id: "short" }, { ...toDevice.content, session_key: "" }, { ...toDevice.content, conversation: 5 }]) {
      expect(await kindOf(() => roomKeyOf({ ...toDevice, content })), JSON.stringify(content)).toBe("bad_payload");
    }
    expect(roomKeyOf({ ...toDevice, content: { ...toDevice.content, extra: true } }).session_key).toBe("k");
  });
});
