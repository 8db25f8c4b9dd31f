"""``TaubeApp``: the terminal UI on one ``taube.client.Client``.

The app and the client share one event loop: ``taube tui`` opens the
profile as every command does and runs ``TaubeApp(client).run_async()``
inside it; tests drive it with Textual's pilot in theirs. The client's
events are read by one worker and turned into what the screen shows; every
change marks the view dirty, and one refresher redraws (so a burst of
messages is one redraw). What the screen shows is read from the SDK each
time (``history``, ``conversations``), so a message delivered again after a
reconnect is one row, as it is one row in the profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import ListView, Static

from taube.client import (
    Client,
    ClientError,
    KeyChanged,
    MembershipChanged,
    Message,
    MissingMessages,
    Received,
    SearchHit,
    Typing,
    Undecryptable,
)
from taube.client import events as ev
from taube.proto.ids import ConversationId, MessageId, UserId
from taube.tui import model
from taube.tui.screens import (
    Ask,
    Confirm,
    HelpDialog,
    MemberChange,
    MembersDialog,
    NewGroup,
    NewGroupDialog,
    SearchDialog,
)
from taube.tui.widgets import KEYS, ChatItem, ChatList, Compose, MessageItem, MessageList

log = logging.getLogger(__name__)

#: messages loaded at a time (more as the user scrolls back)
PAGE = 50
#: a typing note shows this long unless renewed (the sender renews every TYPING_EVERY)
TYPING_SHOWN = 6.0
TYPING_EVERY = 3.0
#: how long a burst of events is gathered before one redraw (seconds)
REDRAW_AFTER = 0.03

CSS = """
#top { height: 1; background: $primary-darken-2; color: $text; padding: 0 1; }
#body { height: 1fr; }
#chats { width: 26; border-right: solid $primary-darken-2; }
#chats > ListItem { height: 2; }
#chat { width: 1fr; }
#chat-title { height: 1; background: $boost; padding: 0 1; text-style: bold; }
#messages { height: 1fr; }
#messages > ListItem { height: auto; padding: 0 1; }
#compose { height: auto; min-height: 3; max-height: 8; }
#compose-note { height: auto; display: none; color: $text-muted; padding: 0 1; }
#keys { height: 1; background: $primary-darken-3; color: $text-muted; }
.older { color: $text-muted; text-style: italic; }
.dialog {
    width: 64; max-width: 100%; height: auto; max-height: 100%;
    border: round $primary; background: $surface; padding: 0 1;
}
.wide { width: 78; }
.dialog ListView { height: auto; max-height: 12; }
.hint { color: $text-muted; }
ModalScreen { align: center middle; }
"""


class TaubeApp(App[None]):
    TITLE = "taube"
    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_chat", "new chat", priority=True),
        Binding("ctrl+g", "new_group", "new group", priority=True),
        Binding("ctrl+f", "search", "search", priority=True),
        Binding("ctrl+o", "send_file", "send a file", priority=True),
        Binding("ctrl+s", "save_file", "save a file", priority=True),
        Binding("ctrl+t", "members", "members", priority=True),
        Binding("f1", "help", "help", priority=True),
    ]

    def __init__(self, client: Client, *, save_dir: Path | None = None) -> None:
        super().__init__()
        self.client = client
        #: where received files are offered to be saved
        self.save_dir = save_dir or Path.cwd()
        self.open_chat: ConversationId | None = None
        self.chats: list[model.ChatSummary] = []
        self._limit = PAGE
        self._dirty = asyncio.Event()
        #: one redraw of a list at a time (a list is cleared and filled in steps)
        self._drawing = asyncio.Lock()
        #: the chats to read again at the next redraw (``None``: all)
        self._changed: set[ConversationId] | None = set()
        self._summaries: dict[ConversationId, model.ChatSummary] = {}
        #: what ``history`` gave since the last redraw: (limit, messages)
        self._histories: dict[ConversationId, tuple[int, list[Message]]] = {}
        #: what Enter in the box does: answer this message, or edit it
        self._reply_to: Message | None = None
        self._editing: Message | None = None
        #: who is typing in the open chat (until when); when the user last said so
        self._typing: dict[UserId, float] = {}
        self._typing_sent = 0.0
        #: messages in other chats since the last redraw (rung then)
        self._news: dict[ConversationId, list[Message]] = {}
        #: the backlog that came when the app started is in
        self._synced = False

    # ================================================================ layout

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        with Horizontal(id="body"):
            yield ChatList(id="chats")
            with Vertical(id="chat"):
                yield Static("no chat open: Ctrl+N starts one", id="chat-title")
                yield MessageList(id="messages")
                yield Static(id="compose-note")
                yield Compose(id="compose", soft_wrap=True, show_line_numbers=False)
        yield Static(KEYS, id="keys")

    @property
    def chat_list(self) -> ChatList:
        return self.query_one("#chats", ChatList)

    @property
    def message_list(self) -> MessageList:
        return self.query_one("#messages", MessageList)

    @property
    def compose_box(self) -> Compose:
        return self.query_one("#compose", Compose)

    async def on_mount(self) -> None:
        self.query_one("#top", Static).update(Text(f"taube · {self.client.user}"))
        await self.client.connect()
        self.client.pending_events()  # what came before the app is in the history
        self.run_worker(self._wait_synced(), name="synced", group="client")
        await self.refresh_chats()
        self.chat_list.focus()  # ↑ ↓ and Enter open a chat
        self.run_worker(self._read_events(), name="events", group="client")
        self.run_worker(self._redraw(), name="redraw", group="client")
        self.set_interval(1.0, self._tick)

    # ================================================================ the client's events

    async def _wait_synced(self) -> None:
        """No bell for the backlog that comes on start, only for what comes after."""
        await self.client.queue_empty.wait()
        self._synced = True
        self._news.clear()

    async def _read_events(self) -> None:
        async for event in self.client.events():
            try:
                await self.on_client_event(event)
            except Exception:  # one bad event must not stop the others
                log.exception("showing an event failed")

    async def on_client_event(self, event: ev.Event) -> None:
        if isinstance(event, Received):
            self._histories.pop(event.message.conversation, None)
            self._notify_message(event.message)
            if event.message.conversation == self.open_chat and model.shown(event.message):
                self._typing.pop(event.message.sender, None)
                await self._mark_read()
            self.redraw(event.message.conversation)
        elif isinstance(event, MembershipChanged):
            self.redraw(event.conversation)
        elif isinstance(event, Typing):
            await self._typing_changed(event)
        elif isinstance(event, KeyChanged):
            self.say(f"{event.user}: {event.reason}", title="safety", severity="warning")
        elif isinstance(event, Undecryptable):
            self.say(
                f"a message from {event.sender} could not be shown: {event.reason}",
                severity="warning",
            )
        elif isinstance(event, MissingMessages):
            self.say(f"{event.count} messages of {event.sender} never arrived")

    def _notify_message(self, message: Message) -> None:
        """Note a message in another chat: the next redraw rings the bell
        and shows one note per chat for the burst."""
        if (
            self._synced
            and model.shown(message)
            and message.sender != self.client.user
            and message.conversation != self.open_chat
        ):
            self._news.setdefault(message.conversation, []).append(message)

    def _ring(self) -> None:
        news, self._news = self._news, {}
        if not news:
            return
        self.bell()
        for conversation, messages in news.items():
            title = next(
                (c.title for c in self.chats if c.conversation == conversation), "new chat"
            )
            last = messages[-1]
            sender = model.name_of(self.client, last.sender)
            text = model.preview(last)[:120]
            text = text if sender == title else f"{sender}: {text}"
            if len(messages) > 1:
                text = f"{len(messages)} new messages\n{text}"
            self.say(text, title=title, timeout=6)

    def say(
        self,
        text: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
    ) -> None:
        """A note (toast) with text from users or servers: never markup."""
        self.notify(text, title=title, severity=severity, timeout=timeout, markup=False)

    def redraw(self, conversation: ConversationId | None = None) -> None:
        """Show what changed in ``conversation`` (``None``: anywhere) soon,
        once for a burst."""
        if conversation is None:
            self._changed = None
            self._histories.clear()
        else:
            self._histories.pop(conversation, None)
            if self._changed is not None:
                self._changed.add(conversation)
        self._dirty.set()

    async def _redraw(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(REDRAW_AFTER)
            self._dirty.clear()
            changed, self._changed = self._changed, set()
            self._histories.clear()
            try:
                await self.refresh_chats(changed)
                if changed is None or self.open_chat in changed:
                    await self.refresh_messages(keep=True)
                self._ring()
            except Exception:
                log.exception("redrawing failed")

    async def _typing_changed(self, event: Typing) -> None:
        if event.conversation != self.open_chat or event.user == self.client.user:
            return
        if event.active:
            self._typing[event.user] = time.monotonic() + TYPING_SHOWN
        else:
            self._typing.pop(event.user, None)
        await self._show_heading()

    async def _show_heading(self) -> None:
        conversation = self.open_chat
        if conversation is None:
            return
        state = await self.client.state(conversation)
        heading = model.heading(self.client, conversation, state)
        now = time.monotonic()
        self._typing = {u: t for u, t in self._typing.items() if t > now}
        if self._typing:
            names = ", ".join(model.name_of(self.client, u) for u in sorted(self._typing))
            heading += f" · {names} typing…"
        self.query_one("#chat-title", Static).update(Text(heading))

    async def on_text_area_changed(self, event: Compose.Changed) -> None:
        """Tell the others the user is typing (at most every few seconds)."""
        conversation = self.open_chat
        if conversation is None or event.text_area is not self.compose_box:
            return
        now = time.monotonic()
        if self.compose_box.text.strip() and now - self._typing_sent > TYPING_EVERY:
            self._typing_sent = now
            await self._send_typing(conversation, True)

    async def _send_typing(self, conversation: ConversationId, active: bool) -> None:
        try:  # metadata for those online, never worth an error
            await self.client.typing(conversation, active)
        except Exception:
            log.debug("typing not sent", exc_info=True)

    async def _tick(self) -> None:
        """Own messages waiting for the server change to sent by themselves
        (no event says so): look again while one is shown pending. Typing
        notes run out."""
        if self._typing:
            await self._show_heading()
        if any(
            item.message.status == "pending" and item.message.sender == self.client.user
            for item in self.message_list.query(MessageItem)
        ):
            self.redraw(self.open_chat)

    # ================================================================ showing

    async def refresh_chats(self, changed: set[ConversationId] | None = None) -> None:
        """The chat list; only the chats in ``changed`` are read again
        (``None``: all), the others' lines are kept."""
        async with self._drawing:
            await self._refresh_chats(changed)

    async def _refresh_chats(self, changed: set[ConversationId] | None) -> None:
        known = self._summaries
        self._summaries = {
            conversation: (
                known[conversation]
                if changed is not None and conversation not in changed and conversation in known
                else model.summary(
                    self.client,
                    conversation,
                    state,
                    self._history(conversation, model.UNREAD_WINDOW),
                )
            )
            for conversation, state in await self.client.conversations()
        }
        self.chats = model.newest_first(self._summaries.values())
        await self.chat_list.show(self.chats, self.open_chat)
        unread = sum(c.unread for c in self.chats)
        self.query_one("#top", Static).update(
            Text(f"taube · {self.client.user}" + (f" · {unread} unread" if unread else ""))
        )

    async def refresh_messages(self, keep: bool = False) -> None:
        """The open chat's messages (``keep``: stay where the user is)."""
        async with self._drawing:
            await self._refresh_messages(keep)

    async def _refresh_messages(self, keep: bool) -> None:
        conversation = self.open_chat
        if conversation is None:
            return
        await self._show_heading()
        shown_now = self.message_list.ids() if keep else []
        found = self._history(conversation, self._limit + 1 + (PAGE if shown_now else 0))
        ids = [m.id for m in found]
        if shown_now and shown_now[0] in ids:
            # what is on screen stays, new messages come below it
            self._limit = max(self._limit, len(ids) - ids.index(shown_now[0]))
        more = len(found) > self._limit
        shown = found[-self._limit :]
        by_id = {m.id: m for m in found}
        rows = [
            (m, model.message_text(self.client, m, by_id.get(m.reply_to) if m.reply_to else None))
            for m in shown
        ]
        await self.message_list.show(rows, more, keep)

    async def open(self, conversation: ConversationId, at: MessageId | None = None) -> None:
        """Open a chat (at a message: loads back until it is there)."""
        self.open_chat = conversation
        self._histories.clear()
        self._compose_mode(None, None)
        self._typing.clear()
        self._typing_sent = 0.0
        self._limit = PAGE
        if at is not None:
            while True:
                found = self._history(conversation, self._limit)
                if at in [m.id for m in found] or len(found) < self._limit:
                    break
                self._limit += PAGE
        await self.refresh_messages()
        if at is not None and self.message_list.select_message(at):
            self.message_list.focus()
        await self._mark_read()
        await self.refresh_chats({conversation})

    async def _mark_read(self) -> None:
        conversation = self.open_chat
        if conversation is None:
            return
        unread = model.unread_of(self.client, self._history(conversation, PAGE))
        if unread:
            await self.client.mark_read(conversation, [str(i) for i in unread])
            self.redraw(conversation)

    # ================================================================ the user

    async def on_list_view_selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, ChatItem):
            await self.open(event.item.chat.conversation)
            self.compose_box.focus()

    def _history(self, conversation: ConversationId, limit: int) -> list[Message]:
        """``client.history``, read at most once per chat between redraws
        (the SDK reads a whole chat for it: a long one costs)."""
        cached = self._histories.get(conversation)
        if cached is None or cached[0] < limit:
            cached = (limit, self.client.history(conversation, limit))
            self._histories[conversation] = cached
        return cached[1][-limit:]

    async def on_message_list_older(self, _event: MessageList.Older) -> None:
        if self.open_chat is None:
            return
        self._limit += PAGE
        await self.refresh_messages(keep=True)

    async def on_compose_send(self, event: Compose.Send) -> None:
        conversation = self.open_chat
        if conversation is None:
            self.say("open a chat first (Ctrl+N starts one)", severity="warning")
            return
        editing, reply = self._editing, self._reply_to
        if editing is not None:
            await self.client.edit(conversation, editing.id, event.text)
        else:
            reply_to = reply.id if reply is not None else None
            await self.client.send_text(conversation, event.text, reply_to=reply_to)
        self._compose_mode(None, None)
        self.compose_box.clear()
        self.redraw(conversation)
        if self._typing_sent:
            self._typing_sent = 0.0
            await self._send_typing(conversation, False)

    def on_compose_cancel(self, _event: Compose.Cancel) -> None:
        if self._editing is not None:
            self.compose_box.clear()
        self._compose_mode(None, None)

    def _compose_mode(self, reply: Message | None, editing: Message | None) -> None:
        """What Enter does next: a reply to ``reply``, the new text of ``editing``."""
        self._reply_to, self._editing = reply, editing
        note = self.query_one("#compose-note", Static)
        shown = reply or editing
        if shown is None:
            note.display = False
            return
        what = "↪ reply to" if reply is not None else "✎ editing"
        name = model.name_of(self.client, shown.sender)
        note.update(Text(f"{what} {name}: {model.preview(shown)[:40]}   esc: cancel"))
        note.display = True

    def _highlighted(self, own: bool) -> Message | None:
        """The highlighted message (``own``: only if the user wrote it)."""
        message = self.message_list.selected_message()
        if message is None or message.deleted or (own and message.sender != self.client.user):
            self.say("highlight one of your messages" if own else "highlight a message first")
            return None
        return message

    def action_reply(self) -> None:
        message = self._highlighted(own=False)
        if message is not None:
            self._compose_mode(message, None)
            self.compose_box.focus()

    def action_edit(self) -> None:
        message = self._highlighted(own=True)
        if message is not None:
            self._compose_mode(None, message)
            self.compose_box.load_text(message.text)
            self.compose_box.move_cursor(self.compose_box.document.end)
            self.compose_box.focus()

    async def action_react(self) -> None:
        message = self._highlighted(own=False)
        if message is not None and self.open_chat is not None:
            await self.client.react(self.open_chat, message.id, "👍")
            self.redraw(self.open_chat)

    def action_delete(self) -> None:
        message = self._highlighted(own=True)
        conversation = self.open_chat
        if message is None or conversation is None:
            return

        async def delete(yes: object) -> None:
            assert conversation is not None
            await self.client.delete(conversation, message.id)
            self.redraw(conversation)

        question = f"Delete for everyone? {model.preview(message)[:50]}"
        self._ask(Confirm(question), delete)

    def _ask(self, screen: object, then: Callable[[object], Awaitable[None]]) -> None:
        async def done(result: object) -> None:
            if result is None:
                return
            try:
                await then(result)
            except (ClientError, OSError, ValueError) as exc:
                self.say(str(exc), title="not done", severity="error")

        self.push_screen(screen, done)  # type: ignore[call-overload]

    def action_help(self) -> None:
        self.push_screen(HelpDialog())

    def action_new_chat(self) -> None:
        async def start(address: object) -> None:
            conversation = await self.client.start_chat(str(address))
            await self.refresh_chats()
            await self.open(conversation)
            self.compose_box.focus()

        self._ask(Ask("New chat with (address):", placeholder="bob@example.org"), start)

    def action_new_group(self) -> None:
        async def create(group: object) -> None:
            assert isinstance(group, NewGroup)
            conversation = await self.client.create_group(group.members)
            await self.client.rename(conversation, group.name)
            await self.refresh_chats()
            await self.open(conversation)
            self.compose_box.focus()

        self._ask(NewGroupDialog(), create)

    async def action_members(self) -> None:
        conversation = self.open_chat
        if conversation is None:
            return
        state = await self.client.state(conversation)

        async def change(what: object) -> None:
            assert isinstance(what, MemberChange)
            assert conversation is not None
            if what.add:
                await self.client.add_member(conversation, what.add)
                self.say(f"added {what.add}")
            elif what.remove:
                await self.client.remove_member(conversation, what.remove)
                self.say(f"removed {what.remove}")
            await self.open(conversation)

        self._ask(MembersDialog(self.client, conversation, state), change)

    def action_search(self) -> None:
        titles = {c.conversation: c.title for c in self.chats}

        async def jump(hit: object) -> None:
            assert isinstance(hit, SearchHit)
            await self.open(hit.conversation, at=hit.id)

        self._ask(SearchDialog(self.client, titles), jump)

    def action_send_file(self) -> None:
        conversation = self.open_chat
        if conversation is None:
            self.say("open a chat first", severity="warning")
            return

        async def send(answer: object) -> None:
            path = await asyncio.to_thread(file_to_send, str(answer))
            caption = self.compose_box.text.strip()
            self.say(f"sending {path.name}…")
            await self.client.send_file(conversation, path, caption=caption)
            self.compose_box.clear()
            self.redraw(conversation)

        self._ask(Ask("Send a file (path; what you wrote is its caption):"), send)

    def action_save_file(self) -> None:
        message = self._message_with_file()
        if message is None:
            self.say("no file in this chat", severity="warning")
            return
        name = Path(str(model.files_of(message)[0].get("name", "file"))).name
        source = self.client.attachment_path(message)

        async def save(answer: object) -> None:
            target = await asyncio.to_thread(save_file, source, str(answer), name)
            self.say(f"saved {target}")

        self._ask(Ask(f"Save {name} to:", value=str(self.save_dir / name)), save)

    def _message_with_file(self) -> Message | None:
        """The highlighted message if its file is on this device, else the
        newest such message (a file the user sent is not kept: they have
        it where they sent it from)."""
        chosen = self.message_list.selected_message()
        if chosen is not None and self._has_file(chosen):
            return chosen
        if self.open_chat is None:
            return None
        for message in reversed(self._history(self.open_chat, self._limit)):
            if self._has_file(message):
                return message
        return None

    def _has_file(self, message: Message) -> bool:
        return (
            bool(model.files_of(message))
            and not message.deleted
            and self.client.attachment_path(message).is_file()
        )


def file_to_send(answer: str) -> Path:
    path = Path(answer).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


def save_file(source: Path, answer: str, name: str) -> Path:
    """Copy a received file to where the user said (a folder: under its
    name); never over an existing file."""
    target = Path(answer).expanduser()
    if target.is_dir():
        target = target / name
    if not source.is_file():
        raise ValueError("the file has not arrived")
    with source.open("rb") as src, target.open("xb") as dst:  # "x": not over a file
        shutil.copyfileobj(src, dst)
    return target


async def run(client: Client, log_file: Path | None = None) -> None:
    """Run the app on ``client`` (logged in) until the user quits; log lines
    go to ``log_file`` instead of the terminal the app draws on."""
    root = logging.getLogger()
    streams = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    for handler in streams:
        root.removeHandler(handler)
    to_file = logging.FileHandler(log_file) if log_file is not None else None
    if to_file is not None:
        root.addHandler(to_file)
    try:
        await TaubeApp(client).run_async()
    finally:
        if to_file is not None:
            root.removeHandler(to_file)
            with contextlib.suppress(OSError):
                to_file.close()
        for handler in streams:
            root.addHandler(handler)
