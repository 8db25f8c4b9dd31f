"""A device's Olm account: its long-term keys, one-time keys and fallback key.

Each device has a Curve25519 key (for Olm key agreement) and an Ed25519 key
(to sign its one-time keys); the user's identity key certifies both
(``IdentityKeyPair.certify``). One-time keys are signed by the device so that
a client can check, before building a session, that the server handed out a
key the device really published (DESIGN §4); the signature is over the
canonical JSON of the ``OneTimeKey`` under ``taube.otk.v1``, like every other
signed object, rather than over the bare key as in Matrix.

Keys stay "unpublished" in the account until ``mark_keys_as_published``;
call it only once the server has acknowledged the upload, so that a failed
upload is simply retried with the same keys.
"""

from __future__ import annotations

from typing import Protocol, cast

import msgspec
import vodozemac

from taube.crypto import _seal
from taube.crypto.errors import DecryptionFailed
from taube.crypto.identity import UNSIGNED
from taube.proto.ids import DeviceId, UserId
from taube.proto.keys import DeviceKeys, OneTimeKey
from taube.proto.signing import DOMAIN_ONE_TIME_KEY, signing_bytes

_PURPOSE = b"taube.pickle.account.v1"


class _FallbackKeys(Protocol):
    """The part of ``vodozemac.Account`` its 0.10 type stubs leave out."""

    @property
    def fallback_key(self) -> dict[str, vodozemac.Curve25519PublicKey]: ...

    def generate_fallback_key(self) -> None: ...


class DeviceAccount:
    """One device's Olm account (wraps ``vodozemac.Account``)."""

    __slots__ = ("_account",)

    def __init__(self, account: vodozemac.Account) -> None:
        self._account = account

    @classmethod
    def create(cls) -> DeviceAccount:
        """A new account with fresh long-term keys."""
        return cls(vodozemac.Account())

    @property
    def raw(self) -> vodozemac.Account:
        """The wrapped vodozemac account (for ``taube.crypto.olm``)."""
        return self._account

    @property
    def curve25519(self) -> str:
        return self._account.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        return self._account.ed25519_key.to_base64()

    @property
    def max_one_time_keys(self) -> int:
        """How many unpublished one-time keys the account keeps at most."""
        return self._account.max_number_of_one_time_keys

    def __repr__(self) -> str:
        return f"DeviceAccount(curve25519={self.curve25519!r})"

    def sign(self, domain: bytes, obj: msgspec.Struct) -> str:
        """Sign ``obj``'s canonical JSON under ``domain`` with the device key."""
        return self._account.sign(signing_bytes(domain, obj)).to_base64()

    def device_keys(self, user: UserId, device: DeviceId) -> DeviceKeys:
        """The device's keys, unsigned: certify them with the identity key."""
        return DeviceKeys(
            user=user,
            device=device,
            curve25519=self.curve25519,
            ed25519=self.ed25519,
            signature=UNSIGNED,
        )

    def one_time_keys(self, user: UserId, device: DeviceId, n: int) -> list[OneTimeKey]:
        """Generate ``n`` one-time keys; every unpublished one, signed.

        Keys generated earlier but not yet marked published are included, so
        a retried upload carries the same keys. ``n`` is at most
        ``max_one_time_keys``: vodozemac silently drops the oldest keys
        beyond its capacity, and a dropped key that was published would make
        the session a peer builds on it undecryptable.
        """
        if not 0 <= n <= self.max_one_time_keys:
            raise ValueError(f"n must be between 0 and {self.max_one_time_keys}")
        if n:
            self._account.generate_one_time_keys(n)
        return [
            self._signed_key(user, device, key_id, key.to_base64(), fallback=False)
            for key_id, key in sorted(self._account.one_time_keys.items())
        ]

    def fallback_key(self, user: UserId, device: DeviceId) -> OneTimeKey:
        """Generate a new fallback key and return it signed (``fallback=True``).

        The server hands the fallback key out when the one-time keys run
        out; it is not used up. The previous fallback key stays usable in
        the account for sessions already under way.
        """
        account = cast(_FallbackKeys, self._account)
        account.generate_fallback_key()
        ((key_id, key),) = account.fallback_key.items()
        return self._signed_key(user, device, key_id, key.to_base64(), fallback=True)

    def mark_keys_as_published(self) -> None:
        """The server has the keys: stop returning them as unpublished."""
        self._account.mark_keys_as_published()

    def _signed_key(
        self, user: UserId, device: DeviceId, key_id: str, key: str, *, fallback: bool
    ) -> OneTimeKey:
        unsigned = OneTimeKey(
            user=user,
            device=device,
            key_id=key_id,
            key=key,
            fallback=fallback,
            signature=UNSIGNED,
        )
        return msgspec.structs.replace(unsigned, signature=self.sign(DOMAIN_ONE_TIME_KEY, unsigned))

    def pickle(self, key: bytes) -> str:
        """The account encrypted under the 32-byte ``key``, to store locally."""
        _seal.check_pickle_key(key)
        return _seal.seal(key, _PURPOSE, self._account.pickle(key).encode("ascii"))

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> DeviceAccount:
        """Raises ``DecryptionFailed`` for a wrong key or a damaged pickle."""
        inner = _seal.unseal(key, _PURPOSE, pickle).decode("ascii")
        try:
            return cls(vodozemac.Account.from_pickle(inner, key))
        except vodozemac.PickleException as exc:
            raise DecryptionFailed("the account pickle does not open") from exc
