"""The account on this device: its profile, its server, its keys.

``Session`` opens the profile directory, signs up or logs in (the identity
key from a new key pair or from the recovery-code backup), and holds what
every other part needs: the profile database, the HTTP API and the device's
``Keys``. Linking a new device (``linking``) ends here too, in ``start``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from taube.client import events as ev
from taube.client.errors import ClientError, NotLoggedIn
from taube.client.keys import Keys
from taube.client.profile import Profile
from taube.client.transport import AiohttpTransport, Api
from taube.crypto import (
    IdentityBackup,
    IdentityKeyPair,
    OlmMachine,
    new_recovery_code,
    unwrap_identity_key,
    wrap_identity_key,
)
from taube.proto import http
from taube.proto.ids import DeviceId, UserId, parse_address

Emit = Callable[[ev.Event], None]


class Session:
    def __init__(
        self,
        profile_dir: Path,
        passphrase: str | None,
        clock: Callable[[], int],
        emit: Emit,
    ) -> None:
        self.profile_dir = profile_dir
        self.passphrase = passphrase
        self.clock = clock
        self._emit = emit
        self.profile: Profile | None = None
        self.transport: AiohttpTransport | None = None
        self.api: Api | None = None
        self._keys: Keys | None = None
        self.user = UserId("")
        self.device = DeviceId("")

    async def open(self) -> None:
        """Open the profile; a device that has an account picks up where it was."""
        self.profile = await asyncio.to_thread(Profile, self.profile_dir, self.passphrase)
        server = self.profile.get_text("server")
        if server is not None:
            api = self._open_api(server)
            self.user = UserId(self.profile.get_text("user") or "")
            self.device = DeviceId(self.profile.get_text("device") or "")
            api.token = (self.profile.get_secret("token") or b"").decode()
            self._keys = Keys.load(self.profile, api, self.user, self.device)
            self._keys.on_change = self.emit_key_changes

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()
        if self.profile is not None:
            self.profile.close()

    def _open_api(self, server: str) -> Api:
        self.transport = AiohttpTransport(server)
        self.api = Api(self.transport)
        return self.api

    @property
    def keys(self) -> Keys:
        if self._keys is None:
            raise NotLoggedIn("register or log in first")
        return self._keys

    @property
    def logged_in(self) -> bool:
        return self._keys is not None

    def need(self) -> tuple[Profile, Api, Keys]:
        if self.profile is None or self.api is None or self._keys is None:
            raise NotLoggedIn("register or log in first")
        return self.profile, self.api, self._keys

    @property
    def ws_url(self) -> str:
        assert self.transport is not None
        return self.transport.base_url.replace("http", "ws", 1) + "/api/v1/ws"

    def emit_key_changes(self) -> None:
        keys = self.keys
        while keys.changes:
            change = keys.changes.pop(0)
            self._emit(ev.KeyChanged(change.user, change.verified, change.reason))

    # ---------------------------------------------------------------- account

    async def register(self, server: str, address: str, password: str, device_name: str) -> str:
        user = parse_address(address)
        identity = IdentityKeyPair.generate()
        session = await self.new_session(server, "/accounts", user, password, device_name)
        keys = self.start(server, session, identity)
        await keys.publish()
        code = new_recovery_code()
        backup = await asyncio.to_thread(wrap_identity_key, identity, code, user)
        assert self.api is not None
        await self.api.call("PUT", "/keys/backup", http.KeyBackup(sealed=backup.to_bytes()))
        return str(code)

    async def login(
        self, server: str, address: str, password: str, recovery_code: str, device_name: str
    ) -> None:
        user = parse_address(address)
        session = await self.new_session(server, "/sessions", user, password, device_name)
        assert self.api is not None
        self.api.token = session.token
        backup = await self.api.get("/keys/backup", http.KeyBackup)
        identity = await asyncio.to_thread(
            unwrap_identity_key,
            IdentityBackup.from_bytes(backup.sealed),
            recovery_code,
            expected_user=user,
        )
        keys = self.start(server, session, identity)
        await keys.publish()

    async def new_session(
        self, server: str, path: str, user: UserId, password: str, device_name: str
    ) -> http.Session:
        """Create a device on the server (``/accounts``: and the account)."""
        if self.logged_in:
            raise ClientError("this profile already has an account")
        api = self._open_api(server)
        body = http.Credentials(address=user, password=password, device_name=device_name)
        return await api.post(path, body, http.Session)

    def start(
        self,
        server: str,
        session: http.Session,
        identity: IdentityKeyPair,
        olm: OlmMachine | None = None,
    ) -> Keys:
        """The device has its identity key: keep the account in the profile."""
        assert self.profile is not None
        assert self.api is not None
        self.user, self.device = UserId(session.user), DeviceId(session.device)
        self.api.token = session.token
        self.profile.put_text("server", server)
        self.profile.put_text("user", self.user)
        self.profile.put_text("device", self.device)
        self.profile.put_secret("token", session.token.encode())
        self._keys = Keys.create(self.profile, self.api, self.user, self.device, identity, olm)
        self._keys.on_change = self.emit_key_changes
        return self._keys

    async def logout(self) -> None:
        _, api, _ = self.need()
        await api.call("DELETE", "/sessions/current")

    async def devices(self) -> list[http.DeviceInfo]:
        _, api, _ = self.need()
        return (await api.get("/devices", http.DeviceList)).devices

    async def remove_device(self, device: str, password: str) -> None:
        _, api, _ = self.need()
        await api.call("DELETE", f"/devices/{device}", http.RemoveDevice(password=password))
