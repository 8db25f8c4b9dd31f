"""Conversations, groups and their signed state.

``Conversations`` keeps each conversation's verified chain of state events
(in memory and in the profile's ``conversations`` table), makes the changes
a member's role allows (create, add and remove members, title, picture,
timer) as signed events, and holds the conversations' *state keys*: a title
or picture is sealed from the server (``statekey``) and the key travels to
the members inside end-to-end encrypted messages, through the ``Sender``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import msgspec

from taube.client import attachments, statekey
from taube.client import events as ev
from taube.client.chain import (
    check_signature,
    decode_events,
    encode_events,
    new_chain,
    sign,
    verify_chain,
)
from taube.client.errors import ClientError, NotAMember, ServerError
from taube.client.session import Session
from taube.crypto import CryptoError
from taube.proto import frames, http
from taube.proto.errors import ErrorCode
from taube.proto.ids import ConversationId, MessageId, UserId, new_conversation_id
from taube.proto.state import (
    Avatar,
    Content,
    ConversationState,
    Kind,
    Member,
    Role,
    StateEvent,
    Timer,
    Title,
    apply_event,
)


class Sender(Protocol):
    """Where a message to a conversation's members goes (the outbox)."""

    async def send(
        self, conversation: ConversationId, type_: str, content: dict[str, Any]
    ) -> MessageId: ...


class Conversations:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.sender: Sender | None = None
        self._states: dict[ConversationId, tuple[list[StateEvent], ConversationState]] = {}

    async def _send(
        self, conversation: ConversationId, type_: str, content: dict[str, Any]
    ) -> None:
        assert self.sender is not None
        await self.sender.send(conversation, type_, content)

    async def all_states(self) -> list[tuple[ConversationId, ConversationState]]:
        """Every conversation of this device, the latest changed first."""
        profile, _, _ = self._session.need()
        ids = [
            ConversationId(r[0])
            for r in profile.execute(
                "SELECT conversation FROM conversations ORDER BY updated_ms DESC"
            )
        ]
        return [(c, (await self.state(c))) for c in ids]

    async def state(self, conversation: ConversationId) -> ConversationState:
        return (await self.chain(conversation))[1]

    def cached(self, conversation: ConversationId) -> ConversationState | None:
        """The state as last verified, if this device has it at hand."""
        cached = self._states.get(conversation)
        return None if cached is None else cached[1]

    async def chain(
        self, conversation: ConversationId, *, refresh: bool = False
    ) -> tuple[list[StateEvent], ConversationState]:
        """The verified chain (``refresh``: fetched anew from the server)."""
        profile, api, keys = self._session.need()
        cached = self._states.get(conversation)
        if cached is not None and not refresh:
            return cached
        row = profile.execute(
            "SELECT events FROM conversations WHERE conversation = ?", conversation
        ).fetchone()
        if row is not None and not refresh:
            events = decode_events(bytes(row[0]))
        else:
            try:
                chain = await api.get(f"/conversations/{conversation}/state", http.StateChain)
            except ServerError as exc:
                if exc.code == ErrorCode.NOT_FOUND:
                    raise NotAMember(f"not a member of {conversation}") from exc
                raise
            events = list(chain.events)
        state = await verify_chain(keys, events)
        self._remember(conversation, events, state)
        return events, state

    def _remember(
        self, conversation: ConversationId, events: list[StateEvent], state: ConversationState
    ) -> None:
        profile = self._session.profile
        assert profile is not None
        self._states[conversation] = (events, state)
        profile.execute(
            "INSERT INTO conversations (conversation, kind, events, updated_ms)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (conversation) DO UPDATE SET"
            " events = excluded.events, updated_ms = excluded.updated_ms",
            conversation,
            state.kind.value,
            encode_events(events),
            self._session.clock(),
        )

    async def on_state(self, frame: frames.State) -> ConversationState | None:
        """A state event the server pushed: checked and applied (``None``: not
        news, or refused)."""
        _, _, keys = self._session.need()
        conversation = ConversationId(frame.conversation)
        cached = self._states.get(conversation)
        if cached is not None and frame.event.depth == cached[1].depth + 1:
            await check_signature(keys, frame.event)
            state = apply_event(cached[1], frame.event)
            self._remember(conversation, [*cached[0], frame.event], state)
            return state
        if cached is None or frame.event.depth > cached[1].depth:
            return (await self.chain(conversation, refresh=True))[1]
        return None

    # ---------------------------------------------------------------- changes

    async def find_direct(self, other: UserId) -> ConversationId | None:
        for conversation, state in await self.all_states():
            if state.kind is Kind.DIRECT and set(state.members) == {self._session.user, other}:
                return conversation
        return None

    async def create(
        self, kind: Kind, members: list[UserId], admins: frozenset[UserId] = frozenset()
    ) -> ConversationId:
        _, api, keys = self._session.need()
        if members:
            await keys.refresh(members)  # pin their identity keys now
        conversation = new_conversation_id()
        events = new_chain(keys, conversation, kind, members, self._session.clock(), admins)
        await api.post(
            "/conversations", http.CreateConversation(events=events), http.ConversationInfo
        )
        state = await verify_chain(keys, events)
        self._remember(conversation, events, state)
        return conversation

    async def _append(self, conversation: ConversationId, content: Content) -> None:
        _, api, keys = self._session.need()
        for _attempt in range(3):
            _events, state = await self.chain(conversation, refresh=True)
            event = sign(
                keys, conversation, state.depth + 1, state.head, content, self._session.clock()
            )
            try:
                await api.post(f"/conversations/{conversation}/state", event, http.Appended)
            except ServerError as exc:
                if exc.code == ErrorCode.CONFLICT:
                    continue  # someone else changed it first: rebuild on the new head
                raise
            await self.chain(conversation, refresh=True)
            return
        raise ClientError("the conversation keeps changing; try again")

    async def add_member(self, conversation: ConversationId, user: UserId, role: Role) -> None:
        await self._session.keys.refresh([user])
        await self._append(conversation, Member(target=user, membership="join", role=role))
        await self._send_state_key(conversation)  # so the newcomer can read the title
        picture = await self.avatar(conversation)
        if picture is not None:  # and see the picture (its blob may be gone by now)
            await self.set_avatar(conversation, picture)

    async def remove_member(self, conversation: ConversationId, user: UserId) -> None:
        await self._append(conversation, Member(target=user, membership="leave"))
        profile, _, _ = self._session.need()
        if profile.get_text(f"statekey:{conversation}") is not None:
            key_id, key = statekey.new_key()
            self._add_state_key(conversation, key_id, key)
            await self._send_state_key(conversation)

    async def rename(self, conversation: ConversationId, title: str) -> None:
        sealed = await self._seal(conversation, "title", title.encode())
        await self._append(conversation, Title(sealed=sealed))

    async def set_avatar(self, conversation: ConversationId, path: Path) -> None:
        _, api, _ = self._session.need()
        entry = await attachments.upload(api, path, kind="image")
        # the file travels in a message (members download it as any attachment);
        # the signed state event names it
        await self._send(conversation, ev.AVATAR, {"attachments": [entry]})
        sealed = await self._seal(conversation, "avatar", msgspec.json.encode(entry))
        await self._append(conversation, Avatar(sealed=sealed))

    async def set_timer(self, conversation: ConversationId, seconds: int) -> None:
        await self._append(conversation, Timer(seconds=seconds))

    def title(self, conversation: ConversationId) -> str | None:
        text = self._unsealed(conversation, Title, "title")
        return None if text is None else text.decode("utf-8", "replace")

    async def avatar(self, conversation: ConversationId) -> Path | None:
        _, api, _ = self._session.need()
        data = self._unsealed(conversation, Avatar, "avatar")
        if data is None:
            return None
        entry = msgspec.json.decode(data)
        try:
            return await attachments.download(api, entry, self._session.profile_dir / "attachments")
        except (ServerError, CryptoError):
            return None  # its message has not arrived here yet

    # ---------------------------------------------------------------- state keys

    def _unsealed(
        self, conversation: ConversationId, kind: type[Title] | type[Avatar], field: str
    ) -> bytes | None:
        cached = self._states.get(conversation)
        events = cached[0] if cached is not None else []
        for event in reversed(events):
            if isinstance(event.content, kind):
                sealed = event.content.sealed
                key = self.state_keys(conversation).get(statekey.key_id_of(sealed))
                return None if key is None else statekey.unseal(key, conversation, field, sealed)
        return None

    def state_keys(self, conversation: str) -> dict[str, bytes]:
        """Every state key of ``conversation`` this device has, by key id."""
        profile, _, _ = self._session.need()
        raw = profile.get_secret(f"statekeys:{conversation}")
        if raw is None:
            return {}
        return {k: bytes.fromhex(v) for k, v in msgspec.json.decode(raw).items()}

    def _add_state_key(self, conversation: str, key_id: str, key: bytes) -> None:
        profile, _, _ = self._session.need()
        keys = {k: v.hex() for k, v in self.state_keys(conversation).items()}
        keys[key_id] = key.hex()
        profile.put_secret(f"statekeys:{conversation}", msgspec.json.encode(keys))
        profile.put_text(f"statekey:{conversation}", key_id)

    def remember_state_key(self, conversation: str, content: dict[str, Any]) -> None:
        """A member sent the conversation's state key (a ``statekey`` message)."""
        try:
            key_id, key = str(content["id"]), bytes.fromhex(str(content["key"]))
        except (KeyError, ValueError):
            return
        if len(key) == 32 and len(key_id) == 2 * statekey.KEY_ID_BYTES:
            self._add_state_key(conversation, key_id, key)

    async def _seal(self, conversation: ConversationId, field: str, data: bytes) -> bytes:
        profile, _, _ = self._session.need()
        key_id = profile.get_text(f"statekey:{conversation}")
        key = self.state_keys(conversation).get(key_id or "")
        if key_id is None or key is None:
            key_id, key = statekey.new_key()
            self._add_state_key(conversation, key_id, key)
            await self._send_state_key(conversation)
        return statekey.seal(key_id, key, conversation, field, data)

    async def _send_state_key(self, conversation: ConversationId) -> None:
        """Send the current state key to the members (end-to-end encrypted)."""
        profile, _, _ = self._session.need()
        key_id = profile.get_text(f"statekey:{conversation}")
        key = self.state_keys(conversation).get(key_id or "")
        if key_id is not None and key is not None:
            await self._send(conversation, statekey.TYPE, {"id": key_id, "key": key.hex()})
