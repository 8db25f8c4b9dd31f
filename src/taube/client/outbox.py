"""The outbox: what the user sent, kept until a carrier delivered it.

``send`` checks the conversation (a member, nobody blocked), stores the
message as *pending* in the profile and wakes the loop; ``run`` hands the
items, in order, to the carrier that serves their conversation (the taube
server unless a connector routed it elsewhere, see ``carrier``) and retries
with backoff and jitter until the carrier has delivered it. A message
written offline or before a restart is delivered exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import msgspec

from taube.client.carrier import Carrier, Outgoing
from taube.client.conversations import Conversations
from taube.client.errors import (
    ClientError,
    NotAMember,
    SendingBlocked,
    ServerError,
    Unavailable,
)
from taube.client.messages import Messages
from taube.client.session import Session
from taube.crypto import CryptoError, MessagePayload
from taube.proto.ids import ConversationId, MessageId, new_message_id
from taube.proto.state import ConversationState

log = logging.getLogger(__name__)

#: does a carrier serve this conversation?
Serves = Callable[[ConversationId, ConversationState], bool]


class Outbox:
    def __init__(
        self,
        session: Session,
        conversations: Conversations,
        messages: Messages,
        carrier: Carrier,
        ready: asyncio.Event,
    ) -> None:
        """``carrier``: the default one; ``ready``: set while it can deliver."""
        self._session = session
        self._conversations = conversations
        self._messages = messages
        self._default = carrier
        self._routes: list[tuple[Serves, Carrier]] = []
        self._ready = ready
        self._wake = asyncio.Event()

    def route(self, serves: Serves, carrier: Carrier) -> None:
        """Send the conversations ``serves`` picks through ``carrier`` (the
        first route that serves a conversation wins)."""
        self._routes.append((serves, carrier))

    async def _carrier_for(self, conversation: ConversationId) -> Carrier:
        if self._routes:
            state = await self._conversations.state(conversation)
            for serves, carrier in self._routes:
                if serves(conversation, state):
                    return carrier
        return self._default

    def wake(self) -> None:
        """Look at the outbox again (something it waited for changed)."""
        self._wake.set()

    async def send(
        self,
        conversation: ConversationId,
        type_: str,
        content: dict[str, Any],
        msg_id: MessageId | None = None,
    ) -> MessageId:
        """Put a message in the outbox; it is sent as soon as possible.

        ``msg_id``: the id to give it (a connector derives it from the other
        network's id, so that handing the same message over again after a
        crash changes nothing); one this device has already is not sent again.
        """
        session = self._session
        profile, _, keys = session.need()
        if msg_id is not None and self._messages.known(conversation, msg_id):
            return msg_id
        _, state = await self._conversations.chain(conversation)
        if session.user not in state.members:
            raise NotAMember(f"not a member of {conversation}")
        blocked = keys.blocked(list(state.members))
        if blocked:
            raise SendingBlocked(blocked)
        msg_id = msg_id or new_message_id()
        payload = MessagePayload(
            sender=session.user,
            sender_device=session.device,
            conversation=conversation,
            message_id=msg_id,
            type=type_,
            content=content,
        )
        ts = session.clock()
        expires = ts + state.timer_seconds * 1000 if state.timer_seconds else None
        with profile.transaction():
            profile.execute(
                "INSERT INTO outbox (id, conversation, payload, created_ms, expire_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                msg_id,
                conversation,
                msgspec.json.encode(payload),
                ts,
                state.timer_seconds * 1000 or None,
            )
            self._messages.store(
                conversation,
                msg_id,
                None,
                session.user,
                session.device,
                ts,
                type_,
                content,
                "pending",
                expires,
            )
        self._wake.set()
        return msg_id

    def is_empty(self) -> bool:
        profile, _, _ = self._session.need()
        return profile.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is None

    async def wait_empty(self, timeout: float) -> None:
        """Wait until everything in the outbox is delivered."""
        async with asyncio.timeout(timeout):
            while not self.is_empty():
                self._wake.set()
                await asyncio.sleep(0.02)

    async def run(self) -> None:
        """Deliver what is in the outbox, whenever woken (until cancelled)."""
        profile, _, _ = self._session.need()
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._ready.wait()
            rows = profile.execute(
                "SELECT id, conversation, payload, expire_ms FROM outbox ORDER BY rowid"
            ).fetchall()
            for msg_id, conversation, payload, expire_ms in rows:
                item = Outgoing(
                    MessageId(msg_id),
                    ConversationId(conversation),
                    msgspec.json.decode(bytes(payload), type=MessagePayload),
                    expire_ms,
                )
                carrier = self._default
                try:
                    carrier = await self._carrier_for(item.conversation)
                    seq = await carrier.deliver(item)
                except (Unavailable, ConnectionError, TimeoutError) as exc:
                    log.info("send deferred: %s", exc)
                    await asyncio.sleep(0.5 + random.random())  # noqa: S311 - jitter
                    self._wake.set()
                    break
                except SendingBlocked as exc:
                    log.warning("send waits for re-verification: %s", exc)
                except (ServerError, ClientError, CryptoError) as exc:
                    log.warning("send failed for good: %s", exc)
                    self._settle(carrier, item, None, failed=True)
                except Exception:
                    log.exception("send failed unexpectedly; the message stays in the outbox")
                    await asyncio.sleep(1.0)
                    self._wake.set()
                    break
                else:
                    self._settle(carrier, item, seq, failed=False)

    def _settle(self, carrier: Carrier, item: Outgoing, seq: int | None, *, failed: bool) -> None:
        """The item leaves the outbox: delivered (as the conversation's
        ``seq``-th, if the network numbers them) or refused for good."""
        profile, _, _ = self._session.need()
        with profile.transaction():
            profile.execute("DELETE FROM outbox WHERE id = ?", item.id)
            carrier.settle(item.id)
            if failed:
                self._messages.mark_failed(item.id)
            else:
                self._messages.mark_sent(item.conversation, item.id, seq)
