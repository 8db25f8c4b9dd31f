"""The key directory: the server checks signatures and key shapes, nothing more."""

from __future__ import annotations

from taube.proto import http
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import UserId
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.proto.signing import (
    DOMAIN_DEVICE,
    DOMAIN_IDENTITY,
    DOMAIN_ONE_TIME_KEY,
    check_curve25519,
    ed25519_public_key,
    verify,
)
from taube.server.federation import keys as federated
from taube.server.http.call import Call


def _own(call: Call, user: str, device: str | None = None) -> None:
    if user != call.auth.user or (device is not None and device != call.auth.device):
        raise ProtocolError(ErrorCode.FORBIDDEN, "keys name another user or device")


async def publish_identity(call: Call) -> None:
    identity: IdentityKey = call.body
    _own(call, identity.user)
    verify(DOMAIN_IDENTITY, identity, identity.identity_key, identity.signature)
    notified = await call.srv.store.publish_identity(
        call.auth.user, identity, call.srv.clock.now_ms()
    )
    call.srv.notify_keys_changed(notified, call.auth.user)


def _check_one_time_key(call: Call, key: OneTimeKey, ed25519: str, *, fallback: bool) -> None:
    _own(call, key.user, key.device)
    if key.fallback is not fallback:
        raise ProtocolError(ErrorCode.BAD_KEY, "fallback flag does not match its place")
    check_curve25519(key.key)
    verify(DOMAIN_ONE_TIME_KEY, key, ed25519, key.signature)


async def upload_keys(call: Call) -> http.KeyCount:
    srv, body = call.srv, call.body
    user, device = call.auth.user, call.auth.device
    device_keys: DeviceKeys | None = body.device_keys
    if device_keys is not None:
        _own(call, device_keys.user, device_keys.device)
        identity = await srv.store.identity_of(user)
        if identity is None:
            raise ProtocolError(ErrorCode.BAD_KEY, "publish the identity key first")
        check_curve25519(device_keys.curve25519)
        ed25519_public_key(device_keys.ed25519)
        verify(DOMAIN_DEVICE, device_keys, identity.identity_key, device_keys.signature)
        ed25519 = device_keys.ed25519
    else:
        known = await srv.store.device_ed25519(user, device)
        if known is None and (body.one_time_keys or body.fallback_key):
            raise ProtocolError(ErrorCode.BAD_KEY, "upload the device keys first")
        ed25519 = known or ""
    for key in body.one_time_keys:
        _check_one_time_key(call, key, ed25519, fallback=False)
    if body.fallback_key is not None:
        _check_one_time_key(call, body.fallback_key, ed25519, fallback=True)
    count, fallback, notified = await srv.store.upload_keys(
        user,
        device,
        device_keys,
        list(body.one_time_keys),
        body.fallback_key,
        srv.clock.now_ms(),
    )
    srv.notify_keys_changed(notified, user)
    return http.KeyCount(one_time_keys=count, fallback_key=fallback)


async def put_key_backup(call: Call) -> None:
    await call.srv.store.put_key_backup(call.auth.user, call.body.sealed)


async def get_key_backup(call: Call) -> http.KeyBackup:
    sealed = await call.srv.store.get_key_backup(call.auth.user)
    if sealed is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no key backup")
    return http.KeyBackup(sealed=sealed)


async def count_keys(call: Call) -> http.KeyCount:
    count, fallback = await call.srv.store.count_keys(call.auth.device)
    return http.KeyCount(one_time_keys=count, fallback_key=fallback)


async def query_keys(call: Call) -> http.KeysResponse:
    return await federated.query_keys(call.srv, [UserId(u) for u in call.body.users])


async def claim_keys(call: Call) -> http.ClaimResponse:
    return http.ClaimResponse(keys=await federated.claim_keys(call.srv, list(call.body.devices)))
