"""``taube mail run``: the connector, set up from the CLI or from the user's
other devices.

``MailService`` runs the ``EmailConnector`` of the account the device holds
and answers the control messages of ``taube.connectors.control``: a settings
screen (the web app) on another of the user's devices asks for the status,
hands over an account (checked by logging in before it is kept) or takes it
back. With no account it waits for one. Every change of state goes to the
devices that asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from taube.client import Client, ClientError
from taube.connectors import control
from taube.connectors.control import State, Status
from taube.connectors.email import autoconfig, smtp
from taube.connectors.email.account import SECRET_NAME, MailAccount, Security
from taube.connectors.email.connector import (
    KEY_SECRET,
    NETWORK,
    EmailConnector,
    Progress,
    load_key,
    verify_account,
)
from taube.connectors.email.imap import ImapError, LoginRefused
from taube.crypto import VerifiedDevice
from taube.proto.ids import DeviceId

log = logging.getLogger(__name__)

#: the default ports of each kind of security
PORTS = {
    (Security.SSL, "imap"): 993,
    (Security.STARTTLS, "imap"): 143,
    (Security.PLAIN, "imap"): 143,
    (Security.SSL, "smtp"): 465,
    (Security.STARTTLS, "smtp"): 587,
    (Security.PLAIN, "smtp"): 587,
}
MAX_FIELD = 1024


def _security(value: str, what: str) -> Security:
    try:
        return Security(value)
    except ValueError:
        raise control.BadControl(f"{what} security must be ssl, starttls or plain") from None


def _port(port: int, security: Security, kind: str) -> int:
    if port == 0:
        return PORTS[security, kind]
    if not 0 < port < 65536:
        raise control.BadControl(f"{kind} port {port} is not a port")
    return port


async def account_from(settings: control.MailSettings) -> MailAccount:
    """The account ``settings`` describe: the servers as given, or found by
    the domain's autoconfig (``TAUBE_MAIL_AUTOCONFIG_URL``: ask there
    instead). Raises ``BadControl`` or ``AutoconfigError``."""
    address = settings.address.strip().lower()
    local, at, domain = address.partition("@")
    if not (local and at and domain) or any(c.isspace() for c in address) or len(address) > 254:
        raise control.BadControl(f"{settings.address!r} is not an e-mail address")
    if not settings.password:
        raise control.BadControl("the password is missing")
    fields = (settings.password, settings.imap_host, settings.smtp_host, settings.user)
    if any(len(f) > MAX_FIELD for f in (*fields, settings.display_name)):
        raise control.BadControl("a field is too long")
    if settings.imap_host and settings.smtp_host:
        imap_security = _security(settings.imap_security, "IMAP")
        smtp_security = _security(settings.smtp_security, "SMTP")
        servers = autoconfig.ServerSettings(
            imap_host=settings.imap_host.strip(),
            imap_port=_port(settings.imap_port, imap_security, "imap"),
            imap_security=imap_security,
            smtp_host=settings.smtp_host.strip(),
            smtp_port=_port(settings.smtp_port, smtp_security, "smtp"),
            smtp_security=smtp_security,
        )
    elif settings.imap_host or settings.smtp_host:
        raise control.BadControl("give both the IMAP and the SMTP server, or neither (autoconfig)")
    else:
        where = os.environ.get("TAUBE_MAIL_AUTOCONFIG_URL")
        servers = await autoconfig.discover(address, [where] if where else None)
    return MailAccount(
        address=address,
        password=settings.password,
        imap_host=servers.imap_host,
        imap_port=servers.imap_port,
        imap_security=servers.imap_security,
        smtp_host=servers.smtp_host,
        smtp_port=servers.smtp_port,
        smtp_security=servers.smtp_security,
        user=settings.user.strip() or servers.user,
        display_name=settings.display_name.strip(),
    )


def keep_account(client: Client, account: MailAccount) -> str:
    """Keep ``account`` sealed in the device's profile; returns the
    fingerprint of the connector's OpenPGP key (a new key for a new address)."""
    profile = client.profile
    assert profile is not None
    before = profile.get_secret(SECRET_NAME)
    if before is not None and MailAccount.from_bytes(before).address != account.address:
        forget_secret(client, KEY_SECRET)
    profile.put_secret(SECRET_NAME, account.to_bytes())
    return load_key(client, account.address).fingerprint


def forget_secret(client: Client, name: str) -> None:
    profile = client.profile
    assert profile is not None
    profile.execute("DELETE FROM kv WHERE key = ?", name)


class MailService:
    def __init__(
        self,
        client: Client,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_status: Callable[[Status], None] | None = None,
    ) -> None:
        self.client = client
        self._on_progress = on_progress
        self._on_status = on_status
        self.connector: EmailConnector | None = None
        self.state = State.UNCONFIGURED
        self.error = ""
        #: the user's devices that asked: they hear of every change
        self._watchers: dict[DeviceId, VerifiedDevice] = {}
        self._changed = asyncio.Event()
        self._busy = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Relay with the account the device holds (waiting for one) until
        cancelled; a new account or a disconnect restarts the connector."""
        self.client.handle_to_device(control.PREFIX, self._on_control)
        self._spawn(self._hello())
        try:
            while True:
                self._changed.clear()
                try:
                    connector = EmailConnector.open(
                        self.client, on_progress=self._on_progress, on_status=self._connector_status
                    )
                except LookupError:
                    self._set(State.UNCONFIGURED)
                    await self._changed.wait()
                    continue
                self.connector = connector
                self._set(State.CHECKING)
                try:
                    await self._run_until_changed(connector)
                finally:
                    self.connector = None
                    connector.state.close()
        finally:
            for task in self._tasks:
                task.cancel()

    async def _run_until_changed(self, connector: EmailConnector) -> None:
        running = asyncio.create_task(connector.run())
        changed = asyncio.create_task(self._changed.wait())
        try:
            await asyncio.wait({running, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (running, changed):
                task.cancel()
            await asyncio.gather(changed, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError):
                await running  # (raises what stopped the connector)

    def _connector_status(self, state: State, error: str) -> None:
        self._set(state, error)

    def _set(self, state: State, error: str = "") -> None:
        if (state, error) == (self.state, self.error):
            return
        self.state, self.error = state, error
        status = self.status()
        if self._on_status is not None:
            self._on_status(status)
        for device in list(self._watchers.values()):
            self._spawn(self._send(device, status))

    def status(self, **answer: Any) -> Status:
        account = self._account()
        return Status(
            network=NETWORK,
            state=self.state,
            error=self.error,
            address=account.address if account is not None else "",
            fingerprint=self.connector.key.fingerprint if self.connector is not None else "",
            **answer,
        )

    def _account(self) -> MailAccount | None:
        profile = self.client.profile
        raw = profile.get_secret(SECRET_NAME) if profile is not None else None
        return MailAccount.from_bytes(raw) if raw is not None else None

    # ------------------------------------------------------------ control

    async def _hello(self) -> None:
        """Tell the user's other devices that this one serves e-mail."""
        try:
            devices = await self.client.own_devices()
        except ClientError as exc:
            log.warning("connector hello: %s", exc)
            return
        for device in devices:
            await self._send(device, self.status())

    async def _on_control(
        self, sender: VerifiedDevice, type_: str, content: dict[str, Any]
    ) -> None:
        if not self.client.is_own_device(sender):
            log.warning("connector settings from a device that is not the user's: refused")
            return
        self._watchers[sender.device] = sender
        try:
            if type_ == control.QUERY:
                query = control.decode(content, control.Query)
                self._spawn(self._send(sender, self.status(request=query.request)))
            elif type_ == control.CONFIGURE:
                request = control.decode(content, control.Configure)
                self._check_network(request.network)
                self._spawn(self._configure(sender, request))
            elif type_ == control.DISCONNECT:
                stop = control.decode(content, control.Disconnect)
                self._check_network(stop.network)
                self._spawn(self._disconnect(sender, stop))
            else:
                raise control.BadControl(f"unknown request {type_}")
        except control.BadControl as exc:
            asked = content.get("request")
            answer = self.status(
                request=asked[: control.MAX_REQUEST] if isinstance(asked, str) else "",
                outcome=State.FAILED,
                reason=f"bad request: {exc}",
            )
            self._spawn(self._send(sender, answer))

    @staticmethod
    def _check_network(network: str) -> None:
        if network != NETWORK:
            raise control.BadControl(f"this connector serves {NETWORK}, not {network!r}")

    async def _configure(self, sender: VerifiedDevice, request: control.Configure) -> None:
        """Check the account by logging in; keep it only if that worked."""
        async with self._busy:
            await self._send(sender, self.status(request=request.request, outcome=State.CHECKING))
            outcome, reason = State.CONNECTED, ""
            try:
                account = await account_from(request.account)
                await verify_account(account)
            except (LoginRefused, smtp.SmtpError) as exc:
                login = isinstance(exc, LoginRefused) or getattr(exc, "login", False)
                outcome, reason = (State.AUTH_FAILED if login else State.FAILED), str(exc)
            except (control.BadControl, autoconfig.AutoconfigError) as exc:
                outcome, reason = State.FAILED, str(exc)
            except (ImapError, OSError, TimeoutError) as exc:
                outcome, reason = State.FAILED, f"cannot reach the server: {exc or repr(exc)}"
            else:
                keep_account(self.client, account)
                log.info("mail account set from another device: %r", account)
                self._set(State.CHECKING)  # (the connector restarts with it now)
                self._changed.set()
            await self._send(
                sender, self.status(request=request.request, outcome=outcome, reason=reason)
            )

    async def _disconnect(self, sender: VerifiedDevice, request: control.Disconnect) -> None:
        async with self._busy:
            forget_secret(self.client, SECRET_NAME)
            self._set(State.UNCONFIGURED)
            self._changed.set()
            answer = self.status(request=request.request, outcome=State.UNCONFIGURED)
            await self._send(sender, answer)

    async def _send(self, device: VerifiedDevice, status: Status) -> None:
        try:
            await self.client.send_to_device(device, control.STATUS, status.to_content())
        except (ClientError, OSError, TimeoutError) as exc:
            log.info("status to device %s not sent: %s", device.device, exc)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
