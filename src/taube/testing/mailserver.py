"""``MailServer``: a private Postfix + Dovecot on loopback for the e-mail tests.

Dovecot serves IMAP and LMTP and authenticates the users ``add_user``
makes (also while running). Postfix
takes mail on two ports: ``smtp_port`` as a domain's MX would (no AUTH, no
relaying) and ``submission_port`` for clients (AUTH through Dovecot's auth
socket, plaintext on loopback). Mail for ``domains`` goes to Dovecot over
LMTP; anything else goes to the ``error`` transport and bounces, so nothing
ever leaves this machine.

Both run from a new directory under the system's temporary directory (the
mail processes run as the ``mail`` user, which must reach it, and UNIX
socket paths must stay short); their logs and configuration are copied to
``directory`` when they stop. Dovecot is our child in the foreground;
Postfix's master daemonizes (``postfix -c DIR start``) and is stopped by the
PID in its pid file. The machine's own daemons are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from taube.testing.services import _Child, free_port

DOVECOT = "/usr/sbin/dovecot"
POSTFIX = "/usr/sbin/postfix"
POSTFIX_FILES = Path("/etc/postfix/postfix-files")
#: two domains for chat users and one for people on ordinary mail clients
DOMAINS = ("example.org", "example.net", "plain.example")
#: the owner of the mailboxes (Dovecot refuses to access mail as root)
MAIL_USER = "mail"
#: Postfix's limit; the tests send a 30 MB attachment (about 40 MB as base64)
MESSAGE_SIZE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class MailAccount:
    """What a mail client needs; plaintext IMAP and SMTP with AUTH (submission)."""

    addr: str
    password: str
    imap_host: str
    imap_port: int
    smtp_host: str
    smtp_port: int


def _postfix_files() -> dict[str, str]:
    return {
        "main.cf": """\
compatibility_level = 3.6
queue_directory = {root}/postfix
data_directory = {root}/postfix-data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = {name}
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
myhostname = mail.{first_domain}
mydomain = {first_domain}
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
virtual_mailbox_domains = {domains}
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
default_transport = error:nothing leaves this machine
relay_transport = error:nothing leaves this machine
local_transport = error:nothing leaves this machine
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_reject_unlisted_recipient = no
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtp_host_lookup = native
lmtp_host_lookup = native
smtputf8_enable = no
biff = no
message_size_limit = {message_size_limit}
mailbox_size_limit = 0
""",
        "master.cf": """\
127.0.0.1:{smtp_port} inet n - n - - smtpd
127.0.0.1:{submission_port} inet n - n - - smtpd
  -o syslog_name={name}/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path={root}/dovecot/auth-postfix
  -o smtpd_tls_security_level=none
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""",
    }


DOVECOT_CONF = """\
# generated by taube.testing.mailserver
instance_name = {name}
base_dir = {root}/dovecot
state_dir = {root}/dovecot-state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
mail_fsync = never
postmaster_address = postmaster@{first_domain}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {root}/users/%Lu
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%Ld/%Ln
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
"""


class _Dovecot(_Child):
    what = "dovecot"

    def start(self) -> None:
        self.proc = self._spawn([DOVECOT, "-F", "-c", str(self.directory / "dovecot.conf")])


class MailServer:
    """A private Dovecot (IMAP, LMTP) and Postfix (SMTP, submission) on loopback.

    ``with MailServer(tmp_path) as mail:`` or ``async with``; then
    ``account = mail.add_user("alice@example.org")``.
    """

    def __init__(self, directory: Path, domains: Sequence[str] = DOMAINS) -> None:
        self.directory = directory
        self.domains = tuple(domains)
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.host = "127.0.0.1"
        self.root = Path()
        self._dovecot: _Dovecot | None = None
        self._postfix_pid: int | None = None

    @staticmethod
    def missing() -> str | None:
        """Why it cannot run here, or None."""
        absent = [path for path in (DOVECOT, POSTFIX) if not os.access(path, os.X_OK)]
        if absent:
            return f"{', '.join(absent)} not installed (scripts/services start installs them)"
        if os.geteuid() != 0:
            return "a private Postfix needs root (its daemons switch to the postfix user)"
        return None

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 20.0) -> None:
        reason = self.missing()
        if reason:
            raise RuntimeError(reason)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="taube-mail-"))
        self.root.chmod(0o711)  # the mail and postfix users must reach their parts
        try:
            self._start_dovecot(timeout)
            self._start_postfix(timeout)
        except BaseException:
            self.stop()
            raise

    def _settings(self) -> dict[str, object]:
        mail = pwd.getpwnam(MAIL_USER)
        return {
            "root": self.root,
            "name": self.root.name,
            "domains": " ".join(self.domains),
            "first_domain": self.domains[0],
            "uid": mail.pw_uid,
            "gid": mail.pw_gid,
            "imap_port": self.imap_port,
            "lmtp_port": self.lmtp_port,
            "smtp_port": self.smtp_port,
            "submission_port": self.submission_port,
            "message_size_limit": MESSAGE_SIZE_LIMIT,
        }

    def _start_dovecot(self, timeout: float) -> None:
        mail = self.root / "mail"
        mail.mkdir()
        owner = pwd.getpwnam(MAIL_USER)
        os.chown(mail, owner.pw_uid, owner.pw_gid)
        (self.root / "users").mkdir()
        (self.root / "dovecot.conf").write_text(DOVECOT_CONF.format(**self._settings()))
        self._dovecot = _Dovecot(self.root)
        self._dovecot.start()
        for port in (self.imap_port, self.lmtp_port):
            self._wait_listening(port, "dovecot", timeout)

    def _start_postfix(self, timeout: float) -> None:
        config = self.root / "postfix-config"
        config.mkdir()
        _make_postfix_directories(self.root)
        an_hour_ago = time.time() - 3600
        for name, text in _postfix_files().items():
            (config / name).write_text(text.format(**self._settings()))
            # Postfix rereads a file changed this very second, every 0.3 s, until it is not
            os.utime(config / name, (an_hour_ago, an_hour_ago))
        with (self.root / "postfix-start.log").open("ab") as log:
            started = subprocess.run(  # noqa: S603 - Postfix's own command
                [POSTFIX, "-c", str(config), "start"],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=timeout,
            )
        pid_file = self.root / "postfix" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            self._postfix_pid = int(pid_file.read_text().split()[0])
        if started.returncode != 0 or self._postfix_pid is None:
            # its fatal errors go to maillog_file, or to stderr only when that is a TTY
            self._keep_logs()
            raise RuntimeError(f"postfix did not start; see {self.directory}/postfix*.log")
        for port in (self.smtp_port, self.submission_port):
            self._wait_listening(port, "postfix", timeout)

    def _wait_listening(self, port: int, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._running(what):
                self._keep_logs()
                raise RuntimeError(f"{what} exited; see its log in {self.directory}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, port), 0.2):
                return
            time.sleep(0.02)
        raise RuntimeError(f"{what} is not listening on port {port} after {timeout} s")

    def _running(self, what: str) -> bool:
        if what == "dovecot":
            proc = None if self._dovecot is None else self._dovecot.proc
            return proc is not None and proc.poll() is None
        return self._postfix_pid is not None and _alive(self._postfix_pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both (by their PIDs), keep their logs in ``directory``, delete the rest."""
        pid, self._postfix_pid = self._postfix_pid, None
        if pid is not None:
            _stop_postfix_master(pid, timeout)
        dovecot, self._dovecot = self._dovecot, None
        if dovecot is not None:
            dovecot.stop(timeout=timeout)
        if self.root != Path():
            self._keep_logs()
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = Path()

    def _keep_logs(self) -> None:
        for name in ("dovecot.log", "postfix.log", "postfix-start.log", "dovecot.conf"):
            with contextlib.suppress(OSError):
                shutil.copyfile(self.root / name, self.directory / name)
        for name in ("main.cf", "master.cf"):
            with contextlib.suppress(OSError):
                shutil.copyfile(self.root / "postfix-config" / name, self.directory / name)

    def logs(self) -> str:
        """Both logs so far (for a failing test's message)."""
        base = self.root if self.root != Path() else self.directory
        parts = []
        for name in ("postfix.log", "dovecot.log"):
            with contextlib.suppress(OSError):
                parts.append(f"--- {name}\n{(base / name).read_text('utf-8', 'replace')}")
        return "\n".join(parts)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------ users

    def add_user(self, addr: str, password: str | None = None) -> MailAccount:
        """A new mailbox; works while running.

        Each user is a passwd-file of its own, which Dovecot reads at the
        first lookup (one shared file would be reread at most once a second,
        so a user added just now could fail to log in).
        """
        local, _, domain = addr.lower().partition("@")
        if domain not in self.domains or not local or ":" in addr or "/" in addr:
            raise ValueError(f"{addr!r} is not an address in {', '.join(self.domains)}")
        password = password or secrets.token_urlsafe(12)
        entry = self.root / "users" / addr.lower()
        if entry.exists():
            raise ValueError(f"{addr} exists already")
        fresh = entry.with_name(f".{entry.name}.new")
        fresh.write_text(f"{addr.lower()}:{{PLAIN}}{password}\n")
        fresh.replace(entry)
        return MailAccount(
            addr, password, self.host, self.imap_port, self.host, self.submission_port
        )


def _make_postfix_directories(root: Path) -> None:
    """The queue and data directories as ``postfix-files`` lists them.

    ``postfix check`` would make them with a shell script (about 3 s here);
    with them in place a ``quick-start`` file lets ``postfix start`` skip it.
    """
    where = {"$queue_directory": root / "postfix", "$data_directory": root / "postfix-data"}
    users = {"$mail_owner": "postfix", "$setgid_group": "postdrop", "-": "root"}
    for line in POSTFIX_FILES.read_text().splitlines():
        fields = line.split(":")
        if len(fields) < 5 or fields[1] != "d" or fields[0].split("/")[0] not in where:
            continue
        top, _, rest = fields[0].partition("/")
        path = where[top] / rest
        path.mkdir(exist_ok=True)
        uid = pwd.getpwnam(users.get(fields[2], fields[2])).pw_uid
        gid = grp.getgrnam(users.get(fields[3], fields[3])).gr_gid
        os.chown(path, uid, gid)
        path.chmod(int(fields[4], 8))
    (root / "postfix" / "quick-start").touch()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop_postfix_master(pid: int, timeout: float) -> None:
    """What ``postfix stop`` does, without its one-second polls: SIGTERM to the
    master (it stops its children), then SIGKILL to its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
