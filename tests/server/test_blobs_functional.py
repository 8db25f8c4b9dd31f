"""Attachments: opaque bytes, served only to members of a conversation that
references them, deleted when no conversation needs them any more."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from taube.proto import frames
from taube.proto.ids import BlobId, ConversationId, new_blob_id, new_message_id
from taube.testing import RawClient, ServerProcess, seal, unseal
from taube.testing.datadir import DataDir, eventually
from taube.testing.rawclient import HttpError
from tests.conftest import ClientFactory

Clients = Callable[[ServerProcess], ClientFactory]


async def _error(call: Awaitable[Any]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HttpError) as caught:
        await call
    return caught.value.status, caught.value.body


async def _send_error(client: RawClient, conversation: str, blobs: list[str]) -> frames.Error:
    msg_id = new_message_id()
    await client.send_frame(
        frames.Send(
            conversation=ConversationId(conversation),
            id=msg_id,
            body=seal(b"look at this"),
            blobs=[BlobId(b) for b in blobs],
        )
    )
    await client.wait_for(
        lambda: msg_id in client.sent() or any(e.ref == msg_id for e in client.errors())
    )
    assert msg_id not in client.sent()
    [error] = [e for e in client.errors() if e.ref == msg_id]
    return error


async def test_upload_download_round_trip(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice = await make("alice", connect=False)
    sealed = seal(os.urandom(300_000))
    created = await alice.request("POST", "/api/v1/blobs", raw=sealed)
    blob = created["blob"]
    assert created["size"] == len(sealed)
    assert alice.http_session is not None
    async with alice.http_session.get(
        f"{shared_server.url}/api/v1/blobs/{blob}",
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as response:
        assert response.status == 200
        body = await response.read()
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert body == sealed
    assert len(unseal(body)) == 300_000
    # on disk: the same opaque bytes
    assert DataDir(shared_server.data_dir).blob_path(blob).read_bytes() == sealed


async def test_download_needs_a_token(shared_server: ServerProcess, clients: Clients) -> None:
    make = clients(shared_server)
    alice = await make("alice", connect=False)
    blob = await alice.upload(seal(b"secret"))
    status, body = await _error(alice.request("GET", f"/api/v1/blobs/{blob}", token=""))
    assert status == 401
    assert body["error"] == "unauthorized"


async def test_members_download_and_others_get_not_found(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    bob.auto_ack = False  # bob keeps the entry: nothing is pruned under him
    conversation = await alice.direct(bob.address)
    sealed = seal(b"a photo of a dove")
    blob = await alice.upload(sealed)

    # before a message references it, only the uploader may download it
    missing = await _error(bob.download(new_blob_id()))
    assert missing[0] == 404
    assert missing[1]["error"] == "not_found"
    assert await _error(bob.download(blob)) == missing

    await alice.send(conversation, b"see attachment", blobs=[blob])
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 1)
    [message] = bob.messages(conversation)
    assert message.blobs == [blob]
    assert await bob.download(blob) == sealed
    assert await alice.download(blob) == sealed
    # carol is in no conversation that names it: exactly as if it did not exist
    assert await _error(carol.download(blob)) == missing
    assert await _error(carol.download(new_blob_id())) == missing
    assert await _error(carol.request("GET", "/api/v1/blobs/not-a-blob-id")) == missing


async def test_referencing_a_blob_you_cannot_see_is_not_found(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    conversation = await alice.direct(bob.address)
    carols = await carol.upload(seal(b"carol's file"))

    error = await _send_error(alice, conversation, [carols])
    assert error.code == "not_found"
    nowhere = await _send_error(alice, conversation, [new_blob_id()])
    assert nowhere.code == "not_found"
    # nothing was stored, and bob never saw the blob id
    assert await _error(bob.download(carols)) == await _error(bob.download(new_blob_id()))
    await alice.send(conversation, b"a plain message")
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 1)
    assert [m.blobs for m in bob.messages(conversation)] == [[]]

    # once carol shares it with alice, alice may forward it
    shared = await carol.direct(alice.address)
    await carol.send(shared, b"here", blobs=[carols])
    await alice.send(conversation, b"forwarded", blobs=[carols])
    await bob.wait_for(lambda: len(bob.messages(conversation)) == 2)


async def test_blob_in_two_conversations_waits_for_both(
    shared_server: ServerProcess, clients: Clients
) -> None:
    data = DataDir(shared_server.data_dir)
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    carol = await make("carol", connect=False)
    with_bob = await alice.direct(bob.address)
    with_carol = await alice.direct(carol.address)
    sealed = seal(os.urandom(10_000))
    blob = await alice.upload(sealed)
    await alice.send(with_bob, b"for bob", blobs=[blob])
    await alice.send(with_carol, b"for carol", blobs=[blob])

    # bob and alice acknowledge everything in their conversation: it is pruned
    await bob.wait_for(lambda: len(bob.messages(with_bob)) == 1)
    await eventually(lambda: data.log_rows(with_bob) == 0, what="bob's conversation pruned")
    # the blob stays for carol, who has not got it yet
    assert data.blob_row(blob)
    assert data.blob_file(blob)
    assert await carol.download(blob) == sealed

    await carol.connect()
    await carol.wait_for(lambda: len(carol.messages(with_carol)) == 1)
    assert carol.messages(with_carol)[0].blobs == [blob]
    await eventually(lambda: data.log_rows(with_carol) == 0, what="carol's conversation pruned")
    await eventually(lambda: data.blob_gone(blob), what="blob deleted")
    status, body = await _error(alice.download(blob))
    assert status == 404
    assert body["error"] == "not_found"


async def test_a_member_added_later_gets_no_attachment_from_before(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    bob.auto_ack = False  # the old entry stays in the log while carol joins
    group = await alice.group([bob.address])
    old = seal(b"before carol came")
    old_blob = await alice.upload(old)
    await alice.send(group, b"an old photo", blobs=[old_blob])
    await bob.wait_for(lambda: len(bob.messages(group)) == 1)

    await alice.add(group, carol.address)
    # the entry naming the old blob is still in the log, but it came before
    # carol's join: exactly as if it did not exist
    missing = await _error(carol.download(new_blob_id()))
    assert await _error(carol.download(old_blob)) == missing
    # nor may she name it in a message of her own to get it
    error = await _send_error(carol, group, [old_blob])
    assert error.code == "not_found"
    assert await bob.download(old_blob) == old

    # what is sent after the join she gets; so does an old blob sent again
    new = seal(b"after carol came")
    new_blob = await alice.upload(new)
    await alice.send(group, b"a new photo", blobs=[new_blob])
    await alice.send(group, b"the old one again", blobs=[old_blob])
    await carol.wait_for(lambda: len(carol.messages(group)) == 2)
    assert await carol.download(new_blob) == new
    assert await carol.download(old_blob) == old
