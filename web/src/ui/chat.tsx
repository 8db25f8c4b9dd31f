// The chat view: header, the timeline (messages, day separators, notices)
// and the composer; files dropped anywhere on it are sent.
import type { JSX } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ConversationView, MessageView, Notice, PresenceView } from "../client/model";
import { CallButtons } from "./call";
import { Avatar } from "./avatar";
import { Composer } from "./composer";
import { closeChat, panel, scrollTarget, useClient } from "./context";
import { authorKey, dayKey, displayName, formatDay, formatListTime, networkLabel, timerLabel, timerShort } from "./format";
import { BackIcon, ChevronDownIcon, InfoIcon, LockIcon, ShieldIcon, TimerIcon } from "./icons";
import { MessageBubble } from "./message";
import { NoticeLine } from "./notice";
import { NetworkBadge, PortalBanner } from "./portal";
import { ConnectionBanner } from "./sidebar";
import { TimerMenu } from "./timer";
import { useFileSender } from "./send-files";

export function ChatView({ conversation }: { conversation: ConversationView }): JSX.Element {
  const client = useClient();
  const sender = useFileSender(conversation.id);
  const [dragging, setDragging] = useState(false);
  const dragDepth = useRef(0);

  return (
    <section
      class="chat"
      aria-label={`Chat with ${conversation.title}`}
      data-testid="chat"
      data-id={conversation.id}
      onDragEnter={(e) => {
        if (!e.dataTransfer?.types.includes("Files")) return;
        e.preventDefault();
        dragDepth.current += 1;
        setDragging(true);
      }}
      onDragOver={(e) => {
        if (e.dataTransfer?.types.includes("Files")) e.preventDefault();
      }}
      onDragLeave={() => {
        dragDepth.current = Math.max(0, dragDepth.current - 1);
        if (dragDepth.current === 0) setDragging(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        dragDepth.current = 0;
        setDragging(false);
        const files = [...(e.dataTransfer?.files ?? [])];
        if (files.length > 0) sender.send(files);
      }}
    >
      <ChatHeader conversation={conversation} onBack={() => closeChat(client)} />
      <ConnectionBanner />
      {conversation.portal && <PortalBanner portal={conversation.portal} />}
      <Timeline conversation={conversation} />
      <Composer key={conversation.id} conversation={conversation} sender={sender} />
      {sender.dialog}
      {dragging && (
        <div class="drop-overlay" aria-hidden="true">
          <p>Drop files to send them to {conversation.title}</p>
        </div>
      )}
    </section>
  );
}

/** how often the open direct chat asks for the other person's presence */
const PRESENCE_POLL_MS = 20_000;

/** "online" / "last seen …" of `user`, as far as their setting lets us see */
function usePresence(user: string | undefined): PresenceView | null {
  const client = useClient();
  const [seen, setSeen] = useState<PresenceView | null>(null);
  useEffect(() => {
    setSeen(null);
    if (!user) return;
    let live = true;
    const ask = () =>
      client.presence(user).then(
        (p) => live && setSeen(p),
        () => undefined,
      );
    void ask();
    const timer = window.setInterval(() => void ask(), PRESENCE_POLL_MS);
    return () => {
      live = false;
      window.clearInterval(timer);
    };
  }, [user]);
  return seen;
}

function presenceText(p: PresenceView | null): string | null {
  if (!p?.visible) return null;
  if (p.online) return "online";
  if (p.lastSeenMs === null) return null;
  const when = formatListTime(p.lastSeenMs);
  return /^\d/u.test(when) ? `last seen at ${when}` : `last seen ${when.toLowerCase()}`;
}

function ChatHeader({ conversation: c, onBack }: { conversation: ConversationView; onBack: () => void }): JSX.Element {
  const client = useClient();
  const contacts = client.state.contacts.value;
  const me = client.state.session.value?.user;
  const other = c.kind === "direct" ? Object.keys(c.members).find((m) => m !== me) : undefined;
  const [timerOpen, setTimerOpen] = useState(false);
  const memberCount = Object.keys(c.members).length;
  const portal = c.portal;
  let subtitle: string;
  if (portal) {
    // who is on the other side: the address, or the group's members here
    // and its addresses on the other network
    const peers = portal.peers.length ? portal.peers : [portal.chat];
    const here = Object.keys(c.members).filter((m) => m !== me).map((m) => displayName(m, contacts));
    subtitle = [...here, ...peers].join(", ");
    if (subtitle === c.title) subtitle = `Chat over ${networkLabel(portal.network)}`;
  } else if (c.typing.length > 0) {
    subtitle =
      c.kind === "direct"
        ? "typing…"
        : c.typing.length === 1
          ? `${displayName(c.typing[0] ?? "", contacts)} is typing…`
          : `${c.typing.length} people are typing…`;
  } else if (c.kind === "group") {
    subtitle = `${memberCount} member${memberCount === 1 ? "" : "s"}`;
  } else if (other && other !== c.title) {
    subtitle = other;
  } else {
    subtitle = "End-to-end encrypted";
  }
  const verified = other ? contacts[other]?.verified : false;
  const presence = presenceText(usePresence(portal ? undefined : other));
  const openInfo = () => {
    panel.value = other ? { kind: "contact", user: other, from: c.id } : { kind: "conversation", id: c.id };
  };

  return (
    <header class="chat__header">
      <button type="button" class="icon-button chat__back" aria-label="Back to chats" data-testid="back" onClick={onBack}>
        <BackIcon />
      </button>
      <button type="button" class="chat__who" onClick={openInfo} aria-label={`Details of ${c.title}`}>
        <Avatar
          seed={other ?? (portal && !portal.chat.startsWith("group:") ? portal.chat : c.id)}
          name={c.title}
          src={c.avatar}
          group={c.kind === "group" && !(portal && !portal.chat.startsWith("group:"))}
        />
        <span class="chat__names">
          <span class="chat__title">
            <span class="chat__title-text" data-testid="chat-title">
              {c.title}
            </span>
            {verified && (
              <span class="verified" title="Verified" data-testid="chat-verified">
                <ShieldIcon size={16} />
                <span class="sr-only">verified</span>
              </span>
            )}
          </span>
          <span class="chat__subtitle-row">
            {portal && <NetworkBadge portal={portal} />}
            <span class={`chat__subtitle${c.typing.length > 0 ? " chat__subtitle--typing" : ""}`} data-testid="chat-subtitle">
              {subtitle}
            </span>
            {presence && c.typing.length === 0 && (
              <span class={`chat__presence${presence === "online" ? " chat__presence--online" : ""}`} data-testid="chat-presence">
                {presence}
              </span>
            )}
          </span>
        </span>
      </button>
      <div class="toolbar">
        <CallButtons conversation={c} />
        <div class="popover-anchor">
          <button
            type="button"
            class={`icon-button${c.timerSeconds > 0 ? " icon-button--active" : ""}`}
            aria-label={`Disappearing messages: ${timerLabel(c.timerSeconds)}`}
            title={`Disappearing messages: ${timerLabel(c.timerSeconds)}`}
            aria-expanded={timerOpen}
            data-testid="chat-timer"
            onClick={() => setTimerOpen(!timerOpen)}
          >
            <TimerIcon />
            {c.timerSeconds > 0 && <span class="icon-button__badge">{timerShort(c.timerSeconds)}</span>}
          </button>
          {timerOpen && <TimerMenu conversation={c} onClose={() => setTimerOpen(false)} />}
        </div>
        <button type="button" class="icon-button" aria-label="Chat info" title="Chat info" data-testid="chat-info" onClick={openInfo}>
          <InfoIcon />
        </button>
      </div>
    </header>
  );
}

type Item =
  | { type: "day"; key: string; ts: number }
  | { type: "message"; key: string; message: MessageView; continued: boolean }
  | { type: "notice"; key: string; notice: Notice };

const GROUP_GAP_MS = 5 * 60_000;

function buildItems(messages: MessageView[], notices: Notice[]): Item[] {
  // notices slot in by time; a missing-message marker sits right before
  // the message it names
  const byBefore = new Map<string, Notice[]>();
  const timed: Notice[] = [];
  const ids = new Set(messages.map((m) => m.id));
  for (const n of notices) {
    if (n.kind === "missing" && ids.has(n.before)) {
      const list = byBefore.get(n.before) ?? [];
      list.push(n);
      byBefore.set(n.before, list);
    } else timed.push(n);
  }
  timed.sort((a, b) => a.ts - b.ts);
  const items: Item[] = [];
  let lastDay = -1;
  let prev: MessageView | null = null;
  let t = 0;
  const pushDay = (ts: number) => {
    const day = dayKey(ts);
    if (day !== lastDay) {
      items.push({ type: "day", key: `day-${day}`, ts });
      lastDay = day;
      prev = null;
    }
  };
  const pushNotice = (n: Notice, index: number) => {
    pushDay(n.ts);
    items.push({ type: "notice", key: `notice-${n.kind}-${n.ts}-${index}`, notice: n });
    prev = null;
  };
  messages.forEach((m, i) => {
    while (t < timed.length && (timed[t]?.ts ?? 0) < m.ts) {
      pushNotice(timed[t] as Notice, t);
      t += 1;
    }
    (byBefore.get(m.id) ?? []).forEach((n, j) => pushNotice(n, 10_000 + i * 10 + j));
    pushDay(m.ts);
    const p: MessageView | null = prev;
    const continued = p !== null && authorKey(p) === authorKey(m) && p.mine === m.mine && m.ts - p.ts < GROUP_GAP_MS;
    items.push({ type: "message", key: m.id, message: m, continued });
    prev = m;
  });
  while (t < timed.length) {
    pushNotice(timed[t] as Notice, t);
    t += 1;
  }
  return items;
}

function Timeline({ conversation }: { conversation: ConversationView }): JSX.Element {
  const client = useClient();
  const { state } = client;
  const messages = state.messages.value.filter((m) => m.conversation === conversation.id);
  const notices = state.notices.value.filter((n) => n.conversation === conversation.id);
  const items = useMemo(() => buildItems(messages, notices), [state.messages.value, state.notices.value, conversation.id]);
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const lastCount = useRef(0);
  const [unseen, setUnseen] = useState(0);

  // open at the bottom
  useLayoutEffect(() => {
    atBottom.current = true;
    lastCount.current = 0;
    setUnseen(0);
  }, [conversation.id]);

  // follow new messages when the user is at the bottom or sent them
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const added = messages.length - lastCount.current;
    const newest = messages[messages.length - 1];
    if (atBottom.current || (added > 0 && newest?.mine) || lastCount.current === 0) {
      el.scrollTop = el.scrollHeight;
      setUnseen(0);
    } else if (added > 0) {
      setUnseen((n) => n + added);
    }
    lastCount.current = messages.length;
  }, [items]);

  // mark as read while the chat is visible
  useEffect(() => {
    const mark = () => {
      if (document.visibilityState === "visible" && conversation.unread > 0) void client.markRead(conversation.id);
    };
    mark();
    document.addEventListener("visibilitychange", mark);
    return () => document.removeEventListener("visibilitychange", mark);
  }, [conversation.id, conversation.unread, messages.length]);

  // jump to a message (search result, reply quote)
  const target = scrollTarget.value;
  useEffect(() => {
    if (!target) return;
    const el = document.getElementById(`msg-${target}`);
    if (!el) return;
    scrollTarget.value = null;
    // at once, and no longer "at the bottom": following new messages (or a
    // redraw as the chat is marked read) must not take the view away again
    atBottom.current = false;
    el.scrollIntoView({ block: "center", behavior: "auto" });
    el.classList.add("message--flash");
    const timer = setTimeout(() => el.classList.remove("message--flash"), 1600);
    return () => clearTimeout(timer);
  }, [target, items]);

  // stay at the bottom while pictures load and bubbles grow
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const el = list.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => {
      const box = scroller.current;
      if (box && atBottom.current) box.scrollTop = box.scrollHeight;
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const isGroup = conversation.kind === "group";
  return (
    <div class="timeline-wrap">
      <div
        class="timeline"
        ref={scroller}
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
          if (atBottom.current && unseen > 0) setUnseen(0);
        }}
      >
        <div role="log" aria-live="polite" aria-relevant="additions" aria-label="Messages">
          <ol class="timeline__list" data-testid="timeline" ref={list}>
            <li class="timeline__intro">
              <p class="e2e-note">
                <LockIcon size={14} />{" "}
                {conversation.portal
                  ? `End-to-end encrypted between your devices. Your connector sends messages on by ${networkLabel(conversation.portal.network)}, encrypted when it can: each message says.`
                  : "Messages in this chat are end-to-end encrypted."}
                {conversation.timerSeconds > 0 && ` They disappear after ${timerLabel(conversation.timerSeconds).toLowerCase()}.`}
              </p>
            </li>
            {items.map((item) => {
              if (item.type === "day")
                return (
                  <li key={item.key} class="day-separator" data-testid="day-separator">
                    <span>{formatDay(item.ts)}</span>
                  </li>
                );
              if (item.type === "notice")
                return (
                  <li key={item.key} class="notice-row">
                    <NoticeLine notice={item.notice} />
                  </li>
                );
              return (
                <MessageBubble
                  key={item.key}
                  message={item.message}
                  conversation={conversation}
                  continued={item.continued}
                  showSender={isGroup}
                />
              );
            })}
          </ol>
        </div>
      </div>
      {unseen > 0 && (
        <button
          type="button"
          class="jump-down"
          aria-label={`${unseen} new message${unseen === 1 ? "" : "s"}, scroll down`}
          onClick={() => {
            const el = scroller.current;
            if (el) el.scrollTo({ top: el.scrollHeight, behavior: "smooth" });
            setUnseen(0);
          }}
        >
          <ChevronDownIcon />
          <span class="badge">{unseen}</span>
        </button>
      )}
    </div>
  );
}

export function EmptyChat(): JSX.Element {
  return (
    <section class="chat chat--empty" aria-label="No chat open">
      <div class="empty-state">
        <LockIcon size={40} />
        <h2>taube</h2>
        <p>Pick a chat on the left, or start a new one.</p>
        <p class="muted">Your messages are end-to-end encrypted: only the people in a chat can read them.</p>
      </div>
    </section>
  );
}
