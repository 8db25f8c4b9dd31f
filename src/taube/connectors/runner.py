"""What every connector does, whatever its network: the runner.

A connector is a device of the user's (an SDK ``Client``) that relays
between the user's portal conversations and a chat network. Most of that
is the same for every network; ``ConnectorRunner`` does it once, and a
network module (``taube.connectors.irc``, later Matrix and XMPP; the
e-mail connector should move onto it too, see docs/design.md) brings only
what its protocol needs, as a ``Network``:

- **the session**: ``Network.session(runner)`` logs in and delivers what
  arrives by calling ``runner.bring_in`` until the connection ends (it
  returns or raises ``OSError``/``TimeoutError``/``NetworkError``; a
  refused login raises ``AuthFailed``). The runner opens it again with
  backoff and reports the state (connected, reconnecting, auth failed)
  to ``on_status``;
- **sending**: ``Network.send(chat, text)`` puts one of the user's messages
  on the network and returns the network's id for it (or raises while
  disconnected: the message waits and goes once the session is back).

The runner keeps the ``ConnectorState`` (what came in, by the network's
own ids, so nothing is shown twice; what went out, so nothing goes twice),
opens a portal conversation for each new chat (labelled with its network),
and watches the portals it serves for what the user writes there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from taube.client import Client, Received
from taube.client import events as ev
from taube.connectors.control import State
from taube.connectors.retry import Backoff
from taube.connectors.state import ConnectorState
from taube.proto.ids import ConversationId, MessageId

log = logging.getLogger(__name__)

#: how often the portals are looked through even when nothing woke the relay
RELAY_INTERVAL = 5.0
#: messages older than this before the connector first ran are not sent out
RELAY_GRACE_MS = 24 * 3600 * 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def last_status(state: ConnectorState, network: str) -> tuple[State, str, int] | None:
    """What the connector of ``network`` said last: state, error, when (ms)."""
    raw = state.get(f"{network}:status")
    if raw is None:
        return None
    value, error, at = json.loads(raw)
    return State(value), str(error), int(at)


class NetworkError(Exception):
    """The network broke the session (the runner opens a new one)."""


class AuthFailed(NetworkError):
    """The network refused the login (the runner still retries, slowly)."""


class NotConnected(NetworkError):
    """No session right now: what was to be sent waits for the next one."""


@dataclasses.dataclass(frozen=True)
class Incoming:
    """One message from the network, for the portal of ``chat``."""

    chat: str  #: the network's id of the chat (a channel, a peer)
    remote_id: str  #: the network's id of the message (dedupe), unique in ``chat``
    sender: str  #: the author's address on the network
    text: str
    title: str = ""  #: the conversation's title, if the runner opens it
    name: str = ""  #: the author's display name, if the network has one
    peers: tuple[str, ...] = ()


class Network(Protocol):
    name: str  #: the portal network (``irc``)

    async def session(self, runner: ConnectorRunner) -> None: ...

    async def send(self, chat: str, text: str) -> str: ...


class ConnectorRunner:
    def __init__(
        self,
        client: Client,
        network: Network,
        state: ConnectorState,
        *,
        clock: Callable[[], int] = now_ms,
        on_status: Callable[[State, str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.network = network
        self.state = state
        self.clock = clock
        self._on_status = on_status
        self.backoff = backoff or Backoff(initial=1.0, cap=120.0)
        #: how the network is doing, and the last error
        self.status: tuple[State, str] = (State.CHECKING, "")
        self._relay_wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._dirty: set[ConversationId] | None = None
        self._lock = asyncio.Lock()
        self.brought_in = 0
        self.relayed = 0
        key = f"{network.name}:since"
        if state.get(key) is None:
            state.put(key, str(clock()))

    # ------------------------------------------------------------ the loops

    async def run(self) -> None:
        """Relay both ways until cancelled (the client must be connected)."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._session_loop())
            tasks.create_task(self._relay_loop())
            tasks.create_task(self._watch())

    async def _session_loop(self) -> None:
        while True:
            try:
                await self.network.session(self)
                error: str = "the network closed the connection"
                state = State.RECONNECTING
            except AuthFailed as exc:
                error, state = str(exc) or "login refused", State.AUTH_FAILED
            except (OSError, TimeoutError, NetworkError) as exc:
                error, state = str(exc) or repr(exc), State.RECONNECTING
            self._connected.clear()
            self.set_status(state, error)
            delay = self.backoff.next()
            log.warning("%s: %s; again in %.1f s", self.network.name, error, delay)
            await asyncio.sleep(delay)

    def connected(self) -> None:
        """The network's session is up (logged in): relay what waited."""
        self.backoff.reset()
        self._connected.set()
        self.set_status(State.CONNECTED)
        self.wake()

    def set_status(self, state: State, error: str = "") -> None:
        if (state, error) == self.status:
            return
        self.status = (state, error)
        # (for ``taube connect status``, asked while the connector runs elsewhere)
        self.state.put(
            f"{self.network.name}:status", json.dumps([state.value, error, self.clock()])
        )
        if self._on_status is not None:
            self._on_status(state, error)

    # ------------------------------------------------------------ in

    async def bring_in(self, item: Incoming) -> MessageId | None:
        """``item`` as a message of its portal (opened if new); ``None`` if
        it was brought in before (the same network id: shown once)."""
        network = self.network.name
        async with self._lock:  # one at a time: two for a new chat open one portal
            if self.state.handled(network, item.remote_id) is not None:
                return None
            conversation = await self.portal_for(item.chat, item.title, item.peers)
            msg_id = self.state.message_id_for(network, item.remote_id)
            remote = {"network": network, "sender": item.sender, "encrypted": False}
            if item.name:
                remote["name"] = item.name
            await self.client.send(
                conversation, ev.TEXT, {"body": item.text, "remote": remote}, msg_id=msg_id
            )
            # the outbox holds it durably now: a crash from here on sends it once
            self.state.mark_handled(network, [(item.remote_id, conversation, msg_id)], self.clock())
            self.brought_in += 1
            return msg_id

    async def open_chat(self, chat: str, title: str = "") -> ConversationId:
        """The portal of ``chat`` (a channel just joined), opened if new."""
        async with self._lock:
            return await self.portal_for(chat, title)

    async def portal_for(
        self, chat: str, title: str = "", peers: tuple[str, ...] = ()
    ) -> ConversationId:
        """The portal conversation of ``chat``: found (and claimed), or opened."""
        client = self.client
        for conversation, portal in client.portals().items():
            if portal.network == self.network.name and portal.chat.lower() == chat.lower():
                if portal.by != client.device:
                    await client.update_portal(
                        conversation, dataclasses.replace(portal, by=client.device)
                    )
                return conversation
        return await client.open_portal(
            ev.Portal(self.network.name, chat, peers, title or chat, client.device)
        )

    # ------------------------------------------------------------ out

    async def _watch(self) -> None:
        async for event in self.client.events():
            if isinstance(event, Received):
                if self._dirty is not None:
                    self._dirty.add(event.message.conversation)
                self._relay_wake.set()

    def wake(self) -> None:
        """Look through every portal now."""
        self._dirty = None
        self._relay_wake.set()

    async def _relay_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(RELAY_INTERVAL):
                    await self._relay_wake.wait()
            except TimeoutError:
                self._dirty = None
            self._relay_wake.clear()
            await self._connected.wait()
            only, self._dirty = self._dirty, set()
            try:
                await self.relay_pending(only)
            except (OSError, TimeoutError, NetworkError) as exc:
                log.info("%s: sending waits for the next session: %s", self.network.name, exc)
                self._dirty = None  # all of them again, once connected

    async def relay_pending(self, only: set[ConversationId] | None = None) -> int:
        """Send out the user's messages in the portals this device serves
        (``only``: in these conversations)."""
        client = self.client
        network = self.network.name
        since = int(self.state.get(f"{network}:since") or 0) - RELAY_GRACE_MS
        sent = 0
        for conversation, portal in client.portals().items():
            if portal.network != network or (only is not None and conversation not in only):
                continue
            if portal.by is None:  # opened by one of the user's devices: serve it
                await client.update_portal(
                    conversation, dataclasses.replace(portal, by=client.device)
                )
            elif portal.by != client.device:
                continue  # another connector device serves it
            for message in client.history(conversation, limit=1000):
                if (
                    message.remote is not None
                    or message.type != ev.TEXT
                    or message.deleted
                    or message.status not in ("sent", "received")
                    or message.ts < since
                    or (message.seq is not None and message.seq < 0)
                    or self.state.relayed(message.id)
                ):
                    continue
                await self._send_out(conversation, portal, message)
                sent += 1
        return sent

    async def _send_out(
        self, conversation: ConversationId, portal: ev.Portal, message: ev.Message
    ) -> None:
        relay: dict[str, Any] = {"target": message.id, "network": portal.network}
        relay["encrypted"] = False  # (a network with E2E says so in its own runner)
        remote_id = await self.network.send(portal.chat, message.text)
        self.state.mark_relayed(
            portal.network, message.id, remote_id, encrypted=False, at_ms=self.clock()
        )
        await self.client.send(conversation, ev.RELAY, relay)
        self.relayed += 1
