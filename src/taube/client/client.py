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
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from taube.client import attachments, linking, sas, statekey
from taube.client import events as ev
from taube.client.conversations import (
    ChainError,
    check_signature,
    decode_events,
    encode_events,
    new_chain,
    sign,
    verify_chain,
)
from taube.client.errors import (
    ClientError,
    NotAMember,
    NotLoggedIn,
    SendingBlocked,
    ServerError,
    Unavailable,
)
from taube.client.keys import Keys
from taube.client.profile import Profile
from taube.client.transport import AiohttpTransport, Api
from taube.crypto import (
    TYPE_ROOM_KEY,
    BadPayload,
    CryptoError,
    DecryptedMessage,
    DecryptionFailed,
    DeviceAccount,
    IdentityBackup,
    IdentityKeyPair,
    MegolmCiphertext,
    MessagePayload,
    OlmMachine,
    OutboundGroup,
    ReplayedMessage,
    SasVerification,
    UnknownSession,
    VerifiedDevice,
    accept_room_key,
    format_safety_number,
    new_recovery_code,
    safety_number,
    share_room_key,
    unwrap_identity_key,
    verify_device,
    verify_identity_key,
    wrap_identity_key,
)
from taube.proto import frames, http
from taube.proto.codec import decode_server_frame, encode
from taube.proto.errors import ErrorCode
from taube.proto.ids import (
    ConversationId,
    DeviceId,
    MessageId,
    UserId,
    new_conversation_id,
    new_message_id,
    parse_address,
)
from taube.proto.signing import b64decode, b64encode
from taube.proto.state import (
    Avatar,
    Content,
    ConversationState,
    Kind,
    Member,
    Role,
    StateEvent,
    Timer,
    Title,
)
from taube.proto.version import PROTOCOL_VERSION

log = logging.getLogger(__name__)

SEND_TIMEOUT = 10.0


#: delivery receipts go out in conversations up to this size (beyond, each
#: message would cost a receipt from every member)
DELIVERY_RECEIPTS_UP_TO = 20
#: arrivals within this many seconds share one receipt
DELIVERY_RECEIPT_DELAY = 0.1


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
        self.delivery_receipts = delivery_receipts
        #: conversation → ids of arrived messages not yet confirmed to their senders
        self._delivered: dict[ConversationId, list[MessageId]] = {}
        self._delivered_task: asyncio.Task[None] | None = None
        self.passphrase = passphrase
        self.clock = clock
        self.profile: Profile | None = None
        self.transport: AiohttpTransport | None = None
        self.api: Api | None = None
        self._keys: Keys | None = None
        self.user = UserId("")
        self.device = DeviceId("")
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._socket_task: asyncio.Task[None] | None = None
        self._outbox_task: asyncio.Task[None] | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._idle = asyncio.Event()
        self._outbox_wake = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._states: dict[ConversationId, tuple[list[StateEvent], ConversationState]] = {}
        self._closing = False
        self.queue_empty = asyncio.Event()
        self._pending_link: linking.PendingLink | None = None
        self._granted_history: Any = None
        self._sas: dict[str, sas.Flow] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._link_requests: asyncio.Queue[linking.LinkRequest] = asyncio.Queue()

    # ================================================================ lifecycle

    async def __aenter__(self) -> Client:
        self.profile = await asyncio.to_thread(Profile, self.profile_dir, self.passphrase)
        server = self.profile.get_text("server")
        if server is not None:
            self._open_api(server)
            self.user = UserId(self.profile.get_text("user") or "")
            self.device = DeviceId(self.profile.get_text("device") or "")
            assert self.api is not None
            self.api.token = (self.profile.get_secret("token") or b"").decode()
            self._keys = Keys.load(self.profile, self.api, self.user, self.device)
            self._keys.on_change = self._emit_key_changes
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        if self.transport is not None:
            await self.transport.close()
        if self.profile is not None:
            self.profile.close()

    def _open_api(self, server: str) -> None:
        self.transport = AiohttpTransport(server)
        self.api = Api(self.transport)

    @property
    def keys(self) -> Keys:
        if self._keys is None:
            raise NotLoggedIn("register or log in first")
        return self._keys

    @property
    def logged_in(self) -> bool:
        return self._keys is not None

    def _need(self) -> tuple[Profile, Api, Keys]:
        if self.profile is None or self.api is None or self._keys is None:
            raise NotLoggedIn("register or log in first")
        return self.profile, self.api, self._keys

    # ================================================================ account

    async def register(
        self, server: str, address: str, password: str, device_name: str = ""
    ) -> str:
        """Create the account and this device. Returns the recovery code:
        show it to the user once; it is the only way back without a device."""
        user = parse_address(address)
        identity = IdentityKeyPair.generate()
        session = await self._new_session(server, "/accounts", user, password, device_name)
        keys = self._start(server, session, identity)
        await keys.publish()
        code = new_recovery_code()
        backup = await asyncio.to_thread(wrap_identity_key, identity, code, user)
        assert self.api is not None
        await self.api.call("PUT", "/keys/backup", http.KeyBackup(sealed=backup.to_bytes()))
        return str(code)

    async def login(
        self, server: str, address: str, password: str, recovery_code: str, device_name: str = ""
    ) -> None:
        """Add this device to an account, opening the identity key backup with
        the recovery code."""
        user = parse_address(address)
        session = await self._new_session(server, "/sessions", user, password, device_name)
        assert self.api is not None
        self.api.token = session.token
        backup = await self.api.get("/keys/backup", http.KeyBackup)
        identity = await asyncio.to_thread(
            unwrap_identity_key,
            IdentityBackup.from_bytes(backup.sealed),
            recovery_code,
            expected_user=user,
        )
        keys = self._start(server, session, identity)
        await keys.publish()

    async def _new_session(
        self, server: str, path: str, user: UserId, password: str, device_name: str
    ) -> http.Session:
        if self.logged_in:
            raise ClientError("this profile already has an account")
        self._open_api(server)
        assert self.api is not None
        body = http.Credentials(address=user, password=password, device_name=device_name)
        return await self.api.post(path, body, http.Session)

    def _start(
        self,
        server: str,
        session: http.Session,
        identity: IdentityKeyPair,
        olm: OlmMachine | None = None,
    ) -> Keys:
        assert self.profile is not None
        assert self.api is not None
        self.user, self.device = UserId(session.user), DeviceId(session.device)
        self.api.token = session.token
        self.profile.put_text("server", server)
        self.profile.put_text("user", self.user)
        self.profile.put_text("device", self.device)
        self.profile.put_secret("token", session.token.encode())
        self._keys = Keys.create(self.profile, self.api, self.user, self.device, identity, olm)
        self._keys.on_change = self._emit_key_changes
        return self._keys

    # ---------------------------------------------------------------- linking

    def link_start(self) -> str:
        """On an existing device: a code to type (or scan) on the new device."""
        keys = self.keys
        code, secret = linking.make_code(keys.identity.public_key)
        self._pending_link = linking.PendingLink(secret, time.monotonic() + linking.LINK_TTL_S)
        return code

    async def link_wait(self, timeout: float = linking.LINK_TTL_S) -> linking.LinkRequest:
        """On the existing device: the next device asking to link with the code
        (the live connection must be running: ``connect()``)."""
        async with asyncio.timeout(timeout):
            return await self._link_requests.get()

    async def link_confirm(self, request: linking.LinkRequest, share_history: bool = False) -> None:
        """The user confirmed ``request``: send the identity key over Olm (and,
        if asked, this device's history as an encrypted attachment)."""
        profile, api, keys = self._need()
        pending = self._pending_link
        if pending is None or pending.used:
            raise linking.LinkError("no link code is pending")
        content: dict[str, Any] = {
            "identity": b64encode(keys.identity.private_bytes()),
            "secret": pending.secret.hex(),
        }
        if share_history:
            content["history"] = await self._export_history(profile, api)
        body = keys.olm.encrypt_to_device(request.peer, linking.TYPE_GRANT, content)
        ref = new_message_id()
        await self._request(
            frames.ToDeviceSend(
                id=ref,
                messages=[frames.ToDeviceMessage(user=self.user, device=request.device, body=body)],
            ),
            ref,
        )
        pending.used = True
        self._pending_link = None
        keys.save()

    async def _export_history(self, profile: Profile, api: Api) -> dict[str, Any]:
        """This device's conversations, messages and contacts, encrypted and
        uploaded like an attachment (the server keeps no old ciphertext)."""
        dump = {
            "conversations": [
                [c, k, bytes(e).decode(), u]
                for c, k, e, u in profile.execute(
                    "SELECT conversation, kind, events, updated_ms FROM conversations"
                )
            ],
            "messages": [
                [*row[:7], bytes(row[7]).decode(), *row[8:]]
                for row in profile.execute(
                    "SELECT conversation, id, seq, sender, sender_device, ts, type, content,"
                    " status, expires_ms FROM messages WHERE status != 'pending'"
                )
            ],
            "profiles": [
                list(r) for r in profile.execute("SELECT user_id, name, avatar, ts FROM profiles")
            ],
        }
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "history.json"
            await asyncio.to_thread(path.write_bytes, msgspec.json.encode(dump))
            return await attachments.upload(api, path, kind="file", name="history.json")

    async def _import_history(self, entry: dict[str, Any]) -> None:
        profile, api, _ = self._need()
        with tempfile.TemporaryDirectory() as directory:
            path = await attachments.download(api, entry, Path(directory))
            dump = msgspec.json.decode(await asyncio.to_thread(path.read_bytes))
        with profile.transaction():
            for conversation, kind, events, updated in dump.get("conversations", []):
                profile.execute(
                    "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?)",
                    conversation,
                    kind,
                    events.encode(),
                    updated,
                )
            for row in dump.get("messages", []):
                content = msgspec.json.decode(row[7].encode())
                self._store(
                    row[0],
                    row[1],
                    row[2],
                    UserId(row[3]),
                    DeviceId(row[4]),
                    row[5],
                    row[6],
                    content,
                    row[8],
                    row[9],
                )
            for user, name, avatar, ts in dump.get("profiles", []):
                profile.execute(
                    "INSERT OR IGNORE INTO profiles VALUES (?, ?, ?, ?)", user, name, avatar, ts
                )

    def _remember_state_key(self, conversation: str, content: dict[str, Any]) -> None:
        try:
            key_id, key = str(content["id"]), bytes.fromhex(str(content["key"]))
        except (KeyError, ValueError):
            return
        if len(key) == 32 and len(key_id) == 2 * statekey.KEY_ID_BYTES:
            self._add_state_key(conversation, key_id, key)

    def _link_request(self, frame: frames.ToDevice) -> None:
        """A to-device message from an uncertified device of ours: a link request?"""
        keys = self.keys
        pending = self._pending_link
        envelope = linking.decode_envelope(frame.body)
        if pending is None or envelope is None or UserId(frame.sender) != self.user:
            return
        peer = linking.provisional_device(
            self.user, envelope, DeviceId(frame.sender_device), keys.identity.public_key
        )
        try:
            payload = keys.olm.decrypt_to_device(peer, envelope.olm.to_body())
            if payload.type != linking.TYPE_REQUEST:
                raise linking.LinkError("not a link request")
            pending.check(str(payload.content.get("secret", "")))
        except (CryptoError, linking.LinkError, ValueError) as exc:
            log.warning("link request refused: %s", exc)
            return
        keys.save()
        name = str(payload.content.get("name", ""))[:100]
        self._link_requests.put_nowait(linking.LinkRequest(peer.device, name, peer))

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
        secret, expected = linking.parse_code(code)
        user = parse_address(address)
        session = await self._new_session(server, "/sessions", user, password, device_name)
        assert self.api is not None
        assert self.transport is not None
        api = self.api
        api.token = session.token
        device = DeviceId(session.device)
        olm = OlmMachine(DeviceAccount.create(), user, device)
        found = await api.post("/keys/query", http.QueryKeys(users=[user]), http.KeysResponse)
        entry = next((u for u in found.users if u.user == user), None)
        if entry is None or entry.identity is None:
            raise linking.LinkError("the account has no identity key")
        identity_key = verify_identity_key(entry.identity)
        if not hmac.compare_digest(linking.fingerprint(identity_key), expected):
            raise linking.LinkError("the code does not match this account's identity key")
        peers = []
        for keys_of in entry.devices:
            with contextlib.suppress(CryptoError):
                peers.append(verify_device(identity_key, keys_of))
        claimed = await api.post(
            "/keys/claim",
            http.ClaimKeys(devices=[http.DeviceRef(user=p.user, device=p.device) for p in peers]),
            http.ClaimResponse,
        )
        by_device = {k.device: k for k in claimed.keys}
        messages = []
        for peer in peers:
            key = by_device.get(peer.device)
            if key is None:
                continue
            olm.create_outbound_session(peer, key)
            messages.append(
                frames.ToDeviceMessage(
                    user=user,
                    device=peer.device,
                    body=(linking.request_body(olm, peer, secret, device_name)),
                )
            )
        if not messages:
            raise linking.LinkError("no device of this account can be reached")
        identity = await self._await_grant(olm, peers, messages, secret, timeout)
        if identity.public_key != identity_key:
            raise linking.LinkError("the granted identity key is not the account's")
        keys = self._start(server, session, identity, olm)
        await keys.publish()
        history = self._granted_history
        self._granted_history = None
        if isinstance(history, dict):
            await self._import_history(history)

    async def _await_grant(
        self,
        olm: OlmMachine,
        peers: list[VerifiedDevice],
        messages: list[frames.ToDeviceMessage],
        secret: bytes,
        timeout: float,
    ) -> IdentityKeyPair:
        assert self.transport is not None
        assert self.api is not None
        url = self.transport.base_url.replace("http", "ws", 1) + "/api/v1/ws"
        by_device = {p.device: p for p in peers}
        async with asyncio.timeout(timeout), self.transport.session.ws_connect(url) as ws:
            await ws.send_bytes(
                encode(frames.Hello(protocol=PROTOCOL_VERSION, token=self.api.token))
            )
            await ws.send_bytes(encode(frames.ToDeviceSend(id=new_message_id(), messages=messages)))
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                frame = decode_server_frame(msg.data)
                if not isinstance(frame, frames.ToDevice):
                    continue
                await ws.send_bytes(encode(frames.ToDeviceAck(seq=frame.seq)))
                peer = by_device.get(DeviceId(frame.sender_device))
                if peer is None or UserId(frame.sender) != peer.user:
                    continue
                try:
                    payload = olm.decrypt_to_device(peer, frame.body)
                except CryptoError:
                    continue
                granted = str(payload.content.get("secret", ""))
                if payload.type == linking.TYPE_GRANT and hmac.compare_digest(
                    granted, secret.hex()
                ):
                    self._granted_history = payload.content.get("history")
                    return IdentityKeyPair.from_private_bytes(
                        b64decode(str(payload.content["identity"]))
                    )
        raise linking.LinkError("the existing device did not answer")

    async def logout(self) -> None:
        _, api, _ = self._need()
        await self.disconnect()
        await api.call("DELETE", "/sessions/current")

    async def devices(self) -> list[http.DeviceInfo]:
        _, api, _ = self._need()
        return (await api.get("/devices", http.DeviceList)).devices

    async def remove_device(self, device: str, password: str) -> None:
        _, api, _ = self._need()
        await api.call("DELETE", f"/devices/{device}", http.RemoveDevice(password=password))

    # ================================================================ conversations

    async def conversations(self) -> list[tuple[ConversationId, ConversationState]]:
        profile, _, _ = self._need()
        ids = [
            ConversationId(r[0])
            for r in profile.execute(
                "SELECT conversation FROM conversations ORDER BY updated_ms DESC"
            )
        ]
        return [(c, (await self.state(c))) for c in ids]

    async def state(self, conversation: ConversationId) -> ConversationState:
        return (await self._chain(conversation))[1]

    async def _chain(
        self, conversation: ConversationId, *, refresh: bool = False
    ) -> tuple[list[StateEvent], ConversationState]:
        profile, api, keys = self._need()
        cached = self._states.get(conversation)
        if cached is not None and not refresh:
            return cached
        row = profile.execute(
            "SELECT events FROM conversations WHERE conversation = ?", conversation
        ).fetchone()
        if row is not None and not refresh:
            events = decode_events(bytes(row[0]))
        else:
            try:
                chain = await api.get(f"/conversations/{conversation}/state", http.StateChain)
            except ServerError as exc:
                if exc.code == ErrorCode.NOT_FOUND:
                    raise NotAMember(f"not a member of {conversation}") from exc
                raise
            events = list(chain.events)
        state = await verify_chain(keys, events)
        self._remember_chain(conversation, events, state)
        return events, state

    def _remember_chain(
        self, conversation: ConversationId, events: list[StateEvent], state: ConversationState
    ) -> None:
        assert self.profile is not None
        self._states[conversation] = (events, state)
        self.profile.execute(
            "INSERT INTO conversations (conversation, kind, events, updated_ms)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (conversation) DO UPDATE SET"
            " events = excluded.events, updated_ms = excluded.updated_ms",
            conversation,
            state.kind.value,
            encode_events(events),
            self.clock(),
        )

    async def start_chat(self, address: str) -> ConversationId:
        """The direct chat with ``address``: the existing one, or a new one."""
        other = parse_address(address)
        for conversation, state in await self.conversations():
            if state.kind is Kind.DIRECT and set(state.members) == {self.user, other}:
                return conversation
        return await self._create(Kind.DIRECT, [other])

    async def create_group(self, members: list[str], admins: list[str] = ()) -> ConversationId:  # type: ignore[assignment]
        users = [parse_address(m) for m in members if parse_address(m) != self.user]
        return await self._create(Kind.GROUP, users, frozenset(parse_address(a) for a in admins))

    async def _create(
        self, kind: Kind, members: list[UserId], admins: frozenset[UserId] = frozenset()
    ) -> ConversationId:
        _, api, keys = self._need()
        await keys.refresh(members)  # pin their identity keys now
        conversation = new_conversation_id()
        events = new_chain(keys, conversation, kind, members, self.clock(), admins)
        await api.post(
            "/conversations", http.CreateConversation(events=events), http.ConversationInfo
        )
        state = await verify_chain(keys, events)
        self._remember_chain(conversation, events, state)
        await self._send_profile(conversation)
        return conversation

    async def _append(self, conversation: ConversationId, content: Content) -> None:
        _, api, keys = self._need()
        for _attempt in range(3):
            _events, state = await self._chain(conversation, refresh=True)
            event = sign(keys, conversation, state.depth + 1, state.head, content, self.clock())
            try:
                await api.post(f"/conversations/{conversation}/state", event, http.Appended)
            except ServerError as exc:
                if exc.code == ErrorCode.CONFLICT:
                    continue  # someone else changed it first: rebuild on the new head
                raise
            await self._chain(conversation, refresh=True)
            return
        raise ClientError("the conversation keeps changing; try again")

    async def add_member(
        self, conversation: ConversationId, address: str, role: Role = Role.MEMBER
    ) -> None:
        user = parse_address(address)
        await self.keys.refresh([user])
        await self._append(conversation, Member(target=user, membership="join", role=role))
        await self._send_state_key(conversation)  # so the newcomer can read the title
        picture = await self.avatar(conversation)
        if picture is not None:  # and see the picture (its blob may be gone by now)
            await self.set_avatar(conversation, picture)

    async def remove_member(self, conversation: ConversationId, address: str) -> None:
        """Remove a member; the next message uses a new Megolm session, and a
        new state key seals titles and pictures from now on."""
        await self._append(conversation, Member(target=parse_address(address), membership="leave"))
        profile, _, _ = self._need()
        if profile.get_text(f"statekey:{conversation}") is not None:
            key_id, key = statekey.new_key()
            self._add_state_key(conversation, key_id, key)
            await self._send_state_key(conversation)

    async def rename(self, conversation: ConversationId, title: str) -> None:
        """Set the title: a signed state event, its text sealed from the server."""
        sealed = await self._seal(conversation, "title", title.encode())
        await self._append(conversation, Title(sealed=sealed))

    async def set_avatar(self, conversation: ConversationId, path: Path) -> None:
        """Set the conversation's picture (an encrypted attachment, named in a
        signed state event whose content is sealed from the server)."""
        _, api, _ = self._need()
        entry = await attachments.upload(api, path, kind="image")
        # the file travels in a message (members download it as any attachment);
        # the signed state event names it
        await self.send(conversation, ev.AVATAR, {"attachments": [entry]})
        sealed = await self._seal(conversation, "avatar", msgspec.json.encode(entry))
        await self._append(conversation, Avatar(sealed=sealed))

    def title(self, conversation: ConversationId) -> str | None:
        """The conversation's title, if it has one this device can read."""
        text = self._unsealed(conversation, Title, "title")
        return None if text is None else text.decode("utf-8", "replace")

    async def avatar(self, conversation: ConversationId) -> Path | None:
        """The conversation's picture, decrypted in the profile (``None`` until
        this device has it)."""
        _, api, _ = self._need()
        data = self._unsealed(conversation, Avatar, "avatar")
        if data is None:
            return None
        entry = msgspec.json.decode(data)
        try:
            return await attachments.download(api, entry, self.profile_dir / "attachments")
        except (ServerError, CryptoError):
            return None  # its message has not arrived here yet

    def _unsealed(
        self, conversation: ConversationId, kind: type[Title] | type[Avatar], field: str
    ) -> bytes | None:
        cached = self._states.get(conversation)
        events = cached[0] if cached is not None else []
        for event in reversed(events):
            if isinstance(event.content, kind):
                sealed = event.content.sealed
                key = self._state_keys(conversation).get(statekey.key_id_of(sealed))
                return None if key is None else statekey.unseal(key, conversation, field, sealed)
        return None

    def _state_keys(self, conversation: str) -> dict[str, bytes]:
        profile, _, _ = self._need()
        raw = profile.get_secret(f"statekeys:{conversation}")
        if raw is None:
            return {}
        return {k: bytes.fromhex(v) for k, v in msgspec.json.decode(raw).items()}

    def _add_state_key(self, conversation: str, key_id: str, key: bytes) -> None:
        profile, _, _ = self._need()
        keys = {k: v.hex() for k, v in self._state_keys(conversation).items()}
        keys[key_id] = key.hex()
        profile.put_secret(f"statekeys:{conversation}", msgspec.json.encode(keys))
        profile.put_text(f"statekey:{conversation}", key_id)

    async def _seal(self, conversation: ConversationId, field: str, data: bytes) -> bytes:
        profile, _, _ = self._need()
        key_id = profile.get_text(f"statekey:{conversation}")
        key = self._state_keys(conversation).get(key_id or "")
        if key_id is None or key is None:
            key_id, key = statekey.new_key()
            self._add_state_key(conversation, key_id, key)
            await self._send_state_key(conversation)
        return statekey.seal(key_id, key, conversation, field, data)

    async def _send_state_key(self, conversation: ConversationId) -> None:
        """Send the current state key to the members (end-to-end encrypted)."""
        profile, _, _ = self._need()
        key_id = profile.get_text(f"statekey:{conversation}")
        key = self._state_keys(conversation).get(key_id or "")
        if key_id is not None and key is not None:
            await self.send(conversation, statekey.TYPE, {"id": key_id, "key": key.hex()})

    async def set_timer(self, conversation: ConversationId, seconds: int) -> None:
        """Disappearing messages: deleted everywhere ``seconds`` after sending (0: off)."""
        await self._append(conversation, Timer(seconds=seconds))

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
        _, api, _ = self._need()
        entry = await attachments.upload(api, path, kind=kind)
        return await self.send(conversation, ev.TEXT, {"body": caption, "attachments": [entry]})

    def attachment_path(self, message: ev.Message, index: int = 0) -> Path:
        """Where a received attachment was saved (decrypted) in the profile."""
        entry = message.content["attachments"][index]
        return (
            self.profile_dir
            / "attachments"
            / (f"{entry['blob']}-{Path(str(entry.get('name', 'file'))).name}")
        )

    async def set_profile(self, name: str, avatar: Path | None = None) -> None:
        """Set the display name (and avatar; ``None`` keeps the current one)
        and share them, encrypted, in every conversation; conversations made
        later get them when made. Each conversation gets its own upload of
        the picture: the server deletes a blob once its members have it."""
        profile, _, _ = self._need()
        previous = self._own_profile() or {}
        content: dict[str, Any] = {"name": name}
        if avatar is not None:
            # kept here: every conversation gets a fresh upload (the server
            # deletes a blob once the members of the first one have it)
            data = await asyncio.to_thread(avatar.read_bytes)
            await asyncio.to_thread(self._own_avatar.write_bytes, data)
            content["avatar_name"] = avatar.name
        elif "avatar_name" in previous:  # a new name keeps the picture
            content["avatar_name"] = previous["avatar_name"]
        profile.put_raw("own_profile", msgspec.json.encode(content))
        for conversation, _state in await self.conversations():
            await self._send_profile(conversation)

    @property
    def _own_avatar(self) -> Path:
        return self.profile_dir / "own-avatar"

    def _own_profile(self) -> dict[str, Any] | None:
        assert self.profile is not None
        own = self.profile.get_raw("own_profile")
        return None if own is None else dict(msgspec.json.decode(own))

    async def _send_profile(self, conversation: ConversationId) -> None:
        _, api, _ = self._need()
        own = self._own_profile()
        if own is None:
            return
        content: dict[str, Any] = {"name": own.get("name", "")}
        if "avatar_name" in own and self._own_avatar.exists():
            with tempfile.TemporaryDirectory() as directory:
                path = Path(directory) / str(own["avatar_name"])
                await asyncio.to_thread(shutil.copyfile, self._own_avatar, path)
                entry = await attachments.upload(api, path, kind="image")
            content["avatar"] = entry
            content["attachments"] = [entry]
        await self.send(conversation, ev.PROFILE, content)

    def contact(self, user: str) -> ev.Profile | None:
        """A contact's display name and avatar, as they last shared them."""
        profile, _, _ = self._need()
        row = profile.execute(
            "SELECT name, avatar FROM profiles WHERE user_id = ?", parse_address(user)
        ).fetchone()
        return None if row is None else ev.Profile(parse_address(user), str(row[0]), row[1])

    def _remember_profile(self, sender: UserId, ts: int, content: dict[str, Any]) -> None:
        assert self.profile is not None
        avatar = None
        if isinstance(content.get("avatar"), dict):
            entry = content["avatar"]
            avatar = str(
                self.profile_dir
                / "attachments"
                / (f"{entry['blob']}-{Path(str(entry.get('name', 'file'))).name}")
            )
        self.profile.execute(
            "INSERT INTO profiles (user_id, name, avatar, ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,"
            " avatar = excluded.avatar, ts = excluded.ts WHERE excluded.ts > profiles.ts",
            sender,
            str(content.get("name", ""))[:100],
            avatar,
            ts,
        )

    async def typing(self, conversation: ConversationId, active: bool = True) -> None:
        """Tell the conversation's members this user is (or stopped) typing."""
        ws = self._ws
        if ws is not None:
            await ws.send_bytes(encode(frames.Typing(conversation=conversation, active=active)))

    async def mark_read(self, conversation: ConversationId, ids: list[str]) -> MessageId:
        return await self.send(conversation, ev.RECEIPT, {"read": ids})

    async def send(
        self, conversation: ConversationId, type_: str, content: dict[str, Any]
    ) -> MessageId:
        """Put a message in the outbox; it is sent as soon as possible."""
        profile, _, keys = self._need()
        _, state = await self._chain(conversation)
        if self.user not in state.members:
            raise NotAMember(f"not a member of {conversation}")
        blocked = keys.blocked(list(state.members))
        if blocked:
            raise SendingBlocked(blocked)
        msg_id = new_message_id()
        payload = MessagePayload(
            sender=self.user,
            sender_device=self.device,
            conversation=conversation,
            message_id=msg_id,
            type=type_,
            content=content,
        )
        ts = self.clock()
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
            self._store(
                conversation,
                msg_id,
                None,
                self.user,
                self.device,
                ts,
                type_,
                content,
                "pending",
                expires,
            )
        self._outbox_wake.set()
        return msg_id

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until the outbox is empty (everything sent and acknowledged);
        connects first if needed."""
        profile, _, _ = self._need()
        await self.connect()
        async with asyncio.timeout(timeout):
            while profile.execute("SELECT 1 FROM outbox LIMIT 1").fetchone() is not None:
                self._outbox_wake.set()
                await asyncio.sleep(0.02)

    async def _outbox_loop(self) -> None:
        profile, _, _ = self._need()
        while not self._closing:
            await self._outbox_wake.wait()
            self._outbox_wake.clear()
            await self._connected.wait()
            rows = profile.execute(
                "SELECT id, conversation, payload, expire_ms FROM outbox ORDER BY rowid"
            ).fetchall()
            for msg_id, conversation, payload, expire_ms in rows:
                try:
                    await self._send_one(
                        MessageId(msg_id), ConversationId(conversation), bytes(payload), expire_ms
                    )
                except (Unavailable, ConnectionError, TimeoutError) as exc:
                    log.info("send deferred: %s", exc)
                    await asyncio.sleep(0.5 + random.random())  # noqa: S311 - jitter
                    self._outbox_wake.set()
                    break
                except SendingBlocked as exc:
                    log.warning("send waits for re-verification: %s", exc)
                except (ServerError, ClientError, CryptoError) as exc:
                    log.warning("send failed for good: %s", exc)
                    self._fail(msg_id)
                except Exception:
                    log.exception("send failed unexpectedly; the message stays in the outbox")
                    await asyncio.sleep(1.0)
                    self._outbox_wake.set()
                    break

    def _fail(self, msg_id: str) -> None:
        """A send the server refused for good: it leaves the outbox, marked failed."""
        profile, _, _ = self._need()
        with profile.transaction():
            profile.execute("DELETE FROM outbox WHERE id = ?", msg_id)
            profile.execute("DELETE FROM kv WHERE key = ?", f"outbody:{msg_id}")
            profile.execute("UPDATE messages SET status = 'failed' WHERE id = ?", msg_id)

    async def _send_one(
        self, msg_id: MessageId, conversation: ConversationId, payload: bytes, expire_ms: int | None
    ) -> None:
        profile, _, keys = self._need()
        body = profile.get_raw(f"outbody:{msg_id}")
        if body is None:  # encrypt once: a retry sends the same ciphertext
            group = await self._share_keys(conversation)
            body = group.encrypt_payload(
                msgspec.json.decode(payload, type=MessagePayload), now_ms=self.clock()
            )
            with profile.transaction():
                profile.put_raw(f"outbody:{msg_id}", body)
                keys.save()
        blobs = [
            a["blob"]
            for a in attachments.entries_of(
                msgspec.json.decode(payload, type=MessagePayload).content.get("attachments", [])
            )
        ]
        sent = await self._request(
            frames.Send(
                conversation=conversation, id=msg_id, body=body, expire_ms=expire_ms, blobs=blobs
            ),
            msg_id,
        )
        assert isinstance(sent, frames.Sent)
        with profile.transaction():
            profile.execute("DELETE FROM outbox WHERE id = ?", msg_id)
            profile.execute("DELETE FROM kv WHERE key = ?", f"outbody:{msg_id}")
            profile.execute(
                "UPDATE messages SET status = 'sent', seq = ? WHERE conversation = ? AND id = ?",
                sent.seq,
                conversation,
                msg_id,
            )

    async def _share_keys(self, conversation: ConversationId) -> OutboundGroup:
        """The outbound session for ``conversation``, its key shared with every
        verified device of every member (rotated when someone left)."""
        _, api, keys = self._need()
        _, state = await self._chain(conversation)
        members = sorted(state.members)
        devices = [
            d
            for d in await keys.devices_of(members)
            if (d.user, d.device) != (self.user, self.device)
        ]
        blocked = keys.blocked(members)  # the lookup may just have found a key change
        if blocked:
            raise SendingBlocked(blocked)
        now = self.clock()
        group = keys.outbound.get(conversation)
        # with disappearing messages no session outlives the timer, so its keys
        # can go with its messages (``expire``)
        timer_ms = state.timer_seconds * 1000
        if (
            group is None
            or group.needs_rotation(now, members_changed=group.has_departed(devices))
            or (timer_ms and now - group.created_ms >= timer_ms)
        ):
            group = OutboundGroup.create(conversation, now)
            keys.outbound[conversation] = group
        messages, without = share_room_key(keys.olm, group, devices)
        if without:
            claimed = await api.post(
                "/keys/claim",
                http.ClaimKeys(
                    devices=[http.DeviceRef(user=d.user, device=d.device) for d in without]
                ),
                http.ClaimResponse,
            )
            by_device = {(k.user, k.device): k for k in claimed.keys}
            for device in without:
                key = by_device.get((device.user, device.device))
                if key is None:
                    continue
                try:
                    keys.olm.create_outbound_session(device, key)
                except CryptoError as exc:
                    log.warning("no session with a device: %s", exc)
            more, _ = share_room_key(keys.olm, group, without)
            messages += more
        if messages:
            shared = {(m.user, m.device) for m in messages}
            ref = new_message_id()
            await self._request(frames.ToDeviceSend(id=ref, messages=messages), ref)
            group.mark_shared([d for d in devices if (d.user, d.device) in shared])
        keys.save()
        return group

    async def _request(
        self, frame: frames.Send | frames.ToDeviceSend, ref: str
    ) -> frames.ServerFrame:
        """Send a frame and wait for its acknowledgement (or error); waits a
        while for the connection if it is being made."""
        if self._ws is None and self._socket_task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self._connected.wait()
        ws = self._ws
        if ws is None:
            raise Unavailable(ErrorCode.UNAVAILABLE, "not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ref] = future
        try:
            await ws.send_bytes(encode(frame))
            async with asyncio.timeout(SEND_TIMEOUT):
                reply = await future
        finally:
            self._waiting.pop(ref, None)
        if isinstance(reply, frames.Error):
            kind = (
                Unavailable
                if reply.code in (ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL)
                else ServerError
            )
            raise kind(reply.code, reply.message)
        return reply  # type: ignore[no-any-return]

    # ================================================================ receiving

    async def connect(self) -> None:
        """Start the live connection (reconnects by itself until ``disconnect``)."""
        self._need()
        if self._socket_task is None:
            self._closing = False
            self._socket_task = asyncio.create_task(self._socket_loop())
            self._outbox_task = asyncio.create_task(self._outbox_loop())
            self._expiry_task = asyncio.create_task(self._expiry_loop())
            self._outbox_wake.set()

    async def disconnect(self) -> None:
        self._closing = True
        for task in (self._socket_task, self._outbox_task, self._expiry_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._socket_task = self._outbox_task = self._expiry_task = None
        for task in list(self._tasks):  # background sends (receipts, SAS replies)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self._connected.clear()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def sync(self, timeout: float = 10.0) -> None:
        """Connect and wait until the backlog is in (``queue.empty``)."""
        self.queue_empty.clear()
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

    async def _socket_loop(self) -> None:
        assert self.transport is not None
        assert self.api is not None
        backoff = 0.2
        url = self.transport.base_url.replace("http", "ws", 1) + "/api/v1/ws"
        while not self._closing:
            try:
                async with self.transport.session.ws_connect(url, max_msg_size=0) as ws:
                    await ws.send_bytes(
                        encode(frames.Hello(protocol=PROTOCOL_VERSION, token=self.api.token))
                    )
                    async for msg in ws:
                        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            break
                        frame = decode_server_frame(msg.data)
                        if isinstance(frame, frames.Welcome):
                            self._ws = ws
                            self._connected.set()
                            backoff = 0.2
                            self._spawn(self.keys.replenish())  # one-time keys get used up
                            continue
                        await self._on_frame(ws, frame)
                    if ws.close_code == 4401:
                        log.warning("the server refused this device's token")
                        self._closing = True
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("connection lost: %s", exc)
            except Exception:
                log.exception("sync failed")
            finally:
                self._ws = None
                self._connected.clear()
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(Unavailable(ErrorCode.UNAVAILABLE, "disconnected"))
            if not self._closing:
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter
                backoff = min(backoff * 2, 15.0)

    async def _on_frame(
        self, ws: aiohttp.ClientWebSocketResponse, frame: frames.ServerFrame
    ) -> None:
        if isinstance(frame, frames.Message):
            await self._on_message(frame)
            await ws.send_bytes(encode(frames.Ack(conversation=frame.conversation, seq=frame.seq)))
        elif isinstance(frame, frames.State):
            await self._on_state(frame)
            await ws.send_bytes(encode(frames.Ack(conversation=frame.conversation, seq=frame.seq)))
        elif isinstance(frame, frames.ToDevice):
            await self._on_to_device(frame)
            await ws.send_bytes(encode(frames.ToDeviceAck(seq=frame.seq)))
        elif isinstance(frame, frames.KeysChanged):
            await self._on_keys_changed(UserId(frame.user))
            await ws.send_bytes(encode(frames.ToDeviceAck(seq=frame.seq)))
        elif isinstance(frame, frames.TypingEvent):
            self._events.put_nowait(ev.Typing(frame.conversation, UserId(frame.user), frame.active))
        elif isinstance(frame, frames.QueueEmpty):
            self.queue_empty.set()
        elif isinstance(frame, frames.Sent | frames.ToDeviceSent):
            future = self._waiting.get(frame.id)
            if future is not None and not future.done():
                future.set_result(frame)
        elif isinstance(frame, frames.Error) and frame.ref is not None:
            future = self._waiting.get(frame.ref)
            if future is not None and not future.done():
                future.set_result(frame)

    async def _on_message(self, frame: frames.Message) -> None:
        profile, api, keys = self._need()
        if frame.body is None:  # our own send, echoed without body
            profile.execute(
                "UPDATE messages SET seq = ?, status = 'sent' WHERE conversation = ?"
                " AND id = ? AND seq IS NULL",
                frame.seq,
                frame.conversation,
                frame.id,
            )
            return
        known = profile.execute(
            "SELECT 1 FROM messages WHERE conversation = ? AND id = ?", frame.conversation, frame.id
        ).fetchone()
        if known is not None:
            return  # delivered again (after a crash): shown once
        sender = await keys.find_device(UserId(frame.sender), DeviceId(frame.sender_device))
        self._emit_key_changes()
        if sender is None:
            self._warn(frame, "from a device without a valid certificate")
            return
        try:
            decrypted = keys.inbound.decrypt_message(
                sender, frame.conversation, frame.id, frame.body
            )
        except UnknownSession:
            try:
                session = MegolmCiphertext.from_body(frame.body).session_id
            except CryptoError:
                self._warn(frame, "not a Megolm message")
                return
            profile.execute(
                "INSERT OR IGNORE INTO undecrypted VALUES (?, ?, ?, ?)",
                frame.conversation,
                frame.seq,
                session,
                encode(frame),
            )
            return
        except ReplayedMessage:
            return
        except (DecryptionFailed, BadPayload, CryptoError) as exc:
            self._warn(frame, str(exc))
            return
        payload = decrypted.payload
        missing = self._newly_missing(sender, frame.conversation, decrypted)
        expires = await self._expiry(frame)
        for entry in attachments.entries_of(payload.content.get("attachments", [])):
            try:  # before the ack: the blob goes once every device has acknowledged
                await attachments.download(api, entry, self.profile_dir / "attachments")
            except (ServerError, CryptoError, KeyError, TypeError, msgspec.MsgspecError) as exc:
                self._warn(frame, f"attachment not available: {exc}")
        with profile.transaction():
            self._store(
                frame.conversation,
                frame.id,
                frame.seq,
                UserId(frame.sender),
                DeviceId(frame.sender_device),
                frame.ts,
                payload.type,
                payload.content,
                "received",
                expires,
                decrypted.session_id,
            )
            if payload.type == ev.PROFILE:
                self._remember_profile(UserId(frame.sender), frame.ts, payload.content)
            elif payload.type == statekey.TYPE:
                self._remember_state_key(frame.conversation, payload.content)
            keys.save()
        if missing:
            self._events.put_nowait(
                ev.MissingMessages(frame.conversation, UserId(frame.sender), missing, frame.id)
            )
        if payload.type not in ev.ANNOTATIONS and frame.sender != self.user:
            self._note_delivered(ConversationId(frame.conversation), MessageId(frame.id))
        self._events.put_nowait(ev.Received(self._message(frame.conversation, frame.id)))

    def _note_delivered(self, conversation: ConversationId, msg_id: MessageId) -> None:
        """Confirm delivery to the sender, a moment later and many ids at once."""
        if not self.delivery_receipts:
            return
        cached = self._states.get(conversation)
        if cached is None or len(cached[1].members) > DELIVERY_RECEIPTS_UP_TO:
            return
        self._delivered.setdefault(conversation, []).append(msg_id)
        if self._delivered_task is None or self._delivered_task.done():
            self._delivered_task = asyncio.get_running_loop().create_task(self._send_delivered())
            self._tasks.add(self._delivered_task)
            self._delivered_task.add_done_callback(self._tasks.discard)
            self._delivered_task.add_done_callback(_log_failure)

    async def _send_delivered(self) -> None:
        await asyncio.sleep(DELIVERY_RECEIPT_DELAY)
        pending, self._delivered = self._delivered, {}
        for conversation, ids in pending.items():
            with contextlib.suppress(ClientError):  # left the chat meanwhile
                await self.send(conversation, ev.RECEIPT, {"delivered": ids})

    def _newly_missing(
        self, sender: VerifiedDevice, conversation: ConversationId, decrypted: DecryptedMessage
    ) -> int:
        """How many indexes of this Megolm session the message just decrypted
        skips past: messages the server withheld. Only indexes above the
        highest one seen before count, so a gap is told once (and not again
        if a late message fills it). Messages waiting for their room key are
        not decrypted from any session yet, so they are no gap."""
        keys = self.keys
        info = keys.inbound.get((conversation, sender.curve25519, decrypted.session_id))
        first = info.first_known_index if info is not None else decrypted.message_index
        before = keys.inbound.seen.indexes(decrypted.session_id) - {decrypted.message_index}
        return max(0, decrypted.message_index - max([first - 1, *before]) - 1)

    async def _expiry(self, frame: frames.Message) -> int | None:
        """When a received message disappears: as the server says, but never
        later than the conversation's signed timer allows from now (a server
        that drops ``expires_ms`` must not make a disappearing message stay)."""
        try:
            _, state = await self._chain(ConversationId(frame.conversation))
        except (ClientError, CryptoError):
            return frame.expires_ms
        if not state.timer_seconds:
            return frame.expires_ms
        latest = self.clock() + state.timer_seconds * 1000
        return latest if frame.expires_ms is None else min(frame.expires_ms, latest)

    def _warn(self, frame: frames.Message, reason: str) -> None:
        self._events.put_nowait(
            ev.Undecryptable(frame.conversation, frame.id, UserId(frame.sender), reason)
        )

    def _emit_key_changes(self) -> None:
        keys = self.keys
        while keys.changes:
            change = keys.changes.pop(0)
            self._events.put_nowait(ev.KeyChanged(change.user, change.verified, change.reason))

    async def _on_state(self, frame: frames.State) -> None:
        _, _, keys = self._need()
        conversation = ConversationId(frame.conversation)
        cached = self._states.get(conversation)
        try:
            if cached is not None and frame.event.depth == cached[1].depth + 1:
                await check_signature(keys, frame.event)
                from taube.proto.state import apply_event

                state = apply_event(cached[1], frame.event)
                self._remember_chain(conversation, [*cached[0], frame.event], state)
            elif cached is None or frame.event.depth > cached[1].depth:
                _, state = await self._chain(conversation, refresh=True)
            else:
                return
        except NotAMember:
            return  # removed: the server no longer shows us the chain
        except (ChainError, CryptoError) as exc:
            log.warning("state refused: %s", exc)
            return
        self._events.put_nowait(
            ev.MembershipChanged(conversation, {u: r.value for u, r in state.members.items()})
        )

    async def _on_to_device(self, frame: frames.ToDevice) -> None:
        _, _, keys = self._need()
        if self._pending_link is not None and linking.decode_envelope(frame.body) is not None:
            self._link_request(frame)
            return
        sender = await keys.find_device(UserId(frame.sender), DeviceId(frame.sender_device))
        if sender is None:
            return
        try:
            payload = keys.olm.decrypt_to_device(sender, frame.body)
        except CryptoError as exc:
            log.info("to-device message refused: %s", exc)
            return
        if payload.type in sas.TYPES:
            await self._on_sas(sender, payload.type, dict(payload.content))
            keys.save()
            return
        if payload.type == TYPE_ROOM_KEY:
            try:
                accept_room_key(keys.inbound, sender, payload)
            except CryptoError as exc:
                log.info("room key refused: %s", exc)
        keys.save()
        await self._retry_undecrypted()

    async def _retry_undecrypted(self) -> None:
        profile, _, _ = self._need()
        rows = profile.execute(
            "SELECT conversation, seq, frame FROM undecrypted ORDER BY conversation, seq"
        ).fetchall()
        for conversation, seq, data in rows:
            frame = decode_server_frame(bytes(data))
            assert isinstance(frame, frames.Message)
            profile.execute(
                "DELETE FROM undecrypted WHERE conversation = ? AND seq = ?", conversation, seq
            )
            await self._on_message(frame)

    async def _on_keys_changed(self, user: UserId) -> None:
        keys = self.keys
        keys.forget(user)
        await keys.refresh([user])
        self._emit_key_changes()

    # ================================================================ history

    def _store(
        self,
        conversation: str,
        msg_id: str,
        seq: int | None,
        sender: UserId,
        device: DeviceId,
        ts: int,
        type_: str,
        content: dict[str, Any],
        status: str,
        expires_ms: int | None,
        session: str | None = None,
    ) -> None:
        assert self.profile is not None
        inserted = self.profile.execute(
            "INSERT OR IGNORE INTO messages (conversation, id, seq, sender, sender_device, ts,"
            " type, content, status, expires_ms, session)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            conversation,
            msg_id,
            seq,
            sender,
            device,
            ts,
            type_,
            msgspec.json.encode(content),
            status,
            expires_ms,
            session,
        )
        text = content.get("body")
        if inserted.rowcount and isinstance(text, str) and type_ == ev.TEXT:
            self.profile.execute(
                "INSERT INTO messages_fts (text, conversation, id) VALUES (?, ?, ?)",
                text,
                conversation,
                msg_id,
            )

    def _message(self, conversation: str, msg_id: str) -> ev.Message:
        found = list(self._rows("conversation = ? AND id = ?", conversation, msg_id))
        return found[0]

    def _rows(self, where: str, *args: Any) -> list[ev.Message]:
        assert self.profile is not None
        rows = self.profile.execute(
            "SELECT conversation, id, seq, sender, sender_device, ts, type, content, status,"
            f" expires_ms FROM messages WHERE {where}",
            *args,
        ).fetchall()
        return [
            ev.Message(
                conversation=ConversationId(r[0]),
                id=MessageId(r[1]),
                seq=r[2],
                sender=UserId(r[3]),
                sender_device=DeviceId(r[4]),
                ts=int(r[5]),
                type=str(r[6]),
                text=str(content.get("body", "")),
                reply_to=content.get("reply_to"),
                status=str(r[8]),
                expires_ms=r[9],
                content=content,
            )
            for r in rows
            for content in [msgspec.json.decode(bytes(r[7]))]
        ]

    def expire(self) -> int:
        """Delete disappearing messages whose time ran out: the plaintext, its
        search index entry, every copy in the database's free pages and log,
        and the keys of Megolm sessions none of whose messages remain."""
        profile, _, keys = self._need()
        now = self.clock()
        gone = profile.execute(
            "SELECT conversation, id, session FROM messages WHERE expires_ms <= ?", now
        ).fetchall()
        if not gone:
            return 0
        with profile.transaction():
            for conversation, msg_id, _session in gone:
                profile.execute(
                    "DELETE FROM messages WHERE conversation = ? AND id = ?", conversation, msg_id
                )
                profile.execute(
                    "DELETE FROM messages_fts WHERE conversation = ? AND id = ?",
                    conversation,
                    msg_id,
                )
            sessions = {(c, s) for c, _, s in gone if s is not None}
            forgot = 0
            for conversation, session in sessions:
                left = profile.execute(
                    "SELECT 1 FROM messages WHERE conversation = ? AND session = ? LIMIT 1",
                    conversation,
                    session,
                ).fetchone()
                if left is None:
                    forgot += keys.inbound.forget(ConversationId(conversation), session)
            if forgot:
                keys.save()
        profile.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
        profile.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return len(gone)

    async def _expiry_loop(self) -> None:
        while not self._closing:
            try:
                self.expire()
            except Exception:
                log.exception("expiring messages failed")
            await asyncio.sleep(0.5)

    def history(self, conversation: ConversationId, limit: int = 100) -> list[ev.Message]:
        """The conversation as the user sees it: oldest first, annotations applied."""
        self.expire()
        rows = self._rows("conversation = ? ORDER BY seq IS NULL, seq, ts", conversation)
        shown: dict[str, ev.Message] = {}
        order: list[str] = []
        for row in rows:
            if row.type not in ev.ANNOTATIONS:
                shown[row.id] = row
                order.append(row.id)
        for row in rows:
            target = row.content.get("target")
            if row.type == ev.RECEIPT:
                for read in row.content.get("read", []):
                    if read in shown and row.sender not in shown[read].read_by:
                        shown[read].read_by.append(row.sender)
                for delivered in row.content.get("delivered", []):
                    if delivered in shown and row.sender not in shown[delivered].delivered_to:
                        shown[delivered].delivered_to.append(row.sender)
                continue
            message = shown.get(target) if isinstance(target, str) else None
            if message is None or (
                row.type in (ev.EDIT, ev.DELETE) and row.sender != message.sender
            ):
                continue  # only the author edits or deletes
            if row.type == ev.EDIT:
                shown[message.id] = _replace(
                    message, text=str(row.content.get("body", "")), edited=True
                )
            elif row.type == ev.DELETE:
                shown[message.id] = _replace(message, text="", deleted=True, content={})
            elif row.type == ev.REACTION:
                # the same reaction again from the same user takes it back
                users = message.reactions.setdefault(str(row.content.get("key")), [])
                if row.sender in users:
                    users.remove(row.sender)
                    if not users:
                        del message.reactions[str(row.content.get("key"))]
                else:
                    users.append(row.sender)
        return [shown[i] for i in order][-limit:]

    def search(self, text: str, limit: int = 50) -> list[ev.Message]:
        """Local full-text search over what this device has."""
        profile, _, _ = self._need()
        hits = profile.execute(
            "SELECT conversation, id FROM messages_fts WHERE messages_fts MATCH ? LIMIT ?",
            _fts_query(text),
            limit,
        ).fetchall()
        return [self._message(c, i) for c, i in hits]

    # ================================================================ verification

    async def safety_number(self, address: str) -> str:
        """The safety number with ``address`` (compare it in person or by a call)."""
        keys = self.keys
        other = parse_address(address)
        await keys.refresh([other])
        pinned = keys.pinned(other)
        if pinned is None:
            raise ClientError(f"no identity key for {other}")
        digits = safety_number(self.user, keys.identity.public_key, other, pinned[0])
        return format_safety_number(digits)

    # ---------------------------------------------------------------- emoji (SAS)

    async def verify_start(self, address: str) -> str:
        """Ask ``address``'s devices to verify by emoji; returns the transaction.
        Events follow: ``VerificationEmoji``, then ``VerificationDone``."""
        keys = self.keys
        other = parse_address(address)
        await keys.refresh([other])
        devices = [
            d
            for d in await keys.devices_of([other])
            if (d.user, d.device) != (self.user, self.device)
        ]
        if not devices:
            raise ClientError(f"{other} has no device to verify with")
        txn = sas.new_transaction()
        flow = sas.Flow(txn, None, devices, SasVerification(self.user, self.device, txn), True)
        self._sas[txn] = flow
        for device in devices:
            await self._send_to(
                device, sas.START, {"txn": txn, "commitment": flow.sas.commitment()}
            )
        return txn

    async def verify_accept(self, transaction: str) -> None:
        """Answer a ``VerificationRequest``: send this device's SAS key."""
        flow = self._flow(transaction)
        assert flow.peer is not None
        await self._send_to(flow.peer, sas.KEY, {"txn": transaction, "key": flow.sas.public_key})

    async def verify_confirm(self, transaction: str) -> None:
        """The user saw the same emoji on both devices."""
        flow = self._flow(transaction)
        if flow.established is None or flow.peer is None:
            raise ClientError("nothing to confirm yet")
        flow.confirmed = True
        tag = flow.established.mac("identity", self.keys.identity.public_key)
        await self._send_to(flow.peer, sas.MAC, {"txn": transaction, "mac": tag})
        self._sas_finish(flow)

    async def verify_cancel(self, transaction: str, reason: str = "cancelled") -> None:
        flow = self._flow(transaction)
        flow.done = True
        for device in [flow.peer] if flow.peer is not None else flow.peers:
            await self._send_to(device, sas.CANCEL, {"txn": transaction, "reason": reason})
        self._events.put_nowait(ev.VerificationDone(transaction, flow.peers[0].user, False, reason))

    def _flow(self, transaction: str) -> sas.Flow:
        flow = self._sas.get(transaction)
        if flow is None or flow.done:
            raise ClientError("no such verification")
        return flow

    async def _send_to(self, device: VerifiedDevice, type_: str, content: dict[str, Any]) -> None:
        """One Olm-encrypted to-device message (making the Olm session if needed)."""
        _, api, keys = self._need()
        if not keys.olm.has_session(device):
            claimed = await api.post(
                "/keys/claim",
                http.ClaimKeys(devices=[http.DeviceRef(user=device.user, device=device.device)]),
                http.ClaimResponse,
            )
            if not claimed.keys:
                raise ClientError(f"device {device.device} has no keys left")
            keys.olm.create_outbound_session(device, claimed.keys[0])
        body = keys.olm.encrypt_to_device(device, type_, content)
        ref = new_message_id()
        await self._request(
            frames.ToDeviceSend(
                id=ref,
                messages=[
                    frames.ToDeviceMessage(user=device.user, device=device.device, body=body)
                ],
            ),
            ref,
        )
        keys.save()

    async def _on_sas(self, sender: VerifiedDevice, type_: str, content: dict[str, Any]) -> None:
        txn = str(content.get("txn", ""))
        flow = self._sas.get(txn)
        if type_ == sas.START and flow is None:
            try:
                verification = SasVerification(self.user, self.device, txn)
            except ValueError:
                return
            self._sas[txn] = sas.Flow(
                txn,
                sender,
                [sender],
                verification,
                False,
                commitment=str(content.get("commitment", "")),
            )
            self._events.put_nowait(ev.VerificationRequest(txn, sender.user, sender.device))
            return
        if (
            flow is None
            or flow.done
            or all((p.user, p.device) != (sender.user, sender.device) for p in flow.peers)
        ):
            return
        try:
            if type_ == sas.KEY and flow.established is None:
                key = str(content.get("key", ""))
                if flow.initiator:
                    flow.peer = sender  # the first device that answers
                    flow.established = flow.sas.establish(sender.user, sender.device, key)
                    # not awaited here: the reply's acknowledgement comes through
                    # this very frame loop
                    self._spawn(
                        self._send_to(sender, sas.KEY, {"txn": txn, "key": flow.sas.public_key})
                    )
                else:
                    flow.sas.check_commitment(key, flow.commitment)
                    flow.established = flow.sas.establish(sender.user, sender.device, key)
                self._events.put_nowait(
                    ev.VerificationEmoji(
                        txn, sender.user, flow.established.emoji(), flow.established.decimals()
                    )
                )
            elif type_ == sas.MAC and flow.peer == sender:
                flow.their_mac = str(content.get("mac", ""))
                self._sas_finish(flow)
            elif type_ == sas.CANCEL:
                flow.done = True
                self._events.put_nowait(
                    ev.VerificationDone(
                        txn, sender.user, False, str(content.get("reason", "cancelled"))[:200]
                    )
                )
        except (CryptoError, ValueError) as exc:
            flow.done = True
            self._events.put_nowait(ev.VerificationDone(txn, sender.user, False, str(exc)))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a send started from inside the frame loop (which must not wait on it)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def _sas_finish(self, flow: sas.Flow) -> None:
        """Both confirmed and the peer's MAC is in: check it against the pinned key."""
        if not (flow.confirmed and flow.their_mac) or flow.established is None or flow.done:
            return
        assert flow.peer is not None
        flow.done = True
        keys = self.keys
        pinned = keys.pinned(flow.peer.user)
        try:
            if pinned is None:
                raise ClientError("no identity key pinned")
            flow.established.verify_mac("identity", pinned[0], flow.their_mac)
        except (CryptoError, ClientError) as exc:
            self._events.put_nowait(
                ev.VerificationDone(flow.transaction, flow.peer.user, False, str(exc))
            )
            return
        keys.mark_verified(flow.peer.user, pinned[0])
        self._outbox_wake.set()
        self._events.put_nowait(ev.VerificationDone(flow.transaction, flow.peer.user, True))

    async def verify(self, address: str) -> None:
        """Mark ``address``'s current identity key as verified (after comparing)."""
        keys = self.keys
        other = parse_address(address)
        await keys.refresh([other])
        pinned = keys.pinned(other)
        if pinned is None:
            raise ClientError(f"no identity key for {other}")
        keys.mark_verified(other, pinned[0])
        self._outbox_wake.set()  # what waited for this (SendingBlocked) goes out now


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background send failed: %s", task.exception())


def _replace(message: ev.Message, **changes: Any) -> ev.Message:
    import dataclasses

    return dataclasses.replace(message, **changes)


def _fts_query(text: str) -> str:
    """Words as quoted FTS5 terms (no operators from user input)."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words) or '""'


__all__ = ["Client", "VerifiedDevice"]
