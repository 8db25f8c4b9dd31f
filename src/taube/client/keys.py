"""The device's keys, and what it knows and trusts of other devices.

Trust is on first use, per user: the first identity key seen for a user is
pinned; a different one later is a *key change*: it is recorded (the app
shows it in the chat) and, if the user had been verified, sending to them
stops until they are verified again. A device is used only if its
certificate verifies against the pinned identity key; a device without a
valid certificate gets no keys, and messages claiming to be from it are not
decrypted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from taube.client.profile import Profile
from taube.client.transport import Api
from taube.crypto import (
    CryptoError,
    DeviceAccount,
    IdentityKeyPair,
    InboundGroupStore,
    OlmMachine,
    OutboundGroup,
    VerifiedDevice,
    verify_device,
    verify_identity_key,
)
from taube.proto import http
from taube.proto.ids import ConversationId, DeviceId, UserId

log = logging.getLogger(__name__)

ONE_TIME_KEYS = 50  #: kept on the server; topped up when fewer than half remain


@dataclasses.dataclass(frozen=True)
class KeyChange:
    """A user's identity key changed (or a device without a valid certificate appeared)."""

    user: UserId
    verified: bool  #: the user had been verified: sending is blocked
    reason: str


class Keys:
    """Crypto state of this device, sealed in the profile after every change."""

    def __init__(
        self,
        profile: Profile,
        api: Api,
        user: UserId,
        device: DeviceId,
        identity: IdentityKeyPair,
        olm: OlmMachine,
        inbound: InboundGroupStore,
    ) -> None:
        self.profile = profile
        self.api = api
        self.user = user
        self.device = device
        self.identity = identity
        self.olm = olm
        self.inbound = inbound
        self.outbound: dict[ConversationId, OutboundGroup] = {}
        self.devices: dict[UserId, list[VerifiedDevice]] = {}
        self.changes: list[KeyChange] = []
        #: called after a change was recorded (the client shows it at once)
        self.on_change: Callable[[], None] | None = None

    # ----------------------------------------------------------- persistence

    @classmethod
    def create(
        cls,
        profile: Profile,
        api: Api,
        user: UserId,
        device: DeviceId,
        identity: IdentityKeyPair,
        olm: OlmMachine | None = None,
    ) -> Keys:
        """New keys for this device (``olm``: an account already in use, as when linking)."""
        olm = olm or OlmMachine(DeviceAccount.create(), user, device)
        keys = cls(profile, api, user, device, identity, olm, InboundGroupStore())
        keys.save()
        return keys

    @classmethod
    def load(cls, profile: Profile, api: Api, user: UserId, device: DeviceId) -> Keys:
        identity = profile.get_secret("identity")
        olm = profile.get_raw("olm")
        inbound = profile.get_raw("inbound")
        if identity is None or olm is None or inbound is None:
            raise CryptoError("the profile has no keys")
        keys = cls(
            profile,
            api,
            user,
            device,
            IdentityKeyPair.from_private_bytes(identity),
            OlmMachine.from_pickle(olm.decode(), profile.key),
            InboundGroupStore.from_pickle(inbound.decode(), profile.key),
        )
        for name, value in profile.execute("SELECT key, value FROM kv WHERE key LIKE 'outbound:%'"):
            conversation = ConversationId(name.split(":", 1)[1])
            keys.outbound[conversation] = OutboundGroup.from_pickle(
                bytes(value).decode(), profile.key
            )
        return keys

    def save(self) -> None:
        with self.profile.transaction():
            self.profile.put_secret("identity", self.identity.private_bytes())
            self.profile.put_raw("olm", self.olm.pickle(self.profile.key).encode())
            self.profile.put_raw("inbound", self.inbound.pickle(self.profile.key).encode())
            for conversation, group in self.outbound.items():
                self.profile.put_raw(
                    f"outbound:{conversation}", group.pickle(self.profile.key).encode()
                )

    # ----------------------------------------------------------- own keys

    async def publish(self) -> None:
        """Publish the identity key and this device's certificate and keys."""
        await self.api.call("PUT", "/keys/identity", self.identity.identity_key(self.user))
        account = self.olm.account
        certificate = self.identity.certify(account.device_keys(self.user, self.device))
        await self.api.post(
            "/keys/upload",
            http.UploadKeys(
                device_keys=certificate,
                one_time_keys=account.one_time_keys(self.user, self.device, ONE_TIME_KEYS),
                fallback_key=account.fallback_key(self.user, self.device),
            ),
            http.KeyCount,
        )
        account.mark_keys_as_published()
        self.save()

    async def replenish(self) -> None:
        count = await self.api.get("/keys/count", http.KeyCount)
        if count.one_time_keys >= ONE_TIME_KEYS // 2:
            return
        account = self.olm.account
        await self.api.post(
            "/keys/upload",
            http.UploadKeys(
                one_time_keys=account.one_time_keys(
                    self.user, self.device, ONE_TIME_KEYS - count.one_time_keys
                ),
            ),
            http.KeyCount,
        )
        account.mark_keys_as_published()
        self.save()

    # ----------------------------------------------------------- others' devices

    def pinned(self, user: UserId) -> tuple[str, bool] | None:
        row = self.profile.execute(
            "SELECT identity_key, verified FROM identities WHERE user_id = ?", user
        ).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def blocked(self, users: list[UserId]) -> list[UserId]:
        """Verified users whose identity key changed since they were verified."""
        rows = self.profile.execute(
            "SELECT user_id FROM identities WHERE verified = 1 AND changed = 1"
        ).fetchall()
        changed = {UserId(r[0]) for r in rows}
        return [u for u in users if u in changed]

    def mark_verified(self, user: UserId, identity_key: str) -> None:
        self.profile.execute(
            "INSERT INTO identities (user_id, identity_key, verified) VALUES (?, ?, 1)"
            " ON CONFLICT (user_id) DO UPDATE SET identity_key = excluded.identity_key,"
            " verified = 1, changed = 0",
            user,
            identity_key,
        )

    async def refresh(self, users: list[UserId]) -> None:
        """Fetch and verify the devices of ``users`` (cached until a key change)."""
        found = await self.api.post("/keys/query", http.QueryKeys(users=users), http.KeysResponse)
        seen = set()
        for entry in found.users:
            user = UserId(entry.user)
            seen.add(user)
            self.devices[user] = self._verify(user, entry)
        for user in users:
            if user not in seen:
                self.devices[user] = []
        if self.changes and self.on_change is not None:
            self.on_change()

    def _verify(self, user: UserId, entry: http.UserKeys) -> list[VerifiedDevice]:
        if entry.identity is None:
            return []
        if entry.identity.user != user:  # validly signed, but another user's key
            self.changes.append(KeyChange(user, False, "identity key of another user"))
            return []
        try:
            identity_key = verify_identity_key(entry.identity)
        except CryptoError:
            self.changes.append(KeyChange(user, False, "identity key with a bad signature"))
            return []
        pinned = self.pinned(user)
        if pinned is None:
            self.profile.execute(
                "INSERT INTO identities (user_id, identity_key) VALUES (?, ?)", user, identity_key
            )
        elif pinned[0] != identity_key:
            verified = pinned[1]
            self.profile.execute(
                "UPDATE identities SET identity_key = ?, changed = 1 WHERE user_id = ?",
                identity_key,
                user,
            )
            self.changes.append(KeyChange(user, verified, "identity key changed"))
        devices = []
        for keys in entry.devices:
            if keys.user != user:  # its certificate says so: not a device of this user
                self.changes.append(
                    KeyChange(user, False, f"device {keys.device} is another user's")
                )
                continue
            try:
                devices.append(verify_device(identity_key, keys))
            except CryptoError:
                log.warning("device without a valid certificate", extra={"device": keys.device})
                self.changes.append(
                    KeyChange(user, False, f"device {keys.device} has no valid certificate")
                )
        return devices

    async def devices_of(self, users: list[UserId]) -> list[VerifiedDevice]:
        missing = [u for u in users if u not in self.devices]
        if missing:
            await self.refresh(missing)
        return [d for u in users for d in self.devices.get(u, [])]

    async def find_device(self, user: UserId, device: DeviceId) -> VerifiedDevice | None:
        """A verified device of ``user``; refreshes once if unknown."""
        for attempt in range(2):
            if attempt or user not in self.devices:
                await self.refresh([user])
            for known in self.devices.get(user, []):
                if known.device == device:
                    return known
        return None

    def forget(self, user: UserId) -> None:
        """``keys.changed``: look the user up again next time."""
        self.devices.pop(user, None)
