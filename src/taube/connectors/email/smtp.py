"""Sending mail: one SMTP submission per message, with AUTH."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from taube.connectors.email.account import MailAccount, Security

TIMEOUT = 60.0


class SmtpError(Exception):
    """The server refused the mail (``permanent``: retrying will not help)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


async def send(account: MailAccount, message: EmailMessage, recipients: list[str]) -> None:
    """Submit ``message`` to ``recipients`` (the envelope; ``To`` may hide them)."""
    try:
        await aiosmtplib.send(
            message,
            sender=account.address,
            recipients=recipients,
            hostname=account.smtp_host,
            port=account.smtp_port,
            username=account.login,
            password=account.password,
            use_tls=account.smtp_security is Security.SSL,
            start_tls=account.smtp_security is Security.STARTTLS,
            timeout=TIMEOUT,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise SmtpError(f"recipients refused: {exc}", permanent=True) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise SmtpError(f"{exc.code} {exc.message}", permanent=500 <= exc.code < 600) from exc
    except aiosmtplib.SMTPException as exc:
        raise SmtpError(str(exc), permanent=False) from exc


async def check(account: MailAccount) -> None:
    """Connect and log in (raises ``SmtpError``)."""
    client = aiosmtplib.SMTP(
        hostname=account.smtp_host,
        port=account.smtp_port,
        use_tls=account.smtp_security is Security.SSL,
        start_tls=account.smtp_security is Security.STARTTLS,
        timeout=TIMEOUT,
    )
    try:
        async with client:
            await client.login(account.login, account.password)
    except aiosmtplib.SMTPException as exc:
        raise SmtpError(str(exc), permanent=True) from exc
