// Verifying a contact: the safety number, their device's QR code (which
// must name the identity key pinned here), or emoji (SAS) over Olm
// to-device messages, either side starting. A verified contact's key
// change stops sending to them until they are verified again.
import { signal } from "@preact/signals";
import { b64decode } from "../crypto/base64";
import type { VerifiedDevice } from "../crypto/keys";
import {
  EstablishedSas,
  formatSafetyNumber,
  newTransaction,
  safetyNumber,
  SAS_CANCEL,
  SAS_KEY,
  SAS_MAC,
  SAS_START,
  SasVerification,
  VerificationQr,
  verificationQr,
} from "../crypto/verification";
import type { TaubeCarrier } from "./carrier";
import type { Verification as VerificationView } from "./model";
import { ClientError, parseAddress, type Account, type Retry, type SasInbox, type Trust } from "./types";

/** One emoji verification, on either side. */
interface Flow {
  transaction: string;
  /** the other device (null until one answers a start) */
  peer: VerifiedDevice | null;
  /** devices a start went to */
  peers: VerifiedDevice[];
  sas: SasVerification;
  initiator: boolean;
  /** the initiator's, as received (responder side) */
  commitment: string;
  established: EstablishedSas | null;
  /** our user said the emoji match */
  confirmed: boolean;
  /** held until our user confirms */
  theirMac: string;
  done: boolean;
}

export class Verification implements SasInbox {
  readonly verification = signal<VerificationView | null>(null);
  private readonly flows = new Map<string, Flow>();

  constructor(
    private readonly account: Account,
    private readonly carrier: TaubeCarrier,
    private readonly trust: Trust,
    /** a user was verified: what waited for it may go out now */
    private readonly outbox: Retry,
    private readonly report: (error: unknown) => void,
  ) {}

  async safetyNumber(user: string): Promise<string> {
    const keys = this.account.need();
    await keys.refresh([user]);
    const theirs = keys.pinned(user);
    if (!theirs) throw new ClientError(`no identity key known for ${user}`);
    return formatSafetyNumber(await safetyNumber(keys.user, keys.identity.publicKey, user, theirs.identityKey));
  }

  async verificationQr(user: string): Promise<string> {
    const keys = this.account.need();
    return verificationQr(keys.user, keys.identity.publicKey, user);
  }

  /** Verify `user` by their device's QR code: it names their identity key,
   * which must be the one pinned here (else a key change, or not them). */
  async verifyScanned(user: string, scanned: string): Promise<void> {
    const keys = this.account.need();
    let code: VerificationQr;
    try {
      code = VerificationQr.fromBytes(b64decode(scanned.trim()));
    } catch {
      throw new ClientError("that is not a taube verification code");
    }
    if (code.user !== user) throw new ClientError(`that code is ${code.user}'s, not ${user}'s`);
    await keys.refresh([user]);
    if (keys.pinned(user)?.identityKey !== code.identityKey) {
      throw new ClientError(`the code does not match the key of ${user} this device knows: do not trust this chat until you know why`);
    }
    await this.trust.markVerified(user);
    this.outbox.wake();
  }

  /** Ask `user`'s devices to verify by emoji (SAS). */
  async verifyStart(user: string): Promise<void> {
    const keys = this.account.need();
    const other = parseAddress(user);
    await keys.refresh([other]);
    const devices = (await keys.devicesOf([other])).filter((d) => !(d.user === keys.user && d.device === keys.device));
    if (!devices.length) throw new ClientError(`${other} has no device to verify with`);
    const transaction = newTransaction();
    const flow: Flow = { transaction, peer: null, peers: devices, sas: new SasVerification(keys.user, keys.device, transaction), initiator: true, commitment: "", established: null, confirmed: false, theirMac: "", done: false };
    this.flows.set(transaction, flow);
    this.verification.value = { stage: "waiting", transaction, user: other };
    const commitment = await flow.sas.commitment();
    for (const device of devices) await this.carrier.sendToDevice(device, SAS_START, { txn: transaction, commitment });
  }

  async verifyAccept(transaction: string): Promise<void> {
    const flow = this.flow(transaction);
    if (!flow.peer) throw new ClientError("nothing to accept");
    this.verification.value = { stage: "waiting", transaction, user: flow.peer.user };
    await this.carrier.sendToDevice(flow.peer, SAS_KEY, { txn: transaction, key: flow.sas.publicKey });
  }

  async verifyConfirm(transaction: string): Promise<void> {
    const keys = this.account.need();
    const flow = this.flow(transaction);
    if (!flow.established || !flow.peer) throw new ClientError("nothing to confirm yet");
    flow.confirmed = true;
    const tag = flow.established.mac("identity", keys.identity.publicKey);
    await this.carrier.sendToDevice(flow.peer, SAS_MAC, { txn: transaction, mac: tag });
    await this.sasFinish(flow);
  }

  async verifyCancel(transaction: string): Promise<void> {
    const flow = this.flows.get(transaction);
    this.verification.value = null;
    if (!flow || flow.done) return;
    flow.done = true;
    this.freeFlow(flow);
    for (const device of flow.peer ? [flow.peer] : flow.peers) {
      await this.carrier.sendToDevice(device, SAS_CANCEL, { txn: transaction, reason: "cancelled" }).catch(() => undefined);
    }
  }

  /** A SAS to-device message from `sender` (decrypted by the receiver). */
  async onSas(sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    const keys = this.account.need();
    const transaction = String(content.txn ?? "");
    const flow = this.flows.get(transaction);
    if (type === SAS_START && !flow) {
      if (!transaction || transaction.length > 64) return;
      this.flows.set(transaction, {
        transaction, peer: sender, peers: [sender], sas: new SasVerification(keys.user, keys.device, transaction), initiator: false,
        commitment: String(content.commitment ?? ""), established: null, confirmed: false, theirMac: "", done: false,
      });
      this.verification.value = { stage: "incoming", transaction, user: sender.user, device: sender.device };
      return;
    }
    if (!flow || flow.done || !flow.peers.some((p) => p.user === sender.user && p.device === sender.device)) return;
    try {
      if (type === SAS_KEY && !flow.established) {
        const key = String(content.key ?? "");
        if (flow.initiator) {
          flow.peer = sender; // the first device that answers
          flow.established = await flow.sas.establish(sender.user, sender.device, key);
          // not awaited: its acknowledgement comes through this very frame loop
          void this.carrier.sendToDevice(sender, SAS_KEY, { txn: transaction, key: flow.sas.publicKey }).catch((e: unknown) => this.report(e));
        } else {
          await flow.sas.checkCommitment(key, flow.commitment);
          flow.established = await flow.sas.establish(sender.user, sender.device, key);
        }
        this.verification.value = {
          stage: "emoji", transaction, user: sender.user,
          emoji: flow.established.emoji().map(([e, n]) => [e, n] as [string, string]), decimals: flow.established.decimals(),
        };
      } else if (type === SAS_MAC && flow.peer && flow.peer.device === sender.device && flow.peer.user === sender.user) {
        flow.theirMac = String(content.mac ?? "");
        await this.sasFinish(flow);
      } else if (type === SAS_CANCEL) {
        flow.done = true;
        this.freeFlow(flow);
        this.verification.value = { stage: "done", transaction, user: sender.user, verified: false, reason: String(content.reason ?? "cancelled").slice(0, 200) };
      }
    } catch (e) {
      flow.done = true;
      this.freeFlow(flow);
      this.verification.value = { stage: "done", transaction, user: sender.user, verified: false, reason: (e as Error).message };
    }
  }

  private flow(transaction: string): Flow {
    const flow = this.flows.get(transaction);
    if (!flow || flow.done) throw new ClientError("no such verification");
    return flow;
  }

  private freeFlow(flow: Flow): void {
    flow.established?.free();
    flow.sas.free();
    flow.established = null;
  }

  /** Both confirmed and the peer's MAC is in: check it against the pinned key. */
  private async sasFinish(flow: Flow): Promise<void> {
    if (!flow.confirmed || !flow.theirMac || !flow.established || flow.done || !flow.peer) return;
    flow.done = true;
    const user = flow.peer.user;
    const pinned = this.account.need().pinned(user);
    try {
      if (!pinned) throw new ClientError("no identity key pinned");
      flow.established.verifyMac("identity", pinned.identityKey, flow.theirMac);
    } catch (e) {
      this.freeFlow(flow);
      this.verification.value = { stage: "done", transaction: flow.transaction, user, verified: false, reason: (e as Error).message };
      return;
    }
    this.freeFlow(flow);
    await this.trust.markVerified(user);
    this.verification.value = { stage: "done", transaction: flow.transaction, user, verified: true, reason: "" };
    this.outbox.wake();
  }
}
