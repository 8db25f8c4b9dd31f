// Where a message leaves the device: the Carrier seam (the SDK's
// taube.client.carrier).
//
// The outbox keeps what the user sent until a carrier has delivered it; a
// carrier turns one outbox item (plaintext, an `Outgoing`) into what its
// network carries and hands it over. Today there is one, `TaubeCarrier`:
// Megolm-encrypted to the conversation's member devices through the taube
// server. A connector (e-mail, ...) would add its own for the conversations
// it serves (`Outbox.route`), encrypting its own way.
//
// What a carrier guarantees (the outbox relies on it):
//
// - Acknowledged means durable. `deliver` resolves only once the next hop
//   holds the item durably (the taube server: committed, with its sequence
//   number in the conversation); a rejection means it may or may not have
//   arrived.
// - Idempotent on the message id. Delivering the same item again (after a
//   reconnect, a reload) never makes a second message: the taube server
//   answers a repeated (device, message id) with the first sequence number;
//   a mail carrier would reuse the same Message-ID.
// - Errors say whether to retry. `Disconnected` and a `ServerError` whose
//   `transient` is set: try again later (the outbox retries after a short
//   random pause); anything else (`ClientError`, a refused `ServerError`, a
//   crypto error): refused for good, the message is marked failed.
// - Order is the outbox's. The outbox hands a carrier one item at a time, in
//   the order the user sent them; a carrier must not reorder within a
//   conversation.
// - Per-item state is the carrier's. What a carrier keeps for an item
//   between attempts (the taube carrier: the ciphertext, so a retry sends the
//   same bytes) it drops in `settle`, which the outbox calls once the item
//   has left the outbox (delivered, or failed for good).
//
// `ready` says whether delivering can be tried now; the outbox is woken by
// the engine when the carrier comes online. Olm-encrypted messages to single
// devices (key shares, emoji verification, the link grant) leave through
// `TaubeCarrier.sendToDevices` / `sendToDevice`.
import { b64encodePadded, randomId } from "../crypto/base64";
import type { VerifiedDevice } from "../crypto/keys";
import { shareRoomKey } from "../crypto/keyshare";
import { OutboundGroup } from "../crypto/megolm";
import type { ClaimResponse, ClientFrame, MessagePayload, ToDeviceMessage } from "../gen/proto";
import type { Api } from "./api";
import { entriesOf } from "./attachments";
import type { Connection } from "./connection";
import type { Db } from "./db";
import { ClientError, type Account, type ChainSource } from "./types";

/** One outbox item: what the user sent, not yet encrypted. */
export interface Outgoing {
  /** the message id: delivering the same id again is not a second message */
  id: string;
  conversation: string;
  payload: MessagePayload;
  /** disappearing messages: the server drops it this long after it arrives */
  expireMs: number | null;
}

export interface Carrier {
  /** whether delivering can be tried now */
  ready(): boolean;
  /** Hand `item` over durably; the conversation's sequence number of it if
   * the network has one. */
  deliver(item: Outgoing): Promise<number | null>;
  /** Forget what was kept for message `id` (delivered, or failed for good). */
  settle(id: string): Promise<void> | void;
}

/** Through the taube server: Megolm to the conversation, Olm to devices. */
export class TaubeCarrier implements Carrier {
  constructor(
    private readonly account: Account,
    private readonly db: Db,
    private readonly api: Api,
    private readonly chains: ChainSource,
    private readonly connection: Connection,
  ) {}

  ready(): boolean {
    return this.connection.online;
  }

  async deliver(item: Outgoing): Promise<number> {
    const keys = this.account.need();
    let body = (await this.db.get("kv", bodyKey(item.id)))?.value as string | undefined;
    if (body === undefined) {
      // encrypt once: a retry sends the same ciphertext
      const group = await this.shareKeys(item.conversation);
      body = b64encodePadded(group.encryptPayload(item.payload, Date.now()));
      await this.db.put("kv", { key: bodyKey(item.id), value: body });
      await keys.save();
    }
    const blobs = entriesOf(item.payload.content?.attachments)
      .map((e) => e.blob)
      .filter((b): b is string => !!b);
    const frame: ClientFrame = { type: "msg.send", conversation: item.conversation, id: item.id, body };
    if (blobs.length) frame.blobs = blobs;
    if (item.expireMs) frame.expire_ms = item.expireMs;
    const sent = await this.connection.request(frame, item.id);
    if (sent.type !== "msg.sent") throw new ClientError("unexpected answer to a send");
    return sent.seq;
  }

  async settle(id: string): Promise<void> {
    await this.db.delete("kv", bodyKey(id));
  }

  /** The conversation's Megolm session (a new one when members left, it is
   * old, or the timer says so), its key shared with every member device
   * that lacks it. */
  private async shareKeys(conversation: string): Promise<OutboundGroup> {
    const keys = this.account.need();
    const { state } = await this.chains.chain(conversation);
    const members = Object.keys(state.members).sort();
    const devices = (await keys.devicesOf(members)).filter((d) => !(d.user === keys.user && d.device === keys.device));
    const blocked = keys.blocked(members);
    if (blocked.length) throw new ClientError(`verify ${blocked.join(", ")} again before sending`);
    const now = Date.now();
    let group = keys.outbound.get(conversation);
    const timerMs = state.timerSeconds * 1000;
    if (!group || group.needsRotation(now, group.hasDeparted(devices)) || (timerMs && now - group.createdMs >= timerMs)) {
      group?.free();
      group = OutboundGroup.create(conversation, now);
      keys.outbound.set(conversation, group);
    }
    let { messages, withoutSession } = shareRoomKey(keys.olm, group, devices);
    if (withoutSession.length) {
      await this.claimSessions(withoutSession);
      messages = messages.concat(shareRoomKey(keys.olm, group, withoutSession).messages);
    }
    if (messages.length) {
      const shared = new Set(messages.map((m) => `${m.user}|${m.device}`));
      await keys.save();
      await this.sendToDevices(messages);
      group.markShared(devices.filter((d) => shared.has(`${d.user}|${d.device}`)));
    }
    await keys.save();
    return group;
  }

  /** Make Olm sessions with `devices` from one-time keys claimed for them
   * (a device whose key cannot be had is left out). */
  private async claimSessions(devices: VerifiedDevice[]): Promise<void> {
    const keys = this.account.need();
    const claimed = await this.api.call<ClaimResponse>("POST", "/keys/claim", {
      devices: devices.map((d) => ({ user: d.user, device: d.device })),
    });
    for (const device of devices) {
      const key = claimed.keys.find((k) => k.user === device.user && k.device === device.device);
      if (!key) continue;
      try {
        await keys.olm.createOutboundSession(device, key);
      } catch (e) {
        console.warn("no session with a device", e);
      }
    }
  }

  /** Olm-encrypted messages for single devices, in one batch named `id`,
   * acknowledged by the server (idempotent on `id`). */
  async sendToDevices(messages: ToDeviceMessage[], id: string = randomId()): Promise<void> {
    await this.connection.request({ type: "todevice.send", id, messages }, id);
  }

  /** One Olm-encrypted to-device message (making the Olm session if needed). */
  async sendToDevice(device: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    const keys = this.account.need();
    if (!keys.olm.hasSession(device)) {
      const claimed = await this.api.call<ClaimResponse>("POST", "/keys/claim", { devices: [{ user: device.user, device: device.device }] });
      const key = claimed.keys[0];
      if (!key) throw new ClientError(`device ${device.device} has no keys left`);
      await keys.olm.createOutboundSession(device, key);
    }
    const body = keys.olm.encryptToDevice(device, type, content);
    await keys.save();
    await this.sendToDevices([{ user: device.user, device: device.device, body: b64encodePadded(body) }]);
  }
}

/** where the ciphertext of an outbox item is kept between attempts */
function bodyKey(id: string): string {
  return `outbody:${id}`;
}
