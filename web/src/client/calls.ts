// Voice and video calls (the port of taube.client.calls): signalling as
// Olm to-device messages, media by the browser's WebRTC.
//
// The caller rings every device of the other member; the first to answer
// wins and the caller names it to all of them (`select`), so the others
// stop ringing. An invite is refused when stale, from the future, a seen
// call id, or naming a conversation its sender (or this user) is not a
// member of; only devices with a valid certificate get this far. When a
// call ends, the caller posts its outcome into the chat (a `call` message),
// so each device of both people shows it once. ICE servers always come
// from the server's TURN credentials; the browser gathers every candidate
// before the offer or answer leaves (the Python SDK does the same), and
// candidates trickled by the other side are added as they come.
import { signal, type ReadonlySignal } from "@preact/signals";
import type { VerifiedDevice } from "../crypto/keys";
import { CALL_TYPE, MESSAGE_TYPE, type TurnCredentials } from "../gen/proto";
import type { Api } from "./api";
import type { TaubeCarrier } from "./carrier";
import { ClientError, type Account, type ChainSource, type Sender } from "./types";

export type CallState = "ringing" | "connecting" | "connected" | "ended";

/** A call as the screen shows it. */
export interface CallView {
  id: string;
  conversation: string;
  peer: string;
  outgoing: boolean;
  video: boolean;
  state: CallState;
  /** why it ended: hangup, declined, busy, missed, answered_elsewhere, unreachable, ice_failed, gone, error */
  reason: string;
  connectedMs: number | null;
  muted: boolean;
  cameraOff: boolean;
  sharing: boolean;
  local: MediaStream | null;
  remote: MediaStream | null;
}

/** The outcome of a call as the chat shows it (a `call` message). */
export interface CallEvent {
  outcome: string;
  video: boolean;
  durationMs: number;
}

export function callEventOf(content: Record<string, unknown>): CallEvent {
  return {
    outcome: String(content.outcome ?? "").slice(0, 40),
    video: content.video === true,
    durationMs: typeof content.duration_ms === "number" && content.duration_ms > 0 ? content.duration_ms : 0,
  };
}

/** What the screens use. */
export interface CallsView {
  readonly current: ReadonlySignal<CallView | null>;
  place(conversation: string, video: boolean): Promise<void>;
  answer(video?: boolean): Promise<void>;
  reject(): Promise<void>;
  hangUp(): Promise<void>;
  /** forget an ended call (the screen closes) */
  dismiss(): void;
  setMuted(muted: boolean): void;
  setCameraOff(off: boolean): void;
  shareScreen(on: boolean): Promise<void>;
  /** inbound RTP as getStats() tells it */
  stats(): Promise<{ bytesReceived: number; framesDecoded: number; packetsReceived: number }>;
}

const CALL_ID = /^[A-Za-z0-9_-]{16,64}$/;
/** how long ICE may take after an answer */
const CONNECT_TIMEOUT_MS = 20_000;
/** a broken media connection waits this long for the other side's hang-up */
const GONE_GRACE_MS = 3_000;
/** gathering candidates before the SDP leaves takes at most this long */
const GATHER_MS = 3_000;
const SEEN_CALLS = 4096;

interface Live {
  view: CallView;
  /** outgoing: the devices rung; incoming: the caller's */
  devices: VerifiedDevice[];
  peerDevice: VerifiedDevice | null;
  busy: Set<string>;
  offerSdp: string;
  pc: RTCPeerConnection | null;
  early: RTCIceCandidateInit[];
  timers: ReturnType<typeof setTimeout>[];
}

function newCallId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function same(a: VerifiedDevice, b: VerifiedDevice): boolean {
  return a.user === b.user && a.device === b.device;
}

function str(value: unknown, max: number): string | null {
  return typeof value === "string" && value.length > 0 && value.length <= max ? value : null;
}

export class Calls implements CallsView {
  readonly prefix = CALL_TYPE.prefix;
  private readonly currentSig = signal<CallView | null>(null);
  readonly current: ReadonlySignal<CallView | null> = this.currentSig;
  private live: Live | null = null;
  private readonly seen = new Set<string>();

  constructor(
    private readonly account: Account,
    private readonly api: Api,
    private readonly carrier: TaubeCarrier,
    private readonly chains: ChainSource,
    private readonly sender: Sender,
  ) {}

  // ------------------------------------------------------------ placing

  async place(conversation: string, video: boolean): Promise<void> {
    if (this.live && this.live.view.state !== "ended") throw new ClientError("already in a call");
    const keys = this.account.need();
    const { state } = await this.chains.chain(conversation);
    const others = Object.keys(state.members).filter((u) => u !== keys.user);
    const peer = others[0];
    if (others.length !== 1 || peer === undefined) throw new ClientError("calls are 1:1 for now");
    const live = this.start(newCallId(), conversation, peer, true, video);
    live.devices = (await keys.devicesOf(others)).filter((d) => d.user !== keys.user);
    if (live.devices.length === 0) return this.end(live, "unreachable");
    try {
      const pc = await this.connection(live);
      await this.addMedia(live, pc, video);
      await pc.setLocalDescription(await pc.createOffer());
      const sdp = await gathered(pc);
      const invite = { call: live.view.id, conversation, ts: Date.now(), lifetime_ms: CALL_TYPE.ringMs, sdp, video };
      let reached = 0;
      for (const device of live.devices) {
        try {
          await this.carrier.sendToDevice(device, CALL_TYPE.invite, invite);
          reached += 1;
        } catch (e) {
          console.info("a device could not be rung", e);
        }
      }
      if (reached === 0) return this.end(live, "unreachable");
    } catch (e) {
      await this.end(live, "error");
      throw e;
    }
    this.later(live, CALL_TYPE.ringMs, () => {
      if (live.view.state === "ringing") void this.end(live, "missed").then(() => this.hangupTo(live, "missed", live.devices));
    });
  }

  // ------------------------------------------------------------ answering

  async answer(video?: boolean): Promise<void> {
    const live = this.live;
    if (!live || live.view.outgoing || live.view.state !== "ringing" || !live.peerDevice) throw new ClientError("no call is ringing");
    this.update(live, { state: "connecting" });
    try {
      const pc = await this.connection(live);
      await pc.setRemoteDescription({ type: "offer", sdp: live.offerSdp });
      await this.addMedia(live, pc, video ?? live.view.video);
      await pc.setLocalDescription(await pc.createAnswer());
      for (const candidate of live.early.splice(0)) await pc.addIceCandidate(candidate).catch(() => undefined);
      const sdp = await gathered(pc);
      if ((live.view.state as CallState) === "ended") return; // the caller hung up (or another device won) meanwhile
      await this.carrier.sendToDevice(live.peerDevice, CALL_TYPE.answer, { call: live.view.id, sdp });
    } catch (e) {
      await this.fail(live, "error");
      throw e;
    }
    this.later(live, CONNECT_TIMEOUT_MS, () => {
      if (live.view.state === "connecting") void this.fail(live, "ice_failed");
    });
  }

  async reject(): Promise<void> {
    const live = this.live;
    if (!live || live.view.outgoing || live.view.state !== "ringing" || !live.peerDevice) return;
    await this.end(live, "declined");
    await this.carrier.sendToDevice(live.peerDevice, CALL_TYPE.reject, { call: live.view.id, reason: "declined" });
  }

  async hangUp(): Promise<void> {
    const live = this.live;
    if (!live || live.view.state === "ended") return;
    const reason = live.view.outgoing && live.view.state === "ringing" ? "missed" : "hangup";
    await this.hangupTo(live, reason); // first: before the media connection closes
    await this.end(live, reason);
  }

  dismiss(): void {
    if (this.live?.view.state === "ended") {
      this.live = null;
      this.currentSig.value = null;
    }
  }

  // ------------------------------------------------------------ controls

  setMuted(muted: boolean): void {
    const live = this.live;
    if (!live) return;
    for (const track of live.view.local?.getAudioTracks() ?? []) track.enabled = !muted;
    this.update(live, { muted });
  }

  setCameraOff(off: boolean): void {
    const live = this.live;
    if (!live) return;
    for (const track of live.view.local?.getVideoTracks() ?? []) track.enabled = !off;
    this.update(live, { cameraOff: off });
  }

  async shareScreen(on: boolean): Promise<void> {
    const live = this.live;
    const sender = live?.pc?.getSenders().find((s) => s.track?.kind === "video" || s.track === null);
    if (!live || !sender) return;
    const camera = live.view.local?.getVideoTracks()[0] ?? null;
    if (on) {
      const screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
      const track = screen.getVideoTracks()[0];
      if (!track) return;
      track.onended = () => void this.shareScreen(false);
      await sender.replaceTrack(track);
    } else {
      if (sender.track && sender.track !== camera) sender.track.stop();
      await sender.replaceTrack(camera);
    }
    this.update(live, { sharing: on });
  }

  async stats(): Promise<{ bytesReceived: number; framesDecoded: number; packetsReceived: number }> {
    const out = { bytesReceived: 0, framesDecoded: 0, packetsReceived: 0 };
    const report = await this.live?.pc?.getStats();
    report?.forEach((s: Record<string, unknown>) => {
      if (s.type !== "inbound-rtp") return;
      out.bytesReceived += Number(s.bytesReceived ?? 0);
      out.packetsReceived += Number(s.packetsReceived ?? 0);
      out.framesDecoded += Number(s.framesDecoded ?? 0);
    });
    return out;
  }

  // ------------------------------------------------------------ receiving

  /** A call message from `sender` (Olm-decrypted, its certificate valid).
   * Runs in the receive loop: nothing here waits for a server answer. */
  async onMessage(sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    const call = str(content.call, 64);
    if (!call || !CALL_ID.test(call)) return;
    if (type === CALL_TYPE.invite) {
      try {
        await this.onInvite(sender, call, content);
      } catch (e) {
        console.info("call invite refused", e);
      }
      return;
    }
    const live = this.live;
    if (!live || live.view.id !== call || live.view.state === "ended") return;
    void this.onReply(live, sender, type, content).catch((e) => console.info("call message refused", e));
  }

  private async onInvite(sender: VerifiedDevice, call: string, content: Record<string, unknown>): Promise<void> {
    const keys = this.account.need();
    const conversation = str(content.conversation, 100);
    const sdp = str(content.sdp, CALL_TYPE.maxSdp);
    const ts = content.ts;
    const lifetime = content.lifetime_ms ?? CALL_TYPE.ringMs;
    if (!conversation || !sdp?.startsWith("v=0") || typeof ts !== "number" || typeof lifetime !== "number") throw new ClientError("malformed invite");
    if (lifetime < 1000 || lifetime > 300_000) throw new ClientError("malformed invite");
    if (this.seen.has(call) || this.live?.view.id === call) throw new ClientError("replayed invite");
    const now = Date.now();
    if (ts > now + CALL_TYPE.maxSkewMs) throw new ClientError("invite from the future");
    if (now - ts > lifetime) throw new ClientError("stale invite");
    this.seen.add(call);
    if (this.seen.size > SEEN_CALLS) this.seen.delete(this.seen.values().next().value as string);
    if (sender.user === keys.user) throw new ClientError("invite from an own device");
    const { state } = await this.chains.chain(conversation);
    if (!(sender.user in state.members) || !(keys.user in state.members)) throw new ClientError("invite from someone who is not a member");
    if (this.live && this.live.view.state !== "ended") {
      void this.carrier.sendToDevice(sender, CALL_TYPE.reject, { call, reason: "busy" }).catch(() => undefined);
      return;
    }
    const live = this.start(call, conversation, sender.user, false, content.video === true);
    live.devices = [sender];
    live.peerDevice = sender;
    live.offerSdp = sdp;
    this.later(live, lifetime - Math.max(0, now - ts), () => {
      if (live.view.state === "ringing") void this.end(live, "missed");
    });
  }

  private async onReply(live: Live, sender: VerifiedDevice, type: string, content: Record<string, unknown>): Promise<void> {
    const fromPeer = live.peerDevice !== null && same(live.peerDevice, sender);
    const rung = live.view.outgoing && live.devices.some((d) => same(d, sender));
    if (type === CALL_TYPE.answer && rung) {
      const sdp = str(content.sdp, CALL_TYPE.maxSdp);
      if (!sdp) return;
      if (live.view.state !== "ringing" || !live.pc) {
        if (!fromPeer) await this.carrier.sendToDevice(sender, CALL_TYPE.hangup, { call: live.view.id, reason: "answered_elsewhere" });
        return;
      }
      live.peerDevice = sender;
      this.update(live, { state: "connecting" });
      try {
        await live.pc.setRemoteDescription({ type: "answer", sdp });
      } catch {
        return this.fail(live, "error");
      }
      for (const candidate of live.early.splice(0)) await live.pc.addIceCandidate(candidate).catch(() => undefined);
      for (const device of live.devices) {
        await this.carrier.sendToDevice(device, CALL_TYPE.select, { call: live.view.id, device: sender.device }).catch(() => undefined);
      }
      this.later(live, CONNECT_TIMEOUT_MS, () => {
        if (live.view.state === "connecting") void this.fail(live, "ice_failed");
      });
    } else if (type === CALL_TYPE.reject && rung && live.view.state === "ringing") {
      if (content.reason === "busy") {
        live.busy.add(sender.device);
        if (live.busy.size >= live.devices.length) await this.end(live, "busy");
        return;
      }
      await this.end(live, "declined");
      await this.hangupTo(live, "declined", live.devices.filter((d) => !same(d, sender)));
    } else if (type === CALL_TYPE.select && fromPeer && !live.view.outgoing) {
      if (content.device !== this.account.need().device) await this.end(live, "answered_elsewhere");
    } else if (type === CALL_TYPE.candidates && (fromPeer || rung)) {
      if (live.peerDevice && !fromPeer) return;
      const list = Array.isArray(content.candidates) ? content.candidates.slice(0, 64) : [];
      for (const c of list as RTCIceCandidateInit[]) {
        if (typeof c?.candidate !== "string") continue;
        const init = { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? 0 };
        if (!live.pc || live.view.state === "ringing") live.early.push(init);
        else await live.pc.addIceCandidate(init).catch(() => undefined);
      }
    } else if (type === CALL_TYPE.hangup && (fromPeer || (rung && live.peerDevice === null))) {
      const said = String(content.reason ?? "hangup");
      const ringingEnds = ["declined", "answered_elsewhere"];
      const reason = live.view.state === "ringing" && !ringingEnds.includes(said) ? "missed" : said.slice(0, 40);
      await this.end(live, reason);
    }
  }

  // ------------------------------------------------------------ the call's life

  private start(id: string, conversation: string, peer: string, outgoing: boolean, video: boolean): Live {
    if (this.live) this.stopMedia(this.live);
    const view: CallView = {
      id, conversation, peer, outgoing, video, state: "ringing", reason: "", connectedMs: null,
      muted: false, cameraOff: false, sharing: false, local: null, remote: null,
    };
    const live: Live = { view, devices: [], peerDevice: null, busy: new Set(), offerSdp: "", pc: null, early: [], timers: [] };
    this.live = live;
    this.currentSig.value = { ...view };
    return live;
  }

  private update(live: Live, changes: Partial<CallView>): void {
    Object.assign(live.view, changes);
    if (this.live === live) this.currentSig.value = { ...live.view };
  }

  private later(live: Live, ms: number, run: () => void): void {
    live.timers.push(setTimeout(run, Math.max(0, ms)));
  }

  private async turn(): Promise<RTCIceServer[]> {
    const creds = await this.api.call<TurnCredentials>("GET", "/turn");
    return creds.urls.length ? [{ urls: creds.urls, username: creds.username ?? "", credential: creds.credential ?? "" }] : [];
  }

  private async connection(live: Live): Promise<RTCPeerConnection> {
    const pc = new RTCPeerConnection({ iceServers: await this.turn() });
    live.pc = pc;
    const remote = new MediaStream();
    this.update(live, { remote });
    pc.ontrack = (e) => {
      remote.addTrack(e.track);
      this.update(live, { remote });
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      if (state === "connected" && live.view.state === "connecting") {
        this.update(live, { state: "connected", connectedMs: Date.now() });
      } else if ((state === "failed" || state === "disconnected") && live.view.state !== "ended") {
        const reason = live.view.state === "connected" ? "gone" : "ice_failed";
        this.later(live, GONE_GRACE_MS, () => {
          if (live.view.state !== "ended" && pc.connectionState !== "connected") void this.fail(live, reason);
        });
      }
    };
    return pc;
  }

  private async addMedia(live: Live, pc: RTCPeerConnection, video: boolean): Promise<void> {
    let local: MediaStream | null = null;
    for (const wanted of video ? [{ audio: true, video: true }, { audio: true }] : [{ audio: true }]) {
      try {
        local = await navigator.mediaDevices.getUserMedia(wanted);
        break;
      } catch (e) {
        console.info("no media for", wanted, e);
      }
    }
    const kinds = new Set<string>();
    for (const track of local?.getTracks() ?? []) {
      pc.addTrack(track, local as MediaStream);
      kinds.add(track.kind);
    }
    for (const kind of video ? ["audio", "video"] : ["audio"]) {
      if (!kinds.has(kind)) pc.addTransceiver(kind, { direction: "recvonly" });
    }
    this.update(live, { local });
  }

  private async hangupTo(live: Live, reason: string, devices?: VerifiedDevice[]): Promise<void> {
    const to = devices ?? (live.peerDevice ? [live.peerDevice] : live.devices);
    for (const device of to) {
      await this.carrier.sendToDevice(device, CALL_TYPE.hangup, { call: live.view.id, reason }).catch((e) => console.info("hangup not sent", e));
    }
  }

  private async fail(live: Live, reason: string): Promise<void> {
    if (live.view.state === "ended") return;
    await this.end(live, reason);
    await this.hangupTo(live, reason);
  }

  private stopMedia(live: Live): void {
    for (const timer of live.timers.splice(0)) clearTimeout(timer);
    for (const track of live.view.local?.getTracks() ?? []) track.stop();
    live.pc?.close();
  }

  private async end(live: Live, reason: string): Promise<void> {
    if (live.view.state === "ended") return;
    const connectedMs = live.view.connectedMs;
    this.update(live, { state: "ended", reason });
    this.stopMedia(live);
    if (live.view.outgoing) {
      const outcome = connectedMs !== null ? "answered" : reason;
      const duration = connectedMs !== null ? Date.now() - connectedMs : 0;
      await this.sender
        .send(live.view.conversation, MESSAGE_TYPE.call, { call: live.view.id, outcome, video: live.view.video, duration_ms: duration })
        .catch((e) => console.info("call event not sent", e));
    }
  }
}

/** The local description once every candidate is in it (or after GATHER_MS). */
async function gathered(pc: RTCPeerConnection): Promise<string> {
  if (pc.iceGatheringState !== "complete") {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, GATHER_MS);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new ClientError("no local description");
  return sdp;
}
