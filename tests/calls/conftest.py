"""Call fixtures: a private coturn on loopback and a server handing out its credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from taube.testing import ServerProcess
from taube.testing.coturn import Coturn
from tests.client.conftest import PASSWORD, Sdk, SdkFactory, sdk
from tests.conftest import missing_service

__all__ = ["PASSWORD", "Sdk", "SdkFactory", "sdk"]


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    reason = Coturn.missing()
    if reason:
        missing_service(reason)
    with Coturn(tmp_path / "coturn") as running:
        yield running


def turn_env(turn: Coturn) -> dict[str, str]:
    """The server configuration naming ``turn`` (``[turn]`` as variables)."""
    return {"TAUBE_TURN_URLS": json.dumps(turn.urls), "TAUBE_TURN_SECRET": turn.secret}


@pytest.fixture
def call_server(tmp_path: Path, coturn: Coturn) -> Iterator[ServerProcess]:
    """A taube server whose TURN credentials work on ``coturn``."""
    with ServerProcess(tmp_path / "server", env=turn_env(coturn)) as proc:
        yield proc
