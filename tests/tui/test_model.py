"""What the terminal UI shows, without a terminal: pure functions of ``taube.tui.model``."""

from __future__ import annotations

import dataclasses

from taube.client import Message
from taube.client.search import MARK
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId
from taube.tui.model import ChatSummary, highlight, newest_first, preview, size_text


def message(text: str = "", **content: object) -> Message:
    return Message(
        conversation=ConversationId("c" * 22),
        id=MessageId("m" * 22),
        seq=1,
        sender=UserId("bob@example.org"),
        sender_device=DeviceId("d" * 22),
        ts=0,
        type="text",
        text=text,
        content=dict(content),
    )


def test_a_preview_is_one_line_and_names_a_lone_file() -> None:
    assert preview(message("two\nlines")) == "two lines"
    assert preview(message("", attachments=[{"name": "a.pdf"}])) == "[a.pdf]"
    assert preview(message("caption", attachments=[{"name": "a.pdf"}])) == "caption"
    assert preview(dataclasses.replace(message("secret"), deleted=True)) == "(deleted)"


def test_sizes_read_as_people_say_them() -> None:
    assert [size_text(n) for n in (0, 999, 1000, 180_000, 2_500_000, 10**12)] == [
        "0 B",
        "999 B",
        "1.0 KB",
        "180.0 KB",
        "2.5 MB",
        "1000.0 GB",
    ]
    assert size_text(None) == "?"
    assert size_text("12") == "?"


def test_a_snippet_marks_its_words_and_nothing_else() -> None:
    start, end = MARK
    text = highlight(f"see {start}Bahnhof{end} at [b]9[/b]\nok", MARK)
    assert text.plain == "see Bahnhof at [b]9[/b] ok"
    (span,) = text.spans
    assert text.plain[span.start : span.end] == "Bahnhof"
    assert highlight(f"{start}half", MARK).plain == "half"  # a cut mark: no error


def test_the_newest_chat_comes_first() -> None:
    chats = [
        ChatSummary(ConversationId(name), name, "", 0, "", ts)
        for name, ts in (("old", 1), ("empty", 0), ("new", 5))
    ]
    assert [c.title for c in newest_first(chats)] == ["new", "old", "empty"]
