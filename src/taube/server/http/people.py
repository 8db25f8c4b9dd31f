"""Invites, privacy settings, presence and the directory.

Access rules, one per line:

- an invite is revoked only by its inviter; checked by anyone holding its id
  (rate-limited per address); redeemed once, by one user other than the
  inviter (the same user again gets the same answer);
- presence is shown to the user themselves, and to others as the user's
  setting says: everyone, contacts (a direct chat with the user) or nobody;
  "last seen" is rounded down to 5 minutes;
- the directory lists only users who turned ``findable`` on, under the name
  they gave for it; a search needs 3 characters and is rate-limited per
  account.
"""

from __future__ import annotations

import hashlib
import weakref

from taube.proto import people
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import UserId, parse_address
from taube.server.context import Server
from taube.server.http.call import Call
from taube.server.ratelimit import RateLimiter
from taube.store import people as jobs

LAST_SEEN_STEP_MS = 5 * 60_000
DIRECTORY_RESULTS = 20
#: (per minute, burst) of each limiter
LIMITS = {"invite": (30.0, 30.0), "presence": (240.0, 60.0), "directory": (10.0, 10.0)}

_limiters: weakref.WeakKeyDictionary[Server, dict[str, RateLimiter]] = weakref.WeakKeyDictionary()


def _limit(call: Call, kind: str, key: str) -> None:
    srv = call.srv
    mine = _limiters.setdefault(srv, {})
    if kind not in mine:
        per_minute, burst = LIMITS[kind]
        mine[kind] = RateLimiter(srv.clock, per_minute=per_minute, burst=burst)
    srv.limit(mine[kind], key)


def _id_hash(invite_id: str) -> bytes:
    return hashlib.sha256(invite_id.encode()).digest()


# ------------------------------------------------------------------ invites


async def create_invite(call: Call) -> people.Invite:
    srv, body = call.srv, call.body
    _limit(call, "invite", call.auth.user)
    now = srv.clock.now_ms()
    expires = now + body.lifetime_s * 1000
    await srv.store.engine.write(
        jobs.create_invite, _id_hash(body.id), call.auth.user, now, expires
    )
    return people.Invite(inviter=call.auth.user, expires_ms=expires)


async def revoke_invite(call: Call) -> None:
    srv = call.srv
    revoked = await srv.store.engine.write(
        jobs.revoke_invite, _id_hash(call.param("invite")), call.auth.user, srv.clock.now_ms()
    )
    if not revoked:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such invite")


def _usable(found: jobs.InviteRow | None, user: UserId | None) -> people.Invite:
    """The invite, or the error that says plainly why it cannot be used."""
    if found is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, "this invite link is not valid")
    if found.state is jobs.InviteState.USED and (user is None or found.used_by != user):
        raise ProtocolError(ErrorCode.GONE, "this invite link was already used")
    if found.state is jobs.InviteState.REVOKED:
        raise ProtocolError(ErrorCode.GONE, "this invite link was revoked")
    if found.state is jobs.InviteState.EXPIRED:
        raise ProtocolError(ErrorCode.GONE, "this invite link has expired")
    if user is not None and found.inviter == user:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "this is your own invite link")
    return people.Invite(inviter=found.inviter, expires_ms=found.expires_ms)


async def check_invite(call: Call) -> people.Invite:
    srv = call.srv
    _limit(call, "invite", call.ip)
    found = await srv.store.engine.read(jobs.invite, _id_hash(call.body.id), srv.clock.now_ms())
    return _usable(found, None)


async def redeem_invite(call: Call) -> people.Invite:
    srv = call.srv
    _limit(call, "invite", call.auth.user)
    found = await srv.store.engine.write(
        jobs.redeem_invite, _id_hash(call.body.id), call.auth.user, srv.clock.now_ms()
    )
    return _usable(found, call.auth.user)


# ------------------------------------------------------------------ privacy


async def get_privacy(call: Call) -> people.Privacy:
    presence, name = await call.srv.store.engine.read(jobs.privacy, call.auth.user)
    return people.Privacy(
        presence=people.Visibility(presence), findable=name is not None, name=name or ""
    )


async def set_privacy(call: Call) -> people.Privacy:
    body: people.Privacy = call.body
    name = body.name.strip()
    if body.findable and not name:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a name to be found by is needed")
    await call.srv.store.engine.write(
        jobs.set_privacy, call.auth.user, body.presence.value, name if body.findable else None
    )
    return await get_privacy(call)


# ------------------------------------------------------------------ presence


async def _may_see(call: Call, user: UserId, visibility: str) -> bool:
    viewer = call.auth.user
    if viewer == user or visibility == people.Visibility.EVERYONE:
        return True
    if visibility == people.Visibility.CONTACTS:
        return bool(await call.srv.store.engine.read(jobs.are_contacts, viewer, user))
    return False


async def get_presence(call: Call) -> people.Presence:
    srv = call.srv
    _limit(call, "presence", call.auth.user)
    try:
        user = parse_address(call.param("user"))
    except ProtocolError:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such user") from None
    # an unknown user looks like one who shows nothing ("nobody")
    visibility, _ = await srv.store.engine.read(jobs.privacy, user)
    if not await _may_see(call, user, visibility):
        return people.Presence(user=user)
    if await srv.presence.online(user):
        return people.Presence(user=user, visible=True, online=True)
    seen = await srv.store.engine.read(jobs.last_seen, user)
    coarse = None if seen is None else seen - seen % LAST_SEEN_STEP_MS
    return people.Presence(user=user, visible=True, last_seen_ms=coarse)


# ------------------------------------------------------------------ directory


async def search_directory(call: Call) -> people.DirectoryResults:
    _limit(call, "directory", call.auth.user)
    query = call.body.query.strip()
    if len(query) < 3:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "type at least 3 characters")
    found = await call.srv.store.engine.read(jobs.search_directory, query, DIRECTORY_RESULTS)
    return people.DirectoryResults(
        people=[people.Person(user=user, name=name) for user, name in found]
    )
