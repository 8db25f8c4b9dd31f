// The one seam where an encrypted item leaves this device. The outbox sends
// messages through it and everything that talks device to device (Megolm
// key shares, the link grant, emoji verification) sends its to-device
// batches through it; none of them touches the connection. `ServerCarrier`
// carries them over the taube server's WebSocket.
import { randomId } from "../crypto/base64";
import type { ClientFrame, ToDeviceMessage } from "../gen/proto";
import type { Connection } from "./connection";
import { ClientError } from "./types";

/** One encrypted message for a conversation, as the outbox built it. */
export interface Envelope {
  conversation: string;
  /** the message id: sending the same id again is not a second message */
  id: string;
  /** the Megolm ciphertext (padded base64) */
  body: string;
  /** the encrypted blobs the message names (kept until the members have them) */
  blobs: string[];
  /** the server drops the message after this long (disappearing messages) */
  expireMs: number | null;
}

/**
 * Contract:
 * - `deliver` and `sendToDevices` resolve only once the server acknowledged
 *   the item durably (`deliver` with its sequence number in the
 *   conversation). They reject with `Disconnected` (not sent, or not known
 *   to be: try again later), `ServerError` (its `transient` says whether a
 *   retry can help) or `ClientError` (refused for good).
 * - They are idempotent on the id: an envelope sent again with the same id
 *   (after a reconnect, a reload) is stored once.
 * - They keep no order between calls; the outbox keeps the order within a
 *   conversation by sending one envelope at a time.
 * - `ready` says whether sending can be tried now; whoever waits for it is
 *   woken by the engine when the carrier comes online.
 */
export interface Carrier {
  ready(): boolean;
  deliver(envelope: Envelope): Promise<number>;
  /** Olm-encrypted messages for single devices, in one batch named `id`. */
  sendToDevices(messages: ToDeviceMessage[], id?: string): Promise<void>;
}

export class ServerCarrier implements Carrier {
  constructor(private readonly connection: Connection) {}

  ready(): boolean {
    return this.connection.online;
  }

  async deliver(envelope: Envelope): Promise<number> {
    const frame: ClientFrame = { type: "msg.send", conversation: envelope.conversation, id: envelope.id, body: envelope.body };
    if (envelope.blobs.length) frame.blobs = envelope.blobs;
    if (envelope.expireMs) frame.expire_ms = envelope.expireMs;
    const sent = await this.connection.request(frame, envelope.id);
    if (sent.type !== "msg.sent") throw new ClientError("unexpected answer to a send");
    return sent.seq;
  }

  async sendToDevices(messages: ToDeviceMessage[], id: string = randomId()): Promise<void> {
    await this.connection.request({ type: "todevice.send", id, messages }, id);
  }
}
