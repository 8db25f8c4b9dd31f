// Message text as text: URLs become links (http and https only), the rest
// stays a string that Preact escapes.
import type { ComponentChildren } from "preact";

const URL_RE = /\bhttps?:\/\/[^\s<>"]+/giu;
const TRAILING = /[.,;:!?)\]}'"»]+$/u;

export function linkify(text: string): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let url = match[0];
    const start = match.index ?? 0;
    const trail = TRAILING.exec(url);
    if (trail) url = url.slice(0, url.length - trail[0].length);
    let safe: URL | null = null;
    try {
      safe = new URL(url);
    } catch {
      safe = null;
    }
    if (!safe || (safe.protocol !== "http:" && safe.protocol !== "https:")) continue;
    if (start > last) out.push(text.slice(last, start));
    out.push(
      <a href={safe.href} target="_blank" rel="noopener noreferrer">
        {url}
      </a>,
    );
    last = start + url.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Component}|\u200d|\ufe0f|\s)+$/u;

/** one to three emoji and nothing else: shown large */
export function isJumboEmoji(text: string): boolean {
  if (!text || text.length > 24 || !EMOJI_ONLY.test(text)) return false;
  if (/^[\d#*\s]+$/u.test(text)) return false;
  const seg = new Intl.Segmenter(undefined, { granularity: "grapheme" });
  const count = [...seg.segment(text.trim())].length;
  return count >= 1 && count <= 3;
}
