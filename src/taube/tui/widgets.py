"""The main screen's parts: the chat list, the messages, the compose box."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message as TextualMessage
from textual.widgets import Label, ListItem, ListView, Static, TextArea

from taube.client import Message
from taube.proto.ids import ConversationId, MessageId
from taube.tui.model import ChatSummary

#: the key line at the bottom (it fits 80 columns); F1 shows them all
KEYS = "⏎ send ^J newline ^N chat ^G group ^F find ^O file ^S save ^T members F1 ^Q"


class ChatItem(ListItem):
    def __init__(self, chat: ChatSummary) -> None:
        super().__init__(Static(self.render_chat(chat)), id=f"chat-{chat.conversation}")
        self.chat = chat

    @staticmethod
    def render_chat(chat: ChatSummary) -> Group:
        """Two lines, each cut to the column on its own (a long address must
        not wrap and push the preview out): the title, then the unread count,
        the network badge and the last message."""
        title = Text(chat.title, style="bold" if chat.unread else "", no_wrap=True)
        title.overflow = "ellipsis"
        below = Text(no_wrap=True, overflow="ellipsis")
        if chat.unread:
            below.append(f"{chat.unread if chat.unread < 100 else '99+'}", style="bold reverse")
            below.append(" ")
        if chat.badge:
            below.append(f"[{chat.badge}] ", style="magenta")
        below.append(chat.last_text, style="dim")
        return Group(title, below)

    def update_chat(self, chat: ChatSummary) -> None:
        self.chat = chat
        self.query_one(Static).update(self.render_chat(chat))


class ChatList(ListView):
    """Chats, the newest first, with unread counts and network badges."""

    async def show(self, chats: list[ChatSummary], selected: ConversationId | None) -> None:
        """Show ``chats``; the highlight stays on the chat it was on (else
        goes to ``selected``, the open one) when the order changes."""
        items = {item.chat.conversation: item for item in self.query(ChatItem)}
        order = [c.conversation for c in chats]
        if list(items) == order:
            for chat in chats:
                items[chat.conversation].update_chat(chat)
            if selected in order and not self.has_focus:
                self.index = order.index(selected)
            return
        current = self.highlighted_child
        was = current.chat.conversation if isinstance(current, ChatItem) else selected
        await self.clear()
        await self.extend(ChatItem(chat) for chat in chats)
        if was in order:
            self.index = order.index(was)
        elif selected in order:
            self.index = order.index(selected)
        elif order:
            self.index = 0

    def item(self, conversation: ConversationId) -> ChatItem | None:
        for item in self.query(ChatItem):
            if item.chat.conversation == conversation:
                return item
        return None


class MessageItem(ListItem):
    def __init__(self, message: Message, text: Text) -> None:
        super().__init__(Static(text), id=f"msg-{message.id}")
        self.message = message

    def update_message(self, message: Message, text: Text) -> None:
        self.message = message
        self.query_one(Static).update(text)


class OlderItem(ListItem):
    """The first row while older messages are there: choosing it (or moving
    up onto it) loads them."""

    def __init__(self) -> None:
        super().__init__(Label("↑ older messages", classes="older"))


class MessageList(ListView):
    """One chat's messages, oldest at the top; scrolled to the newest. On
    the highlighted message: r replies, e edits (your own), + reacts 👍,
    Delete deletes for everyone (your own)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "app.reply", "reply"),
        Binding("e", "app.edit", "edit"),
        Binding("plus", "app.react", "react"),
        Binding("delete", "app.delete", "delete"),
    ]

    class Older(TextualMessage):
        """The user wants the messages before the first one shown."""

    def ids(self) -> list[MessageId]:
        return [item.message.id for item in self.query(MessageItem)]

    async def show(self, rows: list[tuple[Message, Text]], more: bool, keep: bool) -> None:
        """Show ``rows``; ``keep``: stay where the user is (on the message
        highlighted, or on the first one after loading older ones) unless
        they were at the newest, else go to the newest."""
        if keep and await self._grow(rows, more):
            return
        current = self.highlighted_child
        keep_id: MessageId | None = None
        if isinstance(current, OlderItem):
            keep_id = next(iter(self.ids()), None)
        elif isinstance(current, MessageItem):
            keep_id = current.message.id
        at_end = self.index is None or self.index >= len(self) - 1
        await self.clear()
        items: list[ListItem] = [OlderItem()] if more else []
        items += [MessageItem(m, t) for m, t in rows]
        await self.extend(items)
        ids = self.ids()
        if keep and not at_end and keep_id in ids:
            self.select_message(keep_id)
        elif len(self):
            self.index = len(self) - 1
            self.scroll_end(animate=False)

    async def _grow(self, rows: list[tuple[Message, Text]], more: bool) -> bool:
        """Update the rows in place and add the new ones at the end, when
        that is all that changed: the highlight stays, and a key pressed
        meanwhile finds the list as it was (no rebuild)."""
        shown = list(self.query(MessageItem))
        ids = [item.message.id for item in shown]
        if not ids or bool(self.query(OlderItem)) != more:
            return False
        if [m.id for m, _ in rows[: len(ids)]] != ids:
            return False
        at_end = self.index is None or self.index >= len(self) - 1
        for item, (message, text) in zip(shown, rows, strict=False):
            item.update_message(message, text)
        added = rows[len(ids) :]
        if added:
            await self.extend(MessageItem(m, t) for m, t in added)
            if at_end:
                self.index = len(self) - 1
                self.scroll_end(animate=False)
        return True

    def select_message(self, msg_id: MessageId) -> bool:
        ids = self.ids()
        if msg_id not in ids:
            return False
        offset = 1 if self.query(OlderItem) else 0
        self.index = ids.index(msg_id) + offset
        child = self.highlighted_child
        if child is not None:
            self.scroll_to_widget(child, animate=False, center=True)
        return True

    def selected_message(self) -> Message | None:
        child = self.highlighted_child
        return child.message if isinstance(child, MessageItem) else None

    def watch_index(self, old_index: int | None, new_index: int | None) -> None:
        super().watch_index(old_index, new_index)
        if new_index == 0 and old_index not in (None, 0) and self.query(OlderItem):
            self.post_message(self.Older())

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, OlderItem):
            event.stop()
            self.post_message(self.Older())

    def on_mouse_scroll_up(self, _event: events.MouseScrollUp) -> None:
        if self.scroll_y <= 0 and self.query(OlderItem):
            self.post_message(self.Older())


class Compose(TextArea):
    """What the user writes: Enter sends, Ctrl+J (or Shift+Enter where the
    terminal tells it apart) starts a new line; pasted text keeps its lines."""

    class Send(TextualMessage):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Cancel(TextualMessage):
        """Escape: not a reply or an edit any more."""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.post_message(self.Send(text))
            return
        if event.key == "escape":
            self.post_message(self.Cancel())
        if event.key in ("ctrl+j", "shift+enter", "newline"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)
