"""The example in docs/sdk.md runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from taube.testing import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def test_sdk_example_runs(tmp_path: Path) -> None:
    [example] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    script = tmp_path / "example.py"
    script.write_text(example)
    with ServerProcess(tmp_path / "server") as server:
        env = {**os.environ, "TAUBE_SERVER": server.url, "TAUBE_DOMAIN": "example.org"}
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "alice@example.org: Hallo Bob!" in done.stdout
