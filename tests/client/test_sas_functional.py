"""Emoji (SAS) verification between two devices, through a real server."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from taube.client import (
    Client,
    Event,
    VerificationDone,
    VerificationEmoji,
    VerificationRequest,
)
from taube.testing import ServerProcess
from tests.client.conftest import Sdk

E = TypeVar("E", bound=Event)


async def next_event(client: Client, kind: type[E], timeout: float = 10.0) -> E:
    async for event in client.events(timeout=timeout):
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


async def test_emoji_verification_marks_both_sides_verified(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    await alice.start_chat(bob.user)
    txn = await alice.verify_start(bob.user)
    request = await next_event(bob, VerificationRequest)
    assert (request.transaction, request.user) == (txn, alice.user)
    await bob.verify_accept(txn)
    alice_sees, bob_sees = await asyncio.gather(
        next_event(alice, VerificationEmoji), next_event(bob, VerificationEmoji)
    )
    assert alice_sees.emoji == bob_sees.emoji
    assert len(alice_sees.emoji) == 7
    assert alice_sees.decimals == bob_sees.decimals
    await alice.verify_confirm(txn)
    await bob.verify_confirm(txn)
    alice_done, bob_done = await asyncio.gather(
        next_event(alice, VerificationDone), next_event(bob, VerificationDone)
    )
    assert alice_done.verified
    assert bob_done.verified
    assert alice.keys.pinned(bob.user) == (bob.keys.identity.public_key, True)
    assert bob.keys.pinned(alice.user) == (alice.keys.identity.public_key, True)


async def test_a_wrong_mac_does_not_verify(shared_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    txn = await alice.verify_start(bob.user)
    await next_event(bob, VerificationRequest)
    await bob.verify_accept(txn)
    await next_event(alice, VerificationEmoji)
    await next_event(bob, VerificationEmoji)
    # a man in the middle swaps bob's pinned key on alice's side: the MAC cannot match
    alice.keys.profile.execute(
        "UPDATE identities SET identity_key = ? WHERE user_id = ?",
        alice.keys.identity.public_key,
        bob.user,
    )
    await alice.verify_confirm(txn)
    await bob.verify_confirm(txn)
    done = await next_event(alice, VerificationDone)
    assert not done.verified
    assert alice.keys.pinned(bob.user) is not None
    assert alice.keys.pinned(bob.user)[1] is False  # type: ignore[index]
