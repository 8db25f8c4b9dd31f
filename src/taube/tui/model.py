"""What the terminal UI shows, read from the SDK: no widgets here.

A chat's name, its badge (group, or the network a portal reaches), how many
of its messages the user has not read (messages of others that carry no
read receipt of the user's: ``mark_read`` from any of the user's devices
clears them), and one message as a line of text.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

from rich.text import Text

from taube.client import Client, Message
from taube.client import events as ev
from taube.proto.ids import ConversationId, MessageId
from taube.proto.state import ConversationState, Kind

#: messages looked at for the unread count (a chat shows "99+" past that)
UNREAD_WINDOW = 100
#: what a portal's network is called in the chat list
NETWORKS = {"email": "e-mail"}


@dataclasses.dataclass(frozen=True)
class ChatSummary:
    conversation: ConversationId
    title: str
    badge: str  #: "" (direct), "group", or the network of a portal ("e-mail")
    unread: int
    last_text: str
    last_ts: int


def name_of(client: Client, user: str) -> str:
    """A contact's display name, else the address."""
    if user == client.user:
        return "you"
    profile = client.contact(user)
    return profile.name if profile is not None and profile.name else user


def title_of(client: Client, conversation: ConversationId, state: ConversationState) -> str:
    titled = client.title(conversation)
    portal = client.portal(conversation)
    if portal is not None:
        return titled or portal.title or ", ".join(portal.peers) or portal.chat
    if titled:
        return titled
    others = sorted(u for u in state.members if u != client.user)
    return ", ".join(name_of(client, u) for u in others) or "just you"


def badge_of(client: Client, conversation: ConversationId, state: ConversationState) -> str:
    portal = client.portal(conversation)
    if portal is not None:
        return NETWORKS.get(portal.network, portal.network)
    return "group" if state.kind == Kind.GROUP else ""


def shown(message: Message) -> bool:
    """A message of its own in the chat (not an edit, reaction, receipt...)."""
    return message.type not in ev.ANNOTATIONS


def heading(client: Client, conversation: ConversationId, state: ConversationState) -> str:
    """The line above a chat: its name, what it is, who."""
    title = title_of(client, conversation, state)
    badge = badge_of(client, conversation, state)
    if badge:
        return f"{title} [{badge}] · {len(state.members)} members"
    others = sorted(u for u in state.members if u != client.user)
    return f"{title} <{others[0]}>" if others and others[0] != title else title


def unread_of(client: Client, messages: list[Message]) -> list[MessageId]:
    """The messages of others the user has not marked read."""
    return [
        m.id
        for m in messages
        if shown(m) and m.sender != client.user and client.user not in m.read_by and not m.deleted
    ]


def summary(
    client: Client,
    conversation: ConversationId,
    state: ConversationState,
    history: list[Message],
) -> ChatSummary:
    """A chat's line in the list, from its newest ``UNREAD_WINDOW`` messages."""
    messages = [m for m in history if shown(m)]
    last = messages[-1] if messages else None
    return ChatSummary(
        conversation=conversation,
        title=title_of(client, conversation, state),
        badge=badge_of(client, conversation, state),
        unread=len(unread_of(client, messages)),
        last_text=preview(last) if last is not None else "",
        last_ts=last.ts if last is not None else 0,
    )


def newest_first(chats: Iterable[ChatSummary]) -> list[ChatSummary]:
    """The chat with the newest message first."""
    return sorted(chats, key=lambda s: s.last_ts, reverse=True)


def files_of(message: Message) -> list[dict[str, object]]:
    entries = message.content.get("attachments") or []
    return [e for e in entries if isinstance(e, dict)]


def preview(message: Message) -> str:
    """One line for the chat list."""
    if message.deleted:
        return "(deleted)"
    files = files_of(message)
    text = message.text.replace("\n", " ")
    if files and not text:
        text = f"[{files[0].get('name', 'file')}]"
    return text


def clock(ts: int) -> str:
    return time.strftime("%H:%M", time.localtime(ts / 1000))


def size_text(size: object) -> str:
    if not isinstance(size, int):
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def message_text(client: Client, message: Message, replied: Message | None = None) -> Text:
    """A message as the chat shows it: time, sender, what it answers (if
    that is shown too), text, files, marks."""
    line = Text()
    line.append(clock(message.ts) + " ", style="dim")
    remote = message.remote
    sender = (remote.name or remote.sender) if remote else name_of(client, message.sender)
    line.append(sender, style="bold green" if message.sender == client.user else "bold cyan")
    line.append(": ")
    if message.deleted:
        line.append("(deleted)", style="dim italic")
        return line
    if replied is not None:
        line.append(f"↪ {name_of(client, replied.sender)}: {preview(replied)[:30]} │ ", style="dim")
    elif message.reply_to:
        line.append("↪ ", style="dim")
    line.append(message.text)
    for entry in files_of(message):
        line.append(
            f"\n  📎 {entry.get('name', 'file')} ({size_text(entry.get('size'))})",
            style="yellow",
        )
    marks = []
    if message.edited:
        marks.append("edited")
    if message.reactions:
        marks.append(" ".join(f"{k}{len(v)}" for k, v in message.reactions.items()))
    if message.sender == client.user:
        marks.append(delivery_mark(client, message))
    if message.relayed is not None:
        relayed = message.relayed
        if relayed.error:
            marks.append(f"not sent by {relayed.network}: {relayed.error}")
        elif not relayed.encrypted:
            marks.append(f"{NETWORKS.get(relayed.network, relayed.network)}, NOT encrypted")
    if marks:
        line.append("  " + " · ".join(m for m in marks if m), style="dim")
    return line


def delivery_mark(client: Client, message: Message) -> str:
    """pending …, sent ✓, delivered ✓✓, read ✓✓ (bold in the theme: "read")."""
    if message.status == "pending":
        return "…"
    if message.status == "failed":
        return "failed"
    if any(u != client.user for u in message.read_by):
        return "read"
    if any(u != client.user for u in message.delivered_to):
        return "✓✓"
    return "✓"


def highlight(snippet: str, marks: tuple[str, str]) -> Text:
    """A search snippet with its matched words in bold."""
    text = Text()
    rest = snippet.replace("\n", " ")
    while marks[0] in rest:
        before, _, after = rest.partition(marks[0])
        word, _, rest = after.partition(marks[1])
        text.append(before)
        text.append(word, style="bold reverse")
    text.append(rest)
    return text
