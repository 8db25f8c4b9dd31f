"""The portable history: everything on this device in one encrypted file.

``taube export`` writes it, ``taube import`` reads it into another account,
on another server if need be (a new address). What it holds:

- every conversation's messages (with their ids, senders and times), the
  contacts' profiles, and the titles as this device can read them;
- the decrypted attachments;
- the connectors' state and secrets (the e-mail account, its OpenPGP key,
  what its contacts' keys are), so chats over e-mail go on after the move.

It holds no key of the taube account itself: the new account has its own
identity. Conversations come back as conversations of the new account: a
portal (a chat over e-mail) as a live portal again, a chat with people on
the old server as an archived copy (the new account's own, titled as
before).

File: ``TAUBE-ARCHIVE 1`` and a JSON header line (the argon2id salt and
costs, the ciphertext's SHA-256), then a tar stream encrypted like an
attachment (chunked AES-256-GCM, ``taube.crypto.attachments``) under the
key derived from a code of the recovery code's kind, shown once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from taube.client import events as ev
from taube.client.conversations import Conversations
from taube.client.errors import ClientError
from taube.client.history import History
from taube.client.messages import Messages
from taube.client.portals import Portals
from taube.client.session import Session
from taube.crypto import CryptoError, KdfParams, code_key, new_recovery_code
from taube.crypto.attachments import AttachmentEncryptor, AttachmentKey, decrypt_attachment
from taube.proto.ids import ConversationId, DeviceId, UserId
from taube.proto.signing import b64decode, b64encode
from taube.proto.state import Kind

MAGIC = b"TAUBE-ARCHIVE 1\n"
#: profile secrets that travel (the connectors'); the account's own stay
MOVING_SECRETS = "connector:"
#: what a progress callback gets: (step, done, total)
Progress = Callable[[str, int, int], None]


#: what a message's status becomes in the new account (never sent: failed)
_IMPORTED_STATUS = {"received": "received", "pending": "failed", "failed": "failed"}


class ArchiveError(ClientError):
    """Not an archive, the wrong code, or damaged."""


class Header(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    v: int = 1
    time_cost: int
    memory_cost: int
    parallelism: int
    salt: str
    sha256: str


def _quiet(step: str, done: int, total: int) -> None:
    pass


class Archive:
    def __init__(
        self,
        session: Session,
        conversations: Conversations,
        messages: Messages,
        history: History,
        portals: Portals,
    ) -> None:
        self._session = session
        self._conversations = conversations
        self._messages = messages
        self._history = history
        self._portals = portals

    # ================================================================ export

    async def export(self, path: Path, progress: Progress = _quiet) -> str:
        """Write the archive to ``path``; returns the code that opens it."""
        session = self._session
        profile, _, _ = session.need()
        dump = self._history.dump(pending=True)
        dump["titles"] = {
            c: self._conversations.title(ConversationId(c)) for c, *_ in dump["conversations"]
        }
        dump["user"] = session.user
        dump["secrets"] = {
            name: b64encode(value)
            for name in profile.names(MOVING_SECRETS)
            if (value := profile.get_secret(name)) is not None
        }
        progress("messages", len(dump["messages"]), len(dump["messages"]))
        code = new_recovery_code()
        params = KdfParams()
        salt = os.urandom(16)
        key = await asyncio.to_thread(code_key, code, salt, params)
        await asyncio.to_thread(self._write, path, dump, key, salt, params, progress)
        return str(code)

    def _write(
        self,
        path: Path,
        dump: dict[str, Any],
        key: bytes,
        salt: bytes,
        params: KdfParams,
        progress: Progress,
    ) -> None:
        profile_dir = self._session.profile_dir
        files = sorted(p for p in (profile_dir / "attachments").glob("*") if p.is_file())
        with tempfile.TemporaryDirectory() as scratch:
            plain = Path(scratch) / "archive.tar"
            with tarfile.open(plain, "w") as tar:
                _add_bytes(tar, "history.json", msgspec.json.encode(dump))
                for done, file in enumerate(files, 1):
                    tar.add(file, f"attachments/{file.name}")
                    progress("files", done, len(files))
                for db in sorted((profile_dir / "connectors").glob("*.db")):
                    copy = Path(scratch) / db.name
                    _sqlite_copy(db, copy)
                    tar.add(copy, f"connectors/{db.name}")
            encryptor = AttachmentEncryptor(key)
            sealed = Path(scratch) / "archive.sealed"
            with plain.open("rb") as source, sealed.open("wb") as sink:
                for chunk in encryptor.encrypt(source):
                    sink.write(chunk)
            header = Header(
                time_cost=params.time_cost,
                memory_cost=params.memory_cost,
                parallelism=params.parallelism,
                salt=b64encode(salt),
                sha256=encryptor.result().sha256,
            )
            partial = path.with_name(path.name + ".part")
            with partial.open("wb") as out, sealed.open("rb") as source:
                out.write(MAGIC + msgspec.json.encode(header) + b"\n")
                shutil.copyfileobj(source, out)
            partial.replace(path)

    # ================================================================ import

    async def import_(self, path: Path, code: str, progress: Progress = _quiet) -> int:
        """Read the archive at ``path`` into this account; returns how many
        messages came in. Nothing is changed if the code or file is wrong."""
        session = self._session
        session.need()
        header, offset = await asyncio.to_thread(_read_header, path)
        try:
            key = await asyncio.to_thread(
                code_key,
                code,
                b64decode(header.salt),
                KdfParams(
                    time_cost=header.time_cost,
                    memory_cost=header.memory_cost,
                    parallelism=header.parallelism,
                ),
            )
        except CryptoError as exc:
            raise ArchiveError(f"cannot open the archive: {exc}") from exc
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            await asyncio.to_thread(_decrypt_to, path, offset, key, header, root / "archive.tar")
            with tarfile.open(root / "archive.tar") as tar:
                tar.extractall(root / "x", filter="data")
            dump = msgspec.json.decode((root / "x" / "history.json").read_bytes())
            count = await self._restore(dump, progress)
            self._restore_files(root / "x", dump, progress)
        return count

    async def _restore(self, dump: dict[str, Any], progress: Progress) -> int:
        """The conversations and messages, each conversation a new one of
        this account (a portal stays a portal)."""
        profile, _, _ = self._session.need()
        by_conversation: dict[str, list[list[Any]]] = {}
        for row in dump.get("messages", []):
            by_conversation.setdefault(row[0], []).append(row)
        titles = dump.get("titles", {})
        # what the user wrote under the old address is theirs here too
        old_user = str(dump.get("user", ""))
        total, done = len(dump.get("messages", [])), 0
        for conversation, kind, _events, _updated in dump.get("conversations", []):
            rows = sorted(
                by_conversation.get(conversation, []), key=lambda r: (r[2] is None, r[2] or 0, r[5])
            )
            portal = _latest_portal(rows)
            if portal is not None:
                target = await self._portals.open(
                    ev.Portal(portal.network, portal.chat, portal.peers, portal.title)
                )
            else:
                others = sorted({str(r[3]) for r in rows} - {str(dump.get("user", ""))})
                title = titles.get(conversation) or (", ".join(others) if kind == "direct" else "")
                target = await self._conversations.create(Kind.GROUP, [])
                await self._conversations.rename(target, f"{title or 'Chat'} (archive)")
            with profile.transaction():
                for index, row in enumerate(rows):
                    content = msgspec.json.decode(row[7].encode())
                    self._messages.store(
                        target,
                        row[1],
                        index - len(rows),  # before anything new, in the old order
                        self._session.user if row[3] == old_user else UserId(row[3]),
                        DeviceId(row[4]),
                        row[5],
                        row[6],
                        content,
                        _IMPORTED_STATUS.get(row[8], "sent"),
                        row[9],
                    )
            done += len(rows)
            progress("messages", done, total)
        for user, name, avatar, ts in dump.get("profiles", []):
            profile.execute(
                "INSERT OR IGNORE INTO profiles VALUES (?, ?, ?, ?)", user, name, avatar, ts
            )
        return done

    def _restore_files(self, root: Path, dump: dict[str, Any], progress: Progress) -> None:
        profile, _, _ = self._session.need()
        profile_dir = self._session.profile_dir
        files = sorted((root / "attachments").glob("*"))
        (profile_dir / "attachments").mkdir(parents=True, exist_ok=True)
        for done, file in enumerate(files, 1):
            target = profile_dir / "attachments" / file.name
            if not target.exists():
                shutil.copyfile(file, target)
            progress("files", done, len(files))
        connectors = profile_dir / "connectors"
        for db in sorted((root / "connectors").glob("*.db")):
            connectors.mkdir(parents=True, exist_ok=True)
            if not (connectors / db.name).exists():
                shutil.copyfile(db, connectors / db.name)
        for name, value in dump.get("secrets", {}).items():
            if name.startswith(MOVING_SECRETS) and profile.get_secret(name) is None:
                profile.put_secret(name, b64decode(value))


def _latest_portal(rows: list[list[Any]]) -> ev.Portal | None:
    found = None
    for row in rows:
        if row[6] == ev.PORTAL:
            found = ev.Portal.of(msgspec.json.decode(row[7].encode())) or found
    return found


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a database that may be in use."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _read_header(path: Path) -> tuple[Header, int]:
    with path.open("rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise ArchiveError(f"{path} is not a taube archive")
        line = file.readline(4096)
        try:
            header = msgspec.json.decode(line, type=Header)
        except msgspec.MsgspecError as exc:
            raise ArchiveError(f"{path}: damaged header") from exc
        return header, file.tell()


def _decrypt_to(path: Path, offset: int, key: bytes, header: Header, target: Path) -> None:
    entry = AttachmentKey(key=b64encode(key), sha256=header.sha256)
    with path.open("rb") as file, target.open("wb") as out:
        file.seek(offset)  # the hash and the decryption start here
        try:
            for chunk in decrypt_attachment(file, entry):
                out.write(chunk)
        except CryptoError as exc:
            raise ArchiveError("the code does not open this archive, or it is damaged") from exc
