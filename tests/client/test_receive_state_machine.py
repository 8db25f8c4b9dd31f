"""The receive path as a state machine: whatever a server does with the
frames (repeat, reorder, withhold, deliver again after a restart), every
message is shown once, history follows the server's order, and replays are
dropped. Real Megolm and the real profile; no server."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from taube.client import Client, Received
from taube.client.keys import Keys
from taube.client.transport import AiohttpTransport, Api
from taube.crypto import (
    DeviceAccount,
    IdentityKeyPair,
    MessagePayload,
    OutboundGroup,
    VerifiedDevice,
    verify_device,
)
from taube.proto import frames
from taube.proto.ids import (
    ConversationId,
    DeviceId,
    UserId,
    new_conversation_id,
    new_device_id,
    new_message_id,
)
from taube.proto.state import ConversationState, Kind, Role

ALICE = UserId("alice@example.org")
BOB = UserId("bob@example.org")
COUNT = 12


def alice_device() -> tuple[VerifiedDevice, DeviceId]:
    identity = IdentityKeyPair.generate()
    device = new_device_id()
    account = DeviceAccount.create()
    certificate = identity.certify(account.device_keys(ALICE, device))
    return verify_device(identity.public_key, certificate), device


class Receiving(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp())
        self.conversation: ConversationId = new_conversation_id()
        self.sender, self.sender_device = alice_device()
        group = OutboundGroup.create(self.conversation, 0)
        self.room_key = group.room_key()  # from index 0: before the first message
        self.frames: list[frames.Message] = []
        for seq in range(1, COUNT + 1):
            msg_id = new_message_id()
            payload = MessagePayload(
                sender=ALICE,
                sender_device=self.sender_device,
                conversation=self.conversation,
                message_id=msg_id,
                type="text",
                content={"body": f"m{seq}"},
            )
            body = group.encrypt_payload(payload, now_ms=0)
            self.frames.append(
                frames.Message(
                    conversation=self.conversation,
                    seq=seq,
                    id=msg_id,
                    sender=ALICE,
                    sender_device=self.sender_device,
                    ts=seq,
                    body=body,
                )
            )
        self.delivered: set[int] = set()
        self.shown: set[str] = set()
        self.client = self.open_client(first=True)

    def open_client(self, *, first: bool = False) -> Client:
        client = Client(self.directory / "bob")
        if first:  # what register() leaves in the profile (port 9: never called)
            self.loop.run_until_complete(client.__aenter__())
            assert client.profile is not None
            client.profile.put_text("server", "http://127.0.0.1:9")
            client.profile.put_text("user", BOB)
            client.profile.put_text("device", new_device_id())
            client.profile.put_secret("token", b"unused")
            api = Api(AiohttpTransport("http://127.0.0.1:9"))
            keys = Keys.create(client.profile, api, BOB, DeviceId(""), IdentityKeyPair.generate())
            keys.inbound.add_room_key(self.room_key, self.sender)
            keys.save()
            self.loop.run_until_complete(client.__aexit__(None, None, None))
            client = Client(self.directory / "bob")
        self.loop.run_until_complete(client.__aenter__())
        client.keys.devices[ALICE] = [self.sender]
        client._conversations._states[self.conversation] = (
            [],
            ConversationState(
                self.conversation, Kind.DIRECT, ALICE, {ALICE: Role.OWNER, BOB: Role.MEMBER}
            ),
        )
        return client

    @rule(index=st.integers(0, COUNT - 1))
    def deliver(self, index: int) -> None:
        """The server delivers (or delivers again) one message, in any order."""
        self.loop.run_until_complete(self.client._receiver.on_message(self.frames[index]))
        self.delivered.add(index + 1)

    @rule()
    def restart(self) -> None:
        """The app restarts: state comes back from the profile (replays stay known)."""
        device = self.client.device
        self.loop.run_until_complete(self.client.__aexit__(None, None, None))
        self.client = self.open_client()
        assert self.client.device == device

    @invariant()
    def each_delivered_message_shown_once_in_server_order(self) -> None:
        history = self.client.history(self.conversation, limit=COUNT)
        assert [m.seq for m in history] == sorted(self.delivered)
        assert [m.text for m in history] == [f"m{seq}" for seq in sorted(self.delivered)]
        shown = [e.message.id for e in self.client.pending_events() if isinstance(e, Received)]
        assert len(shown) == len(set(shown))
        assert not (self.shown & set(shown)), "a message was shown twice"
        self.shown |= set(shown)

    def teardown(self) -> None:
        self.loop.run_until_complete(self.client.__aexit__(None, None, None))
        self.loop.close()


Receiving.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
test_receiving = Receiving.TestCase
