"""This device's history as one encrypted file: conversations, messages, contacts.

A new device linked with history gets it from an existing one: the file is
encrypted and uploaded like an attachment (the server keeps no old
ciphertext), and its key travels with the identity key over Olm
(``linking``). Importing keeps what the device already has: nothing is
shown twice.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from taube.client import attachments
from taube.client.messages import Messages
from taube.client.session import Session
from taube.proto.ids import DeviceId, UserId


class History:
    def __init__(self, session: Session, messages: Messages) -> None:
        self._session = session
        self._messages = messages

    def dump(self, *, pending: bool = False) -> dict[str, Any]:
        """Everything the history holds, as plain JSON-able data (``pending``:
        with what still waits in the outbox)."""
        profile, _, _ = self._session.need()
        where = "" if pending else " WHERE status != 'pending'"
        return {
            "conversations": [
                [c, k, bytes(e).decode(), u]
                for c, k, e, u in profile.execute(
                    "SELECT conversation, kind, events, updated_ms FROM conversations"
                )
            ],
            "messages": [
                [*row[:7], bytes(row[7]).decode(), *row[8:]]
                for row in profile.execute(
                    "SELECT conversation, id, seq, sender, sender_device, ts, type, content,"
                    f" status, expires_ms FROM messages{where}"
                )
            ],
            "profiles": [
                list(r) for r in profile.execute("SELECT user_id, name, avatar, ts FROM profiles")
            ],
        }

    async def export(self) -> dict[str, Any]:
        """The history encrypted and uploaded: the attachment entry naming it."""
        _, api, _ = self._session.need()
        dump = self.dump()
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "history.json"
            await asyncio.to_thread(path.write_bytes, msgspec.json.encode(dump))
            return await attachments.upload(api, path, kind="file", name="history.json")

    async def import_(self, entry: dict[str, Any]) -> None:
        """Download and add the history ``export`` made."""
        profile, api, _ = self._session.need()
        with tempfile.TemporaryDirectory() as directory:
            path = await attachments.download(api, entry, Path(directory))
            dump = msgspec.json.decode(await asyncio.to_thread(path.read_bytes))
        with profile.transaction():
            for conversation, kind, events, updated in dump.get("conversations", []):
                profile.execute(
                    "INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?)",
                    conversation,
                    kind,
                    events.encode(),
                    updated,
                )
            for row in dump.get("messages", []):
                content = msgspec.json.decode(row[7].encode())
                self._messages.store(
                    row[0],
                    row[1],
                    row[2],
                    UserId(row[3]),
                    DeviceId(row[4]),
                    row[5],
                    row[6],
                    content,
                    row[8],
                    row[9],
                )
            for user, name, avatar, ts in dump.get("profiles", []):
                profile.execute(
                    "INSERT OR IGNORE INTO profiles VALUES (?, ?, ?, ?)", user, name, avatar, ts
                )
