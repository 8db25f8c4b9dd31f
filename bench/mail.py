"""``python -m bench mail``: chat over e-mail through the connector, beside Delta Chat.

Everything on loopback: a taube server of our own, a private Postfix +
Dovecot (``taube.testing.mailserver``), a real Delta Chat core
(``taube.testing.deltachat``), and in this process alice's phone and her
second device running the e-mail connector. Measured in one run:

1. **mails in**: ``--mails`` chat mails from bob on a plain mail client
   (smtplib), then ``--dc-mails`` encrypted ones from dora on Delta Chat
   (who has alice's key from her vCard), are waiting in alice's INBOX while
   the connector is stopped; the connector starts, and the time until the
   phone has them all gives messages/s. The connector's cost per mail is
   the wall time and the CPU (this process: connector and phone; the taube
   server) divided by the mails.
2. **send → delivered**: ``--probes`` messages one at a time, interleaved:
   alice's phone to dora in their encrypted portal chat (from ``send_text``
   until dora's core emits ``IncomingMsg``), and erin to frank, two Delta
   Chat accounts on the same core and mail server that swapped vCards. The
   split column is the time until the mail was accepted by SMTP (the
   connector's ``relayed`` count; erin's ``MsgDelivered``). Both paths pay
   Dovecot's 500 ms delay before an IDLE notification.

Nothing is pinned by default: the mail server and the Delta Chat core are
children of this process and would share its CPU. ``--profile DIR`` runs
each phase under cProfile (this process only; it slows them down) and
prints the top functions. Needs Postfix, Dovecot and
``deltachat-rpc-server`` (``scripts/services start``) and root, so
``python -m bench all`` leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import cProfile
import email.message
import functools
import imaplib
import io
import os
import pstats
import secrets
import smtplib
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import harness, loadgen
from taube.client import Client, Received
from taube.client import events as ev
from taube.connectors.email.account import MailAccount
from taube.connectors.email.connector import EmailConnector, Progress
from taube.connectors.state import ConnectorState
from taube.proto.ids import ConversationId
from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailAccount as Mailbox
from taube.testing.mailserver import MailServer

if TYPE_CHECKING:
    from deltachat_rpc_client import Account, AttrDict, Chat

#: a throwaway account on a private server
PASSWORD = "bench mail password"
#: how long one probe may take before it counts as lost
PROBE_TIMEOUT = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mails", type=int, default=500, help="plain chat mails waiting (500)")
    p.add_argument(
        "--dc-mails", type=int, default=100, help="encrypted mails from Delta Chat waiting (100)"
    )
    p.add_argument("--probes", type=int, default=30, help="latency probes per path (30)")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each phase, wait up to this long for other processes to go idle (30; 0: no)",
    )
    p.add_argument("--profile", type=Path, default=None, help="cProfile each phase into DIR")
    p.add_argument(
        "--pin", dest="pin", action="store_true", help="server on CPU 0, the rest on CPU 1"
    )
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin CPUs (default)")
    p.add_argument("--tmp-dir", type=Path, default=None, help="data parent dir")
    p.add_argument("--keep-data", action="store_true", help="keep the taube server's data")
    p.add_argument("--output", type=Path, default=None, help="results JSON path")


# ---------------------------------------------------------------- what we watch


class ConnectorClock:
    """When the connector fetched, brought in and relayed each mail (its ``on_progress``)."""

    def __init__(self) -> None:
        self.last = Progress()
        self.brought: list[float] = []
        self.relayed: list[float] = []
        self.relay = asyncio.Event()

    def __call__(self, progress: Progress) -> None:
        now = time.perf_counter()
        self.brought += [now] * (progress.brought_in - self.last.brought_in)
        self.relayed += [now] * (progress.relayed - self.last.relayed)
        if progress.relayed > self.last.relayed:
            self.relay.set()
        self.last = progress


class PhoneInbox:
    """The phone's shown messages, counted as they arrive."""

    def __init__(self, phone: Client) -> None:
        self.phone = phone
        self.count = 0
        self.encrypted = 0
        self.at: list[float] = []

    async def run(self) -> None:
        async for event in self.phone.events():
            if isinstance(event, Received) and event.message.type not in ev.ANNOTATIONS:
                self.count += 1
                self.at.append(time.perf_counter())
                remote = event.message.remote
                self.encrypted += bool(remote is not None and remote.encrypted)


def _account_of(box: Mailbox) -> MailAccount:
    """The connector's settings for a mailbox of the test mail server."""
    return MailAccount.on_loopback(
        box.addr, box.password, box.imap_host, box.imap_port, box.smtp_port
    )


def _inbox_size(box: Mailbox) -> int:
    imap = imaplib.IMAP4(box.imap_host, box.imap_port)
    try:
        imap.login(box.addr, box.password)
        _, data = imap.status("INBOX", "(MESSAGES)")
        raw = data[0]
        assert isinstance(raw, bytes)
        return int(raw.rsplit(b"MESSAGES", 1)[1].strip(b" )"))
    finally:
        imap.logout()


async def _wait_inbox(box: Mailbox, size: int, timeout: float, say: Callable[[int], None]) -> None:
    async with asyncio.timeout(timeout):
        while (now := await asyncio.to_thread(_inbox_size, box)) != size:
            say(now)
            await asyncio.sleep(0.2)


def _submit_plain(sender: Mailbox, to: str, count: int, tag: str) -> None:
    """``count`` chat mails from ``sender``, one SMTP session."""
    with smtplib.SMTP(sender.smtp_host, sender.smtp_port, timeout=60) as smtp:
        smtp.login(sender.addr, sender.password)
        for i in range(count):
            message = email.message.EmailMessage()
            message["From"] = f"Bob <{sender.addr}>"
            message["To"] = to
            message["Subject"] = "chat"
            message["Message-ID"] = f"<{tag}.{i}@{sender.addr.partition('@')[2]}>"
            message["Chat-Version"] = "1.0"
            message.set_content(f"plain mail {i} of {count}")
            smtp.send_message(message)


def _vcard_of_self(account: Account) -> str:
    return account.make_vcard([account.self_contact])


@contextlib.contextmanager
def _profiled(directory: Path | None, name: str) -> Iterator[None]:
    """cProfile this thread while the block runs; the top functions on stderr."""
    if directory is None:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        directory.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(directory / f"{name}.pstats")
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(20)
        print(f"--- profile of {name} (by own time)", text.getvalue(), sep="\n", file=sys.stderr)


# ---------------------------------------------------------------- the run


class MailBench:
    def __init__(self, args: argparse.Namespace, server: harness.RunningServer, root: Path) -> None:
        self.args = args
        self.server = server
        self.root = root
        self.tag = secrets.token_hex(3)
        self.status = "starting"
        self.started = time.perf_counter()
        self.progress = loadgen.Progress(
            lambda: f"[{time.perf_counter() - self.started:5.0f}s] {self.status}"
        )
        # waits on Delta Chat's event queues block a thread each: not the loop's default pool
        self.pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="dc-wait")
        self.clock = ConnectorClock()
        self.quiet: dict[str, Any] = {}

    def log(self, line: str) -> None:
        self.progress.log(f"[{time.perf_counter() - self.started:5.0f}s] {line}")

    async def in_pool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.pool, call)

    async def settle(self, phase: str) -> None:
        """Wait for the machine to go quiet (up to ``--wait-quiet``); note the load."""
        other = None
        if self.args.wait_quiet:
            self.status = f"{phase}: waiting for the machine to go quiet"
            other = await harness.wait_quiet([self.server.pid], limit=self.args.wait_quiet)
        self.quiet[phase] = {"other_cpu_pct": other, "loadavg": os.getloadavg()}

    @contextlib.asynccontextmanager
    async def connector_running(self, connector: EmailConnector) -> AsyncIterator[None]:
        task = asyncio.create_task(connector.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def mails_in(
        self,
        name: str,
        connector: EmailConnector,
        inbox: PhoneInbox,
        box: Mailbox,
        count: int,
    ) -> dict[str, Any]:
        """Start the connector with ``count`` mails waiting; until the phone has them."""
        await self.settle(name)
        want = inbox.count + count
        had_encrypted, had_brought = inbox.encrypted, len(self.clock.brought)
        self.status = f"{name}: connector starting"
        server_cpu = loadgen.cpu_seconds(self.server.pid)
        own_cpu = time.process_time()
        start = time.perf_counter()
        with _profiled(self.args.profile, f"in-{name}"):
            async with self.connector_running(connector):
                async with asyncio.timeout(max(120.0, count * 0.5)):
                    while inbox.count < want:
                        got = inbox.count - (want - count)
                        self.status = f"{name}: the phone has {got:,}/{count:,}"
                        await asyncio.sleep(0.05)
                done = time.perf_counter()
                own_cpu = time.process_time() - own_cpu
                server_cpu = loadgen.cpu_seconds(self.server.pid) - server_cpu
                self.status = f"{name}: waiting for the mails to be moved out of the INBOX"
                await _wait_inbox(box, 0, 60, lambda _n: None)
        arrivals = inbox.at[want - count : want]
        brought = self.clock.brought[had_brought:]
        wall = done - start
        result = {
            "mails": count,
            "received": inbox.count - (want - count),
            "encrypted": inbox.encrypted - had_encrypted,
            "seconds": wall,
            "messages_per_s": count / wall,
            "first_message_s": arrivals[0] - start if arrivals else None,
            "steady_messages_per_s": (
                (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else None
            ),
            "connector_brought_in_s": brought[-1] - start if brought else None,
            "wall_ms_per_mail": wall / count * 1000,
            "process_cpu_ms_per_mail": own_cpu / count * 1000,
            "server_cpu_ms_per_mail": server_cpu / count * 1000,
            "quiet": self.quiet[name],
        }
        self.log(
            f"{name}: {count:,} mails in {wall:.2f} s ({result['messages_per_s']:.0f}/s),"
            f" {result['encrypted']} encrypted; CPU per mail: this process"
            f" {result['process_cpu_ms_per_mail']:.1f} ms, server"
            f" {result['server_cpu_ms_per_mail']:.1f} ms"
        )
        return result

    def stamp_next(self, core: DeltaChatCore, account: Account, kind: str, **fields: Any) -> Any:
        """The next matching event of ``account`` and when it was taken off the queue."""
        event = core.next_event(account, kind, PROBE_TIMEOUT, **fields)
        return event, time.perf_counter()

    async def probe(
        self,
        core: DeltaChatCore,
        receiver: Account,
        receiver_chat: Chat,
        send: Callable[[str], Any],
        accepted: Callable[[], Any] | None,
        text: str,
    ) -> dict[str, Any]:
        """One message: ``send(text)``, then ``IncomingMsg`` at ``receiver``."""
        incoming = asyncio.ensure_future(
            self.in_pool(self.stamp_next, core, receiver, "IncomingMsg", chat_id=receiver_chat.id)
        )
        smtp = asyncio.ensure_future(accepted()) if accepted is not None else None
        start = time.perf_counter()
        try:
            await send(text)
            event, arrived = await incoming
            accepted_at = await smtp if smtp is not None else None
        except TimeoutError:
            return {"text": text, "latency_s": None}
        finally:
            if smtp is not None:
                smtp.cancel()
        message = receiver.get_message_by_id(event.msg_id)
        snapshot: AttrDict = await self.in_pool(message.get_snapshot)
        return {
            "text": text,
            "latency_s": arrived - start,
            "to_smtp_s": None if accepted_at is None else accepted_at - start,
            "matches": snapshot.text == text,
            "padlock": bool(snapshot.show_padlock),
        }

    async def run(self) -> dict[str, Any]:
        report: dict[str, Any] = {}
        with self.progress:
            async with (
                MailServer(self.root / "mail") as mail,
                DeltaChatCore(self.root / "deltachat") as core,
            ):
                self.log(f"mail server up (IMAP {mail.imap_port}); Delta Chat core up")
                report |= await self._with_services(mail, core)
        report["quiet"] = self.quiet
        return report

    async def _with_services(self, mail: MailServer, core: DeltaChatCore) -> dict[str, Any]:
        url = self.server.url
        alice_box = mail.add_user("alice@example.org")
        bob_box = mail.add_user("bob@plain.example")
        phone = Client(self.root / "alice-phone")
        device = Client(self.root / "alice-connector")
        async with phone, device:
            self.status = "registering alice (phone and connector device)"
            code = await phone.register(url, alice_box.addr, PASSWORD)
            await device.login(url, alice_box.addr, PASSWORD, code)
            await phone.sync()
            await device.sync()
            state = ConnectorState(device.profile_dir / "connectors" / "email.db")
            connector = EmailConnector(
                device, _account_of(alice_box), state, on_progress=self.clock
            )
            inbox = PhoneInbox(phone)
            watching = asyncio.create_task(inbox.run())
            try:
                return await self._phases(mail, core, alice_box, bob_box, phone, connector, inbox)
            finally:
                watching.cancel()
                with contextlib.suppress(BaseException):
                    await watching
                state.close()

    async def _phases(
        self,
        mail: MailServer,
        core: DeltaChatCore,
        alice_box: Mailbox,
        bob_box: Mailbox,
        phone: Client,
        connector: EmailConnector,
        inbox: PhoneInbox,
    ) -> dict[str, Any]:
        args = self.args
        report: dict[str, Any] = {}
        # 1a: plain chat mails from bob's ordinary mail client
        self.status = f"bob submits {args.mails:,} chat mails"
        await asyncio.to_thread(_submit_plain, bob_box, alice_box.addr, args.mails, self.tag)

        def waiting(n: int) -> None:
            self.status = f"{n:,} mails in alice's INBOX"

        await _wait_inbox(alice_box, args.mails, 300, waiting)
        self.log(f"{args.mails:,} plain chat mails wait in alice's INBOX")
        report["in_plain"] = await self.mails_in("plain", connector, inbox, alice_box, args.mails)

        # 1b: encrypted mails from dora on Delta Chat (she has alice's key from a vCard)
        self.status = "configuring Delta Chat accounts"
        dora_box = mail.add_user("dora@example.net")
        dora = await core.configured_account(dora_box)
        erin = await core.configured_account(mail.add_user("erin@example.net"))
        frank = await core.configured_account(mail.add_user("frank@example.net"))
        vcard = _alice_vcard(alice_box.addr, connector)
        (alice_at_dora,) = await core.call(dora.import_vcard, vcard)
        dora_chat = await core.call(alice_at_dora.create_chat)

        def send_many() -> None:
            for i in range(args.dc_mails):
                dora_chat.send_text(f"encrypted mail {i} of {args.dc_mails}")

        self.status = f"dora sends {args.dc_mails:,} messages from Delta Chat"
        await asyncio.to_thread(send_many)
        await _wait_inbox(alice_box, args.dc_mails, 300, waiting)
        self.log(f"{args.dc_mails:,} encrypted mails from Delta Chat wait in alice's INBOX")
        report["in_encrypted"] = await self.mails_in(
            "encrypted", connector, inbox, alice_box, args.dc_mails
        )

        # 2: latency, taube -> Delta Chat beside Delta Chat -> Delta Chat
        self.status = "erin and frank swap vCards"
        (frank_at_erin,) = await core.call(
            erin.import_vcard, await core.call(_vcard_of_self, frank)
        )
        (erin_at_frank,) = await core.call(
            frank.import_vcard, await core.call(_vcard_of_self, erin)
        )
        erin_chat = await core.call(frank_at_erin.create_chat)
        frank_chat = await core.call(erin_at_frank.create_chat)
        conversation = phone.find_portal("email", dora_box.addr)
        assert conversation is not None, "no portal for dora"
        report |= await self._latency(
            core,
            phone,
            ConversationId(conversation),
            dora,
            dora_chat,
            erin,
            erin_chat,
            frank,
            frank_chat,
            connector,
        )
        return report

    async def _latency(
        self,
        core: DeltaChatCore,
        phone: Client,
        conversation: ConversationId,
        dora: Account,
        dora_chat: Chat,
        erin: Account,
        erin_chat: Chat,
        frank: Account,
        frank_chat: Chat,
        connector: EmailConnector,
    ) -> dict[str, Any]:
        args = self.args
        taube: list[dict[str, Any]] = []
        deltachat: list[dict[str, Any]] = []

        async def phone_sends(text: str) -> None:
            await phone.send_text(conversation, text)

        async def erin_sends(text: str) -> None:
            await self.in_pool(erin_chat.send_text, text)

        def smtp_of_connector() -> Callable[[], Any]:
            seen = len(self.clock.relayed)

            async def accepted() -> float:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    while len(self.clock.relayed) <= seen:
                        self.clock.relay.clear()
                        await self.clock.relay.wait()
                return self.clock.relayed[seen]

            return accepted

        async def smtp_of_erin() -> float:
            _event, at = await self.in_pool(
                self.stamp_next, core, erin, "MsgDelivered", chat_id=erin_chat.id
            )
            return float(at)

        async with self.connector_running(connector):
            await self.settle("latency")
            with _profiled(self.args.profile, "latency"):
                for number in range(args.probes + 1):  # the first of each is a warm-up
                    label = "warm-up" if number == 0 else f"probe {number}/{args.probes}"
                    self.status = f"latency: {label}, taube -> Delta Chat"
                    text = f"taube probe {number} {self.tag}"
                    one = await self.probe(
                        core, dora, dora_chat, phone_sends, smtp_of_connector(), text
                    )
                    self.status = f"latency: {label}, Delta Chat -> Delta Chat"
                    text = f"delta chat probe {number} {self.tag}"
                    two = await self.probe(core, frank, frank_chat, erin_sends, smtp_of_erin, text)
                    if number:
                        taube.append(one)
                        deltachat.append(two)
                        self.log(
                            f"{label}: taube -> DC {_ms(one['latency_s'])} ms,"
                            f" DC -> DC {_ms(two['latency_s'])} ms"
                        )
                    await asyncio.sleep(0.1)
        return {
            "latency_taube_to_deltachat": _latency_summary(taube, args.probes),
            "latency_deltachat_to_deltachat": _latency_summary(deltachat, args.probes),
            "probes": {"taube_to_deltachat": taube, "deltachat_to_deltachat": deltachat},
        }

    async def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _alice_vcard(addr: str, connector: EmailConnector) -> str:
    """What Delta Chat imports to write to ``addr`` encrypted from the first mail."""
    keydata = base64.b64encode(connector.key.public_key.to_bytes()).decode()
    return (
        "BEGIN:VCARD\r\nVERSION:4.0\r\n"
        f"EMAIL:{addr}\r\nFN:{addr}\r\n"
        f"KEY:data:application/pgp-keys;base64\\,{keydata}\r\n"
        "END:VCARD\r\n"
    )


def _ms(seconds: float | None) -> str:
    return "lost" if seconds is None else f"{seconds * 1000:,.0f}"


def _latency_summary(probes: list[dict[str, Any]], expected: int) -> dict[str, Any]:
    done = [p for p in probes if p["latency_s"] is not None]
    return {
        "latency_ms": loadgen.summarize([p["latency_s"] for p in done], expected),
        "to_smtp_ms": loadgen.summarize(
            [p["to_smtp_s"] for p in done if p.get("to_smtp_s") is not None]
        ),
        "mismatched": sum(not p["matches"] for p in done),
        "without_padlock": sum(not p["padlock"] for p in done),
    }


# ---------------------------------------------------------------- the table


def tables(report: dict[str, Any]) -> str:
    rows_in = []
    for key, what in (("in_plain", "plain (smtplib)"), ("in_encrypted", "encrypted (Delta Chat)")):
        r = report[key]
        rows_in.append(
            (
                what,
                f"{r['received']:,}/{r['mails']:,}",
                f"{r['seconds']:.2f}",
                harness.rate(r["messages_per_s"]),
                harness.rate(r["steady_messages_per_s"]),
                harness.ms(r["first_message_s"] and r["first_message_s"] * 1000, 0),
                harness.ms(r["wall_ms_per_mail"]),
                harness.ms(r["process_cpu_ms_per_mail"]),
                harness.ms(r["server_cpu_ms_per_mail"]),
            )
        )
    head_in = (
        "mails in",
        "received",
        "s",
        "msg/s",
        "steady msg/s",
        "first ms",
        "wall ms/mail",
        "CPU ms/mail",
        "srv CPU ms/mail",
    )
    rows_lat = []
    taube = report["latency_taube_to_deltachat"]
    dc = report["latency_deltachat_to_deltachat"]
    for what, summary in (("taube -> Delta Chat", taube), ("Delta Chat -> Delta Chat", dc)):
        lat, smtp = summary["latency_ms"], summary["to_smtp_ms"]
        rows_lat.append(
            (
                what,
                f"{lat['count']}",
                harness.ms(lat["p50"], 0),
                harness.ms(lat["p90"], 0),
                harness.ms(lat["max"], 0),
                harness.ms(smtp["p50"], 0),
                str(summary["without_padlock"]),
            )
        )
    ratio = (
        taube["latency_ms"]["p50"] / dc["latency_ms"]["p50"]
        if taube["latency_ms"]["p50"] and dc["latency_ms"]["p50"]
        else None
    )
    head_lat = ("send -> IncomingMsg", "n", "p50 ms", "p90 ms", "max ms", "to SMTP p50", "no lock")
    return (
        harness.table(head_in, rows_in)
        + "\n\n"
        + harness.table(head_lat, rows_lat)
        + f"\n\np50 ratio taube / Delta Chat: {'-' if ratio is None else f'{ratio:.2f}x'}"
    )


# ---------------------------------------------------------------- entry


def run(args: argparse.Namespace) -> int:
    reason = MailServer.missing() or DeltaChatCore.missing()
    if reason:
        print(f"bench mail: {reason}", file=sys.stderr)
        return 2

    async def measure(args: argparse.Namespace, server: harness.RunningServer) -> dict[str, Any]:
        root = server.server.data_dir.parent
        bench = MailBench(args, server, root)
        try:
            return await bench.run()
        finally:
            await bench.close()

    done = harness.measure_on_server("mail", args, measure)
    if done is None:
        return 130
    report, path = done
    print(tables(report))
    print(f"results: {path}", file=sys.stderr)
    return 0
