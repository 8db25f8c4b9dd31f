"""``DeltaChatCore``: a real Delta Chat core for the e-mail connector's tests.

The core is ``deltachat-rpc-server`` (PyPI, installed beside our interpreter
by the ``test`` extra) driven by ``deltachat_rpc_client``, with an accounts
directory of its own (``DC_ACCOUNTS_PATH``). The client library is
synchronous (it runs threads and blocks on queues); ``call`` runs any of its
methods in a worker thread so that async tests do not block their loop::

    async with MailServer(tmp_path / "mail") as mail, DeltaChatCore(tmp_path / "dc") as dc:
        alice = await dc.configured_account(mail.add_user("alice@example.org"))
        chat = await dc.call(alice.create_chat, bob)

Accounts use plaintext IMAP and SMTP (``imapSecurity``/``smtpSecurity`` =
``plain``): the ``MailServer`` on loopback offers no TLS, and Delta Chat's
"automatic" setting never tries plain.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from taube.testing.mailserver import MailAccount
from taube.testing.services import Service

if TYPE_CHECKING:
    from deltachat_rpc_client import Account, AttrDict, DeltaChat, Rpc

BINARY = "deltachat-rpc-server"
P = ParamSpec("P")
T = TypeVar("T")


def rpc_server_path() -> str | None:
    """The ``deltachat-rpc-server`` beside our interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / BINARY
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(BINARY)


class DeltaChatCore(Service):
    """One ``deltachat-rpc-server`` process; ``dc`` is its account manager."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log_path = directory / "deltachat-rpc-server.log"
        self._rpc: Rpc | None = None

    @staticmethod
    def missing() -> str | None:
        """Why it cannot run here, or None."""
        try:
            import deltachat_rpc_client  # noqa: F401
        except ImportError as exc:
            return f'deltachat-rpc-client is not installed ({exc}): pip install -e ".[test]"'
        if rpc_server_path() is None:
            return f"{BINARY} is not installed (scripts/services start installs it)"
        return None

    @property
    def rpc(self) -> Rpc:
        if self._rpc is None:
            raise RuntimeError("the Delta Chat core is not running")
        return self._rpc

    @property
    def dc(self) -> DeltaChat:
        from deltachat_rpc_client import DeltaChat

        return DeltaChat(self.rpc)

    def start(self) -> None:
        from deltachat_rpc_client import Rpc

        binary = rpc_server_path()
        if binary is None:
            raise RuntimeError(f"{BINARY} is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        # its log goes to a file: a pipe nobody reads would fill up and stall it
        with self.log_path.open("ab") as log:
            rpc = Rpc(
                accounts_dir=str(self.directory / "accounts"), rpc_server_path=binary, stderr=log
            )
            rpc.start()
        self._rpc = rpc

    def stop(self) -> None:
        """Stop every account's I/O and the server (it exits when its stdin closes)."""
        rpc, self._rpc = self._rpc, None
        if rpc is None:
            return
        rpc.close()
        try:
            rpc.process.wait(10)
        except subprocess.TimeoutExpired:
            rpc.process.kill()
            rpc.process.wait()
        if rpc.process.stdout is not None:
            rpc.process.stdout.close()

    def configure(self, mail: MailAccount) -> Account:
        """A new account on ``mail`` (plain IMAP and SMTP), online and idle."""
        account = self.dc.add_account()
        account.set_config("displayname", mail.addr.partition("@")[0].title())
        account.add_or_update_transport(
            {
                "addr": mail.addr,
                "password": mail.password,
                "imapServer": mail.imap_host,
                "imapPort": mail.imap_port,
                "imapSecurity": "plain",
                "smtpServer": mail.smtp_host,
                "smtpPort": mail.smtp_port,
                "smtpSecurity": "plain",
            }
        )
        account.bring_online()
        return account

    async def configured_account(self, mail: MailAccount) -> Account:
        return await asyncio.to_thread(self.configure, mail)

    def next_event(
        self, account: Account, kind: str, timeout: float = 60.0, **fields: object
    ) -> AttrDict:
        """The next event of ``kind`` for ``account`` whose (snake_case) ``fields``
        have these values; the events before it are dropped. Unlike the client's
        own ``wait_for_*``, this gives up after ``timeout`` seconds."""
        from deltachat_rpc_client import AttrDict

        events = self.rpc.get_queue(account.id)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = AttrDict(events.get(timeout=min(left, 0.5)))
            except queue.Empty:
                continue
            if event.get("kind") == kind and all(event.get(k) == v for k, v in fields.items()):
                return event
        raise TimeoutError(f"no {kind} event {fields or ''} for account {account.id} in {timeout}s")

    async def wait_for_event(
        self, account: Account, kind: str, timeout: float = 60.0, **fields: object
    ) -> AttrDict:
        """``next_event`` without blocking the loop."""
        return await asyncio.to_thread(self.next_event, account, kind, timeout, **fields)

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` (a blocking client method) in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)
