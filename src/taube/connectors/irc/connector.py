"""The IRC connector: channels and queries as portal conversations.

``IrcNetwork`` is the IRC module of the connector runner
(``taube.connectors.runner``): one session is one connection (pydle, over
TLS or plain, with SASL PLAIN or a server password), and the runner opens
the next one with backoff when it ends. What it does:

- **in**: every PRIVMSG and NOTICE from a person, in a channel or to us, is
  brought into the portal of that channel or that person (the runner opens
  one the first time, titled ``#chan (server)``); the author is shown by
  nick (``content.remote``). Colours and control characters are removed,
  CTCP is dropped (never answered: the connector does not tell anyone its
  version or time), server notices are logged only. IRC has no message ids:
  a message gets one from the server's ``msgid`` tag if it sends one, else
  a fresh one: the server delivers each message once, so nothing comes
  twice; a server offering ``draft/chathistory`` is asked for what was said
  in each channel while we were away (``msgid`` dedupes it).
- **out**: the user's messages go as PRIVMSG, cut to fit the 512-byte line
  (``lines.split``), paced after a burst so the server does not see a flood.
- **nick**: if the nick is taken the connection registers as ``nick_`` and
  takes the nick back as soon as its holder leaves or changes it (and
  tries again every ``NICK_RETRY`` seconds).

IRC is not end-to-end encrypted: the IRC server (and, in a channel, every
member) reads everything; the relay annotation of every message sent says
``encrypted: false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import pydle  # type: ignore[import-untyped]

from taube.client import Client
from taube.connectors.irc import lines
from taube.connectors.irc.account import NETWORK, SECRET_NAME, IrcAccount
from taube.connectors.runner import (
    AuthFailed,
    ConnectorRunner,
    Incoming,
    NetworkError,
    NotConnected,
)
from taube.connectors.state import ConnectorState

log = logging.getLogger(__name__)

#: how long logging in may take
LOGIN_TIMEOUT = 30.0
#: lines sent at once before pacing starts (servers count a flood per second or so)
BURST = 4
PACE = 0.6
#: how often a lost nick is asked for again
NICK_RETRY = 60.0
#: how many lines of a channel's history a CHATHISTORY request asks for
HISTORY = 100


def load_account(client: Client) -> IrcAccount:
    profile = client.profile
    assert profile is not None
    raw = profile.get_secret(SECRET_NAME)
    if raw is None:
        raise LookupError("no IRC account: run `taube connect irc` first")
    return IrcAccount.from_bytes(raw)


def open_state(client: Client) -> ConnectorState:
    return ConnectorState(client.profile_dir / "connectors" / "irc.db")


def open_runner(client: Client, **kwargs: Any) -> ConnectorRunner:
    """The IRC connector of ``client``'s device, with the account ``taube
    connect irc`` keeps sealed in its profile (``LookupError``: none)."""
    return ConnectorRunner(client, IrcNetwork(load_account(client)), open_state(client), **kwargs)


class _Irc(pydle.Client):  # type: ignore[misc] # (pydle has no type hints)
    """pydle's client, its events handed to ``IrcNetwork``; reconnecting is
    the runner's job, not pydle's."""

    RECONNECT_ON_ERROR = False

    def __init__(self, network: IrcNetwork, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._network = network

    async def on_connect(self) -> None:
        await super().on_connect()
        self._network._registered()

    async def on_disconnect(self, expected: bool) -> None:
        await super().on_disconnect(expected)
        self._network._closed.set()

    async def on_raw_privmsg(self, message: Any) -> None:
        # (synchronous up to the queue: messages stay in the order they came)
        self._network._heard(message, notice=False)

    async def on_raw_notice(self, message: Any) -> None:
        self._network._heard(message, notice=True)

    async def on_raw_464(self, message: Any) -> None:  # ERR_PASSWDMISMATCH
        self._network._refused("the server refused the password")

    async def on_raw_904(self, message: Any) -> None:  # ERR_SASLFAIL
        self._network._refused("SASL login failed")
        await super().on_raw_904(message)

    async def on_raw_905(self, message: Any) -> None:  # ERR_SASLTOOLONG
        self._network._refused("SASL login failed")
        await super().on_raw_905(message)

    async def on_raw_903(self, message: Any) -> None:  # RPL_SASLSUCCESS
        self._network._sasl_ok = True
        await super().on_raw_903(message)

    async def on_raw_error(self, message: Any) -> None:
        error = " ".join(str(p) for p in message.params)[:300]
        self._network._error = error
        if not self.registered and "password" in error.lower():  # (ngIRCd sends no 464)
            self._network._refused(error)
        await super().on_raw_error(message)

    async def on_quit(self, user: str, message: str | None = None) -> None:
        await super().on_quit(user, message)
        await self._network._maybe_reclaim(user)

    async def on_nick_change(self, old: str, new: str) -> None:
        await super().on_nick_change(old, new)
        await self._network._maybe_reclaim(old)

    async def on_join(self, channel: str, user: str) -> None:
        await super().on_join(channel, user)
        if self.is_same_nick(user, self.nickname):
            await self._network._joined(channel)

    # IRCv3 capabilities pydle does not ask for itself
    async def on_capability_batch_available(self, value: Any) -> bool:
        return True

    async def on_capability_server_time_available(self, value: Any) -> bool:
        return True

    async def on_capability_draft_chathistory_available(self, value: Any) -> bool:
        return True

    async def on_raw_batch(self, message: Any) -> None:
        pass  # (history comes as PRIVMSGs inside it, with their msgid)


class IrcNetwork:
    name = NETWORK

    def __init__(self, account: IrcAccount) -> None:
        self.account = account
        self.irc: _Irc | None = None
        self._runner: ConnectorRunner | None = None
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._error = ""
        self._auth_error = ""
        self._sasl_ok = False
        self._session = ""
        self._count = itertools.count()
        self.nick_retry = NICK_RETRY
        self.ignored = 0  #: lines not brought in (CTCP, server notices, malformed)

    # ------------------------------------------------------------ the session

    async def session(self, runner: ConnectorRunner) -> None:
        self._runner = runner
        self._reset()
        irc = await self._login(self._channels(runner))
        try:
            runner.connected()
            await self._deliver(runner)
            if self._auth_error:
                raise AuthFailed(self._auth_error)
            raise NetworkError(self._error or "the connection closed")
        finally:
            await self._logout(irc)

    async def check(self) -> None:
        """Log in once and out again (raises what ``session`` raises)."""
        self._reset()
        await self._logout(await self._login([]))

    def _reset(self) -> None:
        self._ready.clear()
        self._closed.clear()
        self._error = self._auth_error = ""
        self._sasl_ok = False
        self._session = secrets.token_hex(6)

    async def _login(self, channels: list[str]) -> _Irc:
        account = self.account
        irc = _Irc(
            self,
            nickname=account.nick,
            fallback_nicknames=[account.nick + "_", account.nick + "__"],
            username=account.nick.lower()[:10],
            realname=account.realname or account.nick,
            sasl_username=account.sasl_user or None,
            sasl_password=(account.password or None) if account.sasl_user else None,
            sasl_mechanism="PLAIN" if account.sasl_user else None,
        )
        self.irc = irc
        try:
            async with asyncio.timeout(LOGIN_TIMEOUT):
                await irc.connect(
                    account.host,
                    account.port,
                    tls=account.tls,
                    tls_verify=account.tls_verify,
                    password=None if account.sasl_user else (account.password or None),
                    channels=channels,
                )
                await _first(self._ready, self._closed)
            if not self._ready.is_set():
                if self._auth_error:
                    raise AuthFailed(self._auth_error)
                raise NetworkError(self._error or "the server closed the connection at login")
            if account.sasl_user and not self._sasl_ok:
                raise AuthFailed(self._auth_error or "the server did not log us in with SASL")
        except BaseException:
            await self._logout(irc)
            raise
        return irc

    async def _logout(self, irc: _Irc) -> None:
        self.irc = None
        if irc.connected:
            with contextlib.suppress(Exception):
                await irc.disconnect(expected=True)

    def _channels(self, runner: ConnectorRunner) -> list[str]:
        """The account's channels and those of every portal this device serves."""
        found = dict.fromkeys(c.lower() for c in self.account.channels)
        for portal in runner.client.portals().values():
            ours = portal.by is None or portal.by == runner.client.device
            if portal.network == NETWORK and portal.chat.startswith(("#", "&")) and ours:
                found[portal.chat.lower()] = None
        return list(found)

    async def _deliver(self, runner: ConnectorRunner) -> None:
        """Bring in what arrives, in order, until the connection closes;
        ask for the nick every ``nick_retry`` seconds while another is used
        (IRC tells us its holder left only if we share a channel)."""
        loop = asyncio.get_running_loop()
        closed = asyncio.create_task(self._closed.wait())
        due = loop.time() + self.nick_retry
        try:
            while not self._closed.is_set():
                got = asyncio.create_task(self._queue.get())
                done, _ = await asyncio.wait(
                    {got, closed},
                    timeout=max(0.0, due - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if got in done:
                    await runner.bring_in(got.result())
                else:
                    got.cancel()
                if loop.time() >= due:
                    await self._reclaim()
                    due = loop.time() + self.nick_retry
            while not self._queue.empty():  # what came before the close
                await runner.bring_in(self._queue.get_nowait())
        finally:
            closed.cancel()

    def _registered(self) -> None:
        self._ready.set()

    def _refused(self, why: str) -> None:
        self._auth_error = why

    # ------------------------------------------------------------ in

    def _heard(self, message: Any, *, notice: bool) -> None:
        irc = self.irc
        if irc is None:
            return
        params = list(message.params)
        source = str(message.source or "")
        if len(params) != 2 or "!" not in source:
            self.ignored += 1  # a server notice, or a malformed line
            if notice:
                log.info("irc: server notice: %s", " ".join(map(str, params))[:200])
            return
        target, text = str(params[0]), str(params[1])
        nick = source.partition("!")[0]
        if irc.is_same_nick(nick, irc.nickname):
            return  # our own (echo-message)
        if text.startswith("\x01"):
            if text.startswith("\x01ACTION ") and not notice:
                text = f"* {nick} {text[8:].rstrip(chr(1))}"
            else:
                self.ignored += 1  # CTCP: never answered
                return
        text = lines.plain(text)
        if not text.strip():
            self.ignored += 1
            return
        tags = getattr(message, "tags", None) or {}
        remote_id = str(tags.get("msgid") or f"{self._session}:{next(self._count)}")
        host = self.account.host
        if irc.is_channel(target):
            chat, title = target.lower(), f"{target} ({host})"
        else:
            chat, title = nick.lower(), f"{nick} ({host})"
        self._queue.put_nowait(
            Incoming(
                chat=chat,
                remote_id=remote_id,
                sender=nick,
                text=text,
                title=title,
                peers=() if irc.is_channel(target) else (nick,),
            )
        )

    async def _joined(self, channel: str) -> None:
        """A channel joined: its portal is there (opened if new), and a server
        that keeps history is asked for what was said while we were away."""
        irc, runner = self.irc, self._runner
        if irc is None or runner is None:
            return
        await runner.open_chat(channel.lower(), f"{channel} ({self.account.host})")
        if not irc._capabilities.get("draft/chathistory"):
            return
        since = runner.state.get(f"irc:seen:{channel.lower()}")
        start = f"timestamp={since}" if since else "*"
        with contextlib.suppress(Exception):
            await irc.rawmsg("CHATHISTORY", "LATEST", channel, start, str(HISTORY))
        runner.state.put(
            f"irc:seen:{channel.lower()}",
            datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )

    # ------------------------------------------------------------ nick

    async def _maybe_reclaim(self, gone: str) -> None:
        irc = self.irc
        if irc is not None and irc.is_same_nick(gone, self.account.nick):
            await self._reclaim()

    async def _reclaim(self) -> None:
        irc = self.irc
        if irc is None or not irc.registered or irc.is_same_nick(irc.nickname, self.account.nick):
            return
        with contextlib.suppress(Exception):
            await irc.set_nickname(self.account.nick)

    # ------------------------------------------------------------ out

    async def send(self, chat: str, text: str) -> str:
        irc = self.irc
        if irc is None or not self._ready.is_set() or not irc.connected:
            raise NotConnected("not connected to the IRC server")
        if irc.is_channel(chat) and not irc.in_channel(chat):
            await irc.join(chat)
        limit = lines.budget(irc.nickname, irc.username, chat)
        for index, line in enumerate(lines.split(text, limit)):
            if index >= BURST:
                await asyncio.sleep(PACE)
            await irc.rawmsg("PRIVMSG", chat, line)
        return f"out:{self._session}:{next(self._count)}"

    async def join(self, channel: str) -> None:
        if self.irc is None:
            raise NotConnected("not connected to the IRC server")
        await self.irc.join(channel)

    async def part(self, channel: str) -> None:
        if self.irc is None:
            raise NotConnected("not connected to the IRC server")
        await self.irc.part(channel)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
