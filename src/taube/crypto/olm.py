"""Pairwise Olm: the encrypted channel from one device to another.

Olm carries what must reach exactly one device: Megolm room keys, call
signalling, device linking. Sessions are built in two halves:

- *Outbound*: the sender claims one of the recipient's one-time keys from the
  server and creates a session with it. The server is not trusted to hand
  out the right key, so ``create_outbound_session`` first checks that the key
  belongs to the device, that the device signed it (with the Ed25519 key its
  certificate names) and that neither Curve25519 key is all-zero or of low
  order (DESIGN §4). Only then is a session made.
- *Inbound*: the first messages of a session are pre-key messages (type 0);
  decrypting one creates the inbound session, and vodozemac removes the
  one-time key it used from the account, so **persist the account after
  decrypting** (``pickle``).

Sessions are kept per peer Curve25519 key, most recently used first: two
devices that start a session with each other at the same moment end up with
two, and both keep working. Messages travel as ``{"type": 0|1, "body":
"<unpadded base64>"}`` (the form of the browser's libolm); decoders accept
padding.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import vodozemac
from msgspec import Meta

from taube.crypto import _seal
from taube.crypto.account import DeviceAccount
from taube.crypto.errors import BadKey, DecryptionFailed, UnknownSession, UntrustedDevice
from taube.crypto.identity import VerifiedDevice
from taube.crypto.payload import (
    ToDevicePayload,
    check_to_device_binding,
    decode_payload,
    encode_payload,
)
from taube.proto.errors import ProtocolError
from taube.proto.ids import DeviceId, UserId
from taube.proto.keys import OneTimeKey
from taube.proto.signing import (
    DOMAIN_ONE_TIME_KEY,
    b64decode,
    b64encode,
    check_curve25519,
    verify,
)

PRE_KEY = 0
NORMAL = 1

_PURPOSE = b"taube.pickle.olm.v1"


class OlmCiphertext(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One Olm message on the wire: ``{"type": 0|1, "body": base64}``."""

    type: Annotated[int, Meta(ge=PRE_KEY, le=NORMAL)]
    body: Annotated[str, Meta(min_length=1, max_length=8 * 1024 * 1024)]

    def to_body(self) -> bytes:
        """The JSON bytes for a ``ToDeviceMessage.body``."""
        return msgspec.json.encode(self)

    @classmethod
    def from_body(cls, data: bytes) -> OlmCiphertext:
        """Parse a ``ToDeviceMessage.body``; ``DecryptionFailed`` if malformed."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise DecryptionFailed("not an Olm message") from exc


class _OlmState(msgspec.Struct, forbid_unknown_fields=True):
    user: str
    device: str
    account: str
    sessions: dict[str, list[str]]


class OlmMachine:
    """The Olm sessions of one device (``user``, ``device``) with its peers."""

    __slots__ = ("_sessions", "account", "device", "user")

    def __init__(self, account: DeviceAccount, user: UserId, device: DeviceId) -> None:
        self.account = account
        self.user = user
        self.device = device
        #: peer Curve25519 key → its sessions, most recently used first
        self._sessions: dict[str, list[vodozemac.Session]] = {}

    def __repr__(self) -> str:
        return (
            f"OlmMachine(user={self.user!r}, device={self.device!r}, peers={len(self._sessions)})"
        )

    # ---------------------------------------------------------------- sessions

    def create_outbound_session(self, device: VerifiedDevice, one_time_key: OneTimeKey) -> str:
        """Start a session with ``device`` on a one-time key claimed for it.

        Raises ``UntrustedDevice`` if the key is not ``device``'s or its
        signature does not verify, ``BadKey`` for an unusable key; no session
        is made then. Returns the new session's id.
        """
        if one_time_key.user != device.user or one_time_key.device != device.device:
            raise UntrustedDevice("the one-time key belongs to another device")
        try:
            verify(DOMAIN_ONE_TIME_KEY, one_time_key, device.ed25519, one_time_key.signature)
        except ProtocolError as exc:
            raise UntrustedDevice("the one-time key's signature does not verify") from exc
        for key in (one_time_key.key, device.curve25519):
            try:
                check_curve25519(key)
            except ProtocolError as exc:
                raise BadKey(f"unusable Curve25519 key: {exc.message}") from exc
        try:
            session = self.account.raw.create_outbound_session(
                vodozemac.Curve25519PublicKey.from_base64(device.curve25519),
                vodozemac.Curve25519PublicKey.from_base64(one_time_key.key),
            )
        except (vodozemac.KeyException, vodozemac.SessionCreationException) as exc:
            raise BadKey("no session can be built on these keys") from exc
        self._remember(device.curve25519, session)
        return session.session_id

    def has_session(self, device: VerifiedDevice) -> bool:
        return bool(self._sessions.get(device.curve25519))

    def session_ids(self, device: VerifiedDevice) -> list[str]:
        """The ids of the sessions with ``device``, the one in use first."""
        return [session.session_id for session in self._sessions.get(device.curve25519, [])]

    def _remember(self, peer: str, session: vodozemac.Session) -> None:
        sessions = self._sessions.setdefault(peer, [])
        if session in sessions:
            sessions.remove(session)
        sessions.insert(0, session)

    # ---------------------------------------------------------------- messages

    def encrypt(self, device: VerifiedDevice, plaintext: bytes) -> OlmCiphertext:
        """Encrypt for ``device``; ``UnknownSession`` if there is no session."""
        sessions = self._sessions.get(device.curve25519)
        if not sessions:
            raise UnknownSession("no Olm session with this device: claim a one-time key")
        message_type, raw = sessions[0].encrypt(plaintext).to_parts()
        return OlmCiphertext(type=message_type, body=b64encode(raw))

    def decrypt(self, sender: VerifiedDevice, message: OlmCiphertext) -> bytes:
        """Decrypt a message from ``sender`` (creating the inbound session for
        a pre-key message). ``DecryptionFailed`` for a tampered, duplicated or
        foreign message; ``UnknownSession`` for a normal message without any
        session with ``sender``."""
        try:
            parsed = vodozemac.AnyOlmMessage.from_parts(message.type, b64decode(message.body))
        except (ProtocolError, vodozemac.DecodeException) as exc:
            raise DecryptionFailed("not an Olm message") from exc
        sessions = list(self._sessions.get(sender.curve25519, []))
        pre_key = parsed.to_pre_key()
        if pre_key is not None:
            for session in sessions:
                if session.session_matches(pre_key):
                    return self._decrypt_with(sender.curve25519, session, parsed)
            return self._create_inbound(sender, pre_key)
        if not sessions:
            raise UnknownSession("no Olm session with this device")
        for session in sessions:
            try:
                plaintext = session.decrypt(parsed)
            except vodozemac.OlmDecryptionException:
                continue
            self._remember(sender.curve25519, session)
            return plaintext
        raise DecryptionFailed("no Olm session with this device decrypts the message")

    def _decrypt_with(
        self, peer: str, session: vodozemac.Session, message: vodozemac.AnyOlmMessage
    ) -> bytes:
        try:
            plaintext = session.decrypt(message)
        except vodozemac.OlmDecryptionException as exc:
            raise DecryptionFailed("the Olm message does not decrypt") from exc
        self._remember(peer, session)
        return plaintext

    def _create_inbound(self, sender: VerifiedDevice, pre_key: vodozemac.PreKeyMessage) -> bytes:
        try:
            session, plaintext = self.account.raw.create_inbound_session(
                vodozemac.Curve25519PublicKey.from_base64(sender.curve25519), pre_key
            )
        except (vodozemac.KeyException, vodozemac.SessionCreationException) as exc:
            # unknown (used up) one-time key, or made by another identity key
            raise DecryptionFailed("the pre-key message starts no session") from exc
        self._remember(sender.curve25519, session)
        return plaintext

    # ---------------------------------------------------------------- to-device

    def encrypt_to_device(
        self, device: VerifiedDevice, payload_type: str, content: dict[str, Any]
    ) -> bytes:
        """A ``ToDevicePayload`` for ``device``, encrypted: the bytes of a
        ``ToDeviceMessage.body``."""
        payload = ToDevicePayload(
            sender=self.user,
            sender_device=self.device,
            sender_key=self.account.ed25519,
            recipient=device.user,
            recipient_device=device.device,
            recipient_key=device.curve25519,
            type=payload_type,
            content=content,
        )
        return self.encrypt(device, encode_payload(payload)).to_body()

    def decrypt_to_device(self, sender: VerifiedDevice, body: bytes) -> ToDevicePayload:
        """Decrypt a ``ToDevice.body`` from ``sender`` (the device the envelope
        names, resolved through its certificate) and check that the payload
        is from that device to this one."""
        plaintext = self.decrypt(sender, OlmCiphertext.from_body(body))
        payload = decode_payload(plaintext, ToDevicePayload)
        check_to_device_binding(payload, sender, self.user, self.device, self.account.curve25519)
        return payload

    # ---------------------------------------------------------------- storage

    def pickle(self, key: bytes) -> str:
        """The account and every session, sealed under the 32-byte ``key``."""
        _seal.check_pickle_key(key)
        state = _OlmState(
            user=self.user,
            device=self.device,
            account=self.account.raw.pickle(key),
            sessions={
                peer: [session.pickle(key) for session in sessions]
                for peer, sessions in self._sessions.items()
            },
        )
        return _seal.seal(key, _PURPOSE, msgspec.json.encode(state))

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> OlmMachine:
        """Raises ``DecryptionFailed`` for a wrong key or a damaged pickle."""
        try:
            state = msgspec.json.decode(_seal.unseal(key, _PURPOSE, pickle), type=_OlmState)
            machine = cls(
                DeviceAccount(vodozemac.Account.from_pickle(state.account, key)),
                UserId(state.user),
                DeviceId(state.device),
            )
            machine._sessions = {
                peer: [vodozemac.Session.from_pickle(p, key) for p in pickles]
                for peer, pickles in state.sessions.items()
            }
        except (msgspec.DecodeError, vodozemac.PickleException) as exc:
            raise DecryptionFailed("the Olm pickle does not open") from exc
        return machine
