"""The IRC account a connector uses, kept sealed in the device's profile."""

from __future__ import annotations

import msgspec

#: where the account lives in the profile (``Profile.put_secret``)
SECRET_NAME = "connector:irc:account"  # noqa: S105 - the name, not a secret
NETWORK = "irc"


class IrcAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str
    port: int = 6697
    tls: bool = True
    #: check the server's certificate (off only for a server of one's own)
    tls_verify: bool = True
    nick: str
    #: SASL PLAIN login (empty: none); ``password`` is its password
    sasl_user: str = ""
    #: the SASL password, or without ``sasl_user`` the server password (PASS)
    password: str = ""
    channels: list[str] = msgspec.field(default_factory=list)
    realname: str = ""

    def __repr__(self) -> str:  # never the password
        tls = "tls" if self.tls else "plain"
        return f"IrcAccount({self.nick}@{self.host}:{self.port}/{tls}, {self.channels})"

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> IrcAccount:
        return msgspec.json.decode(data, type=cls)
