"""History for a device that logged in with the recovery code, from the
user's other device (SDK to SDK; browser and SDK in
tests/web/test_newcomer_browser.py)."""

from __future__ import annotations

from taube.client import Received
from taube.testing import ServerProcess
from tests.client.conftest import Sdk


async def test_a_recovered_device_gets_the_history_of_another(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "before the new device")
    async for event in bob.events(timeout=10):
        if isinstance(event, Received):
            break
    await alice.connect()
    recovered = await make("alice", device_of=alice)
    assert recovered.history(chat) == []
    assert await recovered.request_history(timeout=15)
    assert [m.text for m in recovered.history(chat)] == ["before the new device"]
    # a device with no other device of its own has nobody to ask
    assert not await bob.request_history(timeout=1)
