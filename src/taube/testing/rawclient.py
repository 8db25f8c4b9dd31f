"""``RawClient``: speaks the wire protocol with no end-to-end crypto.

It signs what the server checks (identity key, device certificate, one-time
keys, state events) with real Ed25519 keys, and seals payloads with AES-GCM
under a key the test holds, so that "no plaintext on the server" can be
checked by scanning the server's files for canary strings. Received entries
are recorded per conversation, with duplicates counted, and acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from taube.proto import frames, http
from taube.proto.codec import decode, decode_server_frame, encode
from taube.proto.ids import (
    ConversationId,
    DeviceId,
    MessageId,
    UserId,
    new_conversation_id,
    new_message_id,
)
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.proto.signing import (
    DOMAIN_DEVICE,
    DOMAIN_IDENTITY,
    DOMAIN_ONE_TIME_KEY,
    DOMAIN_STATE,
    b64encode,
    signing_bytes,
)
from taube.proto.state import Content, Create, Kind, Member, Role, StateEvent
from taube.proto.version import PROTOCOL_VERSION

TEST_KEY = bytes(range(32))  #: the "end-to-end" key every raw client shares
PASSWORD = "correct horse battery staple"  # noqa: S105 - test accounts only


def seal(plaintext: bytes, key: bytes = TEST_KEY) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


def unseal(sealed: bytes, key: bytes = TEST_KEY) -> bytes:
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], None)


def _public(key: Ed25519PrivateKey | X25519PrivateKey) -> str:
    return b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.code = body.get("error")


class RawClient:
    def __init__(self, base_url: str, address: str, *, password: str = PASSWORD) -> None:
        self.base_url = base_url
        self.address = address
        self.password = password
        self.user = UserId(address)
        self.device = DeviceId("")
        self.token = ""
        self.identity = Ed25519PrivateKey.generate()
        self.device_key = Ed25519PrivateKey.generate()
        self.http_session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        #: every entry received, in arrival order, per conversation
        self.entries: dict[str, list[frames.Message | frames.State]] = defaultdict(list)
        self.seen: dict[str, set[int]] = defaultdict(set)
        self.duplicates = 0
        self.duplicated: list[tuple[str, int, str]] = []
        self.queue: list[frames.ToDevice | frames.KeysChanged] = []
        self.others: list[Any] = []
        self.closed: asyncio.Future[tuple[int | None, str]] | None = None
        self.auto_ack = True
        self.changed = asyncio.Event()
        self.queue_empty = 0

    # ----------------------------------------------------------- HTTP

    async def __aenter__(self) -> RawClient:
        self.http_session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        if self.http_session is not None:
            await self.http_session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        assert self.http_session is not None
        all_headers = dict(headers or {})
        bearer = self.token if token is None else token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        data = raw if raw is not None else (encode(body) if body is not None else None)
        async with self.http_session.request(
            method, self.base_url + path, data=data, headers=all_headers
        ) as response:
            content = await response.read()
            if response.status >= 400:
                raise HttpError(response.status, msgspec.json.decode(content) if content else {})
            if response.content_type == "application/json" and content:
                return msgspec.json.decode(content)
            return content

    async def register(self) -> None:
        session = await self.request(
            "POST",
            "/api/v1/accounts",
            http.Credentials(address=self.address, password=self.password, device_name="raw"),
        )
        self._session(session)

    async def login(self) -> None:
        session = await self.request(
            "POST",
            "/api/v1/sessions",
            http.Credentials(address=self.address, password=self.password, device_name="raw"),
        )
        self._session(session)

    def _session(self, session: dict[str, Any]) -> None:
        self.user, self.device, self.token = session["user"], session["device"], session["token"]

    def sign(self, domain: bytes, obj: msgspec.Struct, key: Ed25519PrivateKey | None = None) -> str:
        return b64encode((key or self.identity).sign(signing_bytes(domain, obj)))

    async def setup_keys(self, one_time_keys: int = 5) -> None:
        """Publish the identity key and a signed device certificate with keys."""
        identity = IdentityKey(
            user=self.user, identity_key=_public(self.identity), signature="A" * 86
        )
        identity = msgspec.structs.replace(identity, signature=self.sign(DOMAIN_IDENTITY, identity))
        await self.request("PUT", "/api/v1/keys/identity", identity)
        curve = X25519PrivateKey.generate()
        device_keys = DeviceKeys(
            user=self.user,
            device=self.device,
            curve25519=_public(curve),
            ed25519=_public(self.device_key),
            signature="A" * 86,
        )
        device_keys = msgspec.structs.replace(
            device_keys, signature=self.sign(DOMAIN_DEVICE, device_keys)
        )
        await self.request(
            "POST",
            "/api/v1/keys/upload",
            http.UploadKeys(
                device_keys=device_keys,
                one_time_keys=[self.one_time_key(f"k{i}") for i in range(one_time_keys)],
                fallback_key=self.one_time_key("fb", fallback=True),
            ),
        )

    def one_time_key(self, key_id: str, *, fallback: bool = False) -> OneTimeKey:
        key = OneTimeKey(
            user=self.user,
            device=self.device,
            key_id=key_id,
            key=_public(X25519PrivateKey.generate()),
            fallback=fallback,
            signature="A" * 86,
        )
        return msgspec.structs.replace(
            key, signature=self.sign(DOMAIN_ONE_TIME_KEY, key, self.device_key)
        )

    async def new_account(self, one_time_keys: int = 5) -> RawClient:
        await self.register()
        await self.setup_keys(one_time_keys)
        return self

    # ----------------------------------------------------------- conversations

    def event(self, conversation: str, depth: int, prev: str, content: Content) -> StateEvent:
        event = StateEvent(
            conversation=ConversationId(conversation),
            depth=depth,
            prev=prev,
            sender=self.user,
            ts=0,
            content=content,
            signature="A" * 86,
        )
        return msgspec.structs.replace(event, signature=self.sign(DOMAIN_STATE, event))

    def chain(self, kind: Kind, members: list[str]) -> list[StateEvent]:
        conversation = new_conversation_id()
        events = [self.event(conversation, 0, "", Create(kind=kind))]
        for member in members:
            last = events[-1]
            events.append(
                self.event(
                    conversation,
                    last.depth + 1,
                    last.event_hash(),
                    Member(target=UserId(member), membership="join"),
                )
            )
        return events

    async def create(self, kind: Kind, members: list[str]) -> ConversationId:
        events = self.chain(kind, members)
        await self.request("POST", "/api/v1/conversations", http.CreateConversation(events=events))
        return events[0].conversation

    async def direct(self, other: str) -> ConversationId:
        return await self.create(Kind.DIRECT, [other])

    async def group(self, members: list[str]) -> ConversationId:
        return await self.create(Kind.GROUP, members)

    async def append(self, conversation: str, content: Content) -> int:
        info = await self.request("GET", f"/api/v1/conversations/{conversation}")
        event = self.event(conversation, info["depth"] + 1, info["head"], content)
        result = await self.request("POST", f"/api/v1/conversations/{conversation}/state", event)
        return int(result["seq"])

    async def add(self, conversation: str, user: str, role: Role = Role.MEMBER) -> int:
        return await self.append(
            conversation, Member(target=UserId(user), membership="join", role=role)
        )

    async def remove(self, conversation: str, user: str) -> int:
        return await self.append(conversation, Member(target=UserId(user), membership="leave"))

    # ----------------------------------------------------------- WebSocket

    async def connect(self, *, hello: bool = True, origin: str | None = None) -> None:
        assert self.http_session is not None
        headers = {"Origin": origin} if origin else {}
        self.ws = await self.http_session.ws_connect(
            self.base_url.replace("http", "ws", 1) + "/api/v1/ws",
            headers=headers,
            max_msg_size=0,
            autoping=True,
        )
        self.closed = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())
        if hello:
            await self.send_frame(frames.Hello(protocol=PROTOCOL_VERSION, token=self.token))
            await self.wait_for(lambda: any(isinstance(f, frames.Welcome) for f in self.others))

    async def disconnect(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        self.ws = None
        self.reader = None

    async def send_frame(self, frame: Any) -> None:
        await self.send_raw(encode(frame))

    async def send_raw(self, data: bytes | str) -> None:
        assert self.ws is not None
        if isinstance(data, bytes):
            await self.ws.send_str(data.decode())
        else:
            await self.ws.send_str(data)

    async def _read(self) -> None:
        assert self.ws is not None
        assert self.closed is not None
        reason = ""
        code: int | None = None
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_frame(decode_server_frame(msg.data))
                    self.changed.set()
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    code, reason = int(msg.data), str(msg.extra or "")
                    break
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    break
        finally:
            if not self.closed.done():
                # the code the server sent, else what aiohttp saw
                self.closed.set_result((code or self.ws.close_code, reason))
            self.changed.set()

    async def _on_frame(self, frame: frames.ServerFrame) -> None:
        if isinstance(frame, (frames.Message, frames.State)):
            if frame.seq in self.seen[frame.conversation]:
                self.duplicates += 1
                self.duplicated.append((frame.conversation, frame.seq, type(frame).__name__))
            else:
                self.seen[frame.conversation].add(frame.seq)
                self.entries[frame.conversation].append(frame)
            if self.auto_ack:
                await self._ack(frames.Ack(conversation=frame.conversation, seq=frame.seq))
        elif isinstance(frame, (frames.ToDevice, frames.KeysChanged)):
            self.queue.append(frame)
            if self.auto_ack:
                await self._ack(frames.ToDeviceAck(seq=frame.seq))
        elif isinstance(frame, frames.QueueEmpty):
            self.queue_empty += 1
        else:
            self.others.append(frame)

    async def _ack(self, frame: frames.Ack | frames.ToDeviceAck) -> None:
        """Acknowledge; on a connection that is closing the ack is lost (the
        server sends the entry again), and the close frame is still to be read."""
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await self.send_frame(frame)

    @property
    def is_open(self) -> bool:
        """The WebSocket is still being read (the server has not closed it)."""
        return self.reader is not None and not self.reader.done()

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server has closed the WebSocket; its close code."""
        assert self.closed is not None
        assert self.reader is not None
        assert self.ws is not None
        ws = self.ws
        waits: set[asyncio.Future[Any]] = {self.closed, self.reader}
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        assert done, f"the socket was not closed within {timeout} s"
        return ws.close_code

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                if predicate():
                    return
                await self.changed.wait()

    def messages(self, conversation: str) -> list[frames.Message]:
        return [e for e in self.entries[conversation] if isinstance(e, frames.Message)]

    def texts(self, conversation: str) -> list[bytes]:
        return [unseal(m.body) for m in self.messages(conversation) if m.body is not None]

    def errors(self) -> list[frames.Error]:
        return [f for f in self.others if isinstance(f, frames.Error)]

    def sent(self) -> dict[str, frames.Sent]:
        return {f.id: f for f in self.others if isinstance(f, frames.Sent)}

    async def send(
        self,
        conversation: str,
        plaintext: bytes,
        *,
        msg_id: MessageId | None = None,
        wait: bool = True,
        **extra: Any,
    ) -> MessageId:
        msg_id = msg_id or new_message_id()
        await self.send_frame(
            frames.Send(
                conversation=ConversationId(conversation), id=msg_id, body=seal(plaintext), **extra
            )
        )
        if wait:
            await self.wait_sent(msg_id)
        return msg_id

    async def wait_sent(self, msg_id: str, timeout: float = 10.0) -> frames.Sent:
        await self.wait_for(
            lambda: msg_id in self.sent() or any(e.ref == msg_id for e in self.errors()), timeout
        )
        if msg_id not in self.sent():
            raise AssertionError(f"send failed: {[e for e in self.errors() if e.ref == msg_id]}")
        return self.sent()[msg_id]

    async def upload(self, data: bytes) -> str:
        result = await self.request("POST", "/api/v1/blobs", raw=data)
        return str(result["blob"])

    async def download(self, blob: str) -> bytes:
        result = await self.request("GET", f"/api/v1/blobs/{blob}")
        assert isinstance(result, bytes)
        return result


__all__ = ["HttpError", "RawClient", "decode", "seal", "unseal"]
