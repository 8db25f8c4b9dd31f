"""Setting a connector up from another device of the user's.

A connector device (``taube mail run``) holds the mail account; the web app
cannot (it would keep the password in a browser and could not run IMAP).
So the user's other devices *talk to* the connector device, with Olm
to-device messages that only the two devices can read:

- ``taube.connector.query`` ``{request}``: who serves what? Every connector
  device answers with its status. (A connector also sends its status to
  all the user's devices when it starts: the "hello".)
- ``taube.connector.configure`` ``{request, network, account}``: use this
  account. The connector finds the servers (autoconfig, unless the account
  names them), logs in to both, and only then keeps the account (sealed in
  its profile) and answers ``connected``; otherwise it answers
  ``auth_failed`` or ``failed`` and keeps what it had.
- ``taube.connector.disconnect`` ``{request, network}``: forget the account
  (the key, the chats and the mail already relayed stay).
- ``taube.connector.status`` ``{network, state, address, error,
  fingerprint, request, outcome, reason}``: the answer, and every later
  change of state.

Only the user's own devices count: a sender whose certificate is not signed
by the identity key the connector device holds gets no answer and changes
nothing. Payloads are decoded strictly (unknown fields are an error).
"""

from __future__ import annotations

import enum
from typing import TypeVar

import msgspec

PREFIX = "taube.connector."
QUERY = PREFIX + "query"
CONFIGURE = PREFIX + "configure"
DISCONNECT = PREFIX + "disconnect"
STATUS = PREFIX + "status"
#: a request id is at most this long (it is only echoed)
MAX_REQUEST = 64


class State(enum.StrEnum):
    UNCONFIGURED = "unconfigured"  #: no account: waiting for one
    CHECKING = "checking"  #: finding the servers and logging in
    CONNECTED = "connected"  #: logged in, relaying
    AUTH_FAILED = "auth_failed"  #: the server refused the login
    RECONNECTING = "reconnecting"  #: the mailbox went away: trying again (``error`` says why)
    FAILED = "failed"  #: the settings could not be used (``error`` says why)


class Strict(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class MailSettings(Strict):
    """What a settings screen sends: the address and password, and the
    servers if the user gave them (else autoconfig finds them)."""

    address: str
    password: str
    imap_host: str = ""
    imap_port: int = 0
    imap_security: str = "ssl"
    smtp_host: str = ""
    smtp_port: int = 0
    smtp_security: str = "ssl"
    user: str = ""
    display_name: str = ""

    def __repr__(self) -> str:  # never the password
        return f"MailSettings({self.address}, imap={self.imap_host}, smtp={self.smtp_host})"


class Query(Strict):
    request: str = ""


class Configure(Strict):
    network: str
    account: MailSettings
    request: str = ""


class Disconnect(Strict):
    network: str
    request: str = ""


class Status(Strict, omit_defaults=True):
    """The connector's state (``error``: why it is not connected), and, in an
    answer, what became of the request (``outcome``, ``reason``): a refused
    account changes nothing, so ``state`` stays what it was."""

    network: str
    state: State
    request: str = ""
    address: str = ""
    error: str = ""
    fingerprint: str = ""
    outcome: State | None = None
    reason: str = ""

    def to_content(self) -> dict[str, object]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class BadControl(ValueError):
    """A control payload that is not what its type says."""


T = TypeVar("T", bound=Strict)


def decode(content: dict[str, object], into: type[T]) -> T:
    try:
        found = msgspec.convert(content, into)
    except msgspec.ValidationError as exc:
        raise BadControl(str(exc)) from None
    request = getattr(found, "request", "")
    if len(request) > MAX_REQUEST:
        raise BadControl(f"request id longer than {MAX_REQUEST}")
    return found
