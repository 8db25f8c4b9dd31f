// Before a photo is sent: crop (drag a rectangle, or an aspect preset),
// rotate by quarter turns, a colour filter, and a caption. The result is a
// new JPEG or PNG drawn on a canvas (which also drops the photo's metadata).
import type { JSX } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { Dialog } from "./dialog";
import { CropIcon, RotateIcon, SendIcon } from "./icons";

const FILTERS: [string, string, string][] = [
  ["none", "Original", "none"],
  ["mono", "Mono", "grayscale(1) contrast(1.05)"],
  ["warm", "Warm", "sepia(0.3) saturate(1.3) hue-rotate(-8deg) brightness(1.03)"],
  ["cool", "Cool", "saturate(1.05) hue-rotate(12deg) brightness(1.02) contrast(1.02)"],
  ["vivid", "Vivid", "saturate(1.6) contrast(1.1)"],
  ["fade", "Fade", "contrast(0.85) brightness(1.1) saturate(0.75)"],
];

const ASPECTS: [string, number | null][] = [
  ["Free", null],
  ["1:1", 1],
  ["4:3", 4 / 3],
  ["3:4", 3 / 4],
  ["16:9", 16 / 9],
];

const MAX_SIDE = 2560;

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

function rotatedSize(img: ImageBitmap, turns: number): [number, number] {
  return turns % 2 === 0 ? [img.width, img.height] : [img.height, img.width];
}

function draw(ctx: CanvasRenderingContext2D, img: ImageBitmap, turns: number, filter: string, crop: Rect, scale: number): void {
  const [rw, rh] = rotatedSize(img, turns);
  ctx.save();
  ctx.filter = filter;
  ctx.scale(scale, scale);
  ctx.translate(-crop.x, -crop.y);
  ctx.translate(rw / 2, rh / 2);
  ctx.rotate((turns * Math.PI) / 2);
  ctx.drawImage(img, -img.width / 2, -img.height / 2);
  ctx.restore();
}

function clampRect(r: Rect, rw: number, rh: number): Rect {
  const w = Math.min(Math.max(r.w, 1), rw);
  const h = Math.min(Math.max(r.h, 1), rh);
  return { x: Math.min(Math.max(r.x, 0), rw - w), y: Math.min(Math.max(r.y, 0), rh - h), w, h };
}

function centred(aspect: number, rw: number, rh: number): Rect {
  let w = rw;
  let h = w / aspect;
  if (h > rh) {
    h = rh;
    w = h * aspect;
  }
  return { x: (rw - w) / 2, y: (rh - h) / 2, w, h };
}

interface EditorProps {
  file: File;
  onCancel: () => void;
  onSend: (blob: Blob, caption: string) => void;
}

export function PhotoEditor({ file, onCancel, onSend }: EditorProps): JSX.Element {
  const [img, setImg] = useState<ImageBitmap | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [turns, setTurns] = useState(0);
  const [filter, setFilter] = useState("none");
  const [aspect, setAspect] = useState<number | null>(null);
  const [crop, setCrop] = useState<Rect | null>(null);
  const [caption, setCaption] = useState("");
  const [busy, setBusy] = useState(false);
  const canvas = useRef<HTMLCanvasElement>(null);
  const frame = useRef<HTMLDivElement>(null);
  const drag = useRef<{ mode: "new" | "move"; startX: number; startY: number; origin: Rect } | null>(null);

  useEffect(() => {
    let bitmap: ImageBitmap | null = null;
    createImageBitmap(file, { imageOrientation: "from-image" }).then(
      (b) => {
        bitmap = b;
        setImg(b);
      },
      () => setError("This picture could not be opened."),
    );
    return () => bitmap?.close();
  }, [file]);

  const filterCss = FILTERS.find(([k]) => k === filter)?.[2] ?? "none";
  const [rw, rh] = img ? rotatedSize(img, turns) : [1, 1];

  // the preview: the whole rotated picture, fitted to the frame
  useLayoutEffect(() => {
    const c = canvas.current;
    const f = frame.current;
    if (!img || !c || !f) return;
    const stage = f.parentElement;
    const padding = stage ? parseFloat(getComputedStyle(stage).paddingLeft) + parseFloat(getComputedStyle(stage).paddingRight) : 0;
    const maxW = stage ? stage.clientWidth - padding : 600; // clientWidth counts the padding too
    const maxH = Math.max(200, Math.min(window.innerHeight * 0.55, 640));
    const scale = Math.min(maxW / rw, maxH / rh, 1);
    const ratio = window.devicePixelRatio || 1;
    c.width = Math.round(rw * scale * ratio);
    c.height = Math.round(rh * scale * ratio);
    c.style.width = `${Math.round(rw * scale)}px`;
    c.style.height = `${Math.round(rh * scale)}px`;
    const ctx = c.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, c.width, c.height);
    draw(ctx, img, turns, filterCss, { x: 0, y: 0, w: rw, h: rh }, scale * ratio);
  }, [img, turns, filterCss]);

  function toImage(e: PointerEvent): [number, number] {
    const box = frame.current?.getBoundingClientRect();
    if (!box) return [0, 0];
    return [((e.clientX - box.left) / box.width) * rw, ((e.clientY - box.top) / box.height) * rh];
  }

  function onPointerDown(e: PointerEvent): void {
    if (!img) return;
    const [x, y] = toImage(e);
    const current = crop;
    const inside = current && x >= current.x && x <= current.x + current.w && y >= current.y && y <= current.y + current.h;
    drag.current = { mode: inside ? "move" : "new", startX: x, startY: y, origin: current ?? { x, y, w: 0, h: 0 } };
    (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
    e.preventDefault();
  }

  function onPointerMove(e: PointerEvent): void {
    const d = drag.current;
    if (!d) return;
    const [x, y] = toImage(e);
    if (d.mode === "move") {
      setCrop(clampRect({ ...d.origin, x: d.origin.x + x - d.startX, y: d.origin.y + y - d.startY }, rw, rh));
      return;
    }
    let w = Math.abs(x - d.startX);
    let h = Math.abs(y - d.startY);
    if (aspect) {
      if (w / aspect > h) h = w / aspect;
      else w = h * aspect;
    }
    const left = x < d.startX ? d.startX - w : d.startX;
    const top = y < d.startY ? d.startY - h : d.startY;
    const clampedLeft = Math.max(0, left);
    const clampedTop = Math.max(0, top);
    w = Math.min(w, rw - clampedLeft);
    h = Math.min(h, rh - clampedTop);
    if (aspect) {
      if (w / aspect > h) w = h * aspect;
      else h = w / aspect;
    }
    setCrop({ x: clampedLeft, y: clampedTop, w, h });
  }

  function onPointerUp(): void {
    const d = drag.current;
    drag.current = null;
    if (d && crop && (crop.w < rw * 0.03 || crop.h < rh * 0.03)) setCrop(null);
  }

  function nudge(e: KeyboardEvent): void {
    if (!crop) return;
    const step = (e.shiftKey ? 0.1 : 0.02) * Math.max(rw, rh);
    const moves: Record<string, [number, number]> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    const m = moves[e.key];
    if (!m) return;
    e.preventDefault();
    setCrop(clampRect({ ...crop, x: crop.x + m[0], y: crop.y + m[1] }, rw, rh));
  }

  function chooseAspect(value: number | null): void {
    setAspect(value);
    setCrop(value ? centred(value, rw, rh) : null);
  }

  function rotate(): void {
    setTurns((t) => (t + 1) % 4);
    setCrop(null);
    setAspect(null);
  }

  async function send(): Promise<void> {
    if (!img) return;
    setBusy(true);
    const area = crop ?? { x: 0, y: 0, w: rw, h: rh };
    const scale = Math.min(1, MAX_SIDE / Math.max(area.w, area.h));
    const out = document.createElement("canvas");
    out.width = Math.max(1, Math.round(area.w * scale));
    out.height = Math.max(1, Math.round(area.h * scale));
    const ctx = out.getContext("2d");
    if (!ctx) {
      setBusy(false);
      return;
    }
    const type = file.type === "image/png" ? "image/png" : "image/jpeg";
    if (type === "image/jpeg") {
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, out.width, out.height);
    }
    draw(ctx, img, turns, filterCss, area, scale);
    out.toBlob(
      (blob) => {
        setBusy(false);
        if (blob) onSend(blob, caption.trim());
        else setError("The edited picture could not be made.");
      },
      type,
      0.9,
    );
  }

  const pct = (v: number, total: number) => `${(v / total) * 100}%`;
  return (
    <Dialog title="Edit photo" onClose={onCancel} wide testid="photo-editor">
      {error ? (
        <p class="form__error" role="alert">
          {error}
        </p>
      ) : (
        <div class="editor">
          <div class="editor__stage">
            <div
              class="editor__frame"
              ref={frame}
              onPointerDown={onPointerDown}
              onPointerMove={onPointerMove}
              onPointerUp={onPointerUp}
              onPointerCancel={onPointerUp}
            >
              <canvas ref={canvas} class="editor__canvas" aria-label="Photo preview" role="img" />
              {crop && (
                <div
                  class="editor__crop"
                  tabIndex={0}
                  role="group"
                  aria-label="Crop area: drag to move, arrow keys to nudge"
                  onKeyDown={nudge}
                  style={{ left: pct(crop.x, rw), top: pct(crop.y, rh), width: pct(crop.w, rw), height: pct(crop.h, rh) }}
                />
              )}
              {!img && <div class="spinner" aria-label="Opening the photo" />}
            </div>
          </div>
          <p class="editor__hint muted">
            <CropIcon size={14} /> Drag on the photo to crop.
          </p>
          <div class="editor__tools">
            <div class="editor__group" role="group" aria-label="Crop">
              {ASPECTS.map(([label, value]) => (
                <button
                  key={label}
                  type="button"
                  class={`chip-button${aspect === value ? " chip-button--on" : ""}`}
                  aria-pressed={aspect === value}
                  onClick={() => chooseAspect(value)}
                >
                  {label}
                </button>
              ))}
              <button type="button" class="chip-button" aria-label="Rotate 90 degrees" data-testid="photo-rotate" onClick={rotate}>
                <RotateIcon size={16} /> Rotate
              </button>
              {crop && (
                <button type="button" class="chip-button" onClick={() => chooseAspect(null)}>
                  Reset crop
                </button>
              )}
            </div>
            <div class="editor__group" role="group" aria-label="Filter">
              {FILTERS.map(([key, label]) => (
                <button
                  key={key}
                  type="button"
                  class={`chip-button${filter === key ? " chip-button--on" : ""}`}
                  aria-pressed={filter === key}
                  data-testid="photo-filter"
                  data-filter={key}
                  onClick={() => setFilter(key)}
                >
                  {label}
                </button>
              ))}
            </div>
          </div>
          <div class="editor__send">
            <input
              class="input"
              type="text"
              placeholder="Add a caption"
              aria-label="Caption"
              value={caption}
              onInput={(e) => setCaption(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter") {
                  e.preventDefault();
                  void send();
                }
              }}
              data-testid="photo-caption"
            />
            <button
              type="button"
              class="send-button"
              aria-label="Send photo"
              disabled={!img || busy}
              onClick={() => void send()}
              data-testid="photo-send"
            >
              <SendIcon />
            </button>
          </div>
        </div>
      )}
    </Dialog>
  );
}
