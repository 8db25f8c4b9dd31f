"""Invite ids through a real server: one use, revocation, clear refusals.

The server sees only ids (derived from a secret it never gets) and keeps
their SHA-256; the end-to-end part of invites is in tests/client/test_invites.py.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
from pathlib import Path

import pytest

from taube.proto import people
from taube.testing import ServerProcess
from taube.testing.rawclient import HttpError
from tests.conftest import Clients
from tests.server.test_postgres_functional import count, on_postgres


def new_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


async def refused(call: object) -> HttpError:
    with pytest.raises(HttpError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_an_invite_is_used_once_by_one_person(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
    invite = new_id()
    created = await alice.request("POST", "/api/v1/invites", people.NewInvite(id=invite))
    assert created["inviter"] == alice.user
    # anyone holding the id may check it, without an account
    checked = await carol.request(
        "POST", "/api/v1/invites/check", people.InviteRef(id=invite), token=""
    )
    assert checked == created
    redeemed = await bob.request("POST", "/api/v1/invites/redeem", people.InviteRef(id=invite))
    assert redeemed["inviter"] == alice.user
    # the same person again: the same answer (opening the link twice)
    again = await bob.request("POST", "/api/v1/invites/redeem", people.InviteRef(id=invite))
    assert again == redeemed
    # anyone else: used
    error = await refused(
        carol.request("POST", "/api/v1/invites/redeem", people.InviteRef(id=invite))
    )
    assert (error.status, error.body["error"]) == (410, "gone")
    assert "already used" in error.body["message"]
    error = await refused(
        carol.request("POST", "/api/v1/invites/check", people.InviteRef(id=invite), token="")
    )
    assert error.status == 410


async def test_forged_revoked_and_own_invites_are_refused_plainly(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    error = await refused(
        bob.request("POST", "/api/v1/invites/redeem", people.InviteRef(id=new_id()))
    )
    assert (error.status, error.body["message"]) == (404, "this invite link is not valid")
    invite = new_id()
    await alice.request("POST", "/api/v1/invites", people.NewInvite(id=invite))
    error = await refused(
        alice.request("POST", "/api/v1/invites/redeem", people.InviteRef(id=invite))
    )
    assert error.body["message"] == "this is your own invite link"
    # only the inviter revokes
    error = await refused(bob.request("DELETE", f"/api/v1/invites/{invite}"))
    assert error.status == 404
    await alice.request("DELETE", f"/api/v1/invites/{invite}")
    error = await refused(
        bob.request("POST", "/api/v1/invites/redeem", people.InviteRef(id=invite))
    )
    assert (error.status, error.body["message"]) == (410, "this invite link was revoked")
    # the same id cannot be registered twice; malformed ids are bad requests
    error = await refused(alice.request("POST", "/api/v1/invites", people.NewInvite(id=invite)))
    assert error.status == 409
    error = await refused(alice.request("POST", "/api/v1/invites", {"id": "short"}))
    assert error.status == 400
    error = await refused(
        alice.request("POST", "/api/v1/invites", {"id": new_id(), "lifetime_s": 10**9})
    )
    assert error.status == 400


async def test_an_expired_invite_is_refused(server: ServerProcess, clients: Clients) -> None:
    make = clients(server)
    alice, bob = await make("alice"), await make("bob")
    invite = new_id()
    await alice.request("POST", "/api/v1/invites", people.NewInvite(id=invite, lifetime_s=60))
    # age it in the database: the server's clock is the system's
    database = sqlite3.connect(server.data_dir / "taube.db")
    with database:
        database.execute("UPDATE invites SET expires_ms = 1")
    database.close()
    error = await refused(
        bob.request("POST", "/api/v1/invites/redeem", people.InviteRef(id=invite))
    )
    assert (error.status, error.body["message"]) == (410, "this invite link has expired")


async def test_the_server_keeps_only_the_hash_of_an_id(
    server: ServerProcess, clients: Clients
) -> None:
    alice = await clients(server)("alice")
    invite = new_id()
    await alice.request("POST", "/api/v1/invites", people.NewInvite(id=invite))
    database = sqlite3.connect(server.data_dir / "taube.db")
    rows = database.execute("SELECT id_hash FROM invites").fetchall()
    database.close()
    assert rows == [(hashlib.sha256(invite.encode()).digest(),)]
    for file in server.data_dir.glob("taube.db*"):
        assert invite.encode() not in file.read_bytes()


async def test_invites_presence_and_the_directory_on_postgres(
    tmp_path: Path, postgres_url: str, clients: Clients
) -> None:
    """The same SQL on PostgreSQL: the invite's life, presence by setting,
    a directory search with a literal wildcard."""
    with ServerProcess(tmp_path / "server", env=on_postgres(postgres_url)) as server:
        make = clients(server)
        alice, bob, carol = await make("alice"), await make("bob"), await make("carol")
        invite = new_id()
        await alice.request("POST", "/api/v1/invites", people.NewInvite(id=invite))
        ref = people.InviteRef(id=invite)
        assert (await bob.request("POST", "/api/v1/invites/redeem", ref))["inviter"] == alice.user
        error = await refused(carol.request("POST", "/api/v1/invites/redeem", ref))
        assert error.status == 410
        stored = await count(
            postgres_url,
            "SELECT count(*) FROM invites WHERE id_hash = $1",
            hashlib.sha256(invite.encode()).digest(),
        )
        assert stored == 1
        await bob.direct(alice.user)
        seen = await bob.request("GET", f"/api/v1/presence/{alice.user}")
        assert seen == {"user": alice.user, "visible": True, "online": True}
        assert await carol.request("GET", f"/api/v1/presence/{alice.user}") == {"user": alice.user}
        await alice.request("PUT", "/api/v1/privacy", {"findable": True, "name": "Al_ice 100%"})
        found = await carol.request("POST", "/api/v1/directory/search", {"query": "e 100%"})
        assert found == {"people": [{"user": alice.user, "name": "Al_ice 100%"}]}
        found = await carol.request("POST", "/api/v1/directory/search", {"query": "l_i"})
        assert found == {"people": [{"user": alice.user, "name": "Al_ice 100%"}]}
        assert await carol.request("POST", "/api/v1/directory/search", {"query": "lxi"}) == {
            "people": []
        }
