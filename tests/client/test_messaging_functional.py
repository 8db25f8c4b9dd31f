"""End-to-end encrypted messaging through the SDK and a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PIL import Image, PngImagePlugin

from taube.client import Client, Received, Typing
from taube.proto.ids import ConversationId
from taube.testing import ServerProcess
from taube.testing.canary import canary, scan
from tests.client.conftest import Sdk


async def texts_of(
    client: Client, conversation: ConversationId, count: int, timeout: float = 15.0
) -> list[str]:
    """Wait until ``client`` holds ``count`` text messages; return their texts."""
    async with asyncio.timeout(timeout):
        while len(client.history(conversation, limit=count)) < count:
            await asyncio.sleep(0.05)
    return [m.text for m in client.history(conversation, limit=count)]


async def test_direct_chat_reaches_every_device(shared_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    bob2 = await make("bob", device_of=bob)
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "hello bob")
    await alice.flush()
    assert await texts_of(bob, chat, 1) == ["hello bob"]
    assert await texts_of(bob2, chat, 1) == ["hello bob"]
    reply = await bob.send_text(chat, "hi alice", reply_to=alice.history(chat)[0].id)
    await bob.flush()
    assert await texts_of(alice, chat, 2) == ["hello bob", "hi alice"]
    assert await texts_of(bob2, chat, 2) == ["hello bob", "hi alice"]
    assert alice.history(chat)[1].reply_to == bob.history(chat)[0].id
    assert alice.history(chat)[1].id == reply


async def test_group_with_three_people_and_four_devices(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    bob2 = await make("bob", device_of=bob)
    group = await alice.create_group([bob.user, carol.user])
    for client, text in ((alice, "from alice"), (bob, "from bob"), (carol, "from carol")):
        await client.send_text(group, text)
        await client.flush()
        await asyncio.sleep(0.05)
    expected = ["from alice", "from bob", "from carol"]
    for client in (alice, bob, bob2, carol):
        assert sorted(await texts_of(client, group, 3)) == sorted(expected)
    # every device sees one order: the server's
    orders = [[m.id for m in c.history(group)] for c in (alice, bob, bob2, carol)]
    assert all(order == orders[0] for order in orders)


async def test_reactions_edits_deletes_and_receipts(shared_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    first = await alice.send_text(chat, "typo")
    second = await alice.send_text(chat, "to be deleted")
    await alice.flush()
    await texts_of(bob, chat, 2)
    await bob.react(chat, first, "👍")
    await alice.edit(chat, first, "fixed")
    await alice.delete(chat, second)
    await bob.mark_read(chat, [first])
    await alice.flush()
    await bob.flush()
    async with asyncio.timeout(10):
        while True:
            seen = {c: c.history(chat) for c in (alice, bob)}
            if all(
                h[0].text == "fixed" and h[1].deleted and h[0].reactions and h[0].read_by
                for h in seen.values()
            ):
                break
            await asyncio.sleep(0.05)
    for messages in seen.values():
        assert messages[0].edited
        assert messages[0].reactions == {"👍": [bob.user]}
        assert messages[0].read_by == [bob.user]
        assert messages[1].text == ""
    # the same reaction again takes it back (as the web app's toggle does)
    await bob.react(chat, first, "👍")
    await bob.flush()
    async with asyncio.timeout(10):
        while any(c.history(chat)[0].reactions for c in (alice, bob)):
            await asyncio.sleep(0.05)


async def test_deleted_for_everyone_leaves_nothing_on_the_devices(
    shared_server: ServerProcess, sdk: Sdk, tmp_path: Path
) -> None:
    """A message its author deletes for everyone is gone from every device's
    profile: its text, its earlier versions and its files, not only hidden."""
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    said, edited, photo = canary("said"), canary("edited"), canary("photo")
    first = await alice.send_text(chat, f"oops {said}")
    await alice.edit(chat, first, f"oops again {edited}")
    picture = tmp_path / "photo.txt"
    picture.write_text(f"pixels {photo}")
    second = await alice.send_file(chat, picture, caption="a caption")
    await alice.send_text(chat, "this one stays")
    await alice.flush()
    await texts_of(bob, chat, 3)
    assert bob.attachment_path(bob.history(chat)[1]).exists()
    await alice.delete(chat, first)
    await alice.delete(chat, second)
    await alice.flush()
    async with asyncio.timeout(10):
        while not all(
            [m.deleted for m in c.history(chat)] == [True, True, False] for c in (alice, bob)
        ):
            await asyncio.sleep(0.05)
    for client in (alice, bob):
        assert [m.text for m in client.history(chat)] == ["", "", "this one stays"]
        assert client.search_hits("oops") == []
    needles = [said, edited, photo]
    assert scan([alice.profile_dir, bob.profile_dir], needles) == []


async def test_delivery_receipts(shared_server: ServerProcess, sdk: Sdk) -> None:
    """The receiving device confirms arrival (one receipt for a burst); the
    sender sees delivered, then read."""
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    ids = [await alice.send_text(chat, f"d{i}") for i in range(3)]
    await alice.flush()
    await texts_of(bob, chat, 3)
    async with asyncio.timeout(10):
        while not all(m.delivered_to == [bob.user] for m in alice.history(chat)):
            await asyncio.sleep(0.05)
    assert all(m.read_by == [] for m in alice.history(chat))
    await bob.mark_read(chat, [str(i) for i in ids])
    async with asyncio.timeout(10):
        while not all(m.read_by == [bob.user] for m in alice.history(chat)):
            await asyncio.sleep(0.05)
    # receipts are not confirmed in turn: alice never sent one
    assert alice.profile is not None
    sent = alice.profile.execute(
        "SELECT count(*) FROM messages WHERE sender = ? AND type = 'receipt'", alice.user
    ).fetchone()
    assert sent[0] == 0


async def test_no_plaintext_at_rest(tmp_path: Path, sdk: Sdk) -> None:
    """200 messages and 5 attachments with canaries: neither a canary nor an
    attachment's bytes in the server's database (incl. WAL), blobs or log."""
    with ServerProcess(tmp_path / "server") as server:
        make = sdk(server)
        alice, bob = await make("alice"), await make("bob")
        carol = await make("carol", connect=False)  # offline: ciphertext stays on the server
        group = await alice.create_group([bob.user, carol.user])
        canaries = [canary(f"msg{i}") for i in range(200)]
        for text in canaries:
            await alice.send_text(group, f"secret {text}")
        files = []
        for i in range(5):
            path = tmp_path / f"document{i}.txt"
            path.write_bytes((canary(f"file{i}") + " ").encode() * 2000)
            files.append(path)
            await alice.send_file(group, path, caption=f"file {i}")
        await alice.flush(timeout=60)
        texts = await texts_of(bob, group, 205, timeout=60)
        assert f"secret {canaries[-1]}" in texts
        received = [m for m in bob.history(group, limit=205) if m.content.get("attachments")]
        assert [bob.attachment_path(m).read_bytes() for m in received] == [
            f.read_bytes() for f in files
        ]
        needles = [c.encode() for c in canaries] + [f.read_bytes()[:64] for f in files]
        assert scan([server.data_dir, server.log_path], needles) == []
    assert scan([server.data_dir, server.log_path], needles) == []


async def test_outbox_survives_a_server_outage(tmp_path: Path, sdk: Sdk) -> None:
    with ServerProcess(tmp_path / "server") as server:
        make = sdk(server)
        alice, bob = await make("alice"), await make("bob")
        chat = await alice.start_chat(bob.user)
        await alice.send_text(chat, "before")
        await alice.flush()
        server.kill()
        for i in range(5):
            await alice.send_text(chat, f"while down {i}")
        assert [m.status for m in alice.history(chat)][-5:] == ["pending"] * 5
        server.restart()
        await alice.flush(timeout=30)
        texts = await texts_of(bob, chat, 6, timeout=30)
        assert texts == ["before"] + [f"while down {i}" for i in range(5)]
        events = [e for e in bob.pending_events() if isinstance(e, Received)]
        ids = [e.message.id for e in events]
        assert len(ids) == len(set(ids))  # nothing shown twice


def _text_chunk(text: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", text)
    return info


async def test_attachments_are_encrypted_end_to_end(tmp_path: Path, sdk: Sdk) -> None:
    with ServerProcess(tmp_path / "server") as server:
        make = sdk(server)
        alice, bob = await make("alice"), await make("bob")
        chat = await alice.start_chat(bob.user)
        photo = tmp_path / "photo.png"
        secret = canary("attachment")
        image = Image.new("RGB", (1200, 800), (200, 120, 40))
        image.save(photo, "PNG", pnginfo=_text_chunk(secret))
        await alice.send_file(chat, photo, caption="look")
        await alice.flush()
        await texts_of(bob, chat, 1)
        [message] = bob.history(chat)
        [entry] = message.content["attachments"]
        assert (entry["kind"], entry["mime"], entry["name"]) == ("image", "image/png", "photo.png")
        assert bob.attachment_path(message).read_bytes() == photo.read_bytes()
        assert message.text == "look"
        assert (entry["width"], entry["height"]) == (1200, 800)
        thumbnail = entry["thumbnail"]
        assert thumbnail["kind"] == "thumbnail"
        small = bob.profile_dir / "attachments" / f"{thumbnail['blob']}-thumbnail.jpg"
        with Image.open(small) as seen:
            assert max(seen.size) == 320
        assert scan([server.data_dir, server.log_path], [secret.encode()]) == []


async def test_a_device_added_later_gets_new_messages_only(
    shared_server: ServerProcess, sdk: Sdk
) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "before bob's new device")
    await alice.flush()
    await texts_of(bob, chat, 1)
    bob3 = await make("bob", device_of=bob)
    await alice.send_text(chat, "after")
    await alice.flush()
    assert await texts_of(bob3, chat, 1) == ["after"]
    assert await texts_of(bob, chat, 2) == ["before bob's new device", "after"]


async def test_profiles_are_shared_encrypted(tmp_path: Path, sdk: Sdk) -> None:
    with ServerProcess(tmp_path / "server") as server:
        make = sdk(server)
        alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
        chat = await alice.start_chat(bob.user)
        avatar = tmp_path / "me.png"
        avatar.write_bytes(b"\x89PNG avatar " + canary("avatar").encode())
        name = canary("Alice Liddell")
        await alice.set_profile(name, avatar)
        await alice.flush()
        async with asyncio.timeout(10):
            while bob.contact(alice.user) is None:
                await asyncio.sleep(0.05)
        seen = bob.contact(alice.user)
        assert seen is not None
        assert seen.name == name
        assert seen.avatar is not None
        assert Path(seen.avatar).read_bytes() == avatar.read_bytes()
        assert bob.history(chat) == []  # a profile is not a message
        # a conversation made later gets the profile too
        await alice.start_chat(carol.user)
        await alice.flush()
        async with asyncio.timeout(10):
            while carol.contact(alice.user) is None:
                await asyncio.sleep(0.05)
        assert scan([server.data_dir, server.log_path], [name.encode()]) == []


async def test_typing_indicator(shared_server: ServerProcess, sdk: Sdk) -> None:
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.flush()
    await alice.typing(chat)
    async for event in bob.events(timeout=5):
        if isinstance(event, Typing):
            assert (event.conversation, event.user, event.active) == (chat, alice.user, True)
            break
    else:
        raise AssertionError("no typing event")


async def test_sync_when_connected_returns_at_once(shared_server: ServerProcess, sdk: Sdk) -> None:
    """``sync`` waits for the backlog of this connection; a client that has it
    does not wait for a ``queue.empty`` that will not come again."""
    make = sdk(shared_server)
    alice, bob = await make("alice"), await make("bob")
    chat = await alice.start_chat(bob.user)
    await alice.send_text(chat, "in the backlog")
    await alice.flush()
    await texts_of(bob, chat, 1)
    await bob.sync(timeout=5)
    await bob.disconnect()
    await alice.send_text(chat, "while bob was away")
    await alice.flush()
    await bob.sync(timeout=10)  # a new connection: waits for its backlog
    assert [m.text for m in bob.history(chat)] == ["in the backlog", "while bob was away"]
