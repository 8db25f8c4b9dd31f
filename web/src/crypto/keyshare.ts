// Sharing Megolm room keys over Olm, and accepting them (taube.crypto.key_share).
//
// The sender encrypts its OutboundGroup's key once per member device; a
// device without an Olm session is handed back so the caller can claim a
// one-time key, create the session and call again. Mark devices as having
// the key (`OutboundGroup.markShared`) only once the server acknowledged the
// to-device messages. On the receiving side `acceptRoomKey` is the only way
// a key from another device enters the InboundGroupStore: the Olm sender
// becomes the session's creator, so forwarded keys are useless.
import type { ToDeviceMessage, ToDevicePayload } from "../gen/proto";
import { TYPE_ROOM_KEY } from "../gen/proto";
import { b64encodePadded } from "./base64";
import { CryptoError } from "./errors";
import type { VerifiedDevice } from "./keys";
import type { InboundGroupStore, OutboundGroup } from "./megolm";
import type { OlmMachine } from "./olm";
import { roomKeyContent, roomKeyOf } from "./payload";

/** The room key of `group` encrypted for each device that needs it.
 * `messages[].body` is padded base64, ready for a `todevice.send` frame. */
export function shareRoomKey(
  olm: OlmMachine,
  group: OutboundGroup,
  devices: VerifiedDevice[],
): { messages: ToDeviceMessage[]; withoutSession: VerifiedDevice[] } {
  const content = roomKeyContent(group.roomKey());
  const messages: ToDeviceMessage[] = [];
  const withoutSession: VerifiedDevice[] = [];
  for (const device of devices) {
    if (!group.needsKey(device)) continue;
    if (!olm.hasSession(device)) {
      withoutSession.push(device);
      continue;
    }
    const body = olm.encryptToDevice(device, TYPE_ROOM_KEY, content);
    messages.push({ user: device.user, device: device.device, body: b64encodePadded(body) });
  }
  return { messages, withoutSession };
}

/** File the room key in `payload`, which `OlmMachine.decryptToDevice`
 * returned for a message from `sender`. Returns whether the store changed. */
export function acceptRoomKey(store: InboundGroupStore, sender: VerifiedDevice, payload: ToDevicePayload): boolean {
  if (payload.sender !== sender.user || payload.sender_device !== sender.device) {
    throw new CryptoError("bad_payload", "a room key is accepted only from the device that created it");
  }
  return store.addRoomKey(roomKeyOf(payload), sender);
}
