"""Key look-ups across servers.

A client asks its own server for anyone's keys (``/keys/query``,
``/keys/claim``); the server answers for its own users from its store and
asks each other domain's server, signed, for theirs. What comes back is
passed on only where it names a user of that domain (a device certificate
naming someone else is dropped); the client then checks every certificate
against the user's identity key itself, so a lying remote server can hide
devices or withhold keys, but not make a client trust a device.

A domain without a taube server answers nothing (its users do not exist
here, as an unknown local user); a domain whose server cannot be reached
makes the request fail with ``unavailable``, so the client retries rather
than conclude that the user has no devices.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from taube.proto import http
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId, domain_of
from taube.proto.keys import OneTimeKey
from taube.server.federation.discovery import NoServer

if TYPE_CHECKING:
    from taube.server.context import Server

T = TypeVar("T")

#: users (or devices) per request to one server, as ``QueryKeys`` allows
CHUNK = 1000


def by_domain(items: Iterable[T], user_of: Callable[[T], str]) -> dict[str, list[T]]:
    """``items`` grouped by the domain of their user."""
    groups: dict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[domain_of(UserId(user_of(item)))].append(item)
    return dict(groups)


def _local_only(srv: Server, origin: str, users: Iterable[str]) -> None:
    own = srv.config.server.domain
    if any(domain_of(UserId(user)) != own for user in users):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{own} answers for {own} addresses only")


# ----------------------------------------------------------- in: other servers ask us


async def federation_query_keys(
    srv: Server, origin: str, body: http.QueryKeys, params: Mapping[str, str]
) -> http.KeysResponse:
    _local_only(srv, origin, body.users)
    return await local_query(srv, [UserId(u) for u in body.users])


async def federation_claim_keys(
    srv: Server, origin: str, body: http.ClaimKeys, params: Mapping[str, str]
) -> http.ClaimResponse:
    _local_only(srv, origin, (ref.user for ref in body.devices))
    keys = await srv.store.claim_keys([(UserId(r.user), DeviceId(r.device)) for r in body.devices])
    return http.ClaimResponse(keys=keys)


async def local_query(srv: Server, users: list[UserId]) -> http.KeysResponse:
    found = await srv.store.query_keys(users)
    return http.KeysResponse(
        users=[
            http.UserKeys(user=user, identity=identity, devices=devices)
            for user, identity, devices in found
        ]
    )


# ----------------------------------------------------------- out: we ask other servers


async def _each_domain(
    srv: Server, groups: dict[str, list[T]], ask: type, path: str, answer: type, wrap: str
) -> list[tuple[str, object]]:
    federation = srv.federation
    assert federation is not None

    async def one(domain: str, items: list[T]) -> list[tuple[str, object]]:
        results: list[tuple[str, object]] = []
        for start in range(0, len(items), CHUNK):
            body = ask(**{wrap: items[start : start + CHUNK]})
            try:
                results.append(
                    (domain, await federation.request(domain, "POST", path, body, answer))
                )
            except NoServer:
                return []
            except ProtocolError as exc:
                if exc.code == ErrorCode.FORBIDDEN:
                    return []  # not federated with: as if the users did not exist
                raise
        return results

    done = await asyncio.gather(*(one(d, items) for d, items in groups.items()))
    return [pair for pairs in done for pair in pairs]


async def query_keys(srv: Server, users: list[UserId]) -> http.KeysResponse:
    """Keys of ``users`` wherever they live."""
    groups = by_domain(users, str)
    own = groups.pop(srv.config.server.domain, [])
    local = await local_query(srv, own) if own else http.KeysResponse(users=[])
    if not groups or srv.federation is None:
        return local
    remote = await _each_domain(
        srv, groups, http.QueryKeys, "/keys/query", http.KeysResponse, "users"
    )
    merged = list(local.users)
    for domain, response in remote:
        assert isinstance(response, http.KeysResponse)
        asked = set(groups[domain])
        for entry in response.users:
            if entry.user not in asked or domain_of(UserId(entry.user)) != domain:
                continue  # a server answers for its own, asked-about users only
            devices = [d for d in entry.devices if d.user == entry.user]
            identity = entry.identity
            if identity is not None and identity.user != entry.user:
                identity = None
            merged.append(http.UserKeys(user=entry.user, identity=identity, devices=devices))
    return http.KeysResponse(users=merged)


async def claim_keys(srv: Server, refs: list[http.DeviceRef]) -> list[OneTimeKey]:
    """One key per device, wherever the devices live."""
    groups = by_domain(refs, lambda ref: ref.user)
    own = groups.pop(srv.config.server.domain, [])
    claimed = (
        await srv.store.claim_keys([(UserId(r.user), DeviceId(r.device)) for r in own])
        if own
        else []
    )
    if not groups or srv.federation is None:
        return claimed
    remote = await _each_domain(
        srv, groups, http.ClaimKeys, "/keys/claim", http.ClaimResponse, "devices"
    )
    for domain, response in remote:
        assert isinstance(response, http.ClaimResponse)
        asked = {(r.user, r.device) for r in groups[domain]}
        seen = set()
        for key in response.keys:
            pair = (key.user, key.device)
            if pair in asked and pair not in seen:  # one key per device asked for
                seen.add(pair)
                claimed.append(key)
    return claimed
