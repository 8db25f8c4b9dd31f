"""``ServerProcess``: ``taube serve`` in a subprocess on a loopback port.

The tests talk to a real server process: killing it with SIGKILL and
starting it again on the same data directory is how durability is tested.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from taube.testing.services import Service

_READY = re.compile(rb"taube serving on (http://\S+)")

#: settings that keep tests fast and deterministic; tests override per case
TEST_ENV = {
    "TAUBE_SERVER_DOMAIN": "example.org",
    "TAUBE_AUTH_ARGON2_TIME_COST": "1",
    "TAUBE_AUTH_ARGON2_MEMORY_KIB": "8192",
    "TAUBE_LIMITS_AUTH_PER_IP_PER_MINUTE": "100000",
    "TAUBE_LIMITS_AUTH_PER_ACCOUNT_PER_MINUTE": "1000",
    "TAUBE_LOG_LEVEL": "info",
    # tests never reach out to other domains (tests/federation turns it on)
    "TAUBE_FEDERATION_ENABLED": "false",
}


class ServerProcess(Service):
    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None, port: int = 0) -> None:
        self.data_dir = data_dir
        self.env = {**TEST_ENV, **(env or {})}
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = data_dir / "server.log"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/v1/ws"

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAUBE_")}
        env.update(self.env)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "taube",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = _READY.search(line)
            if match:
                self.url = match.group(1).decode()
                self.port = int(self.url.rsplit(":", 1)[1])
                return
        self.stop()
        raise RuntimeError(f"taube serve did not start; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no flushing."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self._close_pipe(self.proc)
            self.proc = None

    @staticmethod
    def _close_pipe(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            self._close_pipe(proc)

    def restart(self) -> None:
        """Start again on the same port and data directory."""
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""
