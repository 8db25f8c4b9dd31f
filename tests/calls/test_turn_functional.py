"""TURN credentials: the server derives them, coturn accepts them until they expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess

import aiohttp
import pytest

from taube.proto import http
from taube.server.config import ConfigError, TurnSection, load
from taube.server.http.turn import credentials
from taube.testing import ServerProcess
from taube.testing.coturn import Coturn
from tests.calls.conftest import Sdk


def test_credentials_follow_coturns_rest_scheme() -> None:
    turn = TurnSection(urls=["turn:turn.example.org:3478"], secret="s3cret", ttl_s=600)
    creds = credentials(turn, "DEVICE", now_ms=1_000_000_000_123)
    assert creds.username == "1000000600:DEVICE"
    digest = hmac.new(b"s3cret", b"1000000600:DEVICE", hashlib.sha1).digest()
    assert creds.credential == base64.b64encode(digest).decode()
    assert creds.expires_ms == 1_000_000_600_000
    assert credentials(TurnSection(), "DEVICE", 0) == http.TurnCredentials(urls=[])


def test_turn_config_is_checked_and_its_secret_masked() -> None:
    env = {"TAUBE_TURN_URLS": '["turn:127.0.0.1:3478"]', "TAUBE_TURN_SECRET": "hunter22"}
    config = load(environ=env)
    assert config.turn.urls == ["turn:127.0.0.1:3478"]
    assert config.public_dict()["turn"]["secret"] == "****"
    with pytest.raises(ConfigError):
        load(environ={"TAUBE_TURN_URLS": '["turn:127.0.0.1:3478"]'})  # no secret
    with pytest.raises(ConfigError):
        load(environ={"TAUBE_TURN_URLS": '["http://x"]', "TAUBE_TURN_SECRET": "x"})


def allocate(turn: Coturn, username: str, password: str) -> bool:
    """``turnutils_uclient`` (coturn's own client) allocates a relay with these."""
    uclient = shutil.which("turnutils_uclient")
    assert uclient is not None
    done = subprocess.run(
        [
            uclient,
            "-y",
            "-n",
            "1",
            "-m",
            "1",
            "-l",
            "100",
            "-p",
            str(turn.port),
            "-u",
            username,
            "-w",
            password,
            "127.0.0.1",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0 and b"Total lost packets 0" in done.stdout


@pytest.mark.services
async def test_coturn_accepts_the_servers_credentials_only(
    call_server: ServerProcess, coturn: Coturn, sdk: Sdk
) -> None:
    alice = await sdk(call_server)("alice", connect=False)
    creds = await alice.turn_credentials()
    assert creds.urls == coturn.urls
    assert allocate(coturn, creds.username, creds.credential)
    assert not allocate(coturn, creds.username, "d3JvbmcgcGFzc3dvcmQ=")
    expired = TurnSection(urls=coturn.urls, secret=coturn.secret, ttl_s=1)
    old = credentials(expired, "DEVICE", now_ms=1_000_000_000_000)
    assert not allocate(coturn, old.username, old.credential)
    # without a token there are none
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{call_server.url}/api/v1/turn") as response,
    ):
        assert response.status == 401
