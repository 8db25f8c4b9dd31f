"""``taube connect irc`` in a terminal: a refused password keeps nothing, a
good account is kept sealed, ``taube connect run`` relays both ways and
``taube connect status`` tells how it is doing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from taube.client import Client
from taube.client import events as ev
from taube.testing import ServerProcess
from taube.testing.ircd import IrcPeer as Peer
from taube.testing.ircd import Ngircd
from tests.connectors.irc.conftest import PASSWORD, wait_for


def taube(
    profile: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taube", "--profile", str(profile), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


async def test_connect_run_and_status(tmp_path: Path, server: ServerProcess) -> None:
    with Ngircd(tmp_path / "locked", password="sesame") as locked:
        async with Client(tmp_path / "phone") as phone:
            code = await phone.register(server.url, "alice@example.org", PASSWORD)
            async with Client(tmp_path / "device") as device:
                await device.login(server.url, "alice@example.org", PASSWORD, code)
            server_arg = f"127.0.0.1:{locked.port}"
            irc = ("connect", "irc", "--server", server_arg, "--nick", "alice", "--password")
            refused = taube(
                tmp_path / "device", *irc, "--join", "#taube", env={"TAUBE_IRC_PASSWORD": "no"}
            )
            assert refused.returncode == 1
            assert "password" in refused.stderr
            assert "no IRC account" in taube(tmp_path / "device", "connect", "status").stderr
            bad = taube(
                tmp_path / "device", *irc, "--join", "taube", env={"TAUBE_IRC_PASSWORD": "x"}
            )
            assert "not a channel: taube" in bad.stderr
            done = taube(
                tmp_path / "device",
                "--json",
                *irc,
                "--join",
                "#taube",
                env={"TAUBE_IRC_PASSWORD": "sesame"},
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["channels"] == ["#taube"]
            # the password is sealed in the profile, nowhere in plain
            for path in (tmp_path / "device").rglob("*"):
                if path.is_file():
                    assert b"sesame" not in path.read_bytes(), path
            log = tmp_path / "run.log"
            argv = [sys.executable, "-m", "taube", "--profile", str(tmp_path / "device")]
            with log.open("ab") as sink:
                run = subprocess.Popen(
                    [*argv, "connect", "run"], stdout=subprocess.DEVNULL, stderr=sink
                )
            try:
                await wait_for(lambda: "irc: connected" in log.read_text(), timeout=60)
                bob = await Peer(locked.port, "bob").connect(password="sesame")
                await bob.send("PRIVMSG alice :hi from irc")
                await phone.sync()
                await wait_for(lambda: phone._portals.find("irc", "bob") is not None, 30)
                chat = phone._portals.find("irc", "bob")
                assert chat is not None
                await wait_for(lambda: [m.text for m in phone.history(chat) if m.type == ev.TEXT])
                await phone.send_text(chat, "hi from taube")
                await wait_for(lambda: bob.said() == [("alice", "hi from taube")], 30)
                status = taube(tmp_path / "device", "--json", "connect", "status")
                found = json.loads(status.stdout)
                assert found["state"] == "connected"
                assert found["nick"] == "alice"
                assert {c["chat"] for c in found["chats"]} >= {"bob", "#taube"}
                await bob.close()
            finally:
                run.send_signal(signal.SIGTERM)
                await asyncio.to_thread(run.wait, 30)
            assert run.returncode == 0, log.read_text()
