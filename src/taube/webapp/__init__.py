"""The web app's built bundle (``web/`` compiled by Vite into ``dist/``).

It is committed, so installing taube needs no Node; ``scripts/check``
rebuilds it and fails when the committed files differ from the sources.
"""

from __future__ import annotations

from pathlib import Path

DIST = Path(__file__).resolve().parent / "dist"
