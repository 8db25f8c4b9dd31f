"""The web app's unit tests (vitest, in web/test) as one pytest test.

So the project's single test command covers the TypeScript too, including
the crypto layer's live interop tests against this Python package
(``web/test/crypto/interop.test.ts`` starts ``tests/web/interop_peer.py``
with this interpreter). Skipped with the reason when Node or the web app's
packages are missing (``scripts/test`` installs them when npm is there);
a failure in CI (``TAUBE_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing_service

WEB = Path(__file__).resolve().parents[2] / "web"
VITEST = WEB / "node_modules" / "vitest" / "vitest.mjs"


@pytest.mark.timeout(600)
def test_vitest() -> None:
    node = shutil.which("node")
    if node is None:
        missing_service("Node.js is not installed: the web app's unit tests need it")
    if not VITEST.exists():
        missing_service(
            f"{WEB / 'node_modules'} is missing: run `npm ci` in web/ (scripts/test does)"
        )
    env = {**os.environ, "CI": "1", "NO_COLOR": "1", "TAUBE_PYTHON": sys.executable}
    result = subprocess.run(
        [node, str(VITEST), "run", "--reporter=dot"],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"vitest failed:\n{output[-20000:]}"
