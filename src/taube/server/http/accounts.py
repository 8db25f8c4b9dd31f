"""Accounts, sessions and devices."""

from __future__ import annotations

from taube.proto import http
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId, domain_of, new_device_id, parse_address
from taube.server.auth import new_token, token_hash
from taube.server.http.call import Call


async def register(call: Call) -> http.Session:
    srv, body = call.srv, call.body
    srv.limit(srv.ip_limiter, call.ip)
    user = parse_address(body.address)
    if domain_of(user) != srv.config.server.domain:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"this server hosts addresses @{srv.config.server.domain}"
        )
    password_hash = await srv.passwords.hash(body.password)
    await srv.store.create_user(user, password_hash, srv.clock.now_ms())
    return await _new_device(call, user)


async def login(call: Call) -> http.Session:
    srv, body = call.srv, call.body
    srv.limit(srv.ip_limiter, call.ip)
    try:
        user = parse_address(body.address)
    except ProtocolError:
        raise ProtocolError(ErrorCode.INVALID_CREDENTIALS, "wrong address or password") from None
    srv.limit(srv.account_limiter, user)
    stored = await srv.store.password_hash(user)
    if not await srv.passwords.verify(stored, body.password):
        raise ProtocolError(ErrorCode.INVALID_CREDENTIALS, "wrong address or password")
    assert stored is not None
    if srv.passwords.needs_rehash(stored):
        await srv.store.set_password_hash(user, await srv.passwords.hash(body.password))
    return await _new_device(call, user)


async def _new_device(call: Call, user: UserId) -> http.Session:
    srv = call.srv
    device = new_device_id()
    token = new_token()
    now = srv.clock.now_ms()
    await srv.store.create_device(
        user,
        device,
        call.body.device_name,
        token_hash(token),
        now,
        srv.token_expiry(now),
    )
    return http.Session(user=user, device=device, token=token)


async def logout(call: Call) -> None:
    await call.srv.do_remove_device(call.auth.user, call.auth.device)


async def list_devices(call: Call) -> http.DeviceList:
    rows = await call.srv.store.list_devices(call.auth.user)
    return http.DeviceList(
        devices=[
            http.DeviceInfo(
                device=r.device,
                name=r.name,
                created_ms=r.created_ms,
                last_seen_ms=r.last_seen_ms,
                current=r.device == call.auth.device,
            )
            for r in rows
        ]
    )


async def rename_device(call: Call) -> None:
    found = await call.srv.store.rename_device(
        call.auth.user, DeviceId(call.param("device")), call.body.name
    )
    if not found:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such device")


async def remove_device(call: Call) -> None:
    srv = call.srv
    srv.limit(srv.account_limiter, call.auth.user)
    stored = await srv.store.password_hash(call.auth.user)
    if not await srv.passwords.verify(stored, call.body.password):
        raise ProtocolError(ErrorCode.INVALID_CREDENTIALS, "wrong password")
    if not await srv.do_remove_device(call.auth.user, DeviceId(call.param("device"))):
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such device")
