"""Invite links: a first contact that is verified from the start.

    https://<server>/#/invite/<inviter>/<fingerprint>/<secret>[/<name>]

The fragment (never sent to the server by a browser) carries the inviter's
address, a fingerprint of their identity key (SHA-256, first 16 bytes) and a
one-time secret of 16 random bytes, all unpadded base64url, plus the
inviter's display name as a hint. The protocol (``docs/protocol.md``):

1. The inviter registers ``id = HMAC-SHA-256(secret, "taube invite id")``
   with the server (``POST /invites``), which keeps its SHA-256 only.
2. The joiner looks the inviter's identity key up, refuses the link if its
   fingerprint differs, redeems the id (``POST /invites/redeem``: once, not
   after expiry or revocation), pins the key as verified and starts the chat.
3. The joiner proves it holds the secret to the inviter's devices, in an Olm
   to-device message: ``taube.invite.proof {id, mac}`` with
   ``mac = HMAC-SHA-256(secret, "taube invite proof" | inviter | inviter's
   identity key | joiner | joiner's identity key)``. The inviter's device
   that made the link checks it against the joiner's pinned key and marks
   the joiner verified.

The server sees the id, never the secret, so it can neither make a proof nor
swap either identity key unnoticed.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

from taube.client import events as ev
from taube.client.errors import ClientError, ServerError
from taube.crypto import VerifiedDevice
from taube.proto import people
from taube.proto.errors import ProtocolError
from taube.proto.ids import ConversationId, UserId, parse_address

if TYPE_CHECKING:
    from taube.client.background import Background
    from taube.client.contacts import Contacts
    from taube.client.conversations import Conversations
    from taube.client.keys import Keys
    from taube.client.profile import Profile
    from taube.client.receiver import ToDeviceHandler
    from taube.client.session import Emit
    from taube.client.transport import AiohttpTransport, Api

PREFIX = "taube.invite."
PROOF = "taube.invite.proof"
_KV = "invite:"


class InviteError(ClientError):
    """The link is malformed, forged, used up, expired or revoked."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_bytes(identity_key: str) -> bytes:
    """An identity key (unpadded standard base64) as its 32 bytes."""
    return base64.b64decode(identity_key + "=" * (-len(identity_key) % 4))


def fingerprint(identity_key: str) -> str:
    return _b64url(hashlib.sha256(_key_bytes(identity_key)).digest()[:16])


def invite_id(secret: str) -> str:
    return _b64url(hmac.digest(_unb64url(secret), b"taube invite id", "sha256"))


def proof(secret: str, inviter: UserId, inviter_key: str, joiner: UserId, joiner_key: str) -> str:
    message = "\n".join(["taube invite proof", inviter, inviter_key, joiner, joiner_key])
    return _b64url(hmac.digest(_unb64url(secret), message.encode(), "sha256"))


@dataclasses.dataclass(frozen=True)
class InviteLink:
    server: str
    inviter: UserId
    fingerprint: str
    secret: str
    name: str = ""

    @property
    def id(self) -> str:
        return invite_id(self.secret)

    @property
    def url(self) -> str:
        inviter = quote(self.inviter, safe="@")
        url = f"{self.server}/#/invite/{inviter}/{self.fingerprint}/{self.secret}"
        return url + (f"/{quote(self.name, safe='')}" if self.name else "")

    @classmethod
    def parse(cls, text: str) -> InviteLink:
        server, sep, fragment = text.strip().partition("/#/invite/")
        parts = fragment.split("/")
        if not sep or len(parts) not in (3, 4) or not server.startswith(("http://", "https://")):
            raise InviteError("this is not an invite link")
        try:
            inviter = parse_address(unquote(parts[0]))
            fp, secret = parts[1], parts[2]
            if len(_unb64url(fp)) != 16 or len(_unb64url(secret)) != 16:
                raise ValueError("wrong length")
        except (ValueError, ProtocolError) as exc:
            raise InviteError(f"this invite link is damaged ({exc})") from None
        name = unquote(parts[3])[:100] if len(parts) == 4 else ""
        return cls(server.rstrip("/"), inviter, fp, secret, name)


class InviteHost(Protocol):
    """What invites need of the client (``taube.client.Client``)."""

    @property
    def api(self) -> Api | None: ...
    @property
    def profile(self) -> Profile | None: ...
    @property
    def transport(self) -> AiohttpTransport | None: ...
    @property
    def keys(self) -> Keys: ...
    @property
    def user(self) -> UserId: ...
    def handle_to_device(self, prefix: str, handler: ToDeviceHandler) -> None: ...
    async def send_to_device(
        self, device: VerifiedDevice, type_: str, content: dict[str, Any]
    ) -> None: ...
    async def start_chat(self, address: str) -> ConversationId: ...


class Invites:
    """Making, revoking and joining invite links; checking proofs."""

    def __init__(
        self,
        client: InviteHost,
        emit: Emit,
        conversations: Conversations,
        contacts: Contacts,
        background: Background,
    ) -> None:
        self._client = client
        self._emit = emit
        self._conversations = conversations
        self._contacts = contacts
        self._background = background
        client.handle_to_device(PREFIX, self._on_message)

    async def create(
        self, name: str = "", lifetime_s: int = people.DEFAULT_INVITE_LIFETIME_S
    ) -> InviteLink:
        client = self._client
        api, profile = client.api, client.profile
        assert api is not None
        assert profile is not None
        assert client.transport is not None
        keys = client.keys
        link = InviteLink(
            client.transport.base_url.rstrip("/"),
            client.user,
            fingerprint(keys.identity.public_key),
            _b64url(secrets.token_bytes(16)),
            name[:100],
        )
        created = await api.post(
            "/invites", people.NewInvite(id=link.id, lifetime_s=lifetime_s), people.Invite
        )
        record = {"secret": link.secret, "expires_ms": created.expires_ms}
        profile.put_text(_KV + link.id, json.dumps(record))
        return link

    async def revoke(self, link: InviteLink) -> None:
        api = self._client.api
        assert api is not None
        await api.call("DELETE", f"/invites/{link.id}")

    async def join(self, link: InviteLink) -> ConversationId:
        """Check the link, use it up, and start the verified chat with the inviter."""
        client = self._client
        api, keys = client.api, client.keys
        assert api is not None
        if link.inviter == client.user:
            raise InviteError("this is your own invite link")
        await keys.refresh([link.inviter])
        pinned = keys.pinned(link.inviter)
        if pinned is None or not hmac.compare_digest(fingerprint(pinned[0]), link.fingerprint):
            raise InviteError(
                f"this invite link does not match {link.inviter}'s key: it may be forged"
            )
        try:
            redeemed = await api.post(
                "/invites/redeem", people.InviteRef(id=link.id), people.Invite
            )
        except ServerError as exc:
            raise InviteError(exc.message) from exc
        if redeemed.inviter != link.inviter:
            raise InviteError("this invite link was made by someone else: it may be forged")
        keys.mark_verified(link.inviter, pinned[0])
        conversation = await client.start_chat(link.inviter)
        mac = proof(link.secret, link.inviter, pinned[0], client.user, keys.identity.public_key)
        for device in await keys.devices_of([link.inviter]):
            await client.send_to_device(device, PROOF, {"id": link.id, "mac": mac})
        return conversation

    async def _on_message(
        self, sender: VerifiedDevice, type_: str, content: dict[str, Any]
    ) -> None:
        """A joiner's proof: on the device that made the link, verify them."""
        client = self._client
        profile = client.profile
        if type_ != PROOF or profile is None:
            return
        invite = str(content.get("id", ""))
        stored = profile.get_text(_KV + invite) if len(invite) == 43 else None
        if stored is None:
            return  # another device's invite, or none
        record = json.loads(stored)
        keys = client.keys
        pinned = keys.pinned(sender.user)
        if pinned is None or pinned[0] != sender.identity_key or record.get("joiner"):
            return
        expected = proof(
            record["secret"], client.user, keys.identity.public_key, sender.user, pinned[0]
        )
        if not hmac.compare_digest(expected, str(content.get("mac", ""))):
            self._emit(ev.VerificationDone(f"invite:{invite[:8]}", sender.user, False, "bad proof"))
            return
        keys.mark_verified(sender.user, pinned[0])
        profile.put_text(_KV + invite, json.dumps({**record, "joiner": sender.user}))
        self._emit(ev.VerificationDone(f"invite:{invite[:8]}", sender.user, True))
        self._background.spawn(self._welcome(sender.user))

    async def _welcome(self, joiner: UserId, looks: int = 150) -> None:
        """Send our profile (our name) into the chat the joiner started, once
        it is here (the proof comes in the device queue, before the chat);
        we look for it every 0.2 s for half a minute."""
        for _ in range(looks):
            conversation = await self._conversations.find_direct(joiner)
            if conversation is not None:
                await self._contacts.send_profile(conversation)
                return
            await asyncio.sleep(0.2)
