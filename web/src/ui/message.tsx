// One message: bubble, reply quote, attachments, text, meta line, the
// per-message menu (reactions, reply, copy, edit, delete) and reactions; in
// a portal, the remote author of what came in and how ours went out.
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ConversationView, MessageView } from "../client/model";
import { Attachment } from "./attachments";
import { Avatar } from "./avatar";
import { CallEventLine } from "./call";
import { editingId, replyTo, scrollTarget, useClient } from "./context";
import { ConfirmDialog } from "./dialog";
import { authorKey, authorName, displayName, formatTime, hueOf, messagePreview, networkLabel } from "./format";
import { ChevronDownIcon, CopyIcon, EditIcon, ReplyIcon, TimerIcon, TrashIcon } from "./icons";
import { isJumboEmoji, linkify } from "./linkify";
import { RelayLine } from "./portal";
import { StatusTicks } from "./ticks";
import { useDismiss } from "./timer";

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

interface BubbleProps {
  message: MessageView;
  conversation: ConversationView;
  continued: boolean;
  showSender: boolean;
}

export function MessageBubble({ message: m, conversation, continued, showSender }: BubbleProps): JSX.Element {
  const client = useClient();
  const contacts = client.state.contacts.value;
  const [menu, setMenu] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const editing = editingId.value === m.id;
  if (m.call) return <CallEventLine message={m} />;
  const senderName = authorName(m, contacts);
  const jumbo = !m.deleted && m.attachments.length === 0 && isJumboEmoji(m.text);
  const hasMedia = !m.deleted && m.attachments.some((a) => a.kind === "image" || a.kind === "video");
  const classes = [
    "message",
    m.mine ? "message--mine" : "message--theirs",
    continued ? "message--continued" : "",
    m.deleted ? "message--deleted" : "",
    jumbo ? "message--jumbo" : "",
    hasMedia ? "message--media" : "",
    menu ? "message--menu-open" : "",
  ]
    .filter(Boolean)
    .join(" ");

  return (
    <li
      id={`msg-${m.id}`}
      class={classes}
      data-testid="message"
      data-id={m.id}
      data-status={m.status}
      data-sender={m.sender}
      data-remote-sender={m.remote?.sender}
      data-mine={m.mine ? "true" : "false"}
    >
      <div class="message__row">
        <div class="bubble">
          {(showSender || m.remote) && !m.mine && !continued && (
            <span
              class={`message__sender${m.remote ? " message__sender--remote" : ""}`}
              style={{ "--sender-hue": String(hueOf(authorKey(m))) } as Record<string, string>}
              title={m.remote ? `${m.remote.sender}, by ${networkLabel(m.remote.network)}` : undefined}
              data-testid="message-sender"
            >
              {m.remote && <Avatar seed={m.remote.sender} name={senderName} src={null} size="xs" />}
              {senderName}
            </span>
          )}
          {m.replyTo && !m.deleted && <ReplyQuote id={m.replyTo} />}
          {!m.deleted && m.attachments.map((a) => <Attachment key={a.blob} entry={a} message={m} />)}
          {m.deleted ? (
            <p class="message__text message__text--deleted" data-testid="message-deleted">
              This message was deleted
              <Meta message={m} spacer />
            </p>
          ) : editing ? (
            <EditBox message={m} conversation={conversation} />
          ) : (
            m.text && (
              <p class="message__text" data-testid="message-text" dir="auto">
                {linkify(m.text)}
                <Meta message={m} spacer />
              </p>
            )
          )}
          <Meta message={m} />
        </div>
        {!m.deleted && !editing && (
          <div class="message__actions popover-anchor">
            <button
              type="button"
              class="message__menu-button"
              aria-label="Message actions"
              aria-haspopup="menu"
              aria-expanded={menu}
              data-testid="message-menu"
              onClick={() => setMenu(!menu)}
            >
              <ChevronDownIcon size={18} />
            </button>
            {menu && (
              <MessageMenu
                message={m}
                conversation={conversation}
                onClose={() => setMenu(false)}
                onDelete={() => setConfirmDelete(true)}
              />
            )}
          </div>
        )}
      </div>
      {!m.deleted && <Reactions message={m} conversation={conversation} />}
      {m.mine && m.relayed && !m.deleted && <RelayLine relayed={m.relayed} />}
      {m.status === "failed" && <p class="message__failed">Not sent. It will be retried when the connection is back.</p>}
      {confirmDelete && (
        <ConfirmDialog
          title="Delete for everyone?"
          text="The message will be replaced by “This message was deleted” on every device in this chat."
          confirm="Delete"
          danger
          onConfirm={() => void client.deleteForEveryone(conversation.id, m.id)}
          onClose={() => setConfirmDelete(false)}
        />
      )}
    </li>
  );
}

/** time, "edited", timer and ticks; `spacer` is the invisible in-flow copy */
function Meta({ message: m, spacer }: { message: MessageView; spacer?: boolean }): JSX.Element {
  return (
    <span class={spacer ? "message__meta message__meta--spacer" : "message__meta"} aria-hidden={spacer ? "true" : undefined}>
      {m.expiresMs !== null && (
        <span class="message__expires" title={spacer ? undefined : "Disappears"}>
          <TimerIcon size={12} />
        </span>
      )}
      {m.edited && !m.deleted && (
        <span class="message__edited" data-testid={spacer ? undefined : "message-edited"}>
          edited
        </span>
      )}
      <time dateTime={new Date(m.ts).toISOString()}>{formatTime(m.ts)}</time>
      {m.mine && !m.deleted && (spacer ? <span class="ticks-space" /> : <StatusTicks status={m.status} />)}
    </span>
  );
}

function ReplyQuote({ id }: { id: string }): JSX.Element {
  const { state } = useClient();
  const original = state.messages.value.find((x) => x.id === id);
  const contacts = state.contacts.value;
  return (
    <button
      type="button"
      class="quote"
      data-testid="reply-quote"
      data-target={id}
      disabled={!original}
      onClick={() => (scrollTarget.value = id)}
    >
      {original ? (
        <>
          <span
            class="quote__name"
            style={{ "--sender-hue": String(hueOf(authorKey(original))) } as Record<string, string>}
          >
            {authorName(original, contacts)}
          </span>
          <span class="quote__text">{messagePreview(original)}</span>
        </>
      ) : (
        <span class="quote__text">The original message is not available.</span>
      )}
    </button>
  );
}

function MessageMenu({
  message: m,
  conversation,
  onClose,
  onDelete,
}: {
  message: MessageView;
  conversation: ConversationView;
  onClose: () => void;
  onDelete: () => void;
}): JSX.Element {
  const client = useClient();
  const ref = useRef<HTMLDivElement>(null);
  useDismiss(ref, onClose);
  useEffect(() => {
    ref.current?.querySelector<HTMLElement>("[role^=menuitem]")?.focus();
  }, []);
  const canEdit = m.mine && !m.deleted && m.status !== "pending" && (m.text.length > 0 || m.attachments.length === 0);
  return (
    <div class={`menu ${m.mine ? "menu--right" : "menu--left"}`} role="menu" aria-label="Message actions" ref={ref} data-testid="message-menu-popup">
      <div class="menu__reactions" role="group" aria-label="React">
        {QUICK_REACTIONS.map((emoji) => (
          <button
            key={emoji}
            type="button"
            role="menuitem"
            class="menu__emoji"
            aria-label={`React with ${emoji}`}
            data-testid="reaction-pick"
            data-emoji={emoji}
            onClick={() => {
              void client.react(conversation.id, m.id, emoji);
              onClose();
            }}
          >
            {emoji}
          </button>
        ))}
      </div>
      <button
        type="button"
        role="menuitem"
        class="menu__item"
        data-testid="menu-reply"
        onClick={() => {
          replyTo.value = m;
          onClose();
        }}
      >
        <ReplyIcon size={18} /> Reply
      </button>
      {m.text && (
        <button
          type="button"
          role="menuitem"
          class="menu__item"
          data-testid="menu-copy"
          onClick={() => {
            void navigator.clipboard?.writeText(m.text).catch(() => undefined);
            onClose();
          }}
        >
          <CopyIcon size={18} /> Copy text
        </button>
      )}
      {canEdit && (
        <button
          type="button"
          role="menuitem"
          class="menu__item"
          data-testid="menu-edit"
          onClick={() => {
            editingId.value = m.id;
            onClose();
          }}
        >
          <EditIcon size={18} /> Edit
        </button>
      )}
      {m.mine && (
        <button
          type="button"
          role="menuitem"
          class="menu__item menu__item--danger"
          data-testid="menu-delete"
          onClick={() => {
            onClose();
            onDelete();
          }}
        >
          <TrashIcon size={18} /> Delete for everyone
        </button>
      )}
    </div>
  );
}

function EditBox({ message, conversation }: { message: MessageView; conversation: ConversationView }): JSX.Element {
  const client = useClient();
  const [text, setText] = useState(message.text);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);
  const save = () => {
    const body = text.trim();
    editingId.value = null;
    if (body && body !== message.text) void client.edit(conversation.id, message.id, body);
  };
  return (
    <div class="edit-box">
      <textarea
        ref={ref}
        class="edit-box__input"
        aria-label="Edit message"
        value={text}
        rows={1}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            save();
          } else if (e.key === "Escape") {
            e.preventDefault();
            e.stopPropagation();
            editingId.value = null;
          }
        }}
        data-testid="edit-input"
      />
      <div class="edit-box__actions">
        <button type="button" class="button button--small button--ghost" onClick={() => (editingId.value = null)} data-testid="edit-cancel">
          Cancel
        </button>
        <button type="button" class="button button--small" onClick={save} data-testid="edit-save">
          Save
        </button>
      </div>
    </div>
  );
}

function Reactions({ message: m, conversation }: { message: MessageView; conversation: ConversationView }): JSX.Element | null {
  const client = useClient();
  const me = client.state.session.value?.user ?? "";
  const contacts = client.state.contacts.value;
  const entries = Object.entries(m.reactions).filter(([, users]) => users.length > 0);
  if (entries.length === 0) return null;
  return (
    <div class="reactions" data-testid="reactions">
      {entries.map(([emoji, users]) => {
        const mine = users.includes(me);
        const names = users.map((u) => (u === me ? "You" : displayName(u, contacts))).join(", ");
        return (
          <button
            key={emoji}
            type="button"
            class={`reaction${mine ? " reaction--mine" : ""}`}
            aria-pressed={mine}
            aria-label={`${emoji} ${users.length}: ${names}${mine ? " (click to remove yours)" : ""}`}
            title={names}
            data-testid="reaction"
            data-emoji={emoji}
            data-count={users.length}
            onClick={() => void client.react(conversation.id, m.id, emoji)}
          >
            <span class="reaction__emoji">{emoji}</span>
            <span class="reaction__count">{users.length}</span>
          </button>
        );
      })}
    </div>
  );
}
