"""Canaries: proof that the server never wrote a plaintext anywhere.

A test puts unique canary strings inside what its clients encrypt (message
payloads, attachment bytes), runs the server, stops it, and scans every
file the server wrote (the database with its ``-wal`` and ``-shm`` files,
blob files, the server log) for every canary. A hit means plaintext reached
the server's disk. Use together with a positive check (a received message
decrypts back to its canary) so that the test cannot pass vacuously.

    needles = [canary("msg") for _ in range(200)]
    ...  # clients seal payloads that contain the needles
    server.stop()
    assert scan([server.data_dir, server.log_path], needles) == []
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

Needle = str | bytes


def canary(label: str = "") -> str:
    """A unique, greppable marker (ASCII, so it is the same in any encoding
    a plaintext could leak in as text)."""
    return f"taube-canary-{label}-{secrets.token_hex(12)}"


def files_under(paths: Iterable[Path | str]) -> list[Path]:
    """Every regular file among ``paths``, directories walked recursively,
    each once, in a stable order."""
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    found[child.resolve()] = None
        elif path.is_file():
            found[path.resolve()] = None
    return list(found)


def scan(paths: Iterable[Path | str], needles: Iterable[Needle]) -> list[tuple[Path, Needle]]:
    """``(file, needle)`` for every needle found in a file under ``paths``.

    Needles are ``str`` (searched as UTF-8) or ``bytes``; an empty list
    means none of them is anywhere.
    """
    wanted = [
        (needle, needle.encode() if isinstance(needle, str) else bytes(needle))
        for needle in needles
    ]
    if any(not raw for _, raw in wanted):
        raise ValueError("an empty needle matches everything")
    hits: list[tuple[Path, Needle]] = []
    for path in files_under(paths):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # removed while we looked (a -shm file)
            continue
        hits.extend((path, needle) for needle, raw in wanted if raw in data)
    return hits


__all__ = ["canary", "files_under", "scan"]
