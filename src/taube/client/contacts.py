"""Profiles: the user's own display name and picture, and what contacts shared.

A profile travels as an end-to-end encrypted ``profile`` message in each
conversation (the picture an encrypted attachment of it), so the server
sees neither. ``Contacts`` owns the profile's ``profiles`` table (what each
contact last shared) and the user's own profile (``own_profile`` and the
picture file ``own-avatar``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from taube.client import attachments
from taube.client import events as ev
from taube.client.conversations import Conversations, Sender
from taube.client.messages import Messages
from taube.client.session import Session
from taube.proto.ids import ConversationId, UserId, parse_address


class Contacts:
    def __init__(
        self,
        session: Session,
        conversations: Conversations,
        messages: Messages,
        sender: Sender,
    ) -> None:
        self._session = session
        self._conversations = conversations
        self._messages = messages
        self._sender = sender

    async def set_profile(self, name: str, avatar: Path | None) -> None:
        profile, _, _ = self._session.need()
        previous = self._own_profile() or {}
        content: dict[str, Any] = {"name": name}
        if avatar is not None:
            # kept here: every conversation gets a fresh upload (the server
            # deletes a blob once the members of the first one have it)
            data = await asyncio.to_thread(avatar.read_bytes)
            await asyncio.to_thread(self._own_avatar.write_bytes, data)
            content["avatar_name"] = avatar.name
        elif "avatar_name" in previous:  # a new name keeps the picture
            content["avatar_name"] = previous["avatar_name"]
        profile.put_raw("own_profile", msgspec.json.encode(content))
        for conversation, _state in await self._conversations.all_states():
            await self.send_profile(conversation)

    @property
    def _own_avatar(self) -> Path:
        return self._session.profile_dir / "own-avatar"

    def _own_profile(self) -> dict[str, Any] | None:
        profile = self._session.profile
        assert profile is not None
        own = profile.get_raw("own_profile")
        return None if own is None else dict(msgspec.json.decode(own))

    async def send_profile(self, conversation: ConversationId) -> None:
        """Share the user's profile in ``conversation`` (if they set one)."""
        _, api, _ = self._session.need()
        own = self._own_profile()
        if own is None:
            return
        content: dict[str, Any] = {"name": own.get("name", "")}
        if "avatar_name" in own and self._own_avatar.exists():
            with tempfile.TemporaryDirectory() as directory:
                path = Path(directory) / str(own["avatar_name"])
                await asyncio.to_thread(shutil.copyfile, self._own_avatar, path)
                entry = await attachments.upload(api, path, kind="image")
            content["avatar"] = entry
            content["attachments"] = [entry]
        await self._sender.send(conversation, ev.PROFILE, content)

    def contact(self, user: str) -> ev.Profile | None:
        profile, _, _ = self._session.need()
        row = profile.execute(
            "SELECT name, avatar FROM profiles WHERE user_id = ?", parse_address(user)
        ).fetchone()
        return None if row is None else ev.Profile(parse_address(user), str(row[0]), row[1])

    def remember(self, sender: UserId, ts: int, content: dict[str, Any]) -> None:
        """A contact's ``profile`` message (a newer one wins)."""
        profile = self._session.profile
        assert profile is not None
        avatar = None
        if isinstance(content.get("avatar"), dict):
            avatar = str(self._messages.attachment_path(content["avatar"]))
        profile.execute(
            "INSERT INTO profiles (user_id, name, avatar, ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,"
            " avatar = excluded.avatar, ts = excluded.ts WHERE excluded.ts > profiles.ts",
            sender,
            str(content.get("name", ""))[:100],
            avatar,
            ts,
        )
