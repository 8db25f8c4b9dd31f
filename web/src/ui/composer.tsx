// Writing: multi-line text (Enter sends, Shift+Enter breaks the line), a
// reply bar, attachments by picker and paste, and voice messages.
import type { JSX } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { ConversationView } from "../client/model";
import { replyTo, scrollTarget, useClient } from "./context";
import { displayName, formatDuration, messagePreview } from "./format";
import { AttachIcon, CloseIcon, MicIcon, ReplyIcon, SendIcon, TrashIcon } from "./icons";
import type { FileSender } from "./send-files";

/** unsent text per conversation, kept while the app runs */
const drafts = new Map<string, string>();

const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 4000;

export function Composer({ conversation, sender }: { conversation: ConversationView; sender: FileSender }): JSX.Element {
  const client = useClient();
  const [text, setText] = useState(drafts.get(conversation.id) ?? "");
  const area = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const typingSent = useRef(0);
  const idleTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const reply = replyTo.value;
  const contacts = client.state.contacts.value;
  const [recording, setRecording] = useState(false);

  // the chat keys this component by conversation, so the state above starts
  // from that conversation's draft: nothing to reset here (resetting after
  // the first paint would drop what was typed in between)
  useEffect(() => {
    if (matchMedia("(pointer: fine)").matches) area.current?.focus();
    return () => stopTyping();
  }, [conversation.id]);

  useEffect(() => {
    if (reply) area.current?.focus();
  }, [reply?.id]);

  // grow with the text, up to the CSS max-height
  useLayoutEffect(() => {
    const el = area.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);

  function stopTyping(): void {
    if (idleTimer.current) clearTimeout(idleTimer.current);
    idleTimer.current = null;
    if (typingSent.current > 0) {
      typingSent.current = 0;
      client.typing(conversation.id, false);
    }
  }

  function noteTyping(value: string): void {
    if (!value) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - typingSent.current > TYPING_REFRESH_MS) {
      typingSent.current = now;
      client.typing(conversation.id, true);
    }
    if (idleTimer.current) clearTimeout(idleTimer.current);
    idleTimer.current = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function update(value: string): void {
    setText(value);
    drafts.set(conversation.id, value);
    noteTyping(value);
  }

  function send(): void {
    const body = text.trim();
    if (!body) return;
    const target = replyTo.value?.id;
    update("");
    stopTyping();
    replyTo.value = null;
    client.sendText(conversation.id, body, target).catch(() => {
      if (!drafts.get(conversation.id)) update(body);
    });
    area.current?.focus();
  }

  function onPaste(e: ClipboardEvent): void {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    e.preventDefault();
    sender.send(files);
  }

  return (
    <footer class="composer-wrap">
      {reply && (
        <div class="reply-bar" data-testid="reply-bar">
          <ReplyIcon size={18} />
          <button type="button" class="reply-bar__quote" onClick={() => (scrollTarget.value = reply.id)}>
            <span class="reply-bar__name">{reply.mine ? "You" : displayName(reply.sender, contacts)}</span>
            <span class="reply-bar__text">{messagePreview(reply)}</span>
          </button>
          <button type="button" class="icon-button icon-button--small" aria-label="Cancel reply" onClick={() => (replyTo.value = null)}>
            <CloseIcon size={18} />
          </button>
        </div>
      )}
      {recording ? (
        <VoiceRecorder conversation={conversation} onDone={() => setRecording(false)} />
      ) : (
        <div class="composer">
          <button
            type="button"
            class="icon-button"
            aria-label="Attach a file"
            title="Attach a file"
            data-testid="attach"
            onClick={() => fileInput.current?.click()}
          >
            <AttachIcon />
          </button>
          <input
            ref={fileInput}
            type="file"
            multiple
            class="sr-only"
            tabIndex={-1}
            aria-hidden="true"
            data-testid="file-input"
            onChange={(e) => {
              const files = [...(e.currentTarget.files ?? [])];
              e.currentTarget.value = "";
              if (files.length > 0) sender.send(files);
            }}
          />
          <textarea
            ref={area}
            class="composer__input"
            rows={1}
            placeholder="Message"
            aria-label={`Message to ${conversation.title}`}
            value={text}
            onInput={(e) => update(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                send();
              } else if (e.key === "Escape" && replyTo.value) {
                replyTo.value = null;
              }
            }}
            onPaste={onPaste}
            onBlur={stopTyping}
            data-testid="composer"
          />
          {text.trim() ? (
            <button type="button" class="send-button" aria-label="Send" title="Send" data-testid="send" onClick={send}>
              <SendIcon />
            </button>
          ) : (
            <button
              type="button"
              class="send-button"
              aria-label="Record a voice message"
              title="Record a voice message"
              data-testid="voice-record"
              onClick={() => setRecording(true)}
            >
              <MicIcon />
            </button>
          )}
        </div>
      )}
    </footer>
  );
}

function pickMime(): string {
  for (const type of ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/mp4", "audio/webm"]) {
    if (typeof MediaRecorder !== "undefined" && MediaRecorder.isTypeSupported(type)) return type;
  }
  return "";
}

function VoiceRecorder({ conversation, onDone }: { conversation: ConversationView; onDone: () => void }): JSX.Element {
  const client = useClient();
  const [elapsed, setElapsed] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const recorder = useRef<MediaRecorder | null>(null);
  const stream = useRef<MediaStream | null>(null);
  const chunks = useRef<Blob[]>([]);
  const started = useRef(0);
  const keep = useRef(false);

  useEffect(() => {
    let cancelled = false;
    let tick: ReturnType<typeof setInterval> | null = null;
    (async () => {
      try {
        const media = await navigator.mediaDevices.getUserMedia({ audio: true });
        if (cancelled) {
          media.getTracks().forEach((t) => t.stop());
          return;
        }
        stream.current = media;
        const mime = pickMime();
        const rec = new MediaRecorder(media, mime ? { mimeType: mime } : undefined);
        recorder.current = rec;
        rec.ondataavailable = (e) => {
          if (e.data.size > 0) chunks.current.push(e.data);
        };
        rec.onstop = () => {
          media.getTracks().forEach((t) => t.stop());
          const duration = Date.now() - started.current;
          if (keep.current && chunks.current.length > 0) {
            const type = (rec.mimeType || mime || "audio/webm").split(";")[0] ?? "audio/webm";
            const blob = new Blob(chunks.current, { type });
            const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
            replyTo.value = null;
            void client
              .sendFile(conversation.id, blob, `voice-message.${ext}`, undefined, "voice", { duration_ms: duration })
              .catch(() => undefined);
          }
          onDone();
        };
        started.current = Date.now();
        rec.start(250);
        tick = setInterval(() => setElapsed(Date.now() - started.current), 200);
      } catch {
        if (!cancelled) setError("The microphone is not available. Allow it in the browser to record.");
      }
    })();
    return () => {
      cancelled = true;
      if (tick) clearInterval(tick);
      const rec = recorder.current;
      if (rec && rec.state !== "inactive") rec.stop();
      stream.current?.getTracks().forEach((t) => t.stop());
    };
  }, []);

  function finish(send: boolean): void {
    keep.current = send;
    const rec = recorder.current;
    if (rec && rec.state !== "inactive") rec.stop();
    else onDone();
  }

  return (
    <div class="composer composer--recording" data-testid="voice-recorder">
      <button
        type="button"
        class="icon-button"
        aria-label="Cancel recording"
        title="Cancel recording"
        data-testid="voice-cancel"
        onClick={() => finish(false)}
      >
        <TrashIcon />
      </button>
      {error ? (
        <p class="recording recording--error" role="alert">
          {error}
        </p>
      ) : (
        <p class="recording" role="status">
          <span class="recording__dot" aria-hidden="true" />
          <span>Recording</span>
          <span class="recording__time">{formatDuration(elapsed)}</span>
        </p>
      )}
      <button
        type="button"
        class="send-button"
        aria-label="Send voice message"
        title="Send voice message"
        data-testid="voice-send"
        disabled={error !== null}
        onClick={() => finish(true)}
      >
        <SendIcon />
      </button>
    </div>
  );
}
