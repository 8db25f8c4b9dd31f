"""``taube call`` in subprocesses: one side answers, the other calls with a tone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taube.testing import ServerProcess

PASSWORD = "correct horse battery staple"


def taube_argv(profile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "taube", "--profile", str(profile), "--json", *args]


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def taube(profile: Path, *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        taube_argv(profile, *args),
        capture_output=True,
        text=True,
        env={**os.environ, "TAUBE_PASSWORD": PASSWORD},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return lines(done.stdout)


@pytest.mark.services
def test_taube_call_with_a_tone(tmp_path: Path, call_server: ServerProcess) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    taube(alice, "account", "register", "alice@example.org", "--server", call_server.url)
    taube(bob, "account", "register", "bob@example.org", "--server", call_server.url)
    env = {**os.environ, "TAUBE_PASSWORD": PASSWORD}
    with subprocess.Popen(
        taube_argv(bob, "call", "--answer", "--timeout", "60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as answering:
        caller = taube(alice, "call", "bob@example.org", "--tone", "--seconds", "2")
        out, err = answering.communicate(timeout=60)
    assert answering.returncode == 0, err
    assert [e["event"] for e in caller] == ["calling", "connected", "ended"]
    callee = lines(out)
    assert [e["event"] for e in callee] == ["ringing", "connected", "ended"]
    assert callee[0]["from"] == "alice@example.org"
    assert caller[-1]["reason"] == "hangup"
    assert callee[-1]["reason"] == "hangup"
    assert callee[-1]["frames"]["audio"] > 0  # media flowed both ways
    assert caller[-1]["frames"]["audio"] > 0
