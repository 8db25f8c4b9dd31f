// The WebSocket and its frames: connect (hello with the device's token)
// and reconnect with backoff, a heartbeat that notices a dead connection,
// requests answered by reference, and what arrives handled in batches by a
// `FrameSink` (the receiver), each frame acknowledged only once the batch
// that stored it is committed.
import { signal } from "@preact/signals";
import { PROTOCOL_VERSION, type ClientFrame, type ServerFrame } from "../gen/proto";
import { ServerError } from "./api";
import type { Connection as Status } from "./model";
import { Disconnected } from "./types";

const REQUEST_TIMEOUT_MS = 15_000;
/** frames handled per IndexedDB commit (and per round of acks) */
const BATCH_FRAMES = 200;
/** an idle connection is pinged this often; no pong in PONG_TIMEOUT_MS: reconnect */
const PING_EVERY_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;

/** Who handles the frames that are not about the connection itself. Per
 * batch: `beginBatch`, `handle` for each frame in order (returning its ack),
 * `commitBatch` to make what they stored durable, then the acks go out and
 * `batchAcked` follows. */
export interface FrameSink {
  beginBatch(): void;
  handle(frame: ServerFrame): Promise<ClientFrame | null>;
  commitBatch(): Promise<void>;
  batchAcked(): void;
}

export interface ConnectionEvents {
  /** the server welcomed this device: requests can go out */
  online(): void;
  /** something the user should hear of (this device was logged out) */
  report(error: unknown): void;
}

interface Waiter {
  resolve: (frame: ServerFrame) => void;
  reject: (error: Error) => void;
}

export class Connection {
  readonly status = signal<Status>("offline");
  private token = "";
  private sink: FrameSink | null = null;
  private ws: WebSocket | null = null;
  private closing = false;
  private backoffMs = 200;
  private readonly waiting = new Map<string, Waiter>();
  private readonly inbox: { ws: WebSocket; frame: ServerFrame }[] = [];
  private draining = false;
  private lastPong = 0;
  private pingSent = 0;
  private queueEmpty: (() => void)[] = [];

  constructor(private readonly events: ConnectionEvents) {}

  /** Connect with the device's token and stay connected; what arrives goes to `sink`. */
  start(token: string, sink: FrameSink): void {
    this.token = token;
    this.sink = sink;
    this.connect();
    window.setInterval(() => this.heartbeat(), PING_EVERY_MS / 2);
    window.addEventListener("online", () => this.reconnectSoon());
    // the browser knows the network is gone before the socket does
    window.addEventListener("offline", () => this.ws?.close(4001, "offline"));
  }

  /** Close for good (log out). */
  close(): void {
    this.closing = true;
    this.ws?.close();
  }

  get online(): boolean {
    return this.status.value === "online";
  }

  /** Send a frame and wait for the answer naming `ref`; an error frame
   * rejects with ServerError, no connection or no answer with Disconnected. */
  request(frame: ClientFrame, ref: string): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || !this.online) {
        reject(new Disconnected("not connected"));
        return;
      }
      const timer = window.setTimeout(() => {
        this.waiting.delete(ref);
        reject(new Disconnected("no answer from the server"));
      }, REQUEST_TIMEOUT_MS);
      this.waiting.set(ref, {
        resolve: (f) => {
          window.clearTimeout(timer);
          this.waiting.delete(ref);
          if (f.type === "error") {
            const transient = ["rate_limited", "unavailable", "internal"].includes(f.code);
            reject(new ServerError(f.code, f.message, transient ? 503 : 400));
          } else resolve(f);
        },
        reject: (e) => {
          window.clearTimeout(timer);
          this.waiting.delete(ref);
          reject(e);
        },
      });
      ws.send(JSON.stringify(frame));
    });
  }

  /** A frame nobody waits for (typing); dropped when offline. */
  sendNowait(frame: ClientFrame): void {
    if (this.ws && this.online) this.ws.send(JSON.stringify(frame));
  }

  /** Resolves when the backlog is in (tests and the first render use it). */
  whenSynced(): Promise<void> {
    return new Promise((resolve) => this.queueEmpty.push(resolve));
  }

  private connect(): void {
    if (this.closing || this.ws) return;
    this.status.value = "connecting";
    const url = location.origin.replace(/^http/, "ws") + "/api/v1/ws";
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL_VERSION, token: this.token, client: "taube-web" }));
    ws.onmessage = (event) => {
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(event.data)) as ServerFrame;
      } catch {
        return; // not JSON: nothing a server of ours sends
      }
      this.inbox.push({ ws, frame });
      void this.drainInbox();
    };
    ws.onclose = (event) => {
      if (this.ws === ws) this.ws = null;
      this.status.value = "offline";
      for (const waiter of [...this.waiting.values()]) waiter.reject(new Disconnected("disconnected"));
      if (event.code === 4401) {
        this.events.report(new Error("this device was logged out"));
        this.closing = true;
      }
      if (!this.closing) {
        const delay = this.backoffMs * (0.5 + Math.random());
        this.backoffMs = Math.min(this.backoffMs * 2, 15_000);
        window.setTimeout(() => this.connect(), delay);
      }
    };
  }

  /** A connection that died silently (no close from the network) shows up
   * as a missing pong: close it, and the reconnect loop takes over. */
  private heartbeat(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.online) return;
    const now = Date.now();
    if (this.pingSent && this.lastPong < this.pingSent && now - this.pingSent > PONG_TIMEOUT_MS) {
      ws.close(4002, "no pong");
      return;
    }
    if (now - this.pingSent >= PING_EVERY_MS) {
      this.pingSent = now;
      ws.send(JSON.stringify({ type: "ping", ref: String(now) }));
    }
  }

  private reconnectSoon(): void {
    this.backoffMs = 200;
    if (!this.ws) this.connect();
  }

  /** Handle what arrived in batches: every frame of a batch is handled in
   * order, then what they stored is committed at once, and only then are
   * they acknowledged, one ack per conversation. A frame that fails closes
   * the socket before its ack, so the server sends it again. */
  private async drainInbox(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.inbox.length) {
        const batch = this.inbox.splice(0, BATCH_FRAMES);
        const sink = this.sink!;
        sink.beginBatch();
        const acks = new Map<string, { ws: WebSocket; frame: ClientFrame }>();
        let broken: WebSocket | null = null;
        for (const { ws, frame } of batch) {
          if (ws === broken) continue;
          try {
            const ack = await this.onFrame(sink, frame);
            if (ack) acks.set(ack.type === "msg.ack" ? `c:${ack.conversation}` : "d", { ws, frame: ack });
          } catch (e) {
            console.error("a frame failed; reconnecting to get it again", e);
            broken = ws;
          }
        }
        await sink.commitBatch();
        for (const { ws, frame } of acks.values()) {
          if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
        }
        if (broken) broken.close(4000, "a frame failed");
        sink.batchAcked();
      }
    } finally {
      this.draining = false;
    }
  }

  /** The frames about the connection itself; the rest go to the sink. */
  private async onFrame(sink: FrameSink, frame: ServerFrame): Promise<ClientFrame | null> {
    switch (frame.type) {
      case "welcome":
        this.status.value = "online";
        this.backoffMs = 200;
        this.pingSent = this.lastPong = 0;
        this.events.online();
        return null;
      case "queue.empty":
        for (const resolve of this.queueEmpty.splice(0)) resolve();
        return null;
      case "msg.sent":
      case "todevice.sent":
        this.waiting.get(frame.id)?.resolve(frame);
        return null;
      case "pong":
        this.lastPong = Date.now();
        return null;
      case "error":
        if (frame.ref) this.waiting.get(frame.ref)?.resolve(frame);
        else console.warn("server error", frame.code, frame.message);
        return null;
      default:
        return sink.handle(frame);
    }
  }
}
