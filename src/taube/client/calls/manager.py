"""``Calls``: the calls of this device — placing, ringing, answering, ending.

One ``Call`` per call id, each with an explicit state (``CallState``:
transitions not in ``NEXT`` are refused). The caller rings every device of
the other member; the first device to answer wins and the caller tells all
of them which one did (``select``), so the rest stop ringing. When a call
ends, the caller posts its outcome into the conversation (a ``call``
message: "missed call", "call, 3 min"), so every device of both people
shows it once in the history.

Media needs aiortc (the ``calls`` extra); it is imported only when a call
is placed or answered, so signalling (and refusing calls) works without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from taube.client import events as ev
from taube.client.background import Background
from taube.client.calls import signalling as sig
from taube.client.calls.signalling import CallState, EndReason, SignallingError
from taube.client.carrier import TaubeCarrier
from taube.client.conversations import Conversations, Sender
from taube.client.errors import ClientError
from taube.client.session import Emit, Session
from taube.crypto import CryptoError, VerifiedDevice
from taube.proto import http
from taube.proto.ids import ConversationId, DeviceId, UserId

if TYPE_CHECKING:
    from taube.client.calls.media import Media, Peer

log = logging.getLogger(__name__)

#: how long ICE may take after an answer before the call counts as failed
CONNECT_TIMEOUT_S = 20.0
#: when the media connection breaks, how long to wait for the other side's
#: hang-up (it travels through the server, the break is seen directly)
GONE_GRACE_S = 3.0
#: call ids remembered against replays (far more than one device takes in a ring time)
SEEN_CALLS = 4096


class CallError(ClientError):
    """A call cannot be placed or answered (no such call, wrong state, ...)."""


@dataclasses.dataclass(eq=False)
class Call:
    """One call on this device."""

    id: str
    conversation: ConversationId
    peer: UserId  #: the other person
    outgoing: bool
    video: bool
    started_ms: int
    state: CallState = CallState.RINGING
    #: outgoing: the devices rung; incoming: the caller's device
    devices: list[VerifiedDevice] = dataclasses.field(default_factory=list)
    #: the device this call talks to (incoming: the caller's; outgoing: the one that answered)
    peer_device: VerifiedDevice | None = None
    busy: set[DeviceId] = dataclasses.field(default_factory=set)
    connected_ms: int | None = None
    ended_ms: int | None = None
    reason: str = ""
    offer_sdp: str = ""
    peer_conn: Peer | None = None
    media: Media | None = None
    ended: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    connected: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    #: candidates that came before the peer connection existed
    early_candidates: list[sig.Candidate] = dataclasses.field(default_factory=list)
    #: the other side's messages are handled one at a time, in order
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def duration_ms(self) -> int:
        if self.connected_ms is None:
            return 0
        return max(0, (self.ended_ms or self.connected_ms) - self.connected_ms)

    async def wait_connected(self, timeout: float = 30.0) -> None:
        """Until media flows both ways is the peer's business; this waits for ICE."""
        async with asyncio.timeout(timeout):
            await self.connected.wait()

    async def wait_media(self, timeout: float = 30.0) -> None:
        """Until the first frame from the other side has been decoded."""
        async with asyncio.timeout(timeout):
            await self.connected.wait()
            assert self.peer_conn is not None
            await self.peer_conn.first_media.wait()

    async def wait_ended(self, timeout: float = 30.0) -> str:
        async with asyncio.timeout(timeout):
            await self.ended.wait()
        return self.reason


class Calls:
    def __init__(
        self,
        session: Session,
        carrier: TaubeCarrier,
        conversations: Conversations,
        background: Background,
        emit: Emit,
    ) -> None:
        self._session = session
        self._carrier = carrier
        self._conversations = conversations
        self._background = background
        self._emit = emit
        self.sender: Sender | None = None  #: posts the call events (the outbox)
        self._calls: dict[str, Call] = {}
        self._seen: dict[str, None] = {}
        #: tests: gather relay candidates only (media through TURN)
        self.relay_only = False

    # ---------------------------------------------------------------- queries

    def get(self, call_id: str) -> Call:
        call = self._calls.get(call_id)
        if call is None:
            raise CallError("no such call")
        return call

    def active(self) -> list[Call]:
        return [c for c in self._calls.values() if c.state is not CallState.ENDED]

    async def turn(self) -> http.TurnCredentials:
        _, api, _ = self._session.need()
        return await api.get("/turn", http.TurnCredentials)

    # ---------------------------------------------------------------- placing

    async def place(
        self,
        conversation: ConversationId,
        media: Media,
        *,
        video: bool | None = None,
        ring_ms: int = sig.RING_MS,
    ) -> Call:
        """Ring every device of the other member of a direct chat, for
        ``ring_ms`` at most (1 s to 5 min)."""
        from taube.client.calls.media import Peer  # aiortc is optional

        session = self._session
        _, _, keys = session.need()
        _, state = await self._conversations.chain(conversation)
        others = sorted(u for u in state.members if u != session.user)
        if len(others) != 1:
            raise CallError("calls are 1:1: the conversation must have one other member")
        if not 1000 <= ring_ms <= 5 * 60_000:
            raise CallError("ring_ms must be between 1 s and 5 min")
        video = media.video if video is None else video
        call = Call(
            sig.new_call_id(),
            conversation,
            others[0],
            outgoing=True,
            video=video,
            started_ms=session.clock(),
        )
        self._calls[call.id] = call
        call.media = media
        call.devices = [d for d in await keys.devices_of(others) if d.user != session.user]
        if not call.devices:
            await self._end(call, EndReason.UNREACHABLE)
            return call
        call.peer_conn = Peer(
            await self.turn(), lambda s: self._on_ice(call, s), relay_only=self.relay_only
        )
        sdp = await call.peer_conn.offer(media, video)
        invite = sig.Invite(
            call=call.id,
            conversation=conversation,
            ts=session.clock(),
            lifetime_ms=ring_ms,
            sdp=sdp,
            video=video,
        )
        reached = 0
        for device in call.devices:
            try:
                await self._carrier.send_to_device(device, sig.INVITE, sig.content_of(invite))
                reached += 1
            except (ClientError, CryptoError) as exc:
                log.info("a device could not be rung: %s", exc)
        if not reached:
            await self._end(call, EndReason.UNREACHABLE)
            return call
        self._emit(ev.CallChanged(call.id, conversation, call.state))
        self._background.spawn(self._ring_timeout(call, ring_ms / 1000))
        return call

    # ---------------------------------------------------------------- answering

    async def answer(self, call_id: str, media: Media) -> Call:
        from taube.client.calls.media import Peer  # aiortc is optional

        call = self.get(call_id)
        if call.outgoing or call.state is not CallState.RINGING or call.peer_device is None:
            raise CallError("not a ringing incoming call")
        self._move(call, CallState.CONNECTING)
        call.media = media
        call.peer_conn = Peer(
            await self.turn(), lambda s: self._on_ice(call, s), relay_only=self.relay_only
        )
        sdp = await call.peer_conn.answer(call.offer_sdp, media)
        if call.ended.is_set():
            return call  # the caller hung up (or another device won) meanwhile
        for candidate in call.early_candidates:
            await call.peer_conn.add_candidate(candidate)
        call.early_candidates.clear()
        await self._carrier.send_to_device(
            call.peer_device, sig.ANSWER, sig.content_of(sig.Answer(call=call.id, sdp=sdp))
        )
        self._background.spawn(self._connect_timeout(call))
        return call

    async def reject(self, call_id: str) -> None:
        call = self.get(call_id)
        if call.outgoing or call.state is not CallState.RINGING or call.peer_device is None:
            raise CallError("not a ringing incoming call")
        await self._end(call, EndReason.DECLINED)
        await self._carrier.send_to_device(
            call.peer_device, sig.REJECT, sig.content_of(sig.Reject(call=call.id))
        )

    async def hang_up(self, call_id: str) -> None:
        call = self.get(call_id)
        if call.state is CallState.ENDED:
            return
        reason = EndReason.HANGUP
        if call.outgoing and call.state is CallState.RINGING:
            reason = EndReason.MISSED  # the caller gave up before anyone answered
        await self._send_hangup(call, reason)  # first: before the media connection closes
        await self._end(call, reason)

    # ---------------------------------------------------------------- ending

    def _move(self, call: Call, state: CallState, reason: str = "") -> None:
        if state not in sig.NEXT[call.state]:
            raise CallError(f"a call cannot go from {call.state} to {state}")
        call.state = state
        now = self._session.clock()
        if state is CallState.CONNECTED:
            call.connected_ms = now
            call.connected.set()
        elif state is CallState.ENDED:
            call.ended_ms = now
            call.reason = reason
        self._emit(ev.CallChanged(call.id, call.conversation, state, reason))

    async def _end(self, call: Call, reason: str) -> None:
        if call.state is CallState.ENDED:
            return
        self._move(call, CallState.ENDED, reason)
        call.ended.set()
        if call.peer_conn is not None:
            await call.peer_conn.close()
        if call.media is not None:
            call.media.stop()
        if call.outgoing and self.sender is not None:
            outcome = "answered" if call.connected_ms is not None else str(reason)
            content: dict[str, Any] = {
                "call": call.id,
                "outcome": outcome,
                "video": call.video,
                "duration_ms": call.duration_ms,
            }
            with contextlib.suppress(ClientError):
                await self.sender.send(call.conversation, ev.CALL, content)

    async def _send_hangup(
        self, call: Call, reason: str, *, only: list[VerifiedDevice] | None = None
    ) -> None:
        if only is not None:
            devices = only
        elif call.peer_device is not None:
            devices = [call.peer_device]
        else:
            devices = call.devices
        content = sig.content_of(sig.Hangup(call=call.id, reason=reason))
        for device in devices:
            try:
                await self._carrier.send_to_device(device, sig.HANGUP, content)
            except (ClientError, CryptoError) as exc:
                log.info("hangup not sent to a device: %s", exc)

    async def _ring_timeout(self, call: Call, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if call.state is CallState.RINGING:
            await self._end(call, EndReason.MISSED)
            if call.outgoing:
                await self._send_hangup(call, EndReason.MISSED)

    async def _connect_timeout(self, call: Call) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if call.state is CallState.CONNECTING:
            await self._fail(call, EndReason.ICE_FAILED)

    async def _fail(self, call: Call, reason: str) -> None:
        await self._end(call, reason)
        await self._send_hangup(call, reason)

    def _on_ice(self, call: Call, state: str) -> None:
        if state == "connected" and call.state is CallState.CONNECTING:
            self._move(call, CallState.CONNECTED)
        elif state in ("failed", "closed") and call.state is not CallState.ENDED:
            reason = EndReason.GONE if call.state is CallState.CONNECTED else EndReason.ICE_FAILED
            self._background.spawn(self._fail_unless_ended(call, reason))

    async def _fail_unless_ended(self, call: Call, reason: str) -> None:
        """The media connection broke: unless a hang-up explains it soon, the
        other side is gone (or never got through)."""
        with contextlib.suppress(TimeoutError):
            await call.wait_ended(GONE_GRACE_S)
        if call.state is not CallState.ENDED:
            await self._fail(call, reason)

    async def close(self) -> None:
        """End every call (the device goes offline), and wait until every
        media connection is closed."""
        for call in self.active():
            with contextlib.suppress(ClientError, CryptoError, OSError):
                await self.hang_up(call.id)
        for call in self._calls.values():
            if call.peer_conn is not None:
                with contextlib.suppress(Exception):
                    await call.peer_conn.close()

    # ---------------------------------------------------------------- receiving

    async def on_message(self, sender: VerifiedDevice, type_: str, content: dict[str, Any]) -> None:
        """A call message from ``sender`` (Olm-decrypted, its certificate valid).

        Runs in the frame loop: whatever waits for a server acknowledgement
        goes to the background."""
        try:
            message = sig.parse(type_, content)
            if isinstance(message, sig.Invite):
                await self._on_invite(sender, message)
                return
            call = self._calls.get(message.call)
            if call is None or call.state is CallState.ENDED:
                return
            self._background.spawn(self._on_reply(call, sender, message))
        except SignallingError as exc:
            log.info("call message refused: %s", exc)

    async def _on_invite(self, sender: VerifiedDevice, invite: sig.Invite) -> None:
        session = self._session
        if invite.call in self._seen or invite.call in self._calls:
            raise SignallingError("replayed invite")
        sig.check_fresh(invite, session.clock())
        self._seen[invite.call] = None
        while len(self._seen) > SEEN_CALLS:
            del self._seen[next(iter(self._seen))]
        conversation = ConversationId(invite.conversation)
        try:
            _, state = await self._conversations.chain(conversation)
        except (ClientError, CryptoError) as exc:
            raise SignallingError(f"invite for an unknown conversation: {exc}") from None
        if sender.user not in state.members or session.user not in state.members:
            raise SignallingError("invite from someone who is not a member")
        if sender.user == session.user:
            raise SignallingError("invite from this user's own device")
        call = Call(
            invite.call,
            conversation,
            sender.user,
            outgoing=False,
            video=invite.video,
            started_ms=session.clock(),
            devices=[sender],
            peer_device=sender,
            offer_sdp=invite.sdp,
        )
        self._calls[call.id] = call
        if any(c is not call for c in self.active()):
            call.state = CallState.ENDED
            call.reason = EndReason.BUSY
            call.ended.set()
            self._background.spawn(
                self._carrier.send_to_device(
                    sender, sig.REJECT, sig.content_of(sig.Reject(call=call.id, reason="busy"))
                )
            )
            return
        remaining = invite.lifetime_ms - max(0, session.clock() - invite.ts)
        self._emit(ev.IncomingCall(call.id, conversation, sender.user, sender.device, call.video))
        self._background.spawn(self._ring_timeout(call, remaining / 1000))

    async def _on_reply(
        self, call: Call, sender: VerifiedDevice, message: sig.SignalContent
    ) -> None:
        """Everything but an invite, for a call this device has."""
        async with call.lock:
            if call.state is not CallState.ENDED:
                await self._handle_reply(call, sender, message)

    async def _handle_reply(
        self, call: Call, sender: VerifiedDevice, message: sig.SignalContent
    ) -> None:
        from_peer = call.peer_device is not None and _same(call.peer_device, sender)
        rung = call.outgoing and any(_same(d, sender) for d in call.devices)
        if isinstance(message, sig.Answer) and rung:
            await self._on_answer(call, sender, message)
        elif isinstance(message, sig.Reject) and rung and call.state is CallState.RINGING:
            if message.reason == "busy":
                call.busy.add(sender.device)
                if len(call.busy) < len(call.devices):
                    return
                await self._end(call, EndReason.BUSY)
                return
            await self._end(call, EndReason.DECLINED)
            others = [d for d in call.devices if not _same(d, sender)]
            await self._send_hangup(call, EndReason.DECLINED, only=others)
        elif isinstance(message, sig.Select) and from_peer and not call.outgoing:
            if message.device != self._session.device:
                await self._end(call, EndReason.ANSWERED_ELSEWHERE)
        elif isinstance(message, sig.Candidates) and (from_peer or rung):
            if call.peer_device is not None and not from_peer:
                return  # from a device that did not win the call
            if call.peer_conn is None or call.state is CallState.RINGING:
                call.early_candidates.extend(message.candidates)
                return
            for candidate in message.candidates:
                await call.peer_conn.add_candidate(candidate)
        elif isinstance(message, sig.Hangup) and (from_peer or (rung and call.peer_device is None)):
            await self._end(call, _hangup_reason(call, message.reason))

    async def _on_answer(self, call: Call, sender: VerifiedDevice, answer: sig.Answer) -> None:
        if call.state is not CallState.RINGING or call.peer_conn is None:
            # a second device answered too late: it stops (answered elsewhere)
            content = sig.content_of(sig.Hangup(call=call.id, reason=EndReason.ANSWERED_ELSEWHERE))
            if call.peer_device is None or not _same(call.peer_device, sender):
                await self._carrier.send_to_device(sender, sig.HANGUP, content)
            return
        call.peer_device = sender
        self._move(call, CallState.CONNECTING)
        try:
            await call.peer_conn.accept(answer.sdp)
        except (ValueError, RuntimeError) as exc:
            log.info("answer refused: %s", exc)
            await self._fail(call, EndReason.ERROR)
            return
        for candidate in call.early_candidates:
            await call.peer_conn.add_candidate(candidate)
        call.early_candidates.clear()
        select = sig.content_of(sig.Select(call=call.id, device=sender.device))
        for device in call.devices:
            with contextlib.suppress(ClientError, CryptoError):
                await self._carrier.send_to_device(device, sig.SELECT, select)
        self._background.spawn(self._connect_timeout(call))


def _same(a: VerifiedDevice, b: VerifiedDevice) -> bool:
    return (a.user, a.device) == (b.user, b.device)


#: what a ringing device shows when the caller's hang-up says why
_RINGING_ENDS = frozenset({EndReason.DECLINED, EndReason.ANSWERED_ELSEWHERE})


def _hangup_reason(call: Call, said: str) -> EndReason:
    """Why a call ended, from the other side's hang-up (unknown words: hang-up)."""
    reason = EndReason(said) if said in set(EndReason) else EndReason.HANGUP
    if call.state is CallState.RINGING and reason not in _RINGING_ENDS:
        return EndReason.MISSED
    return reason
