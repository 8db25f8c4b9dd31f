// Calls on screen: the buttons in the chat header, the call screen
// (ringing, incoming with accept/reject, in a call with mute, camera,
// screen sharing, speaker and a timer, ended with the reason), and the
// line a call leaves in the chat ("Missed call", "Video call, 3:05").
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { CallEvent, CallView } from "../client/calls";
import type { ConversationView, MessageView } from "../client/model";
import { Avatar } from "./avatar";
import { useClient } from "./context";
import { displayName, formatDuration, formatTime } from "./format";
import "./call.css";

const ENDED: Record<string, string> = {
  hangup: "Call ended",
  declined: "Declined",
  busy: "Busy",
  missed: "No answer",
  answered_elsewhere: "Answered on another device",
  unreachable: "Not reachable: no device to ring",
  ice_failed: "Could not connect",
  gone: "Connection lost",
  error: "The call failed",
};

function PhoneIcon(): JSX.Element {
  return (
    <svg class="icon" width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
      <path d="M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1.9.4 1.8.7 2.7a2 2 0 0 1-.5 2.1L8 9.8a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.7.7a2 2 0 0 1 1.7 2z" />
    </svg>
  );
}

function CameraIcon(): JSX.Element {
  return (
    <svg class="icon" width="22" height="22" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
      <path d="M23 7l-7 5 7 5V7z" />
      <rect x="1" y="5" width="15" height="14" rx="2" />
    </svg>
  );
}

/** The two call buttons of a direct chat's header. */
export function CallButtons({ conversation }: { conversation: ConversationView }): JSX.Element | null {
  const client = useClient();
  const busy = client.calls.current.value !== null;
  if (conversation.kind !== "direct") return null;
  const call = (video: boolean) => void client.calls.place(conversation.id, video).catch((e) => console.info("call failed", e));
  return (
    <>
      <button type="button" class="icon-button" aria-label="Voice call" title="Voice call" data-testid="call-voice" disabled={busy} onClick={() => call(false)}>
        <PhoneIcon />
      </button>
      <button type="button" class="icon-button" aria-label="Video call" title="Video call" data-testid="call-video" disabled={busy} onClick={() => call(true)}>
        <CameraIcon />
      </button>
    </>
  );
}

function Media({ stream, muted, class: cls, testid }: { stream: MediaStream | null; muted: boolean; class: string; testid: string }): JSX.Element {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (ref.current && ref.current.srcObject !== stream) ref.current.srcObject = stream;
  }, [stream]);
  return <video ref={ref} class={cls} autoplay playsInline muted={muted} data-testid={testid} />;
}

function useNow(active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return undefined;
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [active]);
  return now;
}

function statusOf(call: CallView, now: number): string {
  if (call.state === "ended") return ENDED[call.reason] ?? "Call ended";
  if (call.state === "ringing") return call.outgoing ? "Ringing…" : call.video ? "Incoming video call" : "Incoming call";
  if (call.state === "connecting") return "Connecting…";
  return formatDuration(now - (call.connectedMs ?? now));
}

/** Speaker or earpiece, where the browser can choose (setSinkId). */
function SpeakerPicker(): JSX.Element | null {
  const [outputs, setOutputs] = useState<MediaDeviceInfo[]>([]);
  const supported = typeof (HTMLMediaElement.prototype as { setSinkId?: unknown }).setSinkId === "function";
  useEffect(() => {
    if (!supported) return;
    void navigator.mediaDevices
      .enumerateDevices()
      .then((all) => setOutputs(all.filter((d) => d.kind === "audiooutput")))
      .catch(() => undefined);
  }, []);
  if (!supported || outputs.length < 2) return null;
  const choose = (id: string) => {
    for (const el of Array.from(document.querySelectorAll<HTMLVideoElement>(".call__remote"))) {
      void (el as HTMLVideoElement & { setSinkId(id: string): Promise<void> }).setSinkId(id).catch(() => undefined);
    }
  };
  return (
    <select class="call__speaker" aria-label="Sound output" data-testid="call-speaker" onChange={(e) => choose((e.target as HTMLSelectElement).value)}>
      {outputs.map((d) => (
        <option value={d.deviceId}>{d.label || "Speaker"}</option>
      ))}
    </select>
  );
}

/** The call screen, over everything while a call rings, runs or just ended. */
export function CallScreen(): JSX.Element | null {
  const client = useClient();
  const calls = client.calls;
  const call = calls.current.value;
  const now = useNow(call?.state === "connected");
  useEffect(() => {
    if (call?.state !== "ended") return undefined;
    const timer = window.setTimeout(() => calls.dismiss(), 4000);
    return () => window.clearTimeout(timer);
  }, [call?.state, call?.id]);
  if (!call) return null;
  const name = displayName(call.peer, client.state.contacts.value);
  const incoming = !call.outgoing && call.state === "ringing";
  const live = call.state === "connecting" || call.state === "connected";
  const canShare = typeof navigator.mediaDevices?.getDisplayMedia === "function" && !/Mobi|Android/u.test(navigator.userAgent);
  return (
    <div class={`call call--${call.state}${call.video ? " call--video" : ""}`} role="dialog" aria-label={`Call with ${name}`} data-testid="call-screen" data-state={call.state}>
      <Media stream={call.remote} muted={false} class="call__remote" testid="call-remote" />
      {call.video && call.local && <Media stream={call.local} muted class="call__local" testid="call-local" />}
      <div class="call__who">
        <Avatar seed={call.peer} name={name} src={client.state.contacts.value[call.peer]?.avatar} size={live && call.video ? "s" : "xl"} />
        <h2 class="call__name" data-testid="call-peer">{name}</h2>
        <p class="call__status" data-testid="call-status" aria-live="polite">{statusOf(call, now)}</p>
      </div>
      <div class="call__controls">
        {incoming && (
          <>
            <button type="button" class="call__button call__button--reject" data-testid="call-reject" onClick={() => void calls.reject().catch((e) => console.info("call", e))}>
              Decline
            </button>
            <button type="button" class="call__button call__button--accept" data-testid="call-accept" onClick={() => void calls.answer().catch((e) => console.info("call", e))}>
              Accept
            </button>
          </>
        )}
        {live && (
          <>
            <button type="button" class={`call__button${call.muted ? " call__button--on" : ""}`} aria-pressed={call.muted} data-testid="call-mute" onClick={() => calls.setMuted(!call.muted)}>
              {call.muted ? "Unmute" : "Mute"}
            </button>
            {call.video && (
              <button type="button" class={`call__button${call.cameraOff ? " call__button--on" : ""}`} aria-pressed={call.cameraOff} data-testid="call-camera" onClick={() => calls.setCameraOff(!call.cameraOff)}>
                {call.cameraOff ? "Camera on" : "Camera off"}
              </button>
            )}
            {call.video && canShare && (
              <button type="button" class={`call__button${call.sharing ? " call__button--on" : ""}`} aria-pressed={call.sharing} data-testid="call-share" onClick={() => void calls.shareScreen(!call.sharing).catch(() => undefined)}>
                {call.sharing ? "Stop sharing" : "Share screen"}
              </button>
            )}
            <SpeakerPicker />
          </>
        )}
        {(live || (call.outgoing && call.state === "ringing")) && (
          <button type="button" class="call__button call__button--reject" data-testid="call-hangup" onClick={() => void calls.hangUp().catch((e) => console.info("call", e))}>
            Hang up
          </button>
        )}
        {call.state === "ended" && (
          <button type="button" class="call__button" data-testid="call-close" onClick={() => calls.dismiss()}>
            Close
          </button>
        )}
      </div>
    </div>
  );
}

export function callEventText(event: CallEvent, mine: boolean): string {
  const kind = event.video ? "Video call" : "Call";
  if (event.outcome === "answered") return `${kind}, ${formatDuration(event.durationMs)}`;
  if (event.outcome === "declined") return `${kind} declined`;
  if (event.outcome === "busy") return `${kind}: busy`;
  return mine ? `${kind}: no answer` : `Missed ${kind.toLowerCase()}`;
}

/** What a call leaves in the chat. */
export function CallEventLine({ message }: { message: MessageView }): JSX.Element | null {
  if (!message.call) return null;
  const missed = !message.mine && message.call.outcome !== "answered";
  return (
    <li class={`call-event${missed ? " call-event--missed" : ""}`} data-testid="call-event" data-outcome={message.call.outcome}>
      <PhoneIcon />
      <span>{callEventText(message.call, message.mine)}</span>
      <time>{formatTime(message.ts)}</time>
    </li>
  );
}
