"""The IRC connector against a real ngIRCd, with a plain IRC client on the
other side: queries and channels both ways, long messages, the IRC server
restarted, a taken nick, bad input, and nothing in plain on the taube server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from taube.client import events as ev
from taube.connectors.control import State
from taube.connectors.irc.account import IrcAccount
from taube.connectors.runner import Incoming
from taube.testing import ServerProcess
from taube.testing.canary import canary, scan
from taube.testing.ircd import IrcPeer as Peer
from taube.testing.ircd import Ngircd
from tests.connectors.irc.conftest import IrcUser, irc_user_for, wait_for


def shown(user: IrcUser, chat: str) -> list[ev.Message]:
    conversation = user.phone._portals.find("irc", chat)
    if conversation is None:
        return []
    return [m for m in user.phone.history(conversation, 1000) if m.type == ev.TEXT]


async def test_a_query_both_ways_and_nothing_in_plain_on_the_server(
    server: ServerProcess, irc_user: IrcUser, peers: Callable[[str], Peer]
) -> None:
    bob = await peers("bob").connect()
    hello = canary("in")
    await bob.send(f"PRIVMSG alice :hi alice {hello}")
    await wait_for(lambda: shown(irc_user, "bob"))
    [message] = shown(irc_user, "bob")
    assert message.text == f"hi alice {hello}"
    assert message.remote == ev.Remote("irc", "bob", "", encrypted=False)
    conversation = irc_user.phone._portals.find("irc", "bob")
    assert conversation is not None
    portal = irc_user.phone.portal(conversation)
    assert portal is not None
    assert portal.by == irc_user.device.device
    assert irc_user.phone.title(conversation) == "bob (127.0.0.1)"
    # alice answers from her phone: bob reads it from "alice", marked not encrypted
    answer = canary("out")
    sent = await irc_user.phone.send_text(conversation, f"hello bob {answer}")
    await irc_user.phone.flush()
    await wait_for(bob.said)
    assert bob.said() == [("alice", f"hello bob {answer}")]
    await wait_for(lambda: irc_user.phone.history(conversation)[-1].relayed is not None)
    mine = next(m for m in irc_user.phone.history(conversation) if m.id == sent)
    assert mine.relayed == ev.Relayed("irc", False)
    await irc_user.stop()
    server.stop()
    assert scan([server.data_dir, server.log_path], [hello, answer]) == []


async def test_a_channel_both_ways_with_long_messages_cut_to_fit(
    irc_user: IrcUser, peers: Callable[[str], Peer]
) -> None:
    bob = await peers("bob").connect()
    await bob.send("JOIN #taube")
    await wait_for(
        lambda: (
            any("JOIN" in line and "alice" in line for line in bob.lines)
            or any(" 353 " in line and "alice" in line for line in bob.lines)
        )
    )
    await bob.send("PRIVMSG #taube :morning, \x02everyone\x02")
    await wait_for(lambda: shown(irc_user, "#taube"))
    [message] = shown(irc_user, "#taube")
    assert (message.text, message.remote.sender if message.remote else None) == (
        "morning, everyone",
        "bob",
    )
    conversation = irc_user.phone._portals.find("irc", "#taube")
    assert conversation is not None
    assert irc_user.phone.title(conversation) == "#taube (127.0.0.1)"
    words = " ".join(f"wört{i}" for i in range(400))  # ~3.6 kB, with two-byte characters
    await irc_user.phone.send_text(conversation, f"first line\n{words}")
    await wait_for(lambda: " ".join(t for _, t in bob.said(target="#taube")).endswith("wört399"))
    said = [t for _, t in bob.said(target="#taube")]
    assert said[0] == "first line"
    assert " ".join(said[1:]) == words
    assert len(said) > 8  # cut into many lines, each of which fit
    for line in bob.lines:
        assert len(line.encode()) + 2 <= 512


async def test_the_irc_server_restarted_nothing_lost_nothing_twice(
    irc_user: IrcUser, ircd: Ngircd, peers: Callable[[str], Peer]
) -> None:
    bob = await peers("bob").connect()
    for i in range(5):
        await bob.send(f"PRIVMSG alice :before {i}")
    await wait_for(lambda: len(shown(irc_user, "bob")) == 5)
    conversation = irc_user.phone._portals.find("irc", "bob")
    assert conversation is not None
    await bob.close()
    ircd.stop()
    await wait_for(lambda: irc_user.runner.status[0] is State.RECONNECTING)
    # written while IRC is down: waits, then goes once
    await irc_user.phone.send_text(conversation, "while you were away")
    await irc_user.phone.flush()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(ircd.start)
    await wait_for(lambda: irc_user.runner.status[0] is State.CONNECTED, timeout=30)
    bob = await peers("bob").connect()
    # what waited went out once the connector was back (bob, back too, may have missed it:
    # IRC keeps nothing for the absent)
    await wait_for(lambda: irc_user.runner.relayed == 1)
    await bob.send("PRIVMSG alice :after")
    await wait_for(lambda: len(shown(irc_user, "bob")) == 7)
    await asyncio.sleep(1.0)  # nothing more comes
    texts = [m.text for m in shown(irc_user, "bob")]
    assert sorted(texts) == sorted(
        [f"before {i}" for i in range(5)] + ["while you were away", "after"]
    )
    remote = [m.text for m in shown(irc_user, "bob") if m.remote is not None]
    assert remote == [f"before {i}" for i in range(5)] + ["after"]
    assert irc_user.runner.relayed == 1
    states = [s for s, _ in irc_user.statuses]
    assert State.RECONNECTING in states
    assert states[-1] is State.CONNECTED


async def test_a_taken_nick_is_taken_back_when_its_holder_leaves(
    tmp_path: Path, server: ServerProcess, ircd: Ngircd, peers: Callable[[str], Peer]
) -> None:
    squatter = await peers("alice").connect()
    account = IrcAccount(host="127.0.0.1", port=ircd.port, tls=False, nick="alice")
    phone, device, user = await irc_user_for(tmp_path, server, account)
    user.network.nick_retry = 0.3  # (IRC says nothing of a QUIT in no shared channel)
    try:
        await user.start()
        assert user.network.irc is not None
        assert user.network.irc.nickname == "alice_"
        bob = await peers("bob").connect()
        await squatter.close()
        await wait_for(
            lambda: user.network.irc is not None and user.network.irc.nickname == "alice"
        )
        await bob.send("PRIVMSG alice :are you back?")
        await wait_for(lambda: shown(user, "bob"))
        await user.stop()
    finally:
        user.runner.state.close()
        await device.__aexit__(None, None, None)
        await phone.__aexit__(None, None, None)


async def test_bad_input_is_dropped_and_the_connector_stays(
    irc_user: IrcUser, peers: Callable[[str], Peer]
) -> None:
    mallory = await peers("mallory").connect()
    await mallory.send("PRIVMSG alice :" + "y" * 2000)  # over-long: ngIRCd drops mallory
    bob = await peers("bob").connect()
    await bob.send(
        "PRIVMSG alice :\x01VERSION\x01",  # CTCP: never answered, not shown
        "PRIVMSG alice :\x01PING 123\x01",
        "PRIVMSG alice :\x03\x02\x0f",  # only formatting: nothing to show
        "PRIVMSG alice",  # malformed: the server refuses it
        b"PRIVMSG alice :\xff\xfe not utf-8\r\n",
        "PRIVMSG alice :" + "x" * 495,  # the longest line there is (510 bytes)
        "PRIVMSG alice :\x01ACTION waves\x01",
        "PRIVMSG alice :still here?",
    )
    await wait_for(lambda: any(m.text == "still here?" for m in shown(irc_user, "bob")))
    texts = [m.text for m in shown(irc_user, "bob")]
    assert texts[-1] == "still here?"
    assert "* bob waves" in texts
    # the server passes on what fits its line with our prefix, and says so
    assert any(t.startswith("x" * 400) and t.endswith("[CUT]") for t in texts)
    assert any(t.endswith(" not utf-8") for t in texts)  # (pydle falls back to Latin-1)
    assert not any("yyy" in t for t in texts)
    assert shown(irc_user, "mallory") == []
    assert not any("VERSION" in t or "PING" in t for t in texts)
    assert bob.said("NOTICE") == []  # no CTCP reply
    assert irc_user.runner.status[0] is State.CONNECTED


async def run_until(user: IrcUser, account: IrcAccount, state: State) -> str:
    """Run the connector with ``account`` until it reports ``state``; its error."""
    user.network.account = account
    user.runner.status = (State.CHECKING, "")
    task = asyncio.create_task(user.runner.run())
    try:
        await wait_for(lambda: user.runner.status[0] is state)
        return user.runner.status[1]
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def test_a_wrong_server_password_or_missing_sasl_is_auth_failed(
    tmp_path: Path, server: ServerProcess, ircd: Ngircd
) -> None:
    with Ngircd(tmp_path / "locked", password="sesame") as locked:
        port = locked.port
        wrong = IrcAccount(host="127.0.0.1", port=port, tls=False, nick="alice", password="x")
        phone, device, user = await irc_user_for(tmp_path / "a", server, wrong)
        try:
            assert "password" in await run_until(user, wrong, State.AUTH_FAILED)
            right = IrcAccount(
                host="127.0.0.1", port=port, tls=False, nick="alice", password="sesame"
            )
            await run_until(user, right, State.CONNECTED)
            # ngIRCd has no SASL at all: asked for it, the connector does not go on without
            sasl = IrcAccount(
                host="127.0.0.1",
                port=ircd.port,
                tls=False,
                nick="alice",
                sasl_user="alice",
                password="sesame",
            )
            assert "SASL" in await run_until(user, sasl, State.AUTH_FAILED)
        finally:
            user.runner.state.close()
            await device.__aexit__(None, None, None)
            await phone.__aexit__(None, None, None)


async def test_chats_started_from_taube_and_the_same_network_id_shown_once(
    irc_user: IrcUser, peers: Callable[[str], Peer]
) -> None:
    carol = await peers("carol").connect()
    await carol.send("JOIN #fresh")
    phone = irc_user.phone
    # a channel and a person the connector has not heard of: opened on the phone
    channel = await phone.open_portal(ev.Portal("irc", "#fresh", title="#fresh"))
    query = await phone.open_portal(ev.Portal("irc", "carol", ("carol",), "carol"))
    await phone.send_text(channel, "hello channel")
    await phone.send_text(query, "hello carol")
    await wait_for(lambda: carol.said(target="#fresh") == [("alice", "hello channel")])
    await wait_for(lambda: carol.said() == [("alice", "hello carol")])
    portal = phone.portal(channel)
    assert portal is not None
    await wait_for(lambda: (phone.portal(channel) or portal).by == irc_user.device.device)
    # her answer lands in the chat the phone opened, not in a new one
    await carol.send("PRIVMSG alice :hi alice")
    await wait_for(lambda: shown(irc_user, "carol")[-1].remote is not None)
    assert phone._portals.find("irc", "carol") == query
    # a message with the same network id (a server's msgid, or history fetched
    # again) is one message
    item = Incoming(chat="carol", remote_id="msgid-1", sender="carol", text="once")
    first = await irc_user.runner.bring_in(item)
    assert first is not None
    assert await irc_user.runner.bring_in(item) is None
    await irc_user.device.flush()
    await wait_for(lambda: any(m.text == "once" for m in shown(irc_user, "carol")))
    await asyncio.sleep(0.5)
    assert [m.text for m in shown(irc_user, "carol")].count("once") == 1


async def test_tls_and_the_certificate_checked_by_default(
    tmp_path: Path, server: ServerProcess
) -> None:
    with Ngircd(tmp_path / "tls", tls=True) as secure:
        port = secure.tls_port
        checked = IrcAccount(host="127.0.0.1", port=port, tls=True, nick="alice")
        phone, device, user = await irc_user_for(tmp_path / "a", server, checked)
        try:
            # a self-signed certificate is refused unless the user says otherwise
            error = await run_until(user, checked, State.RECONNECTING)
            assert "CERTIFICATE_VERIFY_FAILED" in error or "certificate" in error
            trusted = IrcAccount(
                host="127.0.0.1", port=port, tls=True, tls_verify=False, nick="alice"
            )
            await run_until(user, trusted, State.CONNECTED)
        finally:
            user.runner.state.close()
            await device.__aexit__(None, None, None)
            await phone.__aexit__(None, None, None)


async def test_a_flood_in_a_channel_arrives_whole_in_order_once(
    irc_user: IrcUser, peers: Callable[[str], Peer]
) -> None:
    bob = await peers("bob").connect()
    await bob.send("JOIN #taube")
    await wait_for(
        lambda: (
            irc_user.network.irc is not None
            and len(irc_user.network.irc.channels.get("#taube", {}).get("users", ())) == 2
        )
    )
    count = 300
    await bob.send(*[f"PRIVMSG #taube :line {i}" for i in range(count)])
    await wait_for(lambda: len(shown(irc_user, "#taube")) == count, timeout=90)
    await asyncio.sleep(0.5)
    assert [m.text for m in shown(irc_user, "#taube")] == [f"line {i}" for i in range(count)]
    assert irc_user.runner.status[0] is State.CONNECTED
