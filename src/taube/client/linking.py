"""Linking a new device: the identity key travels over an Olm channel.

1. The **existing** device shows a code (or QR): 96 random bits ``S`` and the
   first 80 bits of SHA-256 of the account's identity key.
2. The **new** device logs in with the password, looks up the account's
   devices and keeps only those whose certificate verifies under an identity
   key matching the code's fingerprint (so the server cannot put a device of
   its own in the middle). To each it sends a link request: its Curve25519
   and Ed25519 keys beside an Olm message (on a claimed one-time key) that
   carries ``S`` and its name.
3. The existing device decrypts the request with the keys beside it (a
   server that swaps them gets a message that does not decrypt: the pre-key
   message authenticates the sender's key), checks ``S``, and asks the user
   to confirm the new device. Only then it sends, over the same Olm session,
   the identity key and ``S`` again.
4. The new device checks ``S`` and that the identity key is the one the
   fingerprint names, certifies itself and publishes its keys.

The code is good for one link and ``LINK_TTL_S`` seconds. ``Linking`` runs
both ends of it (it owns the code this device shows and the requests that
came with it); the functions above it are the protocol's pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

import aiohttp
import msgspec

from taube.client.carrier import TaubeCarrier
from taube.client.errors import ClientError
from taube.client.history import History
from taube.client.session import Session
from taube.crypto import (
    CryptoError,
    DeviceAccount,
    IdentityKeyPair,
    OlmCiphertext,
    OlmMachine,
    VerifiedDevice,
    verify_device,
    verify_identity_key,
)
from taube.proto import frames, http
from taube.proto.codec import decode_server_frame, encode
from taube.proto.ids import DeviceId, UserId, new_message_id, parse_address
from taube.proto.keys import Key
from taube.proto.signing import b64decode, b64encode
from taube.proto.version import PROTOCOL_VERSION

log = logging.getLogger(__name__)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  #: Crockford base32, as the recovery code
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1", " ": None, "-": None})
SECRET_BYTES = 12
FINGERPRINT_BYTES = 10
CODE_CHARS = 36  #: 22 bytes, padded to 180 bits
LINK_TTL_S = 600
TYPE_REQUEST = "taube.link.request"
TYPE_GRANT = "taube.link.grant"


class LinkError(ClientError):
    """The code is malformed, expired or used, or the other side did not check out."""


def fingerprint(identity_key: str) -> bytes:
    return hashlib.sha256(identity_key.encode()).digest()[:FINGERPRINT_BYTES]


def make_code(identity_key: str) -> tuple[str, bytes]:
    """A new link code for display, and its secret."""
    secret = secrets.token_bytes(SECRET_BYTES)
    value = int.from_bytes(secret + fingerprint(identity_key), "big") << 4
    text = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(CODE_CHARS)))
    return "-".join(text[i : i + 4] for i in range(0, CODE_CHARS, 4)), secret


def parse_code(code: str) -> tuple[bytes, bytes]:
    """``(secret, identity fingerprint)`` of a typed code."""
    text = code.upper().translate(_LOOKALIKES)
    if len(text) != CODE_CHARS or any(ch not in ALPHABET for ch in text):
        raise LinkError(f"a link code is {CODE_CHARS} letters and digits")
    value = 0
    for ch in text:
        value = value << 5 | ALPHABET.index(ch)
    raw = (value >> 4).to_bytes(SECRET_BYTES + FINGERPRINT_BYTES, "big")
    return raw[:SECRET_BYTES], raw[SECRET_BYTES:]


class LinkEnvelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A link request's to-device body: the new device's keys beside the Olm
    message (they cannot be in the certificate-based directory yet)."""

    link: int = 1
    curve25519: Key
    ed25519: Key
    olm: OlmCiphertext


@dataclasses.dataclass
class PendingLink:
    """A code this device is showing."""

    secret: bytes
    expires: float
    used: bool = False

    def check(self, secret: str) -> None:
        if self.used or time.monotonic() > self.expires:
            raise LinkError("the link code expired or was used")
        if not hmac.compare_digest(bytes.fromhex(secret), self.secret):
            raise LinkError("the link request does not carry this device's code")


@dataclasses.dataclass(frozen=True)
class LinkRequest:
    """A device asks to be linked; confirm with ``Client.link_confirm``."""

    device: DeviceId
    name: str
    peer: VerifiedDevice = dataclasses.field(repr=False)


def provisional_device(
    user: UserId, envelope: LinkEnvelope, device: DeviceId, identity_key: str
) -> VerifiedDevice:
    """The requesting device as the keys beside its request name it: used
    only to decrypt that request, whose content the code then vouches for."""
    return VerifiedDevice(
        user=user,
        device=device,
        curve25519=envelope.curve25519,
        ed25519=envelope.ed25519,
        identity_key=identity_key,
    )


def decode_envelope(body: bytes) -> LinkEnvelope | None:
    try:
        return msgspec.json.decode(body, type=LinkEnvelope)
    except msgspec.MsgspecError:
        return None


def request_body(olm: OlmMachine, peer: VerifiedDevice, secret: bytes, name: str) -> bytes:
    content: dict[str, Any] = {"secret": secret.hex(), "name": name}
    ciphertext = OlmCiphertext.from_body(olm.encrypt_to_device(peer, TYPE_REQUEST, content))
    envelope = LinkEnvelope(
        curve25519=olm.account.curve25519, ed25519=olm.account.ed25519, olm=ciphertext
    )
    return msgspec.json.encode(envelope)


class Linking:
    def __init__(self, session: Session, carrier: TaubeCarrier, history: History) -> None:
        self._session = session
        self._carrier = carrier
        self._history = history
        self._pending: PendingLink | None = None
        self._requests: asyncio.Queue[LinkRequest] = asyncio.Queue()
        self._granted_history: Any = None

    # ---------------------------------------------------------------- existing device

    def start(self) -> str:
        """A code to type (or scan) on the new device."""
        code, secret = make_code(self._session.keys.identity.public_key)
        self._pending = PendingLink(secret, time.monotonic() + LINK_TTL_S)
        return code

    async def wait(self, timeout: float) -> LinkRequest:
        async with asyncio.timeout(timeout):
            return await self._requests.get()

    async def confirm(self, request: LinkRequest, share_history: bool) -> None:
        session = self._session
        _, _, keys = session.need()
        pending = self._pending
        if pending is None or pending.used:
            raise LinkError("no link code is pending")
        content: dict[str, Any] = {
            "identity": b64encode(keys.identity.private_bytes()),
            "secret": pending.secret.hex(),
        }
        if share_history:
            content["history"] = await self._history.export()
        body = keys.olm.encrypt_to_device(request.peer, TYPE_GRANT, content)
        await self._carrier.send_to_devices(
            [frames.ToDeviceMessage(user=session.user, device=request.device, body=body)]
        )
        pending.used = True
        self._pending = None
        keys.save()

    def on_to_device(self, frame: frames.ToDevice) -> bool:
        """Take ``frame`` if it is a link request while a code is shown."""
        if self._pending is None:
            return False
        envelope = decode_envelope(frame.body)
        if envelope is None:
            return False
        self._on_request(frame, envelope)
        return True

    def _on_request(self, frame: frames.ToDevice, envelope: LinkEnvelope) -> None:
        """A to-device message from an uncertified device of ours: a link request?"""
        session = self._session
        keys = session.keys
        pending = self._pending
        if pending is None or UserId(frame.sender) != session.user:
            return
        peer = provisional_device(
            session.user, envelope, DeviceId(frame.sender_device), keys.identity.public_key
        )
        try:
            payload = keys.olm.decrypt_to_device(peer, envelope.olm.to_body())
            if payload.type != TYPE_REQUEST:
                raise LinkError("not a link request")
            pending.check(str(payload.content.get("secret", "")))
        except (CryptoError, LinkError, ValueError) as exc:
            log.warning("link request refused: %s", exc)
            return
        keys.save()
        name = str(payload.content.get("name", ""))[:100]
        self._requests.put_nowait(LinkRequest(peer.device, name, peer))

    # ---------------------------------------------------------------- new device

    async def link(
        self,
        server: str,
        address: str,
        password: str,
        code: str,
        device_name: str,
        timeout: float,
    ) -> None:
        session = self._session
        secret, expected = parse_code(code)
        user = parse_address(address)
        new = await session.new_session(server, "/sessions", user, password, device_name)
        api = session.api
        assert api is not None
        api.token = new.token
        device = DeviceId(new.device)
        olm = OlmMachine(DeviceAccount.create(), user, device)
        found = await api.post("/keys/query", http.QueryKeys(users=[user]), http.KeysResponse)
        entry = next((u for u in found.users if u.user == user), None)
        if entry is None or entry.identity is None:
            raise LinkError("the account has no identity key")
        identity_key = verify_identity_key(entry.identity)
        if not hmac.compare_digest(fingerprint(identity_key), expected):
            raise LinkError("the code does not match this account's identity key")
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
                    body=(request_body(olm, peer, secret, device_name)),
                )
            )
        if not messages:
            raise LinkError("no device of this account can be reached")
        identity = await self._await_grant(olm, peers, messages, secret, timeout)
        if identity.public_key != identity_key:
            raise LinkError("the granted identity key is not the account's")
        keys = session.start(server, new, identity, olm)
        await keys.publish()
        history = self._granted_history
        self._granted_history = None
        if isinstance(history, dict):
            await self._history.import_(history)

    async def _await_grant(
        self,
        olm: OlmMachine,
        peers: list[VerifiedDevice],
        messages: list[frames.ToDeviceMessage],
        secret: bytes,
        timeout: float,
    ) -> IdentityKeyPair:
        """Send the requests on a connection of their own and wait for a grant
        (the device is not certified yet: nothing else is for it)."""
        session = self._session
        assert session.transport is not None
        assert session.api is not None
        by_device = {p.device: p for p in peers}
        async with (
            asyncio.timeout(timeout),
            session.transport.session.ws_connect(session.ws_url) as ws,
        ):
            await ws.send_bytes(
                encode(frames.Hello(protocol=PROTOCOL_VERSION, token=session.api.token))
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
                if payload.type == TYPE_GRANT and hmac.compare_digest(granted, secret.hex()):
                    self._granted_history = payload.content.get("history")
                    return IdentityKeyPair.from_private_bytes(
                        b64decode(str(payload.content["identity"]))
                    )
        raise LinkError("the existing device did not answer")
