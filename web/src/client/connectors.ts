// Connectors: the user's devices that relay another network (e-mail: a
// device running `taube mail run`), found and set up from here. The browser
// never runs IMAP nor keeps a mail password: it hands the account to the
// connector device in an Olm to-device message only that device can read,
// and shows the status the device answers (taube.connectors.control).
//
// Only the user's own devices count both ways: a status is believed only
// from a device certified by the identity key this browser holds, and
// requests go only to such devices.
import { signal, type ReadonlySignal } from "@preact/signals";
import { randomId } from "../crypto/base64";
import type { VerifiedDevice } from "../crypto/keys";
import type { Account } from "./types";

/** To-device payload types (the same strings as taube.connectors.control). */
export const CONNECTOR = {
  prefix: "taube.connector.",
  query: "taube.connector.query",
  configure: "taube.connector.configure",
  disconnect: "taube.connector.disconnect",
  status: "taube.connector.status",
} as const;

export const CONNECTOR_STATES = ["unconfigured", "checking", "connected", "auth_failed", "reconnecting", "failed"] as const;
export type ConnectorState = (typeof CONNECTOR_STATES)[number];

/** What a connector device last said about itself. */
export interface ConnectorStatus {
  device: string;
  network: string;
  state: ConnectorState;
  /** the account it relays ("" if none) */
  address: string;
  /** why it is not connected */
  error: string;
  /** its OpenPGP key */
  fingerprint: string;
}

/** What became of one request (`configure`, `disconnect`). */
export interface ConnectorAnswer {
  outcome: ConnectorState;
  reason: string;
}

/** The account the settings screen hands over (servers empty: autoconfig). */
export interface MailSettings {
  address: string;
  password: string;
  imap_host?: string;
  imap_port?: number;
  imap_security?: "ssl" | "starttls" | "plain";
  smtp_host?: string;
  smtp_port?: number;
  smtp_security?: "ssl" | "starttls" | "plain";
  user?: string;
  display_name?: string;
}

/** What Connectors needs of the carrier. */
export interface DeviceSender {
  sendToDevice(device: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void>;
}

/** What the screens see of the connectors (model.ts's `Client.connectors`). */
export interface ConnectorsView {
  /** device → its last status */
  readonly statuses: ReadonlySignal<Record<string, ConnectorStatus>>;
  /** request id → its answer */
  readonly answers: ReadonlySignal<Record<string, ConnectorAnswer>>;
  query(): Promise<void>;
  configure(device: string, settings: MailSettings): Promise<string>;
  disconnect(device: string): Promise<string>;
}

/** connectors → receiver: the `taube.connector.*` to-device messages. */
export interface ConnectorInbox {
  onMessage(sender: VerifiedDevice, type: string, content: Record<string, unknown>): boolean;
}

export class Connectors implements ConnectorInbox, ConnectorsView {
  /** device → its last status */
  readonly statuses = signal<Record<string, ConnectorStatus>>({});
  /** request id → its answer (the latest one: "checking", then the result) */
  readonly answers = signal<Record<string, ConnectorAnswer>>({});
  private readonly devices = new Map<string, VerifiedDevice>();

  constructor(
    private readonly account: Account,
    private readonly carrier: DeviceSender,
  ) {}

  /** Ask every other device of the user's what it relays; connectors answer
   * (into `statuses`), the others stay silent. */
  async query(): Promise<void> {
    const keys = this.account.need();
    await keys.refresh([keys.user]);
    const own = (await keys.devicesOf([keys.user])).filter((d) => d.device !== keys.device && this.isOwn(d));
    await Promise.all(own.map((d) => this.carrier.sendToDevice(d, CONNECTOR.query, { request: newRequest() }).catch((e: unknown) => console.info("connector query", e))));
  }

  /** Hand `settings` to the connector `device`; returns the request id whose
   * answer will appear in `answers`. */
  async configure(device: string, settings: MailSettings): Promise<string> {
    const request = newRequest();
    this.answers.value = { ...this.answers.value, [request]: { outcome: "checking", reason: "" } };
    await this.carrier.sendToDevice(this.need(device), CONNECTOR.configure, { request, network: "email", account: settings });
    return request;
  }

  /** Ask `device` to forget its account. */
  async disconnect(device: string): Promise<string> {
    const request = newRequest();
    await this.carrier.sendToDevice(this.need(device), CONNECTOR.disconnect, { request, network: "email" });
    return request;
  }

  /** A `taube.connector.*` payload arrived (the receiver checked its Olm
   * sender). Returns whether it was believed. */
  onMessage(sender: VerifiedDevice, type: string, content: Record<string, unknown>): boolean {
    if (type !== CONNECTOR.status || !this.isOwn(sender)) return false;
    const state = content.state;
    if (typeof state !== "string" || !(CONNECTOR_STATES as readonly string[]).includes(state)) return false;
    const text = (name: string) => (typeof content[name] === "string" ? (content[name] as string).slice(0, 1000) : "");
    this.devices.set(sender.device, sender);
    const status: ConnectorStatus = {
      device: sender.device,
      network: text("network"),
      state: state as ConnectorState,
      address: text("address"),
      error: text("error"),
      fingerprint: text("fingerprint"),
    };
    this.statuses.value = { ...this.statuses.value, [sender.device]: status };
    const outcome = text("outcome");
    const request = text("request");
    if (request && (CONNECTOR_STATES as readonly string[]).includes(outcome)) {
      this.answers.value = { ...this.answers.value, [request]: { outcome: outcome as ConnectorState, reason: text("reason") } };
    }
    return true;
  }

  private isOwn(device: VerifiedDevice): boolean {
    const keys = this.account.need();
    return device.user === keys.user && device.identityKey === keys.identity.publicKey;
  }

  private need(device: string): VerifiedDevice {
    const found = this.devices.get(device);
    if (!found) throw new Error("that device has not answered as a connector");
    return found;
  }
}

function newRequest(): string {
  return randomId(12);
}
