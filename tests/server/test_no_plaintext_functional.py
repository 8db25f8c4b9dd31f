"""The server never sees plaintext: canaries inside sealed payloads and
attachments must appear in none of the files the server wrote."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from taube.proto.ids import MessageId
from taube.testing import ServerProcess, seal, unseal
from taube.testing.canary import canary, files_under, scan
from taube.testing.outbox import Outbox
from tests.conftest import ClientFactory

Clients = Callable[[ServerProcess], ClientFactory]

MESSAGES = 200
ATTACHMENTS = 5


def test_scan_finds_what_is_there(tmp_path: Path) -> None:
    needle, other = canary("self-test"), canary("absent")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file.bin").write_bytes(b"\x00junk" + needle.encode() + b"junk\xff")
    (tmp_path / "empty").write_bytes(b"")
    hits = scan([tmp_path, tmp_path / "sub" / "file.bin"], [needle, other, b"\xffnope"])
    assert hits == [((tmp_path / "sub" / "file.bin").resolve(), needle)]


async def test_no_canary_reaches_the_servers_disk(server: ServerProcess, clients: Clients) -> None:
    make = clients(server)
    alice, bob = await make("alice"), await make("bob")
    carol = await make("carol", connect=False)  # keeps the group's ciphertext on the server
    group = await alice.group([bob.address, carol.address])
    direct = await alice.direct(bob.address)

    # attachments: plaintext with a canary inside, sealed on the client
    attachment_plaintexts: list[bytes] = []
    attachment_canaries: list[str] = []
    sealed_attachments: list[bytes] = []
    blobs: list[str] = []
    for _ in range(ATTACHMENTS):
        marker = canary("blob")
        plaintext = os.urandom(20_000) + marker.encode() + os.urandom(20_000)
        sealed = seal(plaintext)
        blobs.append(await alice.upload(sealed))
        attachment_plaintexts.append(plaintext)
        attachment_canaries.append(marker)
        sealed_attachments.append(sealed)

    # messages: UTF-8 JSON payloads, each with its own canary
    outboxes = {alice.device: Outbox(alice), bob.device: Outbox(bob)}
    message_canaries: list[str] = []
    sent_by_alice: dict[MessageId, tuple[str, bytes]] = {}  # id -> (conversation, plaintext)
    for n in range(MESSAGES):
        marker = canary("msg")
        message_canaries.append(marker)
        sender, outbox = (
            (alice, outboxes[alice.device]) if n % 2 == 0 else (bob, outboxes[bob.device])
        )
        conversation = group if n % 4 < 2 else direct
        # alice's first group messages carry the attachments (the group keeps them)
        attach = [blobs[n // 4]] if n % 4 == 0 and n // 4 < ATTACHMENTS else []
        payload = {"type": "text", "text": f"hello {marker}", "n": n}
        if attach:
            payload["attachment"] = {"blob": attach[0], "key": "in the payload, sealed"}
        plaintext = json.dumps(payload).encode()
        msg_id = outbox.add(conversation, plaintext, blobs=attach)
        if sender is alice:
            sent_by_alice[msg_id] = (conversation, plaintext)
    for outbox in outboxes.values():
        assert await outbox.flush(timeout=30)
        assert outbox.failed == {}

    # not vacuous: bob decrypts alice's messages back to their canaries ...
    await bob.wait_for(
        lambda: sum(len(bob.messages(c)) for c in (group, direct)) == MESSAGES, timeout=20
    )
    received = {m.id: m for c in (group, direct) for m in bob.messages(c)}
    for msg_id, (where, plaintext) in sent_by_alice.items():
        message = received[msg_id]
        assert message.conversation == where
        assert message.body is not None
        assert unseal(message.body) == plaintext
        assert json.loads(unseal(message.body))["text"].startswith("hello taube-canary-msg-")
    # ... and the attachments
    for blob, plaintext in zip(blobs, attachment_plaintexts, strict=True):
        assert unseal(await bob.download(blob)) == plaintext

    assert server.stop() == 0
    paths = [server.data_dir, server.log_path]
    files = files_under(paths)
    names = {f.name for f in files}
    assert "taube.db" in names
    assert "server.log" in names
    assert set(blobs) <= names  # every blob file is among the scanned

    # the scan looks in the right places: ciphertext is there ...
    kept = [
        outboxes[alice.device].frames[m].body for m, (c, _) in sent_by_alice.items() if c == group
    ]
    assert kept
    assert {needle for _, needle in scan(paths, kept)} == set(kept)
    assert {needle for _, needle in scan(paths, sealed_attachments)} == set(sealed_attachments)

    # ... and no plaintext: no canary, no attachment bytes, whole or in part
    needles: list[str | bytes] = [*message_canaries, *attachment_canaries]
    for plaintext in attachment_plaintexts:
        needles.append(plaintext)
        needles.extend(plaintext[i : i + 64] for i in (0, 10_000, 30_000, len(plaintext) - 64))
    assert scan(paths, needles) == []
