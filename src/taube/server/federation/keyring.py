"""The server's own Ed25519 keys: one signs, retired ones stay listed until they expire.

The keys live in ``<data_dir>/federation/server_keys.json`` (mode 0600),
written atomically. Rotating makes a new current key and gives the old one
``valid_until_ms`` = now + ``RETIRED_GRACE_MS``: requests it signed before
still verify while they may be in flight or cached, and it is dropped from
the list after that. ``taube serve`` rotates on its own once the current key
is ``federation.key_rotation_days`` old; an operator rotates at once with::

    python -m taube.server.federation.keyring rotate --data-dir DIR

(stop the server first, or restart it after: it reads the file at start).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import secrets
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from taube.proto.federation import ServerKey, ServerKeys
from taube.proto.signing import b64encode

#: a retired key keeps verifying this long
RETIRED_GRACE_MS = 7 * 86400 * 1000
FILE_NAME = "server_keys.json"


@dataclasses.dataclass
class _Entry:
    key_id: str
    private: Ed25519PrivateKey
    valid_from_ms: int
    valid_until_ms: int | None

    def public(self) -> ServerKey:
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return ServerKey(
            key_id=self.key_id,
            public_key=b64encode(raw),
            valid_from_ms=self.valid_from_ms,
            valid_until_ms=self.valid_until_ms,
        )


class ServerKeyring:
    def __init__(self, path: Path, entries: list[_Entry]) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def open(cls, directory: Path, now_ms: int) -> ServerKeyring:
        """The keyring in ``directory`` (made, with a first key, if there is none)."""
        path = directory / FILE_NAME
        if not path.exists():
            ring = cls(path, [])
            ring.rotate(now_ms)
            return ring
        data = json.loads(path.read_text("utf-8"))
        entries = [
            _Entry(
                e["key_id"],
                Ed25519PrivateKey.from_private_bytes(base64.b64decode(e["seed"])),
                int(e["valid_from_ms"]),
                None if e.get("valid_until_ms") is None else int(e["valid_until_ms"]),
            )
            for e in data["keys"]
        ]
        if not any(e.valid_until_ms is None for e in entries):
            raise RuntimeError(f"{path} has no current key")
        return cls(path, entries)

    @property
    def current(self) -> tuple[str, Ed25519PrivateKey]:
        entry = next(e for e in self._entries if e.valid_until_ms is None)
        return entry.key_id, entry.private

    @property
    def current_since_ms(self) -> int:
        return next(e.valid_from_ms for e in self._entries if e.valid_until_ms is None)

    def sign(self, data: bytes) -> tuple[str, str]:
        """``(key id, base64 signature)`` of ``data`` by the current key."""
        key_id, key = self.current
        return key_id, b64encode(key.sign(data))

    def published(self, domain: str, now_ms: int) -> ServerKeys:
        """What ``/.well-known/taube/keys`` shows: the current key and the retired
        ones still valid."""
        keys = [
            e.public()
            for e in self._entries
            if e.valid_until_ms is None or e.valid_until_ms > now_ms
        ]
        return ServerKeys(domain=domain, keys=keys)

    def rotate(self, now_ms: int) -> str:
        """A new current key; the old one retires (valid for ``RETIRED_GRACE_MS``)."""
        for entry in self._entries:
            if entry.valid_until_ms is None:
                entry.valid_until_ms = now_ms + RETIRED_GRACE_MS
        self._entries = [
            e for e in self._entries if e.valid_until_ms is None or e.valid_until_ms > now_ms
        ]
        key_id = f"k{now_ms // 1000}{secrets.token_hex(2)}"
        self._entries.append(_Entry(key_id, Ed25519PrivateKey.generate(), now_ms, None))
        self._save()
        return key_id

    def rotate_if_older(self, max_age_ms: int, now_ms: int) -> str | None:
        if now_ms - self.current_since_ms < max_age_ms:
            return None
        return self.rotate(now_ms)

    def _save(self) -> None:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        data = {
            "keys": [
                {
                    "key_id": e.key_id,
                    "seed": base64.b64encode(
                        e.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
                    ).decode(),
                    "valid_from_ms": e.valid_from_ms,
                    "valid_until_ms": e.valid_until_ms,
                }
                for e in self._entries
            ]
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m taube.server.federation.keyring",
        description="Show or rotate the server's federation keys.",
    )
    parser.add_argument("command", choices=("show", "rotate"))
    parser.add_argument("--data-dir", type=Path, required=True, help="the server's data directory")
    args = parser.parse_args(argv)
    now = time.time_ns() // 1_000_000
    ring = ServerKeyring.open(args.data_dir / "federation", now)
    if args.command == "rotate":
        print(f"new key {ring.rotate(now)}; restart the server to sign with it")
    for key in ring.published("-", now).keys:
        until = "current" if key.valid_until_ms is None else f"valid until {key.valid_until_ms}"
        print(f"{key.key_id} {key.public_key} {until}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
