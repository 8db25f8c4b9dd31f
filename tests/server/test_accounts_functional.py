"""Accounts, sessions and devices through a real server process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from taube.proto import frames, http
from taube.proto.errors import ErrorCode
from taube.proto.ids import new_device_id
from taube.proto.version import PROTOCOL_VERSION
from taube.testing import RawClient, ServerProcess
from taube.testing.rawclient import PASSWORD, HttpError
from tests.conftest import fresh_address

MakeRaw = Callable[..., Awaitable[RawClient]]
Clients = Callable[[ServerProcess], Callable[..., Awaitable[RawClient]]]


@pytest.fixture
async def raw_clients() -> AsyncIterator[MakeRaw]:
    """``await make(server, address)``: a client with no account or device yet."""
    opened: list[RawClient] = []

    async def make(proc: ServerProcess, address: str, *, password: str = PASSWORD) -> RawClient:
        client = RawClient(proc.url, address, password=password)
        await client.__aenter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.__aexit__(None, None, None)


async def refused(call: Awaitable[Any]) -> HttpError:
    with pytest.raises(HttpError) as caught:
        await call
    return caught.value


async def devices(client: RawClient) -> dict[str, dict[str, Any]]:
    listed = await client.request("GET", "/api/v1/devices")
    return {d["device"]: d for d in listed["devices"]}


async def hello_refused(client: RawClient) -> int | None:
    """Connect with ``client.token`` and expect the hello to be refused."""
    client.others.clear()
    await client.connect(hello=False)
    await client.send_frame(frames.Hello(protocol=PROTOCOL_VERSION, token=client.token))
    code = await client.wait_closed()
    assert [e.code for e in client.errors()] == [ErrorCode.UNAUTHORIZED]
    await client.disconnect()
    return code


# ----------------------------------------------------------------- register


async def test_register(shared_server: ServerProcess, raw_clients: MakeRaw) -> None:
    address = fresh_address("alice")
    alice = await raw_clients(shared_server, address)
    session = await alice.request(
        "POST",
        "/api/v1/accounts",
        http.Credentials(address=address, password=PASSWORD, device_name="phone"),
    )
    assert session["user"] == address
    assert session["device"]
    assert session["token"]
    alice._session(session)
    assert [(d["name"], d.get("current")) for d in (await devices(alice)).values()] == [
        ("phone", True)
    ]
    await alice.connect()


async def test_register_address_taken(shared_server: ServerProcess, raw_clients: MakeRaw) -> None:
    address = fresh_address("alice")
    alice = await raw_clients(shared_server, address)
    await alice.register()
    for taken in (address, address.upper(), f"  {address} "):
        other = await raw_clients(shared_server, taken, password="another password")
        error = await refused(other.register())
        assert (error.status, error.code) == (409, ErrorCode.ADDRESS_TAKEN), taken
    # the account is untouched: one device, the old password
    assert len(await devices(alice)) == 1
    again = await raw_clients(shared_server, address)
    await again.login()
    impostor = await raw_clients(shared_server, address, password="another password")
    assert (await refused(impostor.login())).code == ErrorCode.INVALID_CREDENTIALS


async def test_register_bad_addresses(shared_server: ServerProcess, raw_clients: MakeRaw) -> None:
    name = fresh_address("carol").split("@")[0]
    for address in (f"{name}@elsewhere.example", f"{name}@example.org.evil", f"{name}@"):
        client = await raw_clients(shared_server, address)
        error = await refused(client.register())
        assert (error.status, error.code) == (400, ErrorCode.BAD_REQUEST), address
    wrong_domain = await raw_clients(shared_server, f"{name}@elsewhere.example")
    assert "@example.org" in (await refused(wrong_domain.register())).body["message"]
    for address in (
        "no-at-sign",
        "+4915112345678",
        "a b@example.org",
        "@example.org",
        "x" * 65 + "@example.org",
    ):
        client = await raw_clients(shared_server, address)
        error = await refused(client.register())
        assert (error.status, error.code) == (400, ErrorCode.BAD_REQUEST), address
    # passwords shorter than 8 characters, and bodies that are not credentials
    short = await raw_clients(shared_server, f"{name}@example.org", password="short")
    assert (await refused(short.register())).code == ErrorCode.BAD_REQUEST
    for raw in (b"", b"{", b'{"address": "x@example.org"}', b"[]"):
        error = await refused(short.request("POST", "/api/v1/accounts", raw=raw))
        assert (error.status, error.code) == (400, ErrorCode.BAD_REQUEST), raw
    # none of it created the account
    ok = await raw_clients(shared_server, f"{name}@example.org")
    await ok.register()


# ----------------------------------------------------------------- login


async def test_login_creates_a_new_device(
    shared_server: ServerProcess, raw_clients: MakeRaw
) -> None:
    address = fresh_address("alice")
    first = await raw_clients(shared_server, address)
    await first.register()
    second = await raw_clients(shared_server, address)
    await second.login()
    assert second.user == first.user
    assert second.device != first.device
    assert second.token != first.token
    assert set(await devices(first)) == {first.device, second.device}
    # both tokens work, at once, on the WebSocket too
    await first.connect()
    await second.connect()
    assert first.is_open


async def test_unknown_user_and_wrong_password_look_the_same(
    shared_server: ServerProcess, raw_clients: MakeRaw
) -> None:
    address = fresh_address("alice")
    alice = await raw_clients(shared_server, address)
    await alice.register()
    wrong_password = await raw_clients(shared_server, address, password="not the password")
    unknown_user = await raw_clients(shared_server, fresh_address("nobody"))
    malformed = await raw_clients(shared_server, "not an address")
    answers = [await refused(c.login()) for c in (wrong_password, unknown_user, malformed)]
    assert answers[0].status == 401
    assert answers[0].code == ErrorCode.INVALID_CREDENTIALS
    assert all((a.status, a.body) == (answers[0].status, answers[0].body) for a in answers)
    assert len(await devices(alice)) == 1


# ----------------------------------------------------------------- devices


async def test_list_devices_marks_the_current_one(
    shared_server: ServerProcess, raw_clients: MakeRaw
) -> None:
    address = fresh_address("alice")
    phones = [await raw_clients(shared_server, address) for _ in range(3)]
    await phones[0].register()
    for phone in phones[1:]:
        await phone.login()
    ids = [p.device for p in phones]
    for phone in phones:
        listed = (await phone.request("GET", "/api/v1/devices"))["devices"]
        assert [d["device"] for d in listed] == ids  # oldest first
        assert [d.get("current", False) for d in listed] == [d == phone.device for d in ids]
        assert all(d["created_ms"] > 0 and d["last_seen_ms"] >= d["created_ms"] for d in listed)
    # another account's devices are not listed
    bob = await raw_clients(shared_server, fresh_address("bob"))
    await bob.register()
    assert list(await devices(bob)) == [bob.device]


async def test_rename_device(shared_server: ServerProcess, raw_clients: MakeRaw) -> None:
    address = fresh_address("alice")
    alice, laptop = (
        await raw_clients(shared_server, address),
        await raw_clients(shared_server, address),
    )
    await alice.register()
    await laptop.login()
    await alice.request(
        "PATCH", f"/api/v1/devices/{laptop.device}", http.RenameDevice(name="work laptop")
    )
    await alice.request(
        "PATCH", f"/api/v1/devices/{alice.device}", http.RenameDevice(name="phone ☎")
    )
    listed = await devices(laptop)
    assert listed[laptop.device]["name"] == "work laptop"
    assert listed[alice.device]["name"] == "phone ☎"
    # too long, or not a rename body
    error = await refused(
        alice.request(
            "PATCH", f"/api/v1/devices/{laptop.device}", raw=b'{"name": "' + b"x" * 101 + b'"}'
        )
    )
    assert (error.status, error.code) == (400, ErrorCode.BAD_REQUEST)
    error = await refused(
        alice.request("PATCH", f"/api/v1/devices/{laptop.device}", raw=b'{"title": "x"}')
    )
    assert (error.status, error.code) == (400, ErrorCode.BAD_REQUEST)
    # another account's device is as unknown as a device that does not exist
    bob = await raw_clients(shared_server, fresh_address("bob"))
    await bob.register()
    answers = []
    for device in (laptop.device, new_device_id()):
        error = await refused(
            bob.request("PATCH", f"/api/v1/devices/{device}", http.RenameDevice(name="mine now"))
        )
        answers.append((error.status, error.body))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    assert answers[0][1]["error"] == ErrorCode.NOT_FOUND
    assert (await devices(alice))[laptop.device]["name"] == "work laptop"


async def test_remove_device(
    shared_server: ServerProcess, clients: Clients, raw_clients: MakeRaw
) -> None:
    alice = await clients(shared_server)("alice")  # registered, keys published, connected
    laptop = await raw_clients(shared_server, alice.address)
    laptop.identity = alice.identity
    await laptop.login()
    await laptop.setup_keys()
    await laptop.connect()

    async def remove(password: str | None) -> Any:
        body = None if password is None else http.RemoveDevice(password=password)
        return await alice.request("DELETE", f"/api/v1/devices/{laptop.device}", body)

    # the password is needed, and must be right
    error = await refused(remove("not the password"))
    assert (error.status, error.code) == (401, ErrorCode.INVALID_CREDENTIALS)
    error = await refused(remove(None))
    assert (error.status, error.code) == (400, ErrorCode.BAD_REQUEST)
    assert laptop.device in await devices(alice)
    await asyncio.sleep(0.1)
    assert laptop.is_open

    # the right password: gone, and its socket closes within a second
    await remove(alice.password)
    assert await laptop.wait_closed(timeout=1.0) == 4401
    assert set(await devices(alice)) == {alice.device}
    error = await refused(laptop.request("GET", "/api/v1/devices"))
    assert (error.status, error.code) == (401, ErrorCode.UNAUTHORIZED)
    assert await hello_refused(laptop) == 4401
    # its keys are gone from the directory
    keys = await alice.request("POST", "/api/v1/keys/query", http.QueryKeys(users=[alice.user]))
    assert [d["device"] for d in keys["users"][0]["devices"]] == [alice.device]
    claim = http.ClaimKeys(devices=[http.DeviceRef(user=alice.user, device=laptop.device)])
    assert (await alice.request("POST", "/api/v1/keys/claim", claim))["keys"] == []
    # removing it again, or another account's device: not found
    error = await refused(remove(alice.password))
    assert (error.status, error.code) == (404, ErrorCode.NOT_FOUND)
    bob = await raw_clients(shared_server, fresh_address("bob"))
    await bob.register()
    for device in (bob.device, new_device_id()):
        error = await refused(
            alice.request(
                "DELETE", f"/api/v1/devices/{device}", http.RemoveDevice(password=alice.password)
            )
        )
        assert (error.status, error.code) == (404, ErrorCode.NOT_FOUND)
    assert list(await devices(bob)) == [bob.device]
    # the remaining device carries on
    assert alice.is_open
    await alice.request("GET", "/api/v1/devices")


async def test_remove_own_device(shared_server: ServerProcess, clients: Clients) -> None:
    alice = await clients(shared_server)("alice")
    await alice.request(
        "DELETE", f"/api/v1/devices/{alice.device}", http.RemoveDevice(password=alice.password)
    )
    assert await alice.wait_closed(timeout=1.0) == 4401
    error = await refused(alice.request("GET", "/api/v1/devices"))
    assert (error.status, error.code) == (401, ErrorCode.UNAUTHORIZED)


async def test_logout(shared_server: ServerProcess, clients: Clients, raw_clients: MakeRaw) -> None:
    alice = await clients(shared_server)("alice")
    phone = await raw_clients(shared_server, alice.address)
    await phone.login()
    await phone.connect()
    await phone.request("DELETE", "/api/v1/sessions/current")
    assert await phone.wait_closed(timeout=1.0) == 4401
    error = await refused(phone.request("GET", "/api/v1/devices"))
    assert (error.status, error.code) == (401, ErrorCode.UNAUTHORIZED)
    error = await refused(phone.request("DELETE", "/api/v1/sessions/current"))
    assert (error.status, error.code) == (401, ErrorCode.UNAUTHORIZED)
    assert await hello_refused(phone) == 4401
    # the other device is unaffected
    assert set(await devices(alice)) == {alice.device}
    assert alice.is_open
    # logging in again is a new device
    await phone.login()
    assert set(await devices(alice)) == {alice.device, phone.device}
