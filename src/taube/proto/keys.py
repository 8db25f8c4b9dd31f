"""Key directory types: identity keys, device certificates, one-time keys.

The server stores and serves these and checks their signatures; trust is
decided by clients (see ``docs/protocol.md``, *Identity and trust*).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from taube.proto.base import Wire
from taube.proto.ids import DeviceIdField, UserIdField

Key = Annotated[str, Meta(min_length=43, max_length=44, pattern=r"^[A-Za-z0-9+/]{43}=?(?!\n)$")]
Signature = Annotated[
    str, Meta(min_length=86, max_length=88, pattern=r"^[A-Za-z0-9+/]{86}(==)?(?!\n)$")
]
KeyIdStr = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9+/=_-]+(?!\n)$")]


class IdentityKey(Wire, kw_only=True):
    """A user's Ed25519 identity key, self-signed (proof of possession)."""

    user: UserIdField
    identity_key: Key
    signature: Signature


class DeviceKeys(Wire, kw_only=True):
    """A device certificate: the device's Olm keys signed by the identity key."""

    user: UserIdField
    device: DeviceIdField
    curve25519: Key
    ed25519: Key
    signature: Signature


class OneTimeKey(Wire, kw_only=True):
    """A Curve25519 one-time (or fallback) key signed by the device's Ed25519 key."""

    user: UserIdField
    device: DeviceIdField
    key_id: KeyIdStr
    key: Key
    fallback: bool = False
    signature: Signature
