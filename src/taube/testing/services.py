"""Services the scale-out tests run themselves, each a subprocess they own.

- ``Nginx``: a load balancer in front of several nodes (``nginx_config`` is
  the configuration documented in ``docs/scaling.md``).
- ``RedisServer``: a private ``redis-server`` on a free loopback port, so a
  test may restart it without touching the machine's.
- ``PostgresCluster``: a private PostgreSQL cluster (``initdb`` in a
  temporary directory, run as the ``postgres`` user when we are root), so a
  test may stop and start it.

Each one runs in the foreground as our child: stopping it signals exactly
that PID, never anything found by name. ``missing()`` on each class says why
it cannot run here (the binary is not installed), for a skip message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

NGINX = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
REDIS_SERVER = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
POSTGRES_BIN = (
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} is not listening on port {port} after {timeout} s")


def _find(name: str, candidates: Sequence[str]) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


class Service:
    """Something a test starts and stops: ``with`` it, or ``async with`` it
    (then ``start`` and ``stop`` run in a worker thread)."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> object:
        """Stop it (what it returns is the service's own business)."""
        raise NotImplementedError

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


class _Child(Service):
    """A service process of ours: started, stopped by its PID."""

    what = "service"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / f"{self.what}.log"

    def _spawn(self, argv: list[str], **extra: Any) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - fixed binaries, our arguments
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **extra
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal our process and wait for it (SIGKILL if it takes too long)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def logs(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""


# ---------------------------------------------------------------- nginx


def nginx_config(
    port: int, upstreams: Sequence[int], directory: Path, *, trusted_header: bool = True
) -> str:
    """The load balancer's configuration: WebSockets and HTTP across nodes.

    ``least_conn`` spreads the long-lived WebSockets evenly (round robin would
    count the short HTTP requests as much); a node that refuses connections
    is skipped and retried after ``fail_timeout``. Only idempotent requests
    are retried on another node once sent. Bodies stream both ways
    (attachments), and the WebSocket timeouts exceed the server's heartbeat.
    """
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstreams
    )
    forwarded = (
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" if trusted_header else ""
    )
    return f"""# generated by taube.testing.services.nginx_config
daemon off;
master_process on;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;

events {{
    worker_connections 4096;
}}

http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}

    upstream taube {{
        least_conn;
{servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;

        location / {{
            proxy_pass http://taube;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            {forwarded}
            proxy_connect_timeout 2s;
            proxy_send_timeout 120s;
            proxy_read_timeout 120s;
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 3;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


class Nginx(_Child):
    """``nginx -c FILE -p DIR`` in the foreground on a free loopback port."""

    what = "nginx"

    def __init__(self, directory: Path, upstreams: Sequence[int], port: int = 0) -> None:
        super().__init__(directory)
        self.upstreams = list(upstreams)
        self.port = port or free_port()
        self.config_path = directory / "nginx.conf"

    @staticmethod
    def missing() -> str | None:
        return None if _find("nginx", NGINX) else "nginx is not installed (scripts/services start)"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        binary = _find("nginx", NGINX)
        if binary is None:
            raise RuntimeError("nginx is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(nginx_config(self.port, self.upstreams, self.directory))
        self.proc = self._spawn([binary, "-c", str(self.config_path), "-p", str(self.directory)])
        wait_listening(self.port, self.proc, "nginx", timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        super().stop(sig, timeout)


# ---------------------------------------------------------------- Redis


class RedisServer(_Child):
    """A private ``redis-server`` on loopback that keeps nothing on disk."""

    what = "redis"

    def __init__(self, directory: Path, port: int = 0) -> None:
        super().__init__(directory)
        self.port = port or free_port()

    @staticmethod
    def missing() -> str | None:
        if _find("redis-server", REDIS_SERVER):
            return None
        return "redis-server is not installed (scripts/services start)"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = _find("redis-server", REDIS_SERVER)
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.directory),
        ]
        self.proc = self._spawn(argv)
        wait_listening(self.port, self.proc, "redis-server", timeout)


# ---------------------------------------------------------------- PostgreSQL


def _postgres_bin() -> Path | None:
    for candidate in POSTGRES_BIN:
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    return None


class PostgresCluster(_Child):
    """A private PostgreSQL cluster in ``directory``, trust authentication on
    loopback, ``postgres`` as its superuser. As root, the server runs as the
    ``postgres`` system user (PostgreSQL refuses root); ``directory`` must
    then be somewhere that user can reach (not under a 0700 directory)."""

    what = "postgres"

    def __init__(self, directory: Path, port: int = 0) -> None:
        super().__init__(directory)
        self.port = port or free_port()
        self.data = directory / "data"
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid}

    @classmethod
    def in_temp_dir(cls, port: int = 0) -> PostgresCluster:
        """A cluster in a new directory under the system's temporary directory,
        which the ``postgres`` user can reach (``remove()`` deletes it)."""
        base = Path(tempfile.mkdtemp(prefix="taube-postgres-"))
        base.chmod(0o711)
        return cls(base, port)

    @staticmethod
    def missing() -> str | None:
        if _postgres_bin() is None:
            return f"PostgreSQL's initdb is not installed (looked in {', '.join(POSTGRES_BIN)})"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run PostgreSQL as"
        return None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _chown(self, path: Path) -> None:
        if self._user:
            os.chown(path, self._user["user"], self._user["group"])

    def init(self) -> None:
        """``initdb`` (once)."""
        binary = _postgres_bin()
        if binary is None:
            raise RuntimeError("PostgreSQL is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._chown(self.directory)
        self.log_path.touch()
        self._chown(self.log_path)
        proc = self._spawn(
            [
                str(binary / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
            cwd=self.directory,
            **self._user,
        )
        if proc.wait(60) != 0:
            raise RuntimeError(f"initdb failed; see {self.log_path}")

    def start(self, timeout: float = 30.0) -> None:
        if not (self.data / "PG_VERSION").exists():
            self.init()
        binary = _postgres_bin()
        assert binary is not None
        self.proc = self._spawn(
            [
                str(binary / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.directory),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            cwd=self.directory,
            **self._user,
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        binary = _postgres_bin()
        assert binary is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited; see {self.log_path}")
            ready = subprocess.run(  # noqa: S603 - PostgreSQL's own tool
                [str(binary / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL not ready after {timeout} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """SIGINT is PostgreSQL's fast shutdown (sessions are cut, nothing is lost)."""
        super().stop(sig, timeout)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


__all__ = [
    "Nginx",
    "PostgresCluster",
    "RedisServer",
    "free_port",
    "nginx_config",
    "wait_listening",
]
