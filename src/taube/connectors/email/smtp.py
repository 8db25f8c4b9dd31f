"""Sending mail: SMTP submission with AUTH, one session kept open between mails.

Opening a session (TCP, TLS, AUTH) costs more than a small chat mail, so
``Submission`` keeps one open while mail keeps coming and opens it again
when the server closed it (servers drop idle sessions after a few minutes).
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import aiosmtplib

from taube.connectors.email.account import MailAccount, Security

log = logging.getLogger(__name__)

TIMEOUT = 60.0
#: an idle session is closed by us after this many seconds
IDLE_SECONDS = 60.0


class SmtpError(Exception):
    """The server refused the mail (``permanent``: retrying will not help;
    ``login``: it refused the user name or password)."""

    def __init__(self, message: str, *, permanent: bool, login: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.login = login


def _client(account: MailAccount) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=account.smtp_host,
        port=account.smtp_port,
        use_tls=account.smtp_security is Security.SSL,
        start_tls=account.smtp_security is Security.STARTTLS,
        timeout=TIMEOUT,
    )


class Submission:
    """The connector's way out: ``send`` mails over one reused session."""

    def __init__(self, account: MailAccount) -> None:
        self._account = account
        self._session: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None

    async def send(self, message: EmailMessage, recipients: list[str]) -> None:
        """Submit ``message`` to ``recipients`` (the envelope; ``To`` may hide them)."""
        async with self._lock:
            for attempt in (1, 2):
                session = await self.open()
                try:
                    await session.send_message(
                        message, sender=self._account.address, recipients=recipients
                    )
                except aiosmtplib.SMTPServerDisconnected:
                    self._session = None  # closed while idle: once more, afresh
                    if attempt == 2:
                        raise SmtpError("the server hung up", permanent=False) from None
                    continue
                except aiosmtplib.SMTPException as exc:
                    await self._drop()
                    raise _error(exc) from exc
                break
            self._arm_idle()

    async def open(self) -> aiosmtplib.SMTP:
        """The session, logged in (made anew if there is none)."""
        if self._session is not None and self._session.is_connected:
            return self._session
        session = _client(self._account)
        try:
            await session.connect()
            await session.login(self._account.login, self._account.password)
        except aiosmtplib.SMTPException as exc:
            session.close()
            raise _error(exc) from exc
        self._session = session
        return session

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(IDLE_SECONDS, lambda: loop.create_task(self.close()))

    async def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    async def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        session, self._session = self._session, None
        if session is not None and session.is_connected:
            try:
                await session.quit()
            except aiosmtplib.SMTPException:
                session.close()


def _error(exc: aiosmtplib.SMTPException) -> SmtpError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return SmtpError(f"recipients refused: {exc}", permanent=True)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SmtpError(f"log-in refused: {exc.code} {exc.message}", permanent=False, login=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return SmtpError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600)
    return SmtpError(str(exc), permanent=False)


async def send(account: MailAccount, message: EmailMessage, recipients: list[str]) -> None:
    """One mail in a session of its own."""
    submission = Submission(account)
    try:
        await submission.send(message, recipients)
    finally:
        await submission.close()


async def check(account: MailAccount) -> None:
    """Connect and log in (raises ``SmtpError``)."""
    submission = Submission(account)
    try:
        await submission.open()
    finally:
        await submission.close()
