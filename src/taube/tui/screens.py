"""Dialogs over the main screen: ask for a line, a new group, members,
search, the keys. Each returns what the user chose with ``dismiss`` (``None``
for Escape) and leaves the doing to the app."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, ListItem, ListView, Static

from taube.client import Client, SearchHit
from taube.client.search import MARK
from taube.proto.ids import ConversationId
from taube.proto.state import ConversationState
from taube.tui.model import highlight, name_of, title_of

T = TypeVar("T")


class Dialog(ModalScreen[T | None], Generic[T]):
    """A box in the middle; Escape closes it with ``None``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "close")]

    def action_close(self) -> None:
        self.dismiss(None)


class Ask(Dialog[str]):
    """One line of input (an address, a path...)."""

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question))  # names from others: never markup
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            yield Label("⏎ ok   esc cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())


class Confirm(Dialog[bool]):
    """Yes (Enter) or no (Escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "yes", "yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question))
            yield Label("⏎ yes   esc no", classes="hint")

    def action_yes(self) -> None:
        self.dismiss(True)


@dataclasses.dataclass(frozen=True)
class NewGroup:
    name: str
    members: list[str]


class NewGroupDialog(Dialog[NewGroup]):
    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("New group: its name")
            yield Input(id="name", placeholder="Hiking club")
            yield Label("Members (addresses, separated by spaces or commas)")
            yield Input(id="members", placeholder="ann@example.org, ben@example.org")
            yield Label("⏎ next / create   esc cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = self.query_one("#name", Input).value.strip()
        members = self.query_one("#members", Input).value.replace(",", " ").split()
        if event.input.id == "name":
            self.query_one("#members", Input).focus()
        elif name and members:
            self.dismiss(NewGroup(name, members))


@dataclasses.dataclass(frozen=True)
class MemberChange:
    add: str = ""
    remove: str = ""


def who(client: Client, user: str) -> str:
    """A member: name and address, or the address alone."""
    name = name_of(client, user)
    return user if name == user else f"{name} <{user}>"


class MembersDialog(Dialog[MemberChange]):
    """Who is in the chat (and with which role); add someone, or remove the
    one highlighted with Delete."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("delete", "remove", "remove")]

    def __init__(
        self, client: Client, conversation: ConversationId, state: ConversationState
    ) -> None:
        super().__init__()
        self.client = client
        self.conversation = conversation
        self.state = state

    def compose(self) -> ComposeResult:
        client, state = self.client, self.state
        portal = client.portal(self.conversation)
        with Vertical(classes="dialog"):
            yield Label(Text(f"Members of {title_of(client, self.conversation, state)}"))
            rows = [
                ListItem(Label(Text(f"{who(client, user)} · {role.value}")), name=user)
                for user, role in sorted(state.members.items())
            ]
            if portal is not None:
                rows += [
                    ListItem(Label(Text(f"{peer} · by {portal.network}")), name=peer)
                    for peer in portal.peers
                ]
            yield ListView(*rows, id="members")
            yield Input(id="add", placeholder="add: address, then ⏎")
            yield Label("⏎ add   del remove highlighted   esc close", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(MemberChange(add=event.value.strip()))

    def action_remove(self) -> None:
        item = self.query_one("#members", ListView).highlighted_child
        if item is not None and item.name and item.name != self.client.user:
            self.dismiss(MemberChange(remove=item.name))


class HitItem(ListItem):
    def __init__(self, hit: SearchHit, title: str) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(title, style="bold")
        line.append("  ")
        line.append_text(highlight(hit.snippet, MARK))
        super().__init__(Static(line))
        self.hit = hit


class SearchDialog(Dialog[SearchHit]):
    """Search every chat on this device as you type; ⏎ on a hit opens the
    chat at that message."""

    def __init__(self, client: Client, titles: dict[ConversationId, str]) -> None:
        super().__init__()
        self.client = client
        self.titles = titles

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Input(id="query", placeholder="search all chats")
            yield ListView(id="hits")
            yield Label("type to search   ↓ to the hits   ⏎ open   esc close", classes="hint")

    async def on_input_changed(self, event: Input.Changed) -> None:
        hits = self.client.search_hits(event.value, limit=50)
        found = self.query_one("#hits", ListView)
        await found.clear()
        await found.extend(HitItem(h, self.titles.get(h.conversation, "?")) for h in hits)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        found = self.query_one("#hits", ListView)
        if len(found):
            found.index = 0
            found.focus()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        if isinstance(event.item, HitItem):
            self.dismiss(event.item.hit)


HELP = """\
Keys (they work over SSH, in tmux and at 80x24; the mouse works too)

  Enter          send what you wrote
  Ctrl+J         new line in the message (Shift+Enter where the terminal
                 tells it apart; pasting keeps lines)
  Tab, Shift+Tab move between the chats, the messages and the box
  ↑ ↓ PgUp PgDn  move in a list (↑ at the top of a chat: older messages)
  Ctrl+N         new chat with an address (another domain: by e-mail)
  Ctrl+G         new group
  Ctrl+T         members of this chat (add; Delete removes)
  Ctrl+F         search all chats; Enter on a hit opens it
  Ctrl+O         send a file (a path; what you wrote is its caption)
  Ctrl+S         save the highlighted message's file (else the newest)
  r  e  +  Del   on a highlighted message: reply, edit (yours), react 👍,
                 delete for everyone (yours); Esc in the box cancels
  F1             this help
  Ctrl+Q         quit

Messages in other chats ring the terminal's bell and show a note.
"""


class HelpDialog(Dialog[None]):
    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(HELP)
            yield Label("esc close", classes="hint")
