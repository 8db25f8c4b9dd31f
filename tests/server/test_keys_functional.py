"""The key directory through a real server: query, claim, count, key changes."""

from __future__ import annotations

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from taube.proto import frames, http
from taube.proto.ids import UserId
from taube.proto.keys import IdentityKey
from taube.proto.signing import DOMAIN_IDENTITY
from taube.testing import ServerProcess
from taube.testing.rawclient import HttpError, _public
from tests.conftest import Clients


async def test_query_returns_identity_and_certified_devices(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    found = await alice.request(
        "POST", "/api/v1/keys/query", http.QueryKeys(users=[bob.user, UserId("nobody@example.org")])
    )
    [entry] = found["users"]  # unknown users are left out
    assert entry["user"] == bob.address
    assert entry["identity"]["identity_key"] == _public(bob.identity)
    [device] = entry["devices"]
    assert device["device"] == bob.device
    assert device["ed25519"] == _public(bob.device_key)


async def test_claims_use_up_one_time_keys_then_the_fallback(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    assert await bob.request("GET", "/api/v1/keys/count") == {
        "one_time_keys": 5,
        "fallback_key": True,
    }
    ref = http.ClaimKeys(devices=[http.DeviceRef(user=bob.user, device=bob.device)])
    claimed = [
        (await alice.request("POST", "/api/v1/keys/claim", ref))["keys"][0] for _ in range(7)
    ]
    assert len({k["key_id"] for k in claimed[:5]}) == 5
    assert all(not k.get("fallback", False) for k in claimed[:5])
    assert [k["key_id"] for k in claimed[5:]] == ["fb", "fb"]
    assert (await bob.request("GET", "/api/v1/keys/count"))["one_time_keys"] == 0
    await bob.request(
        "POST", "/api/v1/keys/upload", http.UploadKeys(one_time_keys=[bob.one_time_key("new")])
    )
    again = await alice.request("POST", "/api/v1/keys/claim", ref)
    assert again["keys"][0]["key_id"] == "new"


async def test_identity_change_is_announced_to_contacts(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob, stranger = await make("alice"), await make("bob"), await make("stranger")
    await alice.direct(bob.address)
    before = len(alice.queue), len(stranger.queue)
    bob.identity = Ed25519PrivateKey.generate()
    identity = IdentityKey(user=bob.user, identity_key=_public(bob.identity), signature="A" * 86)
    identity = msgspec.structs.replace(identity, signature=bob.sign(DOMAIN_IDENTITY, identity))
    await bob.request("PUT", "/api/v1/keys/identity", identity)
    await alice.wait_for(
        lambda: any(
            isinstance(f, frames.KeysChanged) and f.user == bob.user
            for f in alice.queue[before[0] :]
        )
    )
    assert len(stranger.queue) == before[1]  # no shared conversation, no notice
    # the old device certificate no longer verifies under the new key: the
    # server takes a new certificate only when signed by the new identity key
    await bob.setup_keys()


async def test_keys_for_another_device_are_refused(
    shared_server: ServerProcess, clients: Clients
) -> None:
    make = clients(shared_server)
    alice, bob = await make("alice"), await make("bob")
    foreign = bob.one_time_key("x")
    with pytest.raises(HttpError) as refused:
        await alice.request("POST", "/api/v1/keys/upload", http.UploadKeys(one_time_keys=[foreign]))
    assert refused.value.code == "forbidden"
