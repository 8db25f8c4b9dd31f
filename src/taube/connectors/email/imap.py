"""One IMAP connection: the folder's new mails, fetched, moved, and IDLE.

A thin layer over ``aioimaplib`` that speaks in UIDs and bytes (TLS from
the first byte, or STARTTLS, which this module adds to aioimaplib). A mail is
fetched with ``BODY.PEEK[]`` (it stays unread for the user's other mail
clients) and moved with ``MOVE`` (``COPY`` + ``\\Deleted`` + ``EXPUNGE``
where the server lacks it).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from types import TracebackType
from typing import Self

import aioimaplib

from taube.connectors.email.account import MailAccount, Security

log = logging.getLogger(__name__)

#: how long one IDLE lasts before it is renewed (servers drop it after 30 min;
#: a renewal also looks for mail whose announcement was lost)
IDLE_SECONDS = 5 * 60
#: commands that take longer than this fail (and the connection is made anew)
TIMEOUT = 60.0

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapError(Exception):
    """The server refused a command (login, select, ...)."""


class LoginRefused(ImapError):
    """The server refused the user name or password."""


class Mailbox:
    def __init__(self, account: MailAccount, folder: str = "INBOX") -> None:
        self._account = account
        self.folder = folder
        self.uidvalidity = 0
        self._imap: aioimaplib.IMAP4 | None = None
        #: set when the server closed the connection (IDLE would not notice)
        self._gone = asyncio.Event()

    async def __aenter__(self) -> Self:
        account = self._account
        if account.imap_security is Security.SSL:
            imap: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                host=account.imap_host,
                port=account.imap_port,
                timeout=TIMEOUT,
                ssl_context=ssl.create_default_context(),
                conn_lost_cb=self._lost,
            )
        else:
            imap = aioimaplib.IMAP4(
                host=account.imap_host,
                port=account.imap_port,
                timeout=TIMEOUT,
                conn_lost_cb=self._lost,
            )
        self._imap = imap
        try:
            await imap.wait_hello_from_server()
            if account.imap_security is Security.STARTTLS:
                await _starttls(imap, account.imap_host)
            if (await imap.login(account.login, account.password)).result != "OK":
                raise LoginRefused("IMAP log-in refused: wrong user name or password")
            selected = _ok(await imap.select(self.folder), f"select {self.folder}")
        except BaseException:
            await self._close()
            raise
        for line in selected.lines:
            found = _UIDVALIDITY.search(bytes(line))
            if found:
                self.uidvalidity = int(found.group(1))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    def _lost(self, exc: Exception | None) -> None:
        self._gone.set()

    async def _close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        try:
            if imap.has_pending_idle():
                imap.idle_done()
            await asyncio.wait_for(imap.logout(), 5)
        except (OSError, TimeoutError, aioimaplib.Abort, aioimaplib.CommandTimeout) as exc:
            log.debug("IMAP logout: %s", exc)
        except Exception:
            log.debug("IMAP logout failed", exc_info=True)

    @property
    def imap(self) -> aioimaplib.IMAP4:
        assert self._imap is not None
        return self._imap

    async def ensure_folder(self, name: str) -> None:
        """Create ``name`` unless it exists."""
        listed = await self.imap.list('""', name)
        if not any(name.encode() in bytes(line) for line in listed.lines[:-1]):
            _ok(await self.imap.create(name), f"create {name}")

    async def sizes_after(self, last_uid: int) -> dict[int, int]:
        """UID → size of every mail with a UID above ``last_uid``, in order."""
        response = _ok(
            await self.imap.uid("fetch", f"{last_uid + 1}:*", "(UID RFC822.SIZE)"), "fetch"
        )
        found: dict[int, int] = {}
        for line in response.lines:
            data = bytes(line)
            uid, size = _FETCH_UID.search(data), _FETCH_SIZE.search(data)
            if uid and size and int(uid.group(1)) > last_uid:  # "N:*" names the last one anyway
                found[int(uid.group(1))] = int(size.group(1))
        return dict(sorted(found.items()))

    async def fetch(self, uid: int) -> bytes | None:
        """The whole mail (``None`` if it is gone)."""
        response = _ok(await self.imap.uid("fetch", str(uid), "(BODY.PEEK[])"), "fetch")
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None

    async def move(self, uids: list[int], folder: str) -> None:
        if not uids:
            return
        numbers = ",".join(str(u) for u in uids)
        if "MOVE" in self.imap.protocol.capabilities:
            _ok(await self.imap.uid("move", numbers, folder), "move")
            return
        _ok(await self.imap.uid("copy", numbers, folder), "copy")
        _ok(await self.imap.uid("store", numbers, "+FLAGS.SILENT", r"(\Deleted)"), "store")
        _ok(await self.imap.uid("expunge", numbers), "expunge")

    async def append(self, data: bytes, folder: str) -> None:
        _ok(await self.imap.append(data, mailbox=folder, flags=r"(\Seen)"), "append")

    async def idle(self, timeout: float = IDLE_SECONDS) -> bool:
        """Wait (IMAP IDLE) until the folder changes or ``timeout`` passes;
        ``True`` if something came."""
        imap = self.imap
        waiting = await imap.idle_start(timeout=timeout)
        push = asyncio.ensure_future(imap.wait_server_push(timeout=timeout + 5))
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({push, gone}, return_when=asyncio.FIRST_COMPLETED)
            if self._gone.is_set():
                waiting.cancel()
                raise ConnectionError("the IMAP server closed the connection")
            try:
                pushed = push.result()
            except TimeoutError:
                pushed = []
        finally:
            push.cancel()
            gone.cancel()
        imap.idle_done()
        await asyncio.wait_for(waiting, TIMEOUT)
        return pushed != aioimaplib.STOP_WAIT_SERVER_PUSH and any(
            b"EXISTS" in bytes(line) for line in pushed
        )


async def _starttls(imap: aioimaplib.IMAP4, host: str) -> None:
    """Upgrade the connection to TLS (RFC 3501 STARTTLS) before logging in;
    a server that does not offer it is an error, never a plain log-in."""
    protocol = imap.protocol
    if "STARTTLS" not in protocol.capabilities:
        raise ImapError("the server does not offer STARTTLS")
    command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    _ok(await protocol.execute(command), "starttls")
    context = ssl.create_default_context()
    plain = protocol.transport
    try:
        transport = await asyncio.get_running_loop().start_tls(
            plain, protocol, context, server_hostname=host
        )
    except BaseException:
        plain.close()  # an untrusted certificate: the plain socket goes too
        raise
    if transport is None:
        plain.close()
        raise ImapError("the TLS upgrade failed")
    protocol.transport = transport
    await protocol.capability()  # what was said before TLS does not count


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        detail = b" ".join(bytes(line) for line in response.lines)[:200]
        raise ImapError(f"{what}: {response.result} {detail.decode(errors='replace')}")
    return response
