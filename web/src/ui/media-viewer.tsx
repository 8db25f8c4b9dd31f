// The full-size photo viewer: the photos of the open chat, one at a time,
// with zoom (fit / natural size and beyond), previous / next (buttons and
// arrow keys) and save.
import type { JSX } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import type { AttachmentEntry } from "../client/model";
import { useClient } from "./context";
import { Dialog } from "./dialog";
import { formatSize } from "./format";
import { BackIcon, DownloadIcon } from "./icons";

/** 0: fit the window; then factors of the natural size */
const ZOOMS = [0, 1, 1.5, 2, 3, 4];

export function saveFile(url: string, name: string): void {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
}

/** every photo of the open chat, oldest first */
function usePhotos(): AttachmentEntry[] {
  const { state } = useClient();
  const messages = state.messages.value;
  return useMemo(
    () => messages.filter((m) => !m.deleted).flatMap((m) => m.attachments.filter((a) => a.kind === "image")),
    [messages],
  );
}

export function MediaViewer({ start, onClose }: { start: AttachmentEntry; onClose: () => void }): JSX.Element {
  const client = useClient();
  const photos = usePhotos();
  const [blob, setBlob] = useState(start.blob);
  const index = Math.max(0, photos.findIndex((p) => p.blob === blob));
  const entry = photos[index] ?? start;
  const [url, setUrl] = useState<string | null>(null);
  const [zoom, setZoom] = useState(0);

  useEffect(() => {
    let live = true;
    setUrl(null);
    setZoom(0);
    client.attachmentUrl(entry).then((u) => live && setUrl(u), () => undefined);
    return () => {
      live = false;
    };
  }, [entry.blob]);

  const go = (step: number) => {
    const next = photos[index + step];
    if (next) setBlob(next.blob);
  };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "ArrowLeft") go(-1);
      else if (e.key === "ArrowRight") go(1);
      else if (e.key === "+" || e.key === "=") setZoom((z) => Math.min(ZOOMS.length - 1, z + 1));
      else if (e.key === "-") setZoom((z) => Math.max(0, z - 1));
      else return;
      e.preventDefault();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [index, photos.length]);

  const factor = ZOOMS[zoom] ?? 0;
  // zoomed: the natural size times the factor, scrolled inside the frame
  const style = factor > 0 && entry.width ? { width: `${Math.round(entry.width * factor)}px`, maxWidth: "none", maxHeight: "none" } : {};
  return (
    <Dialog title={entry.name} onClose={onClose} wide testid="lightbox">
      <div class="viewer">
        <div class={`viewer__frame${zoom > 0 ? " viewer__frame--zoomed" : ""}`} data-testid="viewer-frame">
          {url ? (
            <img
              src={url}
              alt={entry.name}
              style={style}
              data-testid="viewer-image"
              data-zoom={factor}
              onClick={() => setZoom((z) => (z === 0 ? 1 : 0))}
            />
          ) : (
            <div class="spinner" aria-label="Loading the photo" />
          )}
        </div>
        <div class="viewer__bar">
          <span class="viewer__nav">
            <button type="button" class="icon-button" aria-label="Previous photo" disabled={index <= 0} onClick={() => go(-1)} data-testid="viewer-prev">
              <BackIcon />
            </button>
            <span class="muted" data-testid="viewer-position">
              {photos.length > 0 ? `${index + 1} of ${photos.length}` : ""} · {formatSize(entry.size)}
              {entry.width && entry.height ? ` · ${entry.width}×${entry.height}` : ""}
            </span>
            <button
              type="button"
              class="icon-button viewer__next"
              aria-label="Next photo"
              disabled={index >= photos.length - 1}
              onClick={() => go(1)}
              data-testid="viewer-next"
            >
              <BackIcon />
            </button>
          </span>
          <span class="viewer__zoom">
            <button type="button" class="button button--ghost button--small" aria-label="Zoom out" disabled={zoom === 0} onClick={() => setZoom(zoom - 1)} data-testid="viewer-zoom-out">
              −
            </button>
            <span class="muted">{zoom === 0 ? "Fit" : `${Math.round(factor * 100)}%`}</span>
            <button
              type="button"
              class="button button--ghost button--small"
              aria-label="Zoom in"
              disabled={zoom === ZOOMS.length - 1}
              onClick={() => setZoom(zoom + 1)}
              data-testid="viewer-zoom-in"
            >
              +
            </button>
            <button type="button" class="button button--ghost button--small" disabled={!url} onClick={() => url && saveFile(url, entry.name)} data-testid="viewer-save">
              <DownloadIcon size={18} /> Save
            </button>
          </span>
        </div>
      </div>
    </Dialog>
  );
}
