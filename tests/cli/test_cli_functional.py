"""The ``taube`` command in subprocesses: register, send, receive, history, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from taube.testing import ServerProcess

PASSWORD = "correct horse battery staple"


def taube(profile: Path, *args: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Run ``taube --json``; every stdout line is one JSON object."""
    env = {**os.environ, "TAUBE_PASSWORD": PASSWORD}
    done = subprocess.run(
        [sys.executable, "-m", "taube", "--profile", str(profile), "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_register_send_receive_round_trip(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "server") as server:
        alice, bob = tmp_path / "alice", tmp_path / "bob"
        [registered] = taube(
            alice, "account", "register", "alice@example.org", "--server", server.url
        )
        assert registered["user"] == "alice@example.org"
        assert len(registered["recovery_code"].replace("-", "")) == 24
        taube(bob, "account", "register", "bob@example.org", "--server", server.url)
        [sent] = taube(alice, "send", "bob@example.org", "hello from the cli")
        received = taube(bob, "receive", "--timeout", "3")
        messages = [r for r in received if r["event"] == "message"]
        assert [(m["sender"], m["text"], m["conversation"]) for m in messages] == [
            ("alice@example.org", "hello from the cli", sent["conversation"])
        ]
        assert messages[0]["id"] == sent["id"]
        assert messages[0]["attachments"] == []
        # received once: a second receive shows nothing new
        again = taube(bob, "receive", "--timeout", "2")
        assert [r for r in again if r["event"] == "message"] == []
        [reply] = taube(bob, "send", sent["conversation"], "hi alice", "--reply-to", sent["id"])
        history = taube(alice, "history", sent["conversation"])
        assert [h["text"] for h in history] == ["hello from the cli"]  # not synced yet
        taube(alice, "receive", "--timeout", "2")
        history = taube(alice, "history", sent["conversation"])
        assert [(h["text"], h["reply_to"]) for h in history] == [
            ("hello from the cli", None),
            ("hi alice", sent["id"]),
        ]
        [chat] = taube(alice, "chats")
        assert chat["conversation"] == sent["conversation"]
        [devices] = taube(alice, "account", "devices")
        assert devices["current"] is True
        [safety] = taube(alice, "verify", "bob@example.org")
        [bob_side] = taube(bob, "verify", "alice@example.org")
        assert safety["safety_number"] == bob_side["safety_number"]
        assert len(safety["safety_number"]) == 60
        out = tmp_path / "export.html"
        taube(alice, "export", sent["conversation"], "--format", "html", "--output", str(out))
        assert "hi alice" in out.read_text()
        assert reply["id"]
        document = tmp_path / "report.pdf"
        document.write_bytes(b"%PDF-1.4 a tiny report")
        taube(alice, "send", "bob@example.org", "the report", "--file", str(document))
        [file_message] = [
            r for r in taube(bob, "receive", "--timeout", "2") if r["event"] == "message"
        ]
        [attachment] = file_message["attachments"]
        assert (attachment["kind"], attachment["name"]) == ("pdf", "report.pdf")
        assert Path(attachment["path"]).read_bytes() == document.read_bytes()
        assert "key" not in attachment


def test_link_a_new_device(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "server") as server:
        old, new = tmp_path / "old", tmp_path / "new"
        taube(old, "account", "register", "carol@example.org", "--server", server.url)
        env = {**os.environ, "TAUBE_PASSWORD": PASSWORD}
        showing = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taube",
                "--profile",
                str(old),
                "--json",
                "account",
                "link",
                "--yes",
                "--timeout",
                "30",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert showing.stdout is not None
            code = json.loads(showing.stdout.readline())["code"]
            [linked] = taube(
                new, "account", "link-accept", code, "carol@example.org", "--server", server.url
            )
            assert showing.wait(30) == 0
            assert json.loads(showing.stdout.readline())["event"] == "linked"
        finally:
            if showing.poll() is None:
                showing.kill()
                showing.wait()
            if showing.stdout is not None:
                showing.stdout.close()
        assert linked["user"] == "carol@example.org"
        devices = taube(new, "account", "devices")
        assert len(devices) == 2


def test_emoji_verification(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "server") as server:
        alice, bob = tmp_path / "alice", tmp_path / "bob"
        taube(alice, "account", "register", "alice@example.org", "--server", server.url)
        taube(bob, "account", "register", "bob@example.org", "--server", server.url)
        taube(alice, "send", "bob@example.org", "hi")
        env = {**os.environ, "TAUBE_PASSWORD": PASSWORD}
        answering = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taube",
                "--profile",
                str(bob),
                "--json",
                "verify",
                "alice@example.org",
                "--accept",
                "--yes",
                "--timeout",
                "30",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            started = taube(alice, "verify", "bob@example.org", "--emoji", "--yes")
            out, _ = answering.communicate(timeout=30)
        finally:
            if answering.poll() is None:
                answering.kill()
                answering.wait()
        answered = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert started[0]["emoji"] == answered[0]["emoji"]
        assert started[-1]["event"] == answered[-1]["event"] == "verified"
        [safety] = taube(alice, "verify", "bob@example.org")
        assert safety["safety_number"]
