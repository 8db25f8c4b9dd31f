// Linking a new device to the account. The existing device shows a code
// (linkStart); the new device logs in with it and asks every device of the
// account over Olm (loginWithLinkCode); the existing device's user confirms
// the request (linkConfirm), which sends the identity key, and the history
// if asked, back over Olm.
import { b64decode, b64encode, b64encodePadded, randomId, toHex } from "../crypto/base64";
import { IdentityKeyPair, verifyDevice, verifyIdentityKey, type VerifiedDevice } from "../crypto/keys";
import {
  checkLinkSecret,
  decodeLinkEnvelope,
  envelopeOlmBody,
  LINK_TTL_S,
  linkRequestBody,
  makeLinkCode,
  matchesFingerprint,
  parseLinkCode,
  provisionalDevice,
  TYPE_LINK_GRANT,
  TYPE_LINK_REQUEST,
} from "../crypto/linking";
import { DeviceAccount, OlmMachine } from "../crypto/olm";
import {
  PROTOCOL_VERSION,
  type ClaimResponse,
  type KeysResponse,
  type ServerFrame,
  type Session as SessionBody,
  type ToDevice as ToDeviceFrame,
  type ToDeviceMessage,
} from "../gen/proto";
import type { Api } from "./api";
import { isEntry } from "./attachments";
import type { TaubeCarrier } from "./carrier";
import type { Db } from "./db";
import { Keys } from "./keys";
import { ClientError, parseAddress, type Account, type HistoryTransfer, type LinkRequests } from "./types";
import type { Vault } from "./vault";

/** On the existing device: the code shown, and the request that came with it. */
interface PendingLink {
  secret: Uint8Array;
  expires: number;
  used: boolean;
  peer: VerifiedDevice | null;
  deliver: (request: { device: string; name: string }) => void;
}

export class Linking implements LinkRequests {
  private pending: PendingLink | null = null;

  constructor(
    private readonly account: Account,
    private readonly db: Db,
    private readonly vault: Vault,
    private readonly api: Api,
    private readonly carrier: TaubeCarrier,
    private readonly history: HistoryTransfer,
    /** start everything else with the keys the link brought */
    private readonly signedIn: (keys: Keys) => Promise<void>,
  ) {}

  /** On the new device: log in, then get the identity key from the
   * existing device showing `code` (its user confirms there). */
  async loginWithLinkCode(address: string, password: string, code: string, deviceName: string): Promise<void> {
    const { secret, fingerprint } = parseLinkCode(code);
    const user = parseAddress(address);
    const session = await this.api.call<SessionBody>("POST", "/sessions", { address: user, password, device_name: deviceName });
    this.api.token = session.token;
    const olm = new OlmMachine(DeviceAccount.create(), user, session.device);
    try {
      const found = await this.api.call<KeysResponse>("POST", "/keys/query", { users: [user] });
      const entry = found.users.find((u) => u.user === user);
      if (!entry?.identity) throw new ClientError("the account has no identity key");
      const identityKey = await verifyIdentityKey(entry.identity);
      if (!(await matchesFingerprint(identityKey, fingerprint))) {
        throw new ClientError("the code does not match this account: check it and try again");
      }
      const peers: VerifiedDevice[] = [];
      for (const keys of entry.devices ?? []) {
        try {
          peers.push(await verifyDevice(identityKey, keys));
        } catch {
          // a device without a valid certificate is not asked
        }
      }
      const claimed = peers.length
        ? await this.api.call<ClaimResponse>("POST", "/keys/claim", { devices: peers.map((p) => ({ user: p.user, device: p.device })) })
        : { keys: [] };
      const messages: ToDeviceMessage[] = [];
      for (const peer of peers) {
        const key = claimed.keys.find((k) => k.device === peer.device);
        if (!key) continue;
        await olm.createOutboundSession(peer, key);
        messages.push({ user, device: peer.device, body: b64encodePadded(linkRequestBody(olm, peer, secret, deviceName)) });
      }
      if (!messages.length) throw new ClientError("no device of this account can be reached");
      const grant = await awaitGrant(session.token, olm, peers, messages, secret);
      const identity = await IdentityKeyPair.fromSeed(b64decode(String(grant.identity ?? "")));
      if (identity.publicKey !== identityKey) throw new ClientError("the granted identity key is not the account's");
      const keys = await Keys.create(this.db, this.vault, this.api, session, identity, olm);
      await keys.publish();
      if (isEntry(grant.history)) await this.history.importHistory(grant.history);
      await this.signedIn(keys);
    } catch (e) {
      olm.account.free();
      olm.free();
      await this.api.call("DELETE", "/sessions/current").catch(() => undefined);
      this.api.token = null;
      throw e;
    }
  }

  /** On an existing device: a code (and QR) for the new device, and the
   * request it sends with it. */
  async linkStart(): Promise<{ code: string; request: Promise<{ device: string; name: string }> }> {
    const keys = this.account.need();
    const { code, secret } = await makeLinkCode(keys.identity.publicKey);
    let deliver: (request: { device: string; name: string }) => void = () => undefined;
    const request = new Promise<{ device: string; name: string }>((resolve) => (deliver = resolve));
    this.pending = { secret, expires: Date.now() + LINK_TTL_S * 1000, used: false, peer: null, deliver };
    return { code, request };
  }

  /** The user confirmed the new device: send it the identity key over Olm
   * (and this device's history, encrypted like an attachment, if asked). */
  async linkConfirm(device: string, shareHistory: boolean): Promise<void> {
    const keys = this.account.need();
    const pending = this.pending;
    if (!pending || pending.used || !pending.peer || pending.peer.device !== device) throw new ClientError("no link request is waiting");
    const content: Record<string, unknown> = { identity: b64encode(keys.identity.seed()), secret: toHex(pending.secret) };
    if (shareHistory) content.history = await this.history.exportHistory();
    const body = keys.olm.encryptToDevice(pending.peer, TYPE_LINK_GRANT, content);
    await this.carrier.sendToDevices([{ user: keys.user, device, body: b64encodePadded(body) }]);
    pending.used = true;
    this.pending = null;
    await keys.save();
  }

  /** A to-device frame on the existing device: the new device's request,
   * if a code is shown and the frame is one. */
  async onLinkRequest(frame: ToDeviceFrame, keysChanged: () => Promise<void>): Promise<boolean> {
    const keys = this.account.need();
    const pending = this.pending;
    const envelope = pending ? decodeLinkEnvelope(b64decode(frame.body)) : null;
    if (!pending || !envelope) return false;
    if (frame.sender !== keys.user || pending.used || Date.now() > pending.expires) return true;
    const peer = provisionalDevice(keys.user, envelope, frame.sender_device, keys.identity.publicKey);
    try {
      const payload = keys.olm.decryptToDevice(peer, envelopeOlmBody(envelope));
      const content = (payload.content ?? {}) as Record<string, unknown>;
      if (payload.type !== TYPE_LINK_REQUEST || !checkLinkSecret(pending.secret, String(content.secret ?? ""))) return true;
      await keysChanged();
      pending.peer = peer;
      pending.deliver({ device: frame.sender_device, name: String(content.name ?? "").slice(0, 100) });
    } catch (e) {
      console.warn("link request refused", e);
    }
    return true;
  }
}

/** On the new device, which has no connection yet: a socket of its own
 * (with the new session's token) that sends the requests and waits until
 * an existing device grants the link. */
function awaitGrant(
  token: string,
  olm: OlmMachine,
  peers: VerifiedDevice[],
  messages: ToDeviceMessage[],
  secret: Uint8Array,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/api/v1/ws");
    const timer = window.setTimeout(() => {
      ws.close();
      reject(new ClientError("the other device did not confirm in time"));
    }, LINK_TTL_S * 1000);
    const finish = (error: Error | null, grant?: Record<string, unknown>) => {
      window.clearTimeout(timer);
      ws.close();
      if (error) reject(error);
      else resolve(grant ?? {});
    };
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, token, client: "taube-web" }));
      ws.send(JSON.stringify({ type: "todevice.send", id: randomId(), messages }));
    };
    ws.onclose = () => finish(new ClientError("the connection closed before the link was confirmed"));
    ws.onmessage = (event) => {
      const frame = JSON.parse(String(event.data)) as ServerFrame;
      if (frame.type !== "todevice") return;
      ws.send(JSON.stringify({ type: "todevice.ack", seq: frame.seq }));
      const peer = peers.find((p) => p.device === frame.sender_device && p.user === frame.sender);
      if (!peer) return;
      try {
        const payload = olm.decryptToDevice(peer, b64decode(frame.body));
        const content = (payload.content ?? {}) as Record<string, unknown>;
        if (payload.type === TYPE_LINK_GRANT && checkLinkSecret(secret, String(content.secret ?? ""))) {
          ws.onclose = null;
          finish(null, content);
        }
      } catch {
        // not for us, or not from the device it claims
      }
    };
  });
}
