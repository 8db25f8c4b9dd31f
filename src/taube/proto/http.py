"""Request and response bodies of the HTTP API (``/api/v1``)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from taube.proto.base import Wire
from taube.proto.errors import ErrorCode
from taube.proto.ids import (
    BlobIdField,
    ConversationIdField,
    DeviceIdField,
    UserIdField,
)
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.proto.state import Kind, Role, StateEvent

Password = Annotated[str, Meta(min_length=8, max_length=1024)]
DeviceName = Annotated[str, Meta(max_length=100)]


class ErrorBody(Wire, kw_only=True):
    error: ErrorCode
    message: str
    retry_after: float | None = None


class ServerInfo(Wire, kw_only=True):
    server: str
    version: str
    protocol: int
    min_protocol: int
    domain: str
    max_frame_bytes: int
    max_blob_bytes: int


class Credentials(Wire, kw_only=True):
    """Register or log in; either creates a new device with its own token."""

    address: Annotated[str, Meta(max_length=320)]
    password: Password
    device_name: DeviceName = ""


class Session(Wire, kw_only=True):
    user: UserIdField
    device: DeviceIdField
    token: str


class DeviceInfo(Wire, kw_only=True):
    device: DeviceIdField
    name: str
    created_ms: int
    last_seen_ms: int
    current: bool = False


class DeviceList(Wire, kw_only=True):
    devices: list[DeviceInfo]


class RemoveDevice(Wire, kw_only=True):
    """Removing a device needs the password again."""

    password: Password


class RenameDevice(Wire, kw_only=True):
    name: DeviceName


class UploadKeys(Wire, kw_only=True):
    device_keys: DeviceKeys | None = None
    one_time_keys: Annotated[list[OneTimeKey], Meta(max_length=200)] = []
    fallback_key: OneTimeKey | None = None


class KeyCount(Wire, kw_only=True):
    one_time_keys: int
    fallback_key: bool


class QueryKeys(Wire, kw_only=True):
    users: Annotated[list[UserIdField], Meta(min_length=1, max_length=1000)]


class UserKeys(Wire, kw_only=True):
    user: UserIdField
    identity: IdentityKey | None = None
    devices: list[DeviceKeys] = []


class KeysResponse(Wire, kw_only=True):
    users: list[UserKeys]


class DeviceRef(Wire, kw_only=True):
    user: UserIdField
    device: DeviceIdField


class ClaimKeys(Wire, kw_only=True):
    devices: Annotated[list[DeviceRef], Meta(min_length=1, max_length=1000)]


class ClaimResponse(Wire, kw_only=True):
    """One key per device that had one; devices with none are left out."""

    keys: list[OneTimeKey]


class CreateConversation(Wire, kw_only=True):
    """The create event followed by the events adding the first members."""

    events: Annotated[list[StateEvent], Meta(min_length=1, max_length=1100)]


class ConversationInfo(Wire, kw_only=True):
    conversation: ConversationIdField
    kind: Kind
    members: dict[UserIdField, Role]
    depth: int
    head: str
    timer_seconds: int = 0
    seq: int = 0


class ConversationList(Wire, kw_only=True):
    conversations: list[ConversationInfo]


class StateChain(Wire, kw_only=True):
    events: list[StateEvent]


class Appended(Wire, kw_only=True):
    """A state event's place in the conversation log."""

    seq: int


class KeyBackup(Wire, kw_only=True):
    """The identity key sealed with the recovery code (see ``taube.crypto.backup``)."""

    sealed: Annotated[bytes, Meta(max_length=16384)]


class BlobCreated(Wire, kw_only=True):
    blob: BlobIdField
    size: int


class TurnCredentials(Wire, kw_only=True):
    """Time-limited TURN credentials for this device's calls (coturn's
    shared-secret REST scheme); ``urls`` is empty when the server has no TURN."""

    urls: list[str]
    username: str = ""
    credential: str = ""
    #: when they stop working (milliseconds since the epoch)
    expires_ms: int = 0
