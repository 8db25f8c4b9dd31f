"""Cutting messages to IRC's 512-byte lines, and cleaning what comes in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taube.connectors.irc import lines


def test_the_budget_leaves_room_for_the_prefix_the_server_adds() -> None:
    limit = lines.budget("alice", "alice", "#taube")
    worst = f":alice!alice@{'h' * lines.HOST} PRIVMSG #taube :".encode()
    assert len(worst) + limit + 2 == lines.LINE


def test_a_long_message_is_cut_at_spaces() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    out = lines.split(text, 100)
    assert all(len(line.encode()) <= 100 for line in out)
    assert " ".join(out) == text


def test_line_breaks_start_new_messages_and_empty_lines_go() -> None:
    assert lines.split("one\r\ntwo\n\n\rthree", 50) == ["one", "two", "three"]


@given(st.text(min_size=1, max_size=2000), st.integers(min_value=8, max_value=450))
def test_no_line_is_too_long_and_no_character_is_cut(text: str, limit: int) -> None:
    out = lines.split(text, limit)
    assert all(0 < len(line.encode()) <= limit for line in out)
    # every character but white space (cut at, or a line of nothing else) is there, whole
    kept = "".join("".join(out).split())
    assert kept == "".join(lines.CONTROL.sub("", text).split())


def test_colours_and_controls_are_removed() -> None:
    assert lines.plain("\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f\x07") == "bold red italic"
