// Formatting shared by the screens: times, days, sizes, initials, colours.
import type { AttachmentEntry, Contact, MessageView, UserId } from "../client/model";

const DAY_MS = 86_400_000;

function startOfDay(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const weekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long" });
const shortDateFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "2-digit" });
const longDateFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

export function formatTime(ms: number): string {
  return timeFmt.format(ms);
}

/** the time column of the conversation list */
export function formatListTime(ms: number, now = Date.now()): string {
  if (ms <= 0) return "";
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / DAY_MS);
  if (days <= 0) return timeFmt.format(ms);
  if (days === 1) return "Yesterday";
  if (days < 7) return weekdayFmt.format(ms);
  return shortDateFmt.format(ms);
}

/** the label of a day separator in the chat */
export function formatDay(ms: number, now = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / DAY_MS);
  if (days <= 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days < 7) return weekdayFmt.format(ms);
  return longDateFmt.format(ms);
}

export function dayKey(ms: number): number {
  return startOfDay(ms);
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}:${s.toString().padStart(2, "0")}`;
}

export const TIMER_OPTIONS: [number, string][] = [
  [0, "Off"],
  [30, "30 seconds"],
  [300, "5 minutes"],
  [3600, "1 hour"],
  [86_400, "1 day"],
  [604_800, "1 week"],
];

/** a compact form for badges: 30s, 5m, 1h, 1d, 1w */
export function timerShort(seconds: number): string {
  if (seconds >= 604_800 && seconds % 604_800 === 0) return `${seconds / 604_800}w`;
  if (seconds >= 86_400) return `${Math.round(seconds / 86_400)}d`;
  if (seconds >= 3600) return `${Math.round(seconds / 3600)}h`;
  if (seconds >= 60) return `${Math.round(seconds / 60)}m`;
  return `${seconds}s`;
}

export function timerLabel(seconds: number): string {
  const known = TIMER_OPTIONS.find(([s]) => s === seconds);
  if (known) return known[1];
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

/** a stable hue for an address */
export function hueOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % 360;
}

export function initials(name: string): string {
  const base = name.includes("@") && !name.includes(" ") ? name.split("@")[0] ?? name : name;
  const words = base.split(/[\s._-]+/u).filter((w) => /^[\p{L}\p{N}]/u.test(w));
  const first = words[0] ?? "?";
  const second = words.length > 1 ? words[words.length - 1] ?? "" : "";
  const chars = [...first].slice(0, second ? 1 : 2).join("") + [...second].slice(0, 1).join("");
  return chars.toUpperCase() || "?";
}

export function displayName(user: UserId, contacts: Record<UserId, Contact>): string {
  const name = contacts[user]?.alias || contacts[user]?.name;
  if (name) return name;
  return user.split("@")[0] ?? user;
}

/** Who wrote a message, as the chat shows them: "You", a contact's name,
 * or, for a message a connector brought in, the remote author's name (or address). */
export function authorName(message: MessageView, contacts: Record<UserId, Contact>): string {
  if (message.remote) return message.remote.name || message.remote.sender;
  return message.mine ? "You" : displayName(message.sender, contacts);
}

/** One key per author: a remote author's messages come from the user's
 * own connector, but are not the user's (nor each other's). */
export function authorKey(message: MessageView): string {
  return message.remote ? `${message.remote.network}:${message.remote.sender}` : message.sender;
}

/** A network's name for people: "e-mail". */
export function networkLabel(network: string): string {
  return network === "email" ? "e-mail" : network;
}

/** The part of an address after the "@". */
export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1);
}

export function attachmentLabel(entry: AttachmentEntry): string {
  switch (entry.kind) {
    case "image":
      return "📷 Photo";
    case "video":
      return "🎬 Video";
    case "voice":
      return `🎤 Voice message${entry.duration_ms ? ` (${formatDuration(entry.duration_ms)})` : ""}`;
    case "audio":
      return `🎵 ${entry.name}`;
    case "pdf":
      return `📄 ${entry.name}`;
    default:
      return `📎 ${entry.name}`;
  }
}

/** a one-line preview of a message for the list and reply quotes */
export function messagePreview(message: MessageView): string {
  if (message.deleted) return "This message was deleted";
  if (message.call) return message.call.outcome === "answered" ? "📞 Call" : "📞 Missed call";
  const text = message.text.replace(/\s+/gu, " ").trim();
  const first = message.attachments[0];
  if (first && text) return `${attachmentLabel(first).split(" ")[0]} ${text}`;
  if (first) return attachmentLabel(first);
  return text;
}

export function kindOfFile(file: Blob): "image" | "video" | "audio" | "pdf" | "file" {
  const type = file.type;
  if (type === "application/pdf") return "pdf";
  if (/^image\/(png|jpeg|gif|webp|avif|bmp)$/u.test(type)) return "image";
  if (type.startsWith("video/")) return "video";
  if (type.startsWith("audio/")) return "audio";
  return "file";
}

/** a default name for this browser as a device */
export function defaultDeviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//u.test(ua)
    ? "Edge"
    : /Firefox\//u.test(ua)
      ? "Firefox"
      : /Chrom(e|ium)\//u.test(ua)
        ? "Chromium"
        : /Safari\//u.test(ua)
          ? "Safari"
          : "Browser";
  const os = /Android/u.test(ua)
    ? "Android"
    : /iPhone|iPad/u.test(ua)
      ? "iOS"
      : /Mac OS X/u.test(ua)
        ? "macOS"
        : /Windows/u.test(ua)
          ? "Windows"
          : /Linux/u.test(ua)
            ? "Linux"
            : "";
  return os ? `${browser} on ${os}` : browser;
}

/** group a safety number into blocks of five digits */
export function groupDigits(digits: string): string[] {
  const clean = digits.replace(/\s+/gu, "");
  const groups: string[] = [];
  for (let i = 0; i < clean.length; i += 5) groups.push(clean.slice(i, i + 5));
  return groups;
}
