"""``Client``: one device of one account, with its end-to-end encryption.

    async with Client(Path("~/.local/share/taube-client")) as client:
        await client.register("http://127.0.0.1:8470", "alice@example.org", password)
        chat = await client.start_chat("bob@example.org")
        await client.send_text(chat, "hello")
        async for event in client.events(timeout=5):
            ...

Everything the user sends goes to the *outbox* first (in the profile), then
is encrypted once and sent until the server acknowledges it, so a message
written while offline (or across a restart) is delivered exactly once when
the server is back. Everything received is decrypted, checked against its
envelope, stored, and only then acknowledged to the server.

``Client`` is the one public face; the work is done by parts it holds, each
owning its state (``docs/design.md`` has the map):

    session        the account on this device: profile, API, keys
    connection     the WebSocket and its frames
    carrier        where a message leaves the device (the taube server)
    conversations  conversations, groups, their signed state and state keys
    outbox         what the user sent, until a carrier delivered it
    receiver       what arrives: decrypted, checked, stored, acknowledged
    messages       the local messages: history, search, expiry
    contacts       profiles: the user's own and their contacts'
    portals        conversations that reach a chat on another network
    archive        the whole history as one encrypted file, to move it
    linking        linking a new device (history: its history transfer)
    verification   safety numbers and emoji verification
    calls          voice and video calls (signalling; media with aiortc)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taube.client import attachments, linking, people
from taube.client import events as ev
from taube.client.archive import Archive, Progress
from taube.client.background import Background
from taube.client.calls import Call, Calls
from taube.client.calls import signalling as call_signalling
from taube.client.carrier import Carrier, TaubeCarrier
from taube.client.connection import Connection
from taube.client.contacts import Contacts
from taube.client.conversations import Conversations
from taube.client.errors import ClientError
from taube.client.history import History
from taube.client.invites import InviteLink, Invites
from taube.client.keys import Keys
from taube.client.linking import Linking
from taube.client.messages import Messages
from taube.client.notices import Notices
from taube.client.outbox import Outbox, Serves
from taube.client.own_history import OwnHistory
from taube.client.portals import EMAIL, Portals
from taube.client.profile import Profile
from taube.client.receiver import Receiver, ToDeviceHandler
from taube.client.search import SearchHit
from taube.client.session import Session
from taube.client.transport import AiohttpTransport, Api
from taube.client.verification import Verification
from taube.crypto import VerifiedDevice
from taube.proto import frames, http
from taube.proto.ids import (
    ConversationId,
    DeviceId,
    MessageId,
    UserId,
    parse_address,
)
from taube.proto.state import ConversationState, Kind, Role

if TYPE_CHECKING:
    from taube.client.calls.media import Media


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Client:
    def __init__(
        self,
        profile_dir: Path,
        *,
        passphrase: str | None = None,
        clock: Callable[[], int] = now_ms,
        delivery_receipts: bool = True,
    ) -> None:
        """``delivery_receipts``: tell senders in direct chats and small groups
        (up to ``DELIVERY_RECEIPTS_UP_TO`` members) that a message arrived."""
        self.profile_dir = profile_dir.expanduser()
        self.passphrase = passphrase
        self.clock = clock
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()
        emit = self._emit
        self._background = Background()
        self._session = Session(self.profile_dir, passphrase, clock, emit)
        self._connection = Connection(self._session, self._background)
        self._conversations = Conversations(self._session)
        self._messages = Messages(self._session)
        self._notices = Notices(self._session, self._conversations)
        self._carrier = TaubeCarrier(self._session, self._connection, self._conversations)
        self._outbox = Outbox(
            self._session,
            self._conversations,
            self._messages,
            self._carrier,
            self._connection.connected,
        )
        self._conversations.sender = self._outbox
        self._contacts = Contacts(self._session, self._conversations, self._messages, self._outbox)
        self._history = History(self._session, self._messages)
        self._portals = Portals(self._conversations, self._messages, self._outbox, self._session)
        self._archive = Archive(
            self._session, self._conversations, self._messages, self._history, self._portals
        )
        self._linking = Linking(self._session, self._carrier, self._history)
        self._verification = Verification(
            self._session, self._carrier, self._background, emit, self._outbox.wake
        )
        self._calls = Calls(
            self._session, self._carrier, self._conversations, self._background, emit
        )
        self._calls.sender = self._outbox
        self._receiver = Receiver(
            self._session,
            self._conversations,
            self._messages,
            self._contacts,
            self._linking,
            self._verification,
            self._portals,
            self._outbox,
            self._background,
            emit,
            delivery_receipts=delivery_receipts,
        )
        self._connection.handler = self._receiver
        self.handle_to_device(call_signalling.PREFIX, self._calls.on_message)
        self._tasks: list[asyncio.Task[None]] = []
        self._invites = Invites(self, emit, self._conversations, self._contacts, self._background)
        self._own_history = OwnHistory(self, self._history, self._background)

    # ================================================================ lifecycle

    async def __aenter__(self) -> Client:
        await self._session.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        await self._session.close()

    @property
    def profile(self) -> Profile | None:
        return self._session.profile

    @property
    def api(self) -> Api | None:
        return self._session.api

    @property
    def transport(self) -> AiohttpTransport | None:
        return self._session.transport

    @property
    def keys(self) -> Keys:
        return self._session.keys

    @property
    def user(self) -> UserId:
        return self._session.user

    @property
    def device(self) -> DeviceId:
        return self._session.device

    @property
    def logged_in(self) -> bool:
        return self._session.logged_in

    @property
    def delivery_receipts(self) -> bool:
        return self._receiver.delivery_receipts

    @property
    def queue_empty(self) -> asyncio.Event:
        """Set when the server said the backlog is in."""
        return self._connection.queue_empty

    # ================================================================ account

    async def register(
        self, server: str, address: str, password: str, device_name: str = ""
    ) -> str:
        """Create the account and this device. Returns the recovery code:
        show it to the user once; it is the only way back without a device."""
        return await self._session.register(server, address, password, device_name)

    async def login(
        self, server: str, address: str, password: str, recovery_code: str, device_name: str = ""
    ) -> None:
        """Add this device to an account, opening the identity key backup with
        the recovery code."""
        await self._session.login(server, address, password, recovery_code, device_name)

    async def logout(self) -> None:
        self._session.need()
        await self.disconnect()
        await self._session.logout()

    async def devices(self) -> list[http.DeviceInfo]:
        return await self._session.devices()

    async def remove_device(self, device: str, password: str) -> None:
        await self._session.remove_device(device, password)

    # ---------------------------------------------------------------- linking

    def link_start(self) -> str:
        """On an existing device: a code to type (or scan) on the new device."""
        return self._linking.start()

    async def link_wait(self, timeout: float = linking.LINK_TTL_S) -> linking.LinkRequest:
        """On the existing device: the next device asking to link with the code
        (the live connection must be running: ``connect()``)."""
        return await self._linking.wait(timeout)

    async def link_confirm(self, request: linking.LinkRequest, share_history: bool = False) -> None:
        """The user confirmed ``request``: send the identity key over Olm (and,
        if asked, this device's history as an encrypted attachment)."""
        await self._linking.confirm(request, share_history)

    async def link(
        self,
        server: str,
        address: str,
        password: str,
        code: str,
        device_name: str = "",
        timeout: float = 300.0,
    ) -> None:
        """On the new device: log in, then get the identity key from the
        existing device showing ``code`` (it must confirm)."""
        await self._linking.link(server, address, password, code, device_name, timeout)

    # ================================================================ conversations

    async def conversations(self) -> list[tuple[ConversationId, ConversationState]]:
        return await self._conversations.all_states()

    async def state(self, conversation: ConversationId) -> ConversationState:
        return await self._conversations.state(conversation)

    async def start_chat(self, address: str) -> ConversationId:
        """The direct chat with ``address``: the existing one, or a new one.

        An address on another domain is a chat like any other when that
        domain has a taube server with that account (the servers federate);
        else it is reached by e-mail: the chat is a portal that the user's
        e-mail connector serves."""
        other = parse_address(address)
        if await self._by_mail(other):
            return await self.open_portal(ev.Portal(EMAIL, other, (other,), other))
        found = await self._conversations.find_direct(other)
        if found is not None:
            return found
        return await self._create(Kind.DIRECT, [other])

    async def _by_mail(self, user: UserId) -> bool:
        """Reached by e-mail: an address on another domain without a taube
        account there (see ``start_chat``)."""
        return user in await self._portals.by_mail([user])

    async def create_group(self, members: list[str], admins: list[str] = ()) -> ConversationId:  # type: ignore[assignment]
        """A group; members on other domains without a taube account take part
        by e-mail (a portal)."""
        users = [parse_address(m) for m in members if parse_address(m) != self.user]
        mail = await self._portals.by_mail(users)
        local = [u for u in users if u not in mail]
        conversation = await self._create(
            Kind.GROUP, local, frozenset(parse_address(a) for a in admins) & set(local)
        )
        by_mail = [u for u in users if u in mail]
        if by_mail:
            await self._portals.set_peers(conversation, add=by_mail)
        return conversation

    async def _create(
        self, kind: Kind, members: list[UserId], admins: frozenset[UserId] = frozenset()
    ) -> ConversationId:
        conversation = await self._conversations.create(kind, members, admins)
        await self._contacts.send_profile(conversation)
        return conversation

    async def add_member(
        self, conversation: ConversationId, address: str, role: Role = Role.MEMBER
    ) -> None:
        """Add a member (one on another domain without a taube account takes
        part by e-mail)."""
        user = parse_address(address)
        if await self._by_mail(user):
            await self._portals.set_peers(conversation, add=[user])
            return
        await self._conversations.add_member(conversation, user, role)

    async def remove_member(self, conversation: ConversationId, address: str) -> None:
        """Remove a member; the next message uses a new Megolm session, and a
        new state key seals titles and pictures from now on."""
        user = parse_address(address)
        if user not in (await self._conversations.state(conversation)).members:
            await self._portals.set_peers(conversation, remove=[user])
            return
        await self._conversations.remove_member(conversation, user)

    async def rename(self, conversation: ConversationId, title: str) -> None:
        """Set the title: a signed state event, its text sealed from the server."""
        await self._conversations.rename(conversation, title)

    async def set_avatar(self, conversation: ConversationId, path: Path) -> None:
        """Set the conversation's picture (an encrypted attachment, named in a
        signed state event whose content is sealed from the server)."""
        await self._conversations.set_avatar(conversation, path)

    def title(self, conversation: ConversationId) -> str | None:
        """The conversation's title, if it has one this device can read."""
        return self._conversations.title(conversation)

    async def avatar(self, conversation: ConversationId) -> Path | None:
        """The conversation's picture, decrypted in the profile (``None`` until
        this device has it)."""
        return await self._conversations.avatar(conversation)

    async def set_timer(self, conversation: ConversationId, seconds: int) -> None:
        """Disappearing messages: deleted everywhere ``seconds`` after sending (0: off)."""
        await self._conversations.set_timer(conversation, seconds)

    # ---------------------------------------------------------------- portals

    def portal(self, conversation: ConversationId) -> ev.Portal | None:
        """What ``conversation`` reaches on another network, if it is a portal."""
        return self._portals.get(conversation)

    def portals(self) -> dict[ConversationId, ev.Portal]:
        return self._portals.all()

    def find_portal(self, network: str, chat: str) -> ConversationId | None:
        """The conversation of a chat on another network, if there is one."""
        return self._portals.find(network, chat)

    async def open_portal(self, portal: ev.Portal) -> ConversationId:
        """The conversation for a chat on another network (made if new)."""
        return await self._portals.open(portal)

    async def update_portal(self, conversation: ConversationId, portal: ev.Portal) -> None:
        """A connector claims (or changes) a portal it serves."""
        await self._portals.update(conversation, portal)

    # ================================================================ sending

    async def send_text(
        self, conversation: ConversationId, text: str, reply_to: str | None = None
    ) -> MessageId:
        content: dict[str, Any] = {"body": text}
        if reply_to:
            content["reply_to"] = reply_to
        return await self.send(conversation, ev.TEXT, content)

    async def react(self, conversation: ConversationId, target: str, key: str) -> MessageId:
        return await self.send(conversation, ev.REACTION, {"target": target, "key": key})

    async def edit(self, conversation: ConversationId, target: str, text: str) -> MessageId:
        return await self.send(conversation, ev.EDIT, {"target": target, "body": text})

    async def delete(self, conversation: ConversationId, target: str) -> MessageId:
        """Delete for everyone."""
        return await self.send(conversation, ev.DELETE, {"target": target})

    async def send_file(
        self, conversation: ConversationId, path: Path, caption: str = "", kind: str | None = None
    ) -> MessageId:
        """Encrypt and upload ``path``, then send it (``kind``: image, video,
        audio, voice, pdf or file; guessed from the name if not given)."""
        entry = await self.upload(path, kind=kind)
        return await self.send(conversation, ev.TEXT, {"body": caption, "attachments": [entry]})

    async def upload(
        self, path: Path, kind: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Encrypt and upload ``path``: the entry to put in a message's
        ``attachments`` (it carries the key; see ``taube.client.attachments``)."""
        _, api, _ = self._session.need()
        return await attachments.upload(api, path, kind=kind, name=name)

    def attachment_path(self, message: ev.Message, index: int = 0) -> Path:
        """Where a received attachment was saved (decrypted) in the profile."""
        return self._messages.attachment_path(message.content["attachments"][index])

    async def set_profile(self, name: str, avatar: Path | None = None) -> None:
        """Set the display name (and avatar; ``None`` keeps the current one)
        and share them, encrypted, in every conversation; conversations made
        later get them when made. Each conversation gets its own upload of
        the picture: the server deletes a blob once its members have it."""
        await self._contacts.set_profile(name, avatar)

    def contact(self, user: str) -> ev.Profile | None:
        """A contact's display name and avatar, as they last shared them."""
        return self._contacts.contact(user)

    async def typing(self, conversation: ConversationId, active: bool = True) -> None:
        """Tell the conversation's members this user is (or stopped) typing."""
        await self._connection.send_nowait(frames.Typing(conversation=conversation, active=active))

    async def mark_read(self, conversation: ConversationId, ids: list[str]) -> MessageId:
        return await self.send(conversation, ev.RECEIPT, {"read": ids})

    async def send(
        self,
        conversation: ConversationId,
        type_: str,
        content: dict[str, Any],
        msg_id: MessageId | None = None,
    ) -> MessageId:
        """Put a message in the outbox; it is sent as soon as possible
        (``msg_id``: see ``Outbox.send``)."""
        return await self._outbox.send(conversation, type_, content, msg_id)

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until the outbox is empty (everything sent and acknowledged);
        connects first if needed."""
        self._session.need()
        await self.connect()
        await self._outbox.wait_empty(timeout)

    def route(self, serves: Serves, carrier: Carrier) -> None:
        """Deliver the conversations ``serves`` picks through ``carrier``
        instead of the taube server (a connector's transport)."""
        self._outbox.route(serves, carrier)

    def handle_to_device(self, prefix: str, handler: ToDeviceHandler) -> None:
        """Hand to-device payloads whose type starts with ``prefix`` to
        ``handler`` (called from the receive loop: it should not wait long)."""
        self._receiver.to_device_handlers[prefix] = handler

    async def send_to_device(
        self, device: VerifiedDevice, type_: str, content: dict[str, Any]
    ) -> None:
        """One Olm-encrypted to-device message to ``device``."""
        await self._carrier.send_to_device(device, type_, content)

    def is_own_device(self, device: VerifiedDevice) -> bool:
        """``device`` is the user's: certified by the identity key this device
        holds (not merely by whatever key the server lists for the user)."""
        return device.user == self.user and device.identity_key == self.keys.identity.public_key

    async def own_devices(self) -> list[VerifiedDevice]:
        """The user's other devices (looked up afresh)."""
        keys = self.keys
        await keys.refresh([self.user])
        found = await keys.devices_of([self.user])
        return [d for d in found if d.device != self.device and self.is_own_device(d)]

    # ================================================================ receiving

    async def connect(self) -> None:
        """Start the live connection (reconnects by itself until ``disconnect``)."""
        self._session.need()
        if not self._connection.started:
            self._connection.start()
            self._tasks = [
                asyncio.create_task(self._outbox.run()),
                asyncio.create_task(self._messages.run_expiry()),
            ]

    async def disconnect(self) -> None:
        if self._connection.started:
            await self._calls.close()
        await self._connection.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        await self._background.cancel()  # background sends (receipts, SAS replies)
        await self._connection.close()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self._connection.connected.wait()

    async def sync(self, timeout: float = 10.0) -> None:
        """Connect and wait until the backlog is in (``queue.empty``); at once
        if connected with the backlog in."""
        await self.connect()
        async with asyncio.timeout(timeout):
            await self.queue_empty.wait()

    async def events(self, timeout: float | None = None) -> AsyncIterator[ev.Event]:
        """Events as they come; stops after ``timeout`` seconds without one."""
        while True:
            try:
                async with asyncio.timeout(timeout):
                    event = await self._events.get()
            except TimeoutError:
                return
            yield event

    def pending_events(self) -> list[ev.Event]:
        items = []
        while not self._events.empty():
            items.append(self._events.get_nowait())
        return items

    # ================================================================ history

    def expire(self) -> int:
        """Delete disappearing messages whose time ran out (see ``Messages.expire``)."""
        return self._messages.expire()

    def history(
        self, conversation: ConversationId, limit: int = 100, *, notices: bool = False
    ) -> list[ev.Message]:
        """The conversation as the user sees it: oldest first, annotations
        applied; ``notices``: with this device's notices in their places
        (type ``notice``: missing messages, a key change; see
        ``taube.client.notices``), counted in ``limit`` too."""
        if not notices:
            return self._messages.history(conversation, limit)
        shown = self._messages.history(conversation, 1_000_000_000)
        return self._notices.place(conversation, shown)[-limit:]

    def _emit(self, event: ev.Event) -> None:
        """Hand an event to the app, keeping the notice it makes first."""
        self._notices.record(event)
        self._events.put_nowait(event)

    def search(
        self, text: str, limit: int = 50, conversation: ConversationId | None = None
    ) -> list[ev.Message]:
        """Search this device's messages (all conversations, or one): those
        with every word (the last also as a prefix), newest first, as the
        user sees them; deleted and expired messages are never found."""
        return self._messages.search(text, limit, conversation)

    def search_hits(
        self, text: str, limit: int = 50, conversation: ConversationId | None = None
    ) -> list[SearchHit]:
        """As ``search``, but only where each message is (conversation and
        id, to open the chat at it) and a snippet with the words marked."""
        return self._messages.search_hits(text, limit, conversation)

    async def export_archive(self, path: Path, progress: Progress | None = None) -> str:
        """Write everything on this device to one encrypted file (see
        ``taube.client.archive``); returns the code that opens it: show it
        once."""
        if progress is None:
            return await self._archive.export(path)
        return await self._archive.export(path, progress)

    async def import_archive(self, path: Path, code: str, progress: Progress | None = None) -> int:
        """Bring an archive's conversations into this account (a new address
        is fine); returns how many messages came in."""
        if progress is None:
            return await self._archive.import_(path, code)
        return await self._archive.import_(path, code, progress)

    # ================================================================ calls

    async def call(
        self,
        target: ConversationId | str,
        media: Media | None = None,
        *,
        video: bool = False,
        ring_ms: int = 60_000,
    ) -> Call:
        """Ring every device of the other person (``target``: a direct chat, or
        their address) for ``ring_ms`` at most; ``media``: what to send (a
        tone by default). Events follow: ``CallChanged`` (connecting,
        connected, ended)."""
        from taube.client.calls.media import Media  # aiortc is optional

        conversation = await self.start_chat(target) if "@" in target else ConversationId(target)
        media = media or Media.tone(video)
        return await self._calls.place(conversation, media, video=video, ring_ms=ring_ms)

    async def answer_call(self, call: str, media: Media | None = None) -> Call:
        """Answer an ``IncomingCall`` (the caller's other rung devices stop)."""
        from taube.client.calls.media import Media  # aiortc is optional

        ringing = self._calls.get(call)
        return await self._calls.answer(call, media or Media.tone(ringing.video))

    async def reject_call(self, call: str) -> None:
        await self._calls.reject(call)

    async def hang_up(self, call: str) -> None:
        await self._calls.hang_up(call)

    def get_call(self, call: str) -> Call:
        return self._calls.get(call)

    @property
    def calls(self) -> Calls:
        return self._calls

    async def turn_credentials(self) -> http.TurnCredentials:
        """Time-limited TURN credentials from the server (for WebRTC's iceServers)."""
        return await self._calls.turn()

    # ================================================================ verification

    async def safety_number(self, address: str) -> str:
        """The safety number with ``address`` (compare it in person or by a call)."""
        return await self._verification.safety_number(address)

    async def verify_start(self, address: str) -> str:
        """Ask ``address``'s devices to verify by emoji; returns the transaction.
        Events follow: ``VerificationEmoji``, then ``VerificationDone``."""
        return await self._verification.start(address)

    async def verify_accept(self, transaction: str) -> None:
        """Answer a ``VerificationRequest``: send this device's SAS key."""
        await self._verification.accept(transaction)

    async def verify_confirm(self, transaction: str) -> None:
        """The user saw the same emoji on both devices."""
        await self._verification.confirm(transaction)

    async def verify_cancel(self, transaction: str, reason: str = "cancelled") -> None:
        await self._verification.cancel(transaction, reason)

    async def verify(self, address: str) -> None:
        """Mark ``address``'s current identity key as verified (after comparing)."""
        await self._verification.verify(address)

    # ================================================================ invites

    async def create_invite(self, name: str = "") -> InviteLink:
        """An invite link (``.url``) for one person: whoever opens it gets a
        chat with this user, both sides verified (``taube.client.invites``).
        ``name``: the display name the link shows the newcomer."""
        return await self._invites.create(name)

    async def join_invite(self, link: str | InviteLink) -> ConversationId:
        """Use an invite link: check the inviter's key against it, use it up
        and start the verified chat. Raises ``InviteError`` (forged, used,
        expired, revoked) without changing anything."""
        return await self._invites.join(_invite_link(link))

    async def revoke_invite(self, link: str | InviteLink) -> None:
        await self._invites.revoke(_invite_link(link))

    async def request_history(self, timeout: float | None = None) -> bool:
        """Ask the user's other devices for their history (after a login with
        the recovery code); with ``timeout``, wait that long for one to
        arrive (the client must be connected) and say whether it did. Only
        devices certified by this device's identity key are asked and
        believed."""
        if not await self._own_history.request():
            return False
        if timeout is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._own_history.received.wait()
        except TimeoutError:
            return False
        return True

    # ================================================================ people

    def _need_api(self) -> Api:
        api = self.api
        if api is None:
            raise ClientError("log in first")
        return api

    async def presence(self, address: str) -> people.Presence:
        """Online / last seen of ``address``, as far as their setting lets us see."""
        return await people.presence(self._need_api(), address)

    async def privacy(self) -> people.Privacy:
        """Who sees this account's presence; whether it can be found by name."""
        return await people.privacy(self._need_api())

    async def set_privacy(
        self,
        *,
        presence: people.Visibility | None = None,
        findable: bool | None = None,
        name: str | None = None,
    ) -> people.Privacy:
        return await people.set_privacy(
            self._need_api(), presence=presence, findable=findable, name=name
        )

    async def search_directory(self, query: str) -> list[people.Person]:
        """People on the server who chose to be found, by name (3 characters at least)."""
        return await people.search_directory(self._need_api(), query)


def _invite_link(link: str | InviteLink) -> InviteLink:
    return link if isinstance(link, InviteLink) else InviteLink.parse(link)


__all__ = ["Client", "VerifiedDevice"]
