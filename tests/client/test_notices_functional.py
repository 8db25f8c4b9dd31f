"""Notices that stay (issue 16): a gap the server made and a key change it
showed are kept in the chat history, in their places, across a restart.
Real server, real clients, the lying proxy of ``taube.testing.evilproxy``."""

from __future__ import annotations

import argparse
import json

import pytest

from taube.cli import commands
from taube.client import Client, KeyChanged, MissingMessages
from taube.client import events as ev
from taube.crypto import IdentityKeyPair
from taube.proto import frames, http
from taube.proto.ids import ConversationId
from taube.testing.datadir import eventually
from taube.testing.evilproxy import Connection
from tests.client.test_malicious_server_functional import (
    KEYS_QUERY,
    Net,
    forged,
    net,
    texts,
    users_keys,
    wait_texts,
)

__all__ = ["net"]  # the fixture


def shown(client: Client, chat: ConversationId) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in client.history(chat, notices=True)]


async def test_missing_messages_marker_stays(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    proxy = await net.proxy()
    alice, bob = await net.client("alice"), await net.client("bob", via=proxy)
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "m0")
    await alice.flush()
    await wait_texts(bob, chat, 1)
    await bob.disconnect()
    ids = [await alice.send_text(chat, f"m{i}") for i in range(1, 5)]
    await alice.flush()

    def withhold(_conn: Connection, frame: frames.ServerFrame) -> list[frames.ServerFrame] | None:
        if isinstance(frame, frames.Message) and frame.id in (ids[1], ids[2]):
            return []  # m2 and m3 never reach bob
        return None

    proxy.on_server_frame(withhold)
    await bob.sync()
    await wait_texts(bob, chat, 3)
    await eventually(lambda: bool(net.events(bob, MissingMessages)), what="gap told")
    marker = f"2 messages from {alice.user} could not be received"
    expected = [("text", "m0"), ("text", "m1"), (ev.NOTICE, marker), ("text", "m4")]
    assert shown(bob, chat) == expected
    assert texts(bob, chat) == ["m0", "m1", "m4"]  # plain history: messages only

    bob = await net.reopen(bob)
    assert shown(bob, chat) == expected
    # the CLI prints it in its place, and as a notice in JSON
    await commands.history(bob, argparse.Namespace(conversation=chat, limit=10, json=False))
    assert capsys.readouterr().out.splitlines()[2] == f"-- {marker} --"
    await commands.history(bob, argparse.Namespace(conversation=chat, limit=10, json=True))
    notice = json.loads(capsys.readouterr().out.splitlines()[2])
    assert (notice["event"], notice["kind"], notice["count"]) == ("notice", "missing", 2)
    [kept] = [m for m in bob.history(chat, notices=True) if m.type == ev.NOTICE]
    assert kept.content["kind"] == "missing"
    assert kept.content["count"] == 2
    assert kept.sender == alice.user
    await alice.send_text(chat, "m5")
    await alice.flush()
    await wait_texts(bob, chat, 4)
    assert shown(bob, chat)[-2:] == [("text", "m4"), ("text", "m5")]
    assert [m.type for m in bob.history(chat, notices=True)].count(ev.NOTICE) == 1


async def test_key_change_warning_stays(net: Net) -> None:
    proxy = await net.proxy()
    alice, bob = await net.client("alice", via=proxy), await net.client("bob")
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "before")
    await alice.flush()
    await wait_texts(bob, chat, 1)

    impostor = IdentityKeyPair.generate()
    proxy.rewrite(
        KEYS_QUERY, http.KeysResponse, users_keys(lambda e: forged(e, impostor), bob.user)
    )
    await proxy.inject(frames.KeysChanged(seq=0, user=bob.user), device=alice.device)
    await eventually(lambda: bool(net.events(alice, KeyChanged)), what="key change shown")
    await alice.send_text(chat, "after")
    await alice.flush()
    warning = f"{bob.user}'s safety number changed"
    expected = [("text", "before"), (ev.NOTICE, warning), ("text", "after")]
    assert shown(alice, chat) == expected

    alice = await net.reopen(alice)
    assert shown(alice, chat) == expected
    assert texts(alice, chat) == ["before", "after"]
    # another chat without bob shows no warning about him
    carol = await net.client("carol")
    other = await alice.start_chat(carol.user)
    await alice.send_text(other, "hi carol")
    await alice.flush()
    assert shown(alice, other) == [("text", "hi carol")]
