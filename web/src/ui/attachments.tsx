// Attachments inside a bubble: images (thumbnail, then the full picture),
// video, voice and audio players, PDF and file cards, transfer progress.
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { AttachmentEntry, MessageView } from "../client/model";
import { useClient } from "./context";
import { Dialog } from "./dialog";
import { formatDuration, formatSize } from "./format";
import { DownloadIcon, FileIcon, OpenIcon, PauseIcon, PlayIcon } from "./icons";
import { MediaViewer, saveFile as download } from "./media-viewer";

type UrlState = { url: string | null; error: string | null; loading: boolean };

/** the decrypted object URL of an entry, fetched once `enabled` */
function useAttachmentUrl(entry: AttachmentEntry | undefined, enabled: boolean): UrlState & { load: () => void } {
  const client = useClient();
  const [state, setState] = useState<UrlState>({ url: null, error: null, loading: false });
  const [wanted, setWanted] = useState(enabled);
  useEffect(() => {
    if (enabled) setWanted(true);
  }, [enabled]);
  useEffect(() => {
    if (!entry || !wanted || state.url) return;
    let live = true;
    setState({ url: null, error: null, loading: true });
    client.attachmentUrl(entry).then(
      (url) => live && setState({ url, error: null, loading: false }),
      (err: unknown) =>
        live && setState({ url: null, error: err instanceof Error ? err.message : "Could not load", loading: false }),
    );
    return () => {
      live = false;
    };
  }, [entry?.blob, wanted]);
  return { ...state, load: () => setWanted(true) };
}

/** true once the element scrolled near the viewport */
function useNearViewport(ref: { current: Element | null }): boolean {
  const [near, setNear] = useState(false);
  useEffect(() => {
    const el = ref.current;
    if (!el || near) return;
    if (typeof IntersectionObserver === "undefined") {
      setNear(true);
      return;
    }
    const io = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          setNear(true);
          io.disconnect();
        }
      },
      { rootMargin: "400px" },
    );
    io.observe(el);
    return () => io.disconnect();
  }, []);
  return near;
}

export function TransferBar({ ids }: { ids: string[] }): JSX.Element | null {
  const { state } = useClient();
  const t = state.transfers.value.find((x) => ids.includes(x.id));
  if (!t) return null;
  const pct = t.total > 0 ? Math.round((t.done / t.total) * 100) : 0;
  return (
    <div class="transfer" data-testid="transfer" data-direction={t.direction}>
      <progress max={t.total || 1} value={t.done} aria-label={`${t.direction === "up" ? "Uploading" : "Downloading"} ${t.name}`} />
      <span class="transfer__text">
        {t.direction === "up" ? "Sending" : "Loading"} {pct}% · {formatSize(t.total)}
      </span>
    </div>
  );
}


export function Attachment({ entry, message }: { entry: AttachmentEntry; message: MessageView }): JSX.Element {
  switch (entry.kind) {
    case "image":
      return <ImageAttachment entry={entry} message={message} />;
    case "video":
      return <VideoAttachment entry={entry} message={message} />;
    case "voice":
    case "audio":
      return <AudioAttachment entry={entry} message={message} />;
    default:
      return <FileCard entry={entry} message={message} />;
  }
}

/** The box keeps the picture's shape; a photo is shown at its natural size
 * when it fits the bubble and scaled down when not, never up. */
function sizeStyle(entry: AttachmentEntry): Record<string, string> {
  const w = entry.width ?? entry.thumbnail?.width;
  const h = entry.height ?? entry.thumbnail?.height;
  if (!w || !h) return {};
  if (entry.kind !== "image" || !entry.width) return { aspectRatio: `${w} / ${h}` };
  return { aspectRatio: `${w} / ${h}`, width: `min(${entry.width}px, 340px, 64vw)`, minWidth: "0" };
}

function ImageAttachment({ entry, message }: { entry: AttachmentEntry; message: MessageView }): JSX.Element {
  const box = useRef<HTMLButtonElement>(null);
  const near = useNearViewport(box);
  const thumb = useAttachmentUrl(entry.thumbnail, true);
  const full = useAttachmentUrl(entry, near);
  const [open, setOpen] = useState(false);
  const src = full.url ?? thumb.url;
  return (
    <div class="attachment attachment--image">
      <button
        ref={box}
        type="button"
        class={`image-box${full.url ? "" : " image-box--loading"}`}
        style={sizeStyle(entry)}
        aria-label={`Open photo ${entry.name}`}
        data-testid="attachment-image"
        data-loaded={full.url ? "true" : "false"}
        onClick={() => setOpen(true)}
      >
        {src ? <img src={src} alt={entry.name} class={full.url ? "" : "blurred"} /> : <span class="image-box__placeholder" />}
        {full.error && <span class="image-box__error">Could not load the photo</span>}
      </button>
      <TransferBar ids={[message.id, entry.blob]} />
      {open && <MediaViewer start={entry} onClose={() => setOpen(false)} />}
    </div>
  );
}

function VideoAttachment({ entry, message }: { entry: AttachmentEntry; message: MessageView }): JSX.Element {
  const thumb = useAttachmentUrl(entry.thumbnail, true);
  const video = useAttachmentUrl(entry, false);
  return (
    <div class="attachment attachment--video">
      {video.url ? (
        <video class="video" src={video.url} controls autoplay playsInline preload="metadata" data-testid="attachment-video" />
      ) : (
        <button
          type="button"
          class="image-box video-poster"
          style={sizeStyle(entry)}
          aria-label={`Play video ${entry.name}`}
          data-testid="attachment-video-poster"
          onClick={video.load}
        >
          {thumb.url ? <img src={thumb.url} alt="" /> : <span class="image-box__placeholder" />}
          <span class="play-badge">{video.loading ? <span class="spinner spinner--small" /> : <PlayIcon size={28} />}</span>
          <span class="video-poster__meta">
            {entry.duration_ms ? formatDuration(entry.duration_ms) : ""} {formatSize(entry.size)}
          </span>
        </button>
      )}
      {video.error && <p class="attachment__error">{video.error}</p>}
      <TransferBar ids={[message.id, entry.blob]} />
    </div>
  );
}

function AudioAttachment({ entry, message }: { entry: AttachmentEntry; message: MessageView }): JSX.Element {
  const audio = useAttachmentUrl(entry, false);
  const el = useRef<HTMLAudioElement>(null);
  const [playing, setPlaying] = useState(false);
  const [position, setPosition] = useState(0);
  const [duration, setDuration] = useState((entry.duration_ms ?? 0) / 1000);
  const wantPlay = useRef(false);

  useEffect(() => {
    if (audio.url && wantPlay.current) {
      wantPlay.current = false;
      void el.current?.play();
    }
  }, [audio.url]);

  function toggle(): void {
    const a = el.current;
    if (!audio.url) {
      wantPlay.current = true;
      audio.load();
      return;
    }
    if (!a) return;
    if (a.paused) void a.play();
    else a.pause();
  }

  const voice = entry.kind === "voice";
  return (
    <div class={`attachment attachment--audio${voice ? " attachment--voice" : ""}`} data-testid="attachment-audio" data-kind={entry.kind}>
      <div class="player">
        <button
          type="button"
          class="player__button"
          aria-label={playing ? "Pause" : voice ? "Play voice message" : `Play ${entry.name}`}
          data-testid="audio-play"
          onClick={toggle}
        >
          {audio.loading ? <span class="spinner spinner--small" /> : playing ? <PauseIcon size={20} /> : <PlayIcon size={20} />}
        </button>
        <div class="player__track">
          {!voice && <span class="player__name">{entry.name}</span>}
          <input
            type="range"
            class="player__range"
            min={0}
            max={duration || 1}
            step={0.1}
            value={position}
            aria-label="Position"
            disabled={!audio.url}
            onInput={(e) => {
              const a = el.current;
              if (a) a.currentTime = Number(e.currentTarget.value);
            }}
          />
          <span class="player__time">
            {formatDuration((playing || position > 0 ? position : duration) * 1000)}
            {!voice && ` · ${formatSize(entry.size)}`}
          </span>
        </div>
      </div>
      {audio.url && (
        <audio
          ref={el}
          src={audio.url}
          preload="metadata"
          onPlay={() => setPlaying(true)}
          onPause={() => setPlaying(false)}
          onEnded={() => {
            setPlaying(false);
            setPosition(0);
          }}
          onTimeUpdate={(e) => setPosition(e.currentTarget.currentTime)}
          onLoadedMetadata={(e) => {
            const d = e.currentTarget.duration;
            if (Number.isFinite(d) && d > 0) setDuration(d);
          }}
        />
      )}
      {audio.error && <p class="attachment__error">{audio.error}</p>}
      <TransferBar ids={[message.id, entry.blob]} />
    </div>
  );
}

function FileCard({ entry, message }: { entry: AttachmentEntry; message: MessageView }): JSX.Element {
  const client = useClient();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const pdf = entry.kind === "pdf" || entry.mime === "application/pdf";

  async function withUrl(then: (url: string) => void): Promise<void> {
    setBusy(true);
    setError(null);
    try {
      then(await client.attachmentUrl(entry));
    } catch (err) {
      setError(err instanceof Error ? err.message : "Could not load the file");
    } finally {
      setBusy(false);
    }
  }

  const ext = (entry.name.split(".").pop() ?? "").slice(0, 4).toUpperCase();
  return (
    <div class={`attachment attachment--file${pdf ? " attachment--pdf" : ""}`} data-testid="attachment-file" data-kind={entry.kind}>
      <div class="file-card">
        <span class={`file-card__icon${pdf ? " file-card__icon--pdf" : ""}`} aria-hidden="true">
          <FileIcon size={30} />
          <span class="file-card__ext">{pdf ? "PDF" : ext}</span>
        </span>
        <span class="file-card__info">
          <span class="file-card__name" title={entry.name}>
            {entry.name}
          </span>
          <span class="file-card__size">{formatSize(entry.size)}</span>
        </span>
      </div>
      <div class="file-card__actions">
        {pdf && (
          <button
            type="button"
            class="button button--small button--ghost"
            disabled={busy}
            data-testid="attachment-open"
            onClick={() => void withUrl((url) => window.open(url, "_blank", "noopener"))}
          >
            <OpenIcon size={16} /> Open
          </button>
        )}
        <button
          type="button"
          class="button button--small button--ghost"
          disabled={busy}
          data-testid="attachment-download"
          onClick={() => void withUrl((url) => download(url, entry.name))}
        >
          <DownloadIcon size={16} /> Download
        </button>
      </div>
      {error && <p class="attachment__error">{error}</p>}
      <TransferBar ids={[message.id, entry.blob]} />
    </div>
  );
}
