"""Portals: conversations that reach a chat on another network.

A portal is a conversation of the user's whose other side lives elsewhere
(an e-mail address or a Delta Chat group, later Matrix, XMPP, IRC). What
links it to that chat is a ``portal`` message in the conversation: end to
end encrypted like any other, so the server sees a conversation and never
where it leads. Any device can open one; the connector serving the network
(a device of the user's own, ``taube.connectors``) answers with a portal
message naming itself, and relays both ways from then on.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection

from taube.client import events as ev
from taube.client.conversations import Conversations, Sender
from taube.client.messages import Messages
from taube.client.session import Session
from taube.proto import http
from taube.proto.ids import ConversationId, DeviceId, UserId, domain_of
from taube.proto.state import Kind

#: the network of chat over e-mail
EMAIL = "email"


#: how long "this address has no taube account" is believed
NOT_ON_TAUBE_S = 300.0


class Portals:
    def __init__(
        self,
        conversations: Conversations,
        messages: Messages,
        sender: Sender,
        session: Session | None = None,
    ) -> None:
        self._conversations = conversations
        self._messages = messages
        self._sender = sender
        self._session = session
        self._on_taube: set[UserId] = set()
        self._not_on_taube: dict[UserId, float] = {}

    async def by_mail(self, users: Collection[UserId]) -> set[UserId]:
        """Those of ``users`` reached by e-mail: addresses on another domain
        without a taube account there.

        The user's own server answers (it asks the other domain's server,
        found by ``/.well-known/taube/server``; the client never talks to a
        foreign server). A domain without a taube server, or an address
        without an account on it, is e-mail; an unreachable server raises
        ``Unavailable`` rather than send by e-mail what should not go there.
        """
        session = self._session
        if session is None or not session.user:
            return set()
        own = domain_of(session.user)
        now = time.monotonic()
        foreign = [u for u in dict.fromkeys(users) if domain_of(u) != own]
        unknown = [
            u for u in foreign if u not in self._on_taube and self._not_on_taube.get(u, 0.0) <= now
        ]
        if unknown:
            _, api, _ = session.need()
            found = await api.post("/keys/query", http.QueryKeys(users=unknown), http.KeysResponse)
            present = {UserId(entry.user) for entry in found.users if entry.identity is not None}
            for user in unknown:
                if user in present:
                    self._on_taube.add(user)
                else:
                    self._not_on_taube[user] = now + NOT_ON_TAUBE_S
        return {u for u in foreign if u not in self._on_taube}

    def get(self, conversation: ConversationId) -> ev.Portal | None:
        found = self._messages.latest(ev.PORTAL, conversation).get(conversation)
        return None if found is None else _portal(found)

    def all(self) -> dict[ConversationId, ev.Portal]:
        portals = {}
        for conversation, content in self._messages.latest(ev.PORTAL).items():
            portal = _portal(content)
            if portal is not None:
                portals[ConversationId(conversation)] = portal
        return portals

    def find(self, network: str, chat: str) -> ConversationId | None:
        for conversation, portal in self.all().items():
            if portal.network == network and portal.chat.lower() == chat.lower():
                return conversation
        return None

    async def open(self, portal: ev.Portal) -> ConversationId:
        """The conversation for ``portal``'s chat: the existing one, or a new
        one (a group of the user's own devices, titled for the chat)."""
        found = self.find(portal.network, portal.chat)
        if found is not None:
            return found
        conversation = await self._conversations.create(Kind.GROUP, [])
        if portal.title:
            await self._conversations.rename(conversation, portal.title)
        await self._sender.send(conversation, ev.PORTAL, portal.content())
        return conversation

    async def set_peers(
        self,
        conversation: ConversationId,
        add: Collection[str] = (),
        remove: Collection[str] = (),
    ) -> None:
        """Add or remove e-mail members of a group (its portal made if new)."""
        portal = self.get(conversation)
        if portal is None:
            if not add:
                return
            portal = ev.Portal(EMAIL, f"group:{new_group_id()}")
        peers = (set(portal.peers) | set(add)) - set(remove)
        changed = ev.Portal(
            portal.network, portal.chat, tuple(sorted(peers)), portal.title, portal.by
        )
        if changed != portal:
            await self.update(conversation, changed)

    async def update(self, conversation: ConversationId, portal: ev.Portal) -> None:
        """Say what the portal is now (a connector claims it, peers change)."""
        await self._sender.send(conversation, ev.PORTAL, portal.content())


def _portal(content: dict[str, object]) -> ev.Portal | None:
    portal = ev.Portal.of(content)
    if portal is None or portal.by is None:
        return portal
    # only the device that sent the portal message can say it serves it
    device = content.get("_device")
    if portal.by != device:
        return ev.Portal(portal.network, portal.chat, portal.peers, portal.title, None)
    return ev.Portal(portal.network, portal.chat, portal.peers, portal.title, DeviceId(portal.by))


def new_group_id() -> str:
    """A group id as chat mail carries it (``Chat-Group-ID``)."""
    return secrets.token_urlsafe(12)
