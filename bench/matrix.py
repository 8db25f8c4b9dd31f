"""Matrix Synapse for the side-by-side benchmark: a process we own, and a lean client.

``SynapseProcess`` installs ``matrix-synapse`` from PyPI into its own virtual
environment (``bench/.venv-synapse``, not a project dependency) when it is
missing, generates a configuration in a temporary directory and overrides
it for a benchmark: SQLite, one HTTP listener on 127.0.0.1 and a free port,
open registration without verification, no federation or key servers, every
rate limit lifted, cheap password hashing (bcrypt rounds 4), presence off
and logging at WARNING (as the taube server runs). It starts Synapse as a
child whose PID it records, and stops it by that PID.

``MatrixClient`` speaks the few client-server API calls the benchmark needs
over aiohttp: register, filter, create and join rooms, send, and ``/sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import msgspec

from bench import loadgen

VENV = Path(__file__).resolve().parent / ".venv-synapse"
SERVER_NAME = "localhost"
PASSWORD = "correct horse battery staple"
_UNLIMITED = {"per_second": 100_000, "burst_count": 100_000}

#: what a benchmark's ``/sync`` asks for: room messages, nothing else
SYNC_FILTER = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 1000, "types": ["m.room.message"]},
        "state": {"lazy_load_members": True, "types": []},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def overrides(data_dir: Path, port: int) -> dict[str, Any]:
    """What the benchmark changes in the generated ``homeserver.yaml``."""
    return {
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}},
        "log_config": str(data_dir / "log.json"),
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "report_stats": False,
        "bcrypt_rounds": 4,
        "presence": {"enabled": False},
        "rc_message": _UNLIMITED,
        "rc_registration": _UNLIMITED,
        "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
        "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
        "rc_joins_per_room": _UNLIMITED,
        "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
        "rc_room_creation": _UNLIMITED,
        "rc_3pid_validation": _UNLIMITED,
        "rc_presence": {"per_user": _UNLIMITED},
        "rc_profile": _UNLIMITED,
    }


def log_config(data_dir: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(data_dir / "homeserver.log"),
                "formatter": "plain",
            }
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def install(venv: Path = VENV, log: Callable[[str], None] = print) -> Path:
    """The venv's python, installing Synapse first when it is missing."""
    python = venv / "bin" / "python"
    if python.exists():
        check = subprocess.run(
            [str(python), "-c", "import synapse"], capture_output=True, check=False
        )
        if check.returncode == 0:
            return python
    log(f"installing matrix-synapse into {venv} (about a minute)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "matrix-synapse"], check=True)
    return python


def synapse_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import synapse; print(synapse.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


class SynapseProcess:
    """Synapse on SQLite and a loopback port; a context manager (stops it by PID)."""

    def __init__(
        self,
        python: Path,
        *,
        cpus: set[int] | None = None,
        tmp_dir: Path | None = None,
        keep_data: bool = False,
    ) -> None:
        self.python = python
        self.cpus = cpus
        self.root = Path(tempfile.mkdtemp(prefix="taube-bench-synapse-", dir=tmp_dir))
        self.keep_data = keep_data
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _configure(self) -> list[Path]:
        config = self.root / "homeserver.yaml"
        subprocess.run(
            [
                str(self.python),
                "-m",
                "synapse.app.homeserver",
                "--server-name",
                SERVER_NAME,
                "--config-path",
                str(config),
                "--data-directory",
                str(self.root),
                "--generate-config",
                "--report-stats=no",
            ],
            cwd=self.root,
            capture_output=True,
            check=True,
        )
        extra = self.root / "bench-overrides.yaml"  # JSON is YAML
        extra.write_text(json.dumps(overrides(self.root, self.port), indent=2))
        (self.root / "log.json").write_text(json.dumps(log_config(self.root), indent=2))
        return [config, extra]

    def start(self, timeout: float = 90.0) -> None:
        configs = self._configure()
        args = [str(self.python), "-m", "synapse.app.homeserver"]
        for path in configs:
            args += ["--config-path", str(path)]
        stdout = (self.root / "stdout.log").open("ab")
        with loadgen.affinity(self.cpus):
            self.proc = subprocess.Popen(
                args, cwd=self.root, stdout=stdout, stderr=subprocess.STDOUT
            )
        stdout.close()
        if self.cpus:
            loadgen.pin_process(self.proc.pid, self.cpus)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            if self._versions_ok():
                if self.cpus:  # threads started while it came up
                    loadgen.pin_process(self.proc.pid, self.cpus)
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Synapse did not start; see {self.root}/homeserver.log")

    def _versions_ok(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(
                self.url + "/_matrix/client/versions", timeout=2
            ) as response:
                return int(response.status) == 200
        except OSError:
            return False

    def stop(self) -> int | None:
        """SIGTERM to our child's PID, then SIGKILL if it does not go."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            return proc.wait()

    def log_tail(self, lines: int = 10) -> list[str]:
        path = self.root / "homeserver.log"
        if not path.exists():
            return []
        return path.read_text("utf-8", "replace").splitlines()[-lines:]

    def __enter__(self) -> SynapseProcess:
        try:
            self.start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is not None:
            print("last lines of the Synapse log:", *self.log_tail(), sep="\n  ", file=sys.stderr)
        self._cleanup()

    def _cleanup(self) -> None:
        if self.keep_data:
            print(f"Synapse data kept in {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- client


class MatrixError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"{status}: {body[:300]!r}")
        self.status = status


class MatrixClient:
    """One Matrix user over a shared aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url + "/_matrix/client/v3"
        self.user_id = ""
        self.token = ""
        self.filter_id = ""
        self.since = ""

    async def call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        return (await self.timed_call(method, path, body, params))[0]

    async def timed_call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> tuple[Any, float]:
        """The decoded answer, and ``time.perf_counter()`` when it had been read."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = msgspec.json.encode(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base_url + path, data=data, headers=headers, params=params
        ) as response:
            content = await response.read()
            arrived = time.perf_counter()
            if response.status >= 400:
                raise MatrixError(response.status, content)
        return (msgspec.json.decode(content) if content else {}), arrived

    async def register(self, username: str) -> None:
        result = await self.call(
            "POST",
            "/register",
            {
                "username": username,
                "password": PASSWORD,
                "auth": {"type": "m.login.dummy"},
                "initial_device_display_name": "bench",
            },
        )
        self.user_id, self.token = result["user_id"], result["access_token"]
        user = urllib.parse.quote(self.user_id)
        created = await self.call("POST", f"/user/{user}/filter", SYNC_FILTER)
        self.filter_id = created["filter_id"]

    async def create_room(self, *, public: bool = False, invite: list[str] | None = None) -> str:
        body: dict[str, Any] = {"preset": "public_chat" if public else "trusted_private_chat"}
        if invite:
            body["invite"] = invite
        result = await self.call("POST", "/createRoom", body)
        return str(result["room_id"])

    async def join(self, room: str) -> None:
        await self.call("POST", f"/join/{urllib.parse.quote(room)}", {})

    async def send(self, room: str, txn: str, content: dict[str, Any]) -> str:
        path = f"/rooms/{urllib.parse.quote(room)}/send/m.room.message/{txn}"
        result = await self.call("PUT", path, content)
        return str(result["event_id"])

    async def sync(self, timeout_ms: int) -> tuple[Any, float]:
        params = {"filter": self.filter_id, "timeout": str(timeout_ms)}
        if self.since:
            params["since"] = self.since
        result, arrived = await self.timed_call("GET", "/sync", params=params)
        self.since = result["next_batch"]
        return result, arrived

    async def sync_forever(self, on_message: Callable[[MatrixClient, str, float], None]) -> None:
        """Long-poll ``/sync`` and report every message's ``bench_id`` with
        the time its response had been read (cancel the task to stop)."""
        if not self.since:
            await self.sync(0)
        while True:
            result, arrived = await self.sync(30_000)
            rooms = result.get("rooms", {}).get("join", {})
            for room in rooms.values():
                for event in room.get("timeline", {}).get("events", []):
                    bench_id = event.get("content", {}).get("bench_id")
                    if bench_id is not None:
                        on_message(self, bench_id, arrived)


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task
