"""Megolm: one outbound ratchet per sending device and conversation.

Conversation messages are encrypted once with the sender's ``OutboundGroup``
and read by every member device holding the matching inbound session
(DESIGN §5). The session key reaches each device inside an Olm message
(``taube.crypto.key_share``).

Rotation (``OutboundGroup.needs_rotation``): a new session after
``MAX_MESSAGES`` messages, after ``MAX_AGE_MS`` (a week), and whenever a
member or one of their devices leaves, so that a removed device cannot read
what follows. Time is passed in (``now_ms``), never read here. ``encrypt``
refuses to go past the message and age limits (``SessionExpired``): the
client cannot forget to rotate.

Receiving (``InboundGroupStore``):

- a session is filed under (conversation, creator's Curve25519 key, session
  id). The creator is the device whose Olm message delivered the key
  (``add_room_key``); a message decrypts only with a session whose creator
  is the device its envelope names, in the conversation it arrived in. A
  key forwarded by anyone else is therefore useless for the real sender's
  messages and cannot displace the real key either (it is filed apart).
- replays: every accepted ``(session_id, message_index)`` is kept in a
  ``SeenIndexes`` and a repeat raises ``ReplayedMessage``;
  ``decrypt_message`` records the pair only after the payload's binding to
  its envelope checked out, so a spliced copy cannot "use up" the real one.
- export and import at an index, for copying one's own keys to a newly
  linked device or a backup; that path trusts its source (see
  ``import_session``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Annotated

import msgspec
import vodozemac
from msgspec import Meta

from taube.crypto import _seal
from taube.crypto.errors import (
    BadPayload,
    DecryptionFailed,
    SessionExpired,
    UnknownSession,
)
from taube.crypto.identity import VerifiedDevice
from taube.crypto.payload import (
    MEGOLM_ALGORITHM,
    MessagePayload,
    RoomKey,
    SessionIdStr,
    SessionKeyStr,
    check_binding,
    decode_payload,
    encode_payload,
)
from taube.crypto.replay import SeenIndexes
from taube.proto.ids import ConversationId, ConversationIdField, DeviceId, MessageId, UserId
from taube.proto.keys import Key

#: rotate after this many messages (DESIGN §5)
MAX_MESSAGES = 100
#: ... or after a week
MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000

_OUTBOUND_PURPOSE = b"taube.pickle.megolm.outbound.v1"
_INBOUND_PURPOSE = b"taube.pickle.megolm.inbound.v1"

#: (conversation, creator's Curve25519 key, session id)
SessionRef = tuple[ConversationId, str, str]
#: (user, device, Curve25519 key) of a device a session key was given to
DeviceRef = tuple[str, str, str]


class MegolmCiphertext(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A Megolm message on the wire (the bytes of ``Send.body``)."""

    algorithm: str = MEGOLM_ALGORITHM
    session_id: SessionIdStr
    ciphertext: Annotated[str, Meta(min_length=1, max_length=8 * 1024 * 1024)]

    def to_body(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_body(cls, data: bytes) -> MegolmCiphertext:
        """Parse a message body; ``DecryptionFailed`` if it is not one."""
        try:
            message = msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise DecryptionFailed("not a Megolm message") from exc
        if message.algorithm != MEGOLM_ALGORITHM:
            raise DecryptionFailed(f"unknown algorithm {message.algorithm!r}")
        return message


class ExportedRoomKey(msgspec.Struct, kw_only=True):
    """An inbound session exported at an index, with what it is bound to."""

    algorithm: str = MEGOLM_ALGORITHM
    conversation: ConversationIdField
    session_id: SessionIdStr
    #: vodozemac's exported form (``ExportedSessionKey``), starting at ``first_index``
    session_key: SessionKeyStr
    first_index: Annotated[int, Meta(ge=0)]
    creator: str
    creator_device: str
    creator_key: Key
    creator_ed25519: Key

    def __repr__(self) -> str:
        return (
            f"ExportedRoomKey(conversation={self.conversation!r}, "
            f"session_id={self.session_id!r}, first_index={self.first_index}, "
            f"creator={self.creator!r}, creator_device={self.creator_device!r}, "
            "session_key='****')"
        )


# ==================================================================== outbound


class _OutboundState(msgspec.Struct, forbid_unknown_fields=True):
    session: str
    conversation: str
    created_ms: int
    shared_with: list[DeviceRef]


class OutboundGroup:
    """This device's sending session in one conversation."""

    __slots__ = ("_session", "_shared_with", "conversation", "created_ms")

    def __init__(
        self,
        session: vodozemac.GroupSession,
        conversation: ConversationId,
        created_ms: int,
        shared_with: Iterable[DeviceRef] = (),
    ) -> None:
        self._session = session
        self.conversation = conversation
        self.created_ms = created_ms
        self._shared_with: set[DeviceRef] = set(shared_with)

    @classmethod
    def create(cls, conversation: ConversationId, now_ms: int) -> OutboundGroup:
        return cls(vodozemac.GroupSession(), conversation, now_ms)

    def __repr__(self) -> str:
        return (
            f"OutboundGroup(conversation={self.conversation!r}, "
            f"session_id={self.session_id!r}, message_index={self.message_index})"
        )

    @property
    def session_id(self) -> str:
        return self._session.session_id

    @property
    def message_index(self) -> int:
        """The index the next message gets (= messages sent so far)."""
        return self._session.message_index

    # ------------------------------------------------------------ rotation

    def expired(self, now_ms: int) -> bool:
        """At the message limit or the age limit (or the clock went back)."""
        age = now_ms - self.created_ms
        return self.message_index >= MAX_MESSAGES or not 0 <= age < MAX_AGE_MS

    def needs_rotation(self, now_ms: int, members_changed: bool = False) -> bool:
        """Whether to replace this session before the next message.

        ``members_changed`` is true when a member or one of their devices
        left since the session was created: it must not read what follows.
        (A *new* member or device only needs the current key: see
        ``shared_with``.)
        """
        return members_changed or self.expired(now_ms)

    # ------------------------------------------------------------ sharing

    @property
    def shared_with(self) -> frozenset[DeviceRef]:
        """The devices the key was given to (``(user, device, curve25519)``)."""
        return frozenset(self._shared_with)

    def has_departed(self, devices: Iterable[VerifiedDevice]) -> bool:
        """Whether the key went to a device not among ``devices`` (the member
        devices admitted now): then it must rotate, as for ``members_changed``."""
        return not self._shared_with <= {_device_ref(device) for device in devices}

    def needs_key(self, device: VerifiedDevice) -> bool:
        return _device_ref(device) not in self._shared_with

    def mark_shared(self, devices: Iterable[VerifiedDevice]) -> None:
        """Record that these devices have the key (once the server took it)."""
        self._shared_with.update(_device_ref(device) for device in devices)

    def room_key(self) -> RoomKey:
        """The key to share, at the current index: earlier messages stay unreadable."""
        return RoomKey(
            conversation=self.conversation,
            session_id=self.session_id,
            session_key=self._session.session_key.to_base64(),
        )

    # ------------------------------------------------------------ encrypting

    def encrypt(self, plaintext: bytes, *, now_ms: int) -> MegolmCiphertext:
        """Encrypt one message; ``SessionExpired`` once the session must rotate."""
        if self.expired(now_ms):
            raise SessionExpired("the Megolm session must be rotated")
        message = self._session.encrypt(plaintext)
        return MegolmCiphertext(session_id=self.session_id, ciphertext=message.to_base64())

    def encrypt_payload(self, payload: MessagePayload, *, now_ms: int) -> bytes:
        """Encrypt a ``MessagePayload`` of this conversation: the ``Send.body``."""
        if payload.conversation != self.conversation:
            raise BadPayload("the payload belongs to another conversation")
        return self.encrypt(encode_payload(payload), now_ms=now_ms).to_body()

    # ------------------------------------------------------------ storage

    def pickle(self, key: bytes) -> str:
        _seal.check_pickle_key(key)
        state = _OutboundState(
            session=self._session.pickle(key),
            conversation=self.conversation,
            created_ms=self.created_ms,
            shared_with=sorted(self._shared_with),
        )
        return _seal.seal(key, _OUTBOUND_PURPOSE, msgspec.json.encode(state))

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> OutboundGroup:
        try:
            state = msgspec.json.decode(
                _seal.unseal(key, _OUTBOUND_PURPOSE, pickle), type=_OutboundState
            )
            session = vodozemac.GroupSession.from_pickle(state.session, key)
        except (msgspec.DecodeError, vodozemac.PickleException) as exc:
            raise DecryptionFailed("the outbound session pickle does not open") from exc
        return cls(
            session,
            ConversationId(state.conversation),
            state.created_ms,
            state.shared_with,
        )


def _device_ref(device: VerifiedDevice) -> DeviceRef:
    return (device.user, device.device, device.curve25519)


# ==================================================================== inbound


@dataclasses.dataclass(frozen=True, slots=True)
class InboundGroupInfo:
    """What an inbound session is bound to."""

    conversation: ConversationId
    session_id: str
    creator: UserId
    creator_device: DeviceId
    creator_key: str
    creator_ed25519: str
    first_known_index: int
    imported: bool

    @property
    def ref(self) -> SessionRef:
        return (self.conversation, self.creator_key, self.session_id)


@dataclasses.dataclass(frozen=True, slots=True)
class GroupPlaintext:
    """A decrypted Megolm message (``repr`` leaves the plaintext out)."""

    plaintext: bytes = dataclasses.field(repr=False)
    session_id: str
    message_index: int


@dataclasses.dataclass(frozen=True, slots=True)
class DecryptedMessage:
    """A decrypted conversation message whose binding checked out."""

    payload: MessagePayload
    session_id: str
    message_index: int


@dataclasses.dataclass(slots=True)
class _Inbound:
    session: vodozemac.InboundGroupSession
    conversation: ConversationId
    creator: UserId
    creator_device: DeviceId
    creator_key: str
    creator_ed25519: str
    imported: bool

    def info(self) -> InboundGroupInfo:
        return InboundGroupInfo(
            conversation=self.conversation,
            session_id=self.session.session_id,
            creator=self.creator,
            creator_device=self.creator_device,
            creator_key=self.creator_key,
            creator_ed25519=self.creator_ed25519,
            first_known_index=self.session.first_known_index,
            imported=self.imported,
        )


class _InboundEntry(msgspec.Struct, forbid_unknown_fields=True):
    session: str
    conversation: str
    creator: str
    creator_device: str
    creator_key: str
    creator_ed25519: str
    imported: bool


class _InboundState(msgspec.Struct, forbid_unknown_fields=True):
    sessions: list[_InboundEntry]
    seen: bytes


class InboundGroupStore:
    """Every inbound Megolm session of a device, and the indexes it accepted."""

    __slots__ = ("_sessions", "seen")

    def __init__(self, seen: SeenIndexes | None = None) -> None:
        self._sessions: dict[SessionRef, _Inbound] = {}
        self.seen = seen if seen is not None else SeenIndexes()

    def __len__(self) -> int:
        return len(self._sessions)

    def __repr__(self) -> str:
        return f"InboundGroupStore(sessions={len(self._sessions)}, seen={len(self.seen)})"

    def sessions(self) -> list[InboundGroupInfo]:
        return [entry.info() for entry in self._sessions.values()]

    def get(self, ref: SessionRef) -> InboundGroupInfo | None:
        entry = self._sessions.get(ref)
        return entry.info() if entry is not None else None

    def forget(self, conversation: ConversationId, session_id: str) -> int:
        """Delete the keys of a session (every copy in ``conversation``): for
        disappearing messages, whose keys must go with their text. The seen
        indexes stay, so a replay is still refused. Returns how many went."""
        gone = [ref for ref in self._sessions if ref[0] == conversation and ref[2] == session_id]
        for ref in gone:
            del self._sessions[ref]
        return len(gone)

    # ------------------------------------------------------------ adding keys

    def add_room_key(self, key: RoomKey, sender: VerifiedDevice) -> bool:
        """File a room key that ``sender`` sent over Olm; ``sender`` is its creator.

        The caller got ``key`` from ``OlmMachine.decrypt_to_device(sender, ...)``
        (use ``key_share.accept_room_key``). Returns whether the store
        changed: a copy of a known session is kept only if it reaches further
        back.
        """
        if key.algorithm != MEGOLM_ALGORITHM:
            raise BadPayload(f"unknown room key algorithm {key.algorithm!r}")
        try:
            session = vodozemac.InboundGroupSession(vodozemac.SessionKey(key.session_key))
        except vodozemac.SessionKeyDecodeException as exc:
            raise BadPayload("not a Megolm session key") from exc
        entry = _Inbound(
            session=session,
            conversation=key.conversation,
            creator=sender.user,
            creator_device=sender.device,
            creator_key=sender.curve25519,
            creator_ed25519=sender.ed25519,
            imported=False,
        )
        return self._file(entry, key.session_id)

    def import_session(self, exported: ExportedRoomKey) -> bool:
        """File an exported session from a *trusted* source: one's own
        verified device during linking, or one's own backup.

        The creator named in ``exported`` is taken on trust, so never call
        this with keys another user's device sent: room keys from others go
        through ``add_room_key``, which takes the creator from Olm.
        """
        if exported.algorithm != MEGOLM_ALGORITHM:
            raise BadPayload(f"unknown room key algorithm {exported.algorithm!r}")
        try:
            session = vodozemac.InboundGroupSession.import_session(
                vodozemac.ExportedSessionKey(exported.session_key)
            )
        except vodozemac.SessionKeyDecodeException as exc:
            raise BadPayload("not an exported Megolm session key") from exc
        if session.first_known_index != exported.first_index:
            raise BadPayload("the exported key starts at another index than it says")
        entry = _Inbound(
            session=session,
            conversation=exported.conversation,
            creator=UserId(exported.creator),
            creator_device=DeviceId(exported.creator_device),
            creator_key=exported.creator_key,
            creator_ed25519=exported.creator_ed25519,
            imported=True,
        )
        return self._file(entry, exported.session_id)

    def _file(self, entry: _Inbound, claimed_session_id: str) -> bool:
        if entry.session.session_id != claimed_session_id:
            raise BadPayload("the session key does not match its session id")
        ref = (entry.conversation, entry.creator_key, entry.session.session_id)
        known = self._sessions.get(ref)
        if known is not None and (
            known.session.first_known_index <= entry.session.first_known_index
        ):
            return False
        self._sessions[ref] = entry
        return True

    def export(self, ref: SessionRef, index: int | None = None) -> ExportedRoomKey:
        """Export a session at ``index`` (default: its first known index)."""
        entry = self._sessions.get(ref)
        if entry is None:
            raise UnknownSession("no such inbound session")
        at = entry.session.first_known_index if index is None else index
        exported = entry.session.export_at(at) if at >= 0 else None
        if exported is None:
            raise UnknownSession("the session is not known at that index")
        return ExportedRoomKey(
            conversation=entry.conversation,
            session_id=entry.session.session_id,
            session_key=exported.to_base64(),
            first_index=at,
            creator=entry.creator,
            creator_device=entry.creator_device,
            creator_key=entry.creator_key,
            creator_ed25519=entry.creator_ed25519,
        )

    # ------------------------------------------------------------ decrypting

    def decrypt(
        self, sender: VerifiedDevice, conversation: ConversationId, message: MegolmCiphertext
    ) -> GroupPlaintext:
        """Decrypt a message that ``sender`` sent in ``conversation`` and
        record its index. Prefer ``decrypt_message``, which also checks the
        payload's binding before recording the index."""
        result = self._decrypt(sender, conversation, message)
        self.seen.add(result.session_id, result.message_index)
        return result

    def decrypt_message(
        self,
        sender: VerifiedDevice,
        conversation: ConversationId,
        message_id: MessageId,
        body: bytes,
    ) -> DecryptedMessage:
        """Decrypt a ``Message.body`` and check it against its envelope.

        ``sender`` is the device the envelope names (``sender`` and
        ``sender_device``), resolved through its certificate. Raises
        ``UnknownSession`` (key not here yet: keep the message and retry
        when a key arrives), ``DecryptionFailed``, ``ReplayedMessage`` or
        ``BadPayload``.
        """
        result = self._decrypt(sender, conversation, MegolmCiphertext.from_body(body))
        payload = decode_payload(result.plaintext, MessagePayload)
        check_binding(payload, sender.user, sender.device, conversation, message_id)
        self.seen.add(result.session_id, result.message_index)
        return DecryptedMessage(payload, result.session_id, result.message_index)

    def _decrypt(
        self, sender: VerifiedDevice, conversation: ConversationId, message: MegolmCiphertext
    ) -> GroupPlaintext:
        entry = self._sessions.get((conversation, sender.curve25519, message.session_id))
        if entry is None or entry.creator != sender.user or entry.creator_device != sender.device:
            raise UnknownSession("no key from this device for this session and conversation")
        try:
            parsed = vodozemac.MegolmMessage.from_base64(message.ciphertext)
        except vodozemac.DecodeException as exc:
            raise DecryptionFailed("not a Megolm message") from exc
        if parsed.message_index() < entry.session.first_known_index:
            raise UnknownSession("the message is older than the key this device holds")
        try:
            decrypted = entry.session.decrypt(parsed)
        except vodozemac.MegolmDecryptionException as exc:
            raise DecryptionFailed("the Megolm message does not decrypt") from exc
        self.seen.check(message.session_id, decrypted.message_index)
        return GroupPlaintext(decrypted.plaintext, message.session_id, decrypted.message_index)

    def gaps(self, ref: SessionRef) -> list[int]:
        """Indexes of a session that were skipped: "missing message" markers."""
        entry = self._sessions.get(ref)
        if entry is None:
            return []
        return self.seen.gaps(entry.session.session_id, entry.session.first_known_index)

    # ------------------------------------------------------------ storage

    def pickle(self, key: bytes) -> str:
        """Every session and the seen indexes, sealed under the 32-byte ``key``."""
        _seal.check_pickle_key(key)
        state = _InboundState(
            sessions=[
                _InboundEntry(
                    session=entry.session.pickle(key),
                    conversation=entry.conversation,
                    creator=entry.creator,
                    creator_device=entry.creator_device,
                    creator_key=entry.creator_key,
                    creator_ed25519=entry.creator_ed25519,
                    imported=entry.imported,
                )
                for entry in self._sessions.values()
            ],
            seen=self.seen.to_bytes(),
        )
        return _seal.seal(key, _INBOUND_PURPOSE, msgspec.json.encode(state))

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> InboundGroupStore:
        try:
            state = msgspec.json.decode(
                _seal.unseal(key, _INBOUND_PURPOSE, pickle), type=_InboundState
            )
            store = cls(SeenIndexes.from_bytes(state.seen))
            for item in state.sessions:
                entry = _Inbound(
                    session=vodozemac.InboundGroupSession.from_pickle(item.session, key),
                    conversation=ConversationId(item.conversation),
                    creator=UserId(item.creator),
                    creator_device=DeviceId(item.creator_device),
                    creator_key=item.creator_key,
                    creator_ed25519=item.creator_ed25519,
                    imported=item.imported,
                )
                ref = (entry.conversation, entry.creator_key, entry.session.session_id)
                store._sessions[ref] = entry
        except (msgspec.DecodeError, vodozemac.PickleException) as exc:
            raise DecryptionFailed("the inbound session pickle does not open") from exc
        return store
