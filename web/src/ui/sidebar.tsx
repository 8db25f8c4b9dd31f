// The left column: header, connection banner, search and the unified
// conversation list.
import type { JSX } from "preact";
import { useMemo, useState } from "preact/hooks";
import type { ConversationView, MessageView } from "../client/model";
import { marked } from "../client/search";
import { Avatar } from "./avatar";
import { openConversation, panel, scrollTarget, openId, useClient } from "./context";
import { authorName, displayName, formatListTime, messagePreview } from "./format";
import { ClockIcon, CloseIcon, ComposeIcon, GroupIcon, PlusIcon, SearchIcon, SettingsIcon } from "./icons";
import { InviteDialog } from "./invite";
import { NewChatDialog, NewGroupDialog } from "./new-conversation";
import { NetworkBadge } from "./portal";
import { StatusTicks } from "./ticks";

export function Sidebar(): JSX.Element {
  const client = useClient();
  const { state } = client;
  const [query, setQuery] = useState("");
  const [dialog, setDialog] = useState<"chat" | "group" | "invite" | null>(null);
  const session = state.session.value;
  const me = session ? state.contacts.value[session.user] : undefined;
  const conversations = state.conversations.value;
  const q = query.trim().toLowerCase();
  const visible = useMemo(() => {
    const sorted = [...conversations].sort((a, b) => b.lastTs - a.lastTs);
    if (!q) return sorted;
    return sorted.filter(
      (c) =>
        c.title.toLowerCase().includes(q) ||
        Object.keys(c.members).some((m) => m.toLowerCase().includes(q)) ||
        (c.portal?.peers ?? []).some((p) => p.toLowerCase().includes(q)),
    );
  }, [conversations, q]);
  // again when messages change (the list's views follow every change): the
  // index makes that cheap, so an edit or a deletion shows in the results at once
  const results = useMemo<MessageView[]>(() => (q.length >= 2 ? client.search(query.trim()).slice(0, 50) : []), [q, conversations]);

  return (
    <section class="sidebar" aria-label="Chats">
      <header class="sidebar__header">
        <button
          type="button"
          class="avatar-button"
          aria-label="Settings and profile"
          onClick={() => (panel.value = { kind: "settings" })}
        >
          <Avatar seed={session?.user ?? "?"} name={me?.name || session?.user || "?"} src={me?.avatar} size="s" />
        </button>
        <h1 class="sidebar__title">Chats</h1>
        <div class="toolbar">
          <button
            type="button"
            class="icon-button"
            aria-label="New chat"
            title="New chat"
            data-testid="new-chat"
            onClick={() => setDialog("chat")}
          >
            <ComposeIcon />
          </button>
          <button
            type="button"
            class="icon-button"
            aria-label="Invite someone"
            title="Invite someone"
            data-testid="invite-someone"
            onClick={() => setDialog("invite")}
          >
            <PlusIcon />
          </button>
          <button
            type="button"
            class="icon-button"
            aria-label="New group"
            title="New group"
            data-testid="new-group"
            onClick={() => setDialog("group")}
          >
            <GroupIcon />
          </button>
          <button
            type="button"
            class="icon-button"
            aria-label="Settings"
            title="Settings"
            data-testid="open-settings"
            onClick={() => (panel.value = { kind: "settings" })}
          >
            <SettingsIcon />
          </button>
        </div>
      </header>
      <ConnectionBanner />
      <div class="search">
        <SearchIcon size={18} class="search__icon" />
        <input
          class="search__input"
          type="search"
          placeholder="Search chats and messages"
          aria-label="Search chats and messages"
          value={query}
          onInput={(e) => setQuery(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Escape") setQuery("");
          }}
          data-testid="search"
        />
        {query && (
          <button type="button" class="icon-button icon-button--small" aria-label="Clear search" onClick={() => setQuery("")}>
            <CloseIcon size={16} />
          </button>
        )}
      </div>
      <nav class="conversations" aria-label="Conversations" onKeyDown={moveFocus}>
        {q && visible.length > 0 && <h2 class="list-heading">Chats</h2>}
        <ul class="conversations__list" data-testid="conversation-list">
          {visible.map((c) => (
            <ConversationItem key={c.id} conversation={c} />
          ))}
        </ul>
        {visible.length === 0 && !q && <EmptyList onNewChat={() => setDialog("chat")} onInvite={() => setDialog("invite")} />}
        {q && visible.length === 0 && results.length === 0 && <p class="list-empty">Nothing found for “{query.trim()}”.</p>}
        {results.length > 0 && (
          <>
            <h2 class="list-heading">Messages</h2>
            <ul class="conversations__list">
              {results.map((m) => (
                <SearchResult key={`${m.conversation}/${m.id}`} message={m} query={query} />
              ))}
            </ul>
          </>
        )}
      </nav>
      {dialog === "chat" && <NewChatDialog onClose={() => setDialog(null)} />}
      {dialog === "group" && <NewGroupDialog onClose={() => setDialog(null)} />}
      {dialog === "invite" && <InviteDialog onClose={() => setDialog(null)} />}
    </section>
  );
}

/** ArrowUp/ArrowDown (and Home/End) move between the rows of the list */
function moveFocus(e: KeyboardEvent): void {
  if (!["ArrowDown", "ArrowUp", "Home", "End"].includes(e.key)) return;
  const nav = e.currentTarget as HTMLElement;
  const rows = [...nav.querySelectorAll<HTMLElement>("button.conversation")];
  if (rows.length === 0) return;
  const i = rows.indexOf(document.activeElement as HTMLElement);
  let next: number;
  if (e.key === "Home") next = 0;
  else if (e.key === "End") next = rows.length - 1;
  else if (i < 0) next = 0;
  else next = Math.min(rows.length - 1, Math.max(0, i + (e.key === "ArrowDown" ? 1 : -1)));
  e.preventDefault();
  rows[next]?.focus();
}

function EmptyList({ onNewChat, onInvite }: { onNewChat: () => void; onInvite: () => void }): JSX.Element {
  return (
    <div class="list-empty list-empty--start" data-testid="empty-list">
      <p>
        <strong>No chats yet.</strong>
      </p>
      <p>
        Invite someone with a link or a QR code: they sign up and your chat opens, verified on both sides. Or start a
        chat with an address you know.
      </p>
      <button type="button" class="button" onClick={onInvite} data-testid="empty-invite">
        Invite someone
      </button>
      <button type="button" class="button button--ghost" onClick={onNewChat}>
        Start a chat by address
      </button>
    </div>
  );
}

export function ConnectionBanner(): JSX.Element | null {
  const { state } = useClient();
  const connection = state.connection.value;
  if (connection === "online") return null;
  return (
    <div class={`banner banner--${connection}`} role="status" data-testid="connection-banner" data-state={connection}>
      {connection === "offline" ? (
        <>
          <strong>You're offline.</strong> Messages you write are kept and sent when you're back.
        </>
      ) : (
        <>
          <span class="spinner spinner--small" aria-hidden="true" /> Connecting…
        </>
      )}
    </div>
  );
}

function typingText(c: ConversationView, names: (u: string) => string): string | null {
  if (c.typing.length === 0) return null;
  if (c.kind === "direct") return "typing…";
  if (c.typing.length === 1) return `${names(c.typing[0] ?? "")} is typing…`;
  return `${c.typing.length} people are typing…`;
}

function ConversationItem({ conversation: c }: { conversation: ConversationView }): JSX.Element {
  const client = useClient();
  const contacts = client.state.contacts.value;
  const selected = openId.value === c.id;
  const typing = typingText(c, (u) => displayName(u, contacts));
  const last = c.last;
  // a portal to one address looks like a direct chat with that address
  const single = c.portal && !c.portal.chat.startsWith("group:") ? c.portal.chat : null;
  const seed = c.kind === "direct" ? (Object.keys(c.members).find((m) => m !== client.state.session.value?.user) ?? c.id) : single ?? c.id;
  // a name, with the address small beside it
  const address = c.kind === "direct" && !c.portal && seed !== c.title && seed !== c.id ? seed : null;
  let preview: string = last ? messagePreview(last) : c.portal ? "No messages yet" : c.kind === "group" ? "Group created" : "No messages yet";
  if (last && c.kind === "group" && !single && !last.deleted && !last.mine) preview = `${authorName(last, contacts)}: ${preview}`;
  return (
    <li>
      <button
        type="button"
        class={`conversation${selected ? " conversation--selected" : ""}${c.unread > 0 ? " conversation--unread" : ""}`}
        aria-current={selected ? "true" : undefined}
        data-testid="conversation"
        data-id={c.id}
        data-unread={c.unread}
        onClick={() => openConversation(client, c.id)}
      >
        <Avatar seed={seed} name={c.title} src={c.avatar} group={c.kind === "group" && !single} />
        <span class="conversation__main">
          <span class="conversation__row">
            <span class={`conversation__title${address ? " conversation__title--named" : ""}`} data-testid="conversation-title">
              {c.title}
            </span>
            {address && (
              <span class="conversation__address" data-testid="conversation-address">
                {address}
              </span>
            )}
            {c.portal && <NetworkBadge portal={c.portal} />}
            <span class="conversation__time">{formatListTime(c.lastTs)}</span>
          </span>
          <span class="conversation__row">
            <span class={`conversation__preview${typing ? " conversation__preview--typing" : ""}`} data-testid="conversation-preview">
              {typing ?? (
                <>
                  {last?.mine && !last.deleted && <StatusTicks status={last.status} />}
                  {last?.mine && !last.deleted && "You: "}
                  {preview}
                </>
              )}
            </span>
            {c.timerSeconds > 0 && <ClockIcon size={14} class="conversation__timer" />}
            {c.unread > 0 && (
              <span class="badge" data-testid="unread" aria-label={`${c.unread} unread`}>
                {c.unread > 99 ? "99+" : c.unread}
              </span>
            )}
          </span>
        </span>
      </button>
    </li>
  );
}

function SearchResult({ message, query }: { message: MessageView; query: string }): JSX.Element {
  const client = useClient();
  const conversation = client.state.conversations.value.find((c) => c.id === message.conversation);
  const contacts = client.state.contacts.value;
  return (
    <li>
      <button
        type="button"
        class="conversation conversation--result"
        data-testid="search-result"
        data-id={message.id}
        onClick={() => {
          openConversation(client, message.conversation);
          scrollTarget.value = message.id;
        }}
      >
        <span class="conversation__main">
          <span class="conversation__row">
            <span class="conversation__title">{conversation?.title ?? "Chat"}</span>
            <span class="conversation__time">{formatListTime(message.ts)}</span>
          </span>
          <span class="conversation__preview" data-testid="search-snippet">
            {authorName(message, contacts)}:{" "}
            {marked(messagePreview(message), query).map((piece, i) => (piece.hit ? <mark key={i}>{piece.text}</mark> : piece.text))}
          </span>
        </span>
      </button>
    </li>
  );
}
