"""The mail account a connector uses: IMAP in, SMTP out.

The settings (with the password) are kept in the connector device's
profile, sealed with the profile key like the device's own secrets; the
taube server never sees them.
"""

from __future__ import annotations

import enum

import msgspec

#: where the account lives in the profile (``Profile.put_secret``)
SECRET_NAME = "connector:email:account"  # noqa: S105 - the name, not a secret


class Security(enum.StrEnum):
    SSL = "ssl"  #: TLS from the first byte (IMAPS 993, SMTPS 465)
    STARTTLS = "starttls"  #: plain, then upgraded (IMAP 143, submission 587)
    PLAIN = "plain"  #: no TLS at all: loopback and tests only


class MailAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    address: str
    password: str
    imap_host: str
    imap_port: int = 993
    imap_security: Security = Security.SSL
    smtp_host: str
    smtp_port: int = 465
    smtp_security: Security = Security.SSL
    #: the login name, if not the address
    user: str = ""
    #: the name shown in From (the user's taube display name if empty)
    display_name: str = ""

    @classmethod
    def on_loopback(
        cls, address: str, password: str, host: str, imap_port: int, smtp_port: int
    ) -> MailAccount:
        """Plain IMAP and SMTP on a mail server of this machine (tests, benchmarks)."""
        return cls(
            address=address,
            password=password,
            imap_host=host,
            imap_port=imap_port,
            imap_security=Security.PLAIN,
            smtp_host=host,
            smtp_port=smtp_port,
            smtp_security=Security.PLAIN,
        )

    @property
    def login(self) -> str:
        return self.user or self.address

    def __repr__(self) -> str:  # never the password
        return (
            f"MailAccount({self.address}, imap={self.imap_host}:{self.imap_port}"
            f"/{self.imap_security}, smtp={self.smtp_host}:{self.smtp_port}/{self.smtp_security})"
        )

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> MailAccount:
        return msgspec.json.decode(data, type=cls)
