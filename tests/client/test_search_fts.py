"""Search across all conversations on the device (``taube.client.search``).

Through the SDK against a real server: hits carry the conversation and the
message id, follow edits, deletes for everyone and expiry (a deleted or
expired message is never found), and the index follows the same rules
whatever order things arrive in (checked on a profile directly).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from taube.client import Client
from taube.client import events as ev
from taube.client.messages import Messages
from taube.client.profile import Profile
from taube.client.search import MARK, SearchIndex, fts_query
from taube.client.session import Session
from taube.proto.ids import ConversationId, DeviceId, MessageId, UserId
from taube.testing import ServerProcess
from taube.testing.canary import canary, scan
from tests.client.conftest import Sdk
from tests.client.test_messaging_functional import texts_of


async def wait_found(client: Client, text: str, count: int, timeout: float = 15.0) -> list[Any]:
    async with asyncio.timeout(timeout):
        while len(found := client.search(text)) < count:
            await asyncio.sleep(0.05)
    return found


async def test_search_across_conversations_jumps_to_the_message(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    direct = await alice.start_chat(bob.user)
    group = await carol.create_group([bob.user, alice.user])
    first = await alice.send_text(direct, "Treffen wir uns am Bahnhof?")
    await alice.flush()
    await texts_of(bob, direct, 1)
    second = await carol.send_text(group, "Der Bahnhof ist gesperrt, nehmt den Bus")
    await carol.flush()
    await texts_of(bob, group, 1)

    found = await wait_found(bob, "bahnhof", 2)
    # newest first, each with where it is
    assert [(m.conversation, m.id) for m in found] == [(group, second), (direct, first)]
    hits = bob.search_hits("bahnhof")
    assert [(h.conversation, h.id) for h in hits] == [(group, second), (direct, first)]
    assert f"{MARK[0]}Bahnhof{MARK[1]}" in hits[1].snippet
    # the hit opens the chat at the message
    assert first in [m.id for m in bob.history(hits[1].conversation)]
    # all the words, the last also as a prefix; without accents; one chat only
    assert [m.id for m in bob.search("bahnhof ges")] == [second]
    assert [m.id for m in bob.search("TREFF")] == [first]
    assert [m.id for m in bob.search("bahnhof", conversation=direct)] == [first]
    assert bob.search("bahnhof", limit=1)[0].id == second
    # what the sender has is searchable on the sender's device too
    assert [m.id for m in alice.search("treffen")] == [first]


async def test_edits_and_deletes_keep_the_index_in_step(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    typo = await alice.send_text(chat, "see you at the moseum")
    gone = await alice.send_text(chat, "my secret plan is pineapple")
    await alice.flush()
    await texts_of(bob, chat, 2)
    assert [m.id for m in await wait_found(bob, "moseum", 1)] == [typo]

    await alice.edit(chat, typo, "see you at the museum")
    await alice.delete(chat, gone)
    # bob may not delete or edit what alice wrote: nothing changes for that
    await bob.delete(chat, typo)
    await bob.edit(chat, typo, "hijacked")
    await alice.flush()
    await bob.flush()
    for client in (alice, bob):
        async with asyncio.timeout(15):
            while client.search("pineapple") or not client.search("museum"):
                await asyncio.sleep(0.05)
        (shown,) = client.search("museum")
        assert (shown.id, shown.text, shown.edited) == (typo, "see you at the museum", True)
        assert client.search("moseum") == []
        assert client.search("hijacked") == []
        assert client.search_hits("pineapple") == []


async def test_expired_messages_are_never_found(shared_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.set_timer(chat, 2)
    secret = canary("searchable")
    await alice.send_text(chat, f"short lived {secret}")
    await alice.flush()
    await texts_of(bob, chat, 1)
    assert [m.text for m in bob.search(secret)] == [f"short lived {secret}"]
    await asyncio.sleep(2.5)
    for client in (alice, bob):
        assert client.search(secret) == []
        assert client.search_hits("short lived") == []
        assert client.profile is not None
        assert client.profile.execute("SELECT count(*) FROM search_rows").fetchone()[0] == 0
    assert scan([alice.profile_dir, bob.profile_dir], [secret.encode()]) == []


async def test_file_names_are_found(shared_server: ServerProcess, sdk: Sdk, tmp_path: Path) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    path = tmp_path / "Quartalsbericht.pdf"
    path.write_bytes(b"%PDF-1.4 nothing much")
    sent = await alice.send_file(chat, path, caption="the numbers")
    await alice.flush()
    found = await wait_found(bob, "quartalsbericht", 1)
    assert [m.id for m in found] == [sent]
    assert bob.attachment_path(found[0]).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        "AND",
        "OR NOT",
        "*",
        "NEAR(a b)",
        "a:b",
        "^x",
        "-",
        "(",
        "'; DROP TABLE",
        "x" * 10_000,
    ],
)
async def test_any_query_is_words_not_syntax(tmp_path: Path, query: str) -> None:
    messages, _ = await local_messages(tmp_path)
    store(messages, "c", "m1", "alice", ev.TEXT, {"body": "AND OR NOT * NEAR plain words"})
    assert isinstance(messages.search_hits(query), list)  # no error, whatever it finds
    assert messages.search_hits("") == []
    assert messages.search_hits("   ") == []
    assert [h.id for h in messages.search_hits("near")] == ["m1"]


def test_the_query_is_quoted_terms() -> None:
    assert fts_query('say "hi" NEAR') == '"say" """hi""" "NEAR"*'
    assert fts_query(" ") is None


# ---------------------------------------------------------------- on a profile directly


async def local_messages(directory: Path) -> tuple[Messages, Profile]:
    session = Session(directory / "profile", None, lambda: int(time.time() * 1000), lambda _: None)
    await session.open()
    assert session.profile is not None
    return Messages(session), session.profile


def store(
    messages: Messages,
    conversation: str,
    msg_id: str,
    sender: str,
    type_: str,
    content: dict[str, Any],
    seq: int | None = None,
) -> None:
    messages.store(
        ConversationId(conversation),
        MessageId(msg_id),
        seq,
        UserId(sender),
        DeviceId("D" * 22),
        seq or 0,
        type_,
        content,
        "received",
        None,
    )


async def test_an_edit_before_its_message_still_counts(tmp_path: Path) -> None:
    """A message can arrive after its edit or delete (its room key came
    late); the index is the same as in the usual order."""
    messages, _ = await local_messages(tmp_path)
    store(messages, "c", "e1", "alice", ev.EDIT, {"target": "m1", "body": "second words"}, 2)
    store(messages, "c", "d2", "alice", ev.DELETE, {"target": "m2"}, 4)
    store(messages, "c", "m1", "alice", ev.TEXT, {"body": "first words"}, 1)
    store(messages, "c", "m2", "alice", ev.TEXT, {"body": "removed words"}, 3)
    assert [h.id for h in messages.search_hits("words")] == ["m1"]
    assert messages.search_hits("first") == []
    (hit,) = messages.search("second")
    assert (hit.text, hit.edited) == ("second words", True)
    # the last edit in the conversation's order wins, whatever came last
    store(messages, "c", "e0", "alice", ev.EDIT, {"target": "m1", "body": "older edit"}, 0)
    assert messages.search("older") == []
    assert [h.id for h in messages.search_hits("second")] == ["m1"]


async def test_a_profile_from_before_the_index_is_indexed_again(tmp_path: Path) -> None:
    """Profiles made before this index had ``messages_fts`` (edits and
    deletes not followed): opening one builds the new index and drops it."""
    directory = tmp_path / "profile"
    Profile(directory).close()
    db = sqlite3.connect(directory / "taube-client.db")
    db.executescript(
        "DROP TABLE search_text; DROP TABLE search_rows; DROP TABLE search_edits;"
        "CREATE VIRTUAL TABLE messages_fts USING fts5 (text, conversation UNINDEXED,"
        " id UNINDEXED, tokenize = 'unicode61');"
    )
    rows = [
        ("m1", "alice", ev.TEXT, {"body": "old profile words"}, 1),
        ("m2", "alice", ev.TEXT, {"body": "deleted long ago"}, 2),
        ("d3", "alice", ev.DELETE, {"target": "m2"}, 3),
    ]
    for msg_id, sender, type_, content, seq in rows:
        db.execute(
            "INSERT INTO messages (conversation, id, seq, sender, sender_device, ts, type,"
            " content, status) VALUES ('c', ?, ?, ?, 'D', ?, ?, ?, 'received')",
            (msg_id, seq, sender, seq, type_, msgspec.json.encode(content)),
        )
        if type_ == ev.TEXT:
            db.execute("INSERT INTO messages_fts VALUES (?, 'c', ?)", (content["body"], msg_id))
    db.commit()
    db.close()
    messages, profile = await local_messages(tmp_path)
    assert [h.id for h in messages.search_hits("profile")] == ["m1"]
    assert messages.search_hits("deleted") == []
    tables = {r[0] for r in profile.execute("SELECT name FROM sqlite_master")}
    assert "messages_fts" not in tables
    assert {"search_rows", "search_text", "search_edits"} <= tables


def test_the_index_alone_is_usable(tmp_path: Path) -> None:
    """``SearchIndex`` needs nothing but the profile (the search screen and
    the benchmark use it so)."""
    profile = Profile(tmp_path / "p")
    index = SearchIndex(profile)
    assert index.search("anything") == []
    profile.close()


def test_the_benchmark_runs_small(tmp_path: Path) -> None:
    from bench import __main__ as bench

    output = tmp_path / "search.json"
    argv = ["search", "--messages", "400", "--chats", "4", "--repeat", "2", "--output", str(output)]
    assert bench.main(argv) == 0
    result = msgspec.json.decode(output.read_bytes())
    assert {q["query"] for q in result["queries"]} >= {"a rare word", "no such word"}
    assert all(q["hits"] <= 50 for q in result["queries"])
