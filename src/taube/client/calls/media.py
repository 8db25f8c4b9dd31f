"""A call's media on this device, with aiortc (the ``calls`` extra).

``Peer`` is one WebRTC peer connection: it offers or answers with the
tracks of a ``Media`` source and counts what arrives (``first_media`` is
set when the first frame from the other side has been decoded). aiortc puts
every local candidate in its SDP (no trickle); candidates the other side
trickles (browsers) are added as they come.

ICE servers always come from the server's TURN credentials: given none,
aiortc would ask a public STUN server, which a taube device never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame

from taube.client.calls.signalling import Candidate
from taube.proto import http

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
AUDIO_PTIME = 0.02
VIDEO_FPS = 15


def ice_servers(turn: http.TurnCredentials) -> list[RTCIceServer]:
    """The server's TURN credentials as aiortc's ICE servers (maybe none)."""
    if not turn.urls:
        return []
    return [RTCIceServer(urls=list(turn.urls), username=turn.username, credential=turn.credential)]


class _Paced:
    """Timestamps at a fixed rate, slept to wall time (as a device would)."""

    def __init__(self, rate: int, step: int) -> None:
        self.rate, self.step = rate, step
        self.pts = 0
        self.start: float | None = None

    async def next(self) -> int:
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.pts += self.step
            delay = self.start + self.pts / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self.pts


class ToneTrack(MediaStreamTrack):
    """A sine tone (440 Hz), 20 ms frames of 16-bit mono at 48 kHz."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self.samples = int(SAMPLE_RATE * AUDIO_PTIME)
        self._clock = _Paced(SAMPLE_RATE, self.samples)

    async def recv(self) -> AudioFrame:
        pts = await self._clock.next()
        step = 2 * math.pi * self.frequency / SAMPLE_RATE
        data = struct.pack(
            f"<{self.samples}h",
            *(int(8000 * math.sin(step * (pts + i))) for i in range(self.samples)),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(data)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


class BarsTrack(MediaStreamTrack):
    """A moving grey test picture (320x240) at 15 fps."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._clock = _Paced(90_000, 90_000 // VIDEO_FPS)

    async def recv(self) -> VideoFrame:
        pts = await self._clock.next()
        n = pts // self._clock.step
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        luma = bytes((x + 4 * n) % 256 for x in range(self.width)) * self.height
        frame.planes[0].update(luma)
        chroma = bytes([128]) * (self.width // 2) * (self.height // 2)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, 90_000)
        return frame


class Media:
    """What this device sends in a call: a tone (and test picture), or a file."""

    def __init__(self, tracks: list[MediaStreamTrack], player: MediaPlayer | None = None) -> None:
        self.tracks = tracks
        self._player = player

    @classmethod
    def tone(cls, video: bool = False) -> Media:
        return cls([ToneTrack(), *([BarsTrack()] if video else [])])

    @classmethod
    def file(cls, path: Path, loop: bool = True) -> Media:
        """An audio or video file's tracks (anything FFmpeg reads), played in real time."""
        player = MediaPlayer(str(path), loop=loop)
        return cls([t for t in (player.audio, player.video) if t is not None], player)

    @property
    def video(self) -> bool:
        return any(t.kind == "video" for t in self.tracks)

    def stop(self) -> None:
        for track in self.tracks:
            track.stop()


class Peer:
    """One RTCPeerConnection with the other device of a call."""

    def __init__(
        self,
        turn: http.TurnCredentials,
        on_state: Callable[[str], None],
        *,
        relay_only: bool = False,
    ) -> None:
        policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
        config = RTCConfiguration(iceServers=ice_servers(turn), iceTransportPolicy=policy)
        self.pc = RTCPeerConnection(config)
        self.first_media = asyncio.Event()
        #: frames received and decoded, by kind
        self.frames: dict[str, int] = {}
        self._readers: list[asyncio.Task[None]] = []
        #: held while an offer or answer gathers candidates: closing waits for
        #: it (aioice keeps a relay allocation that completes after a close)
        self._negotiating = asyncio.Lock()
        self._closing: asyncio.Task[None] | None = None
        self.pc.on("connectionstatechange", lambda: on_state(self.pc.connectionState))
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.get_running_loop().create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] = self.frames.get(track.kind, 0) + 1
                self.first_media.set()

    def _add(self, media: Media, video: bool) -> None:
        for track in media.tracks:
            self.pc.addTrack(track)
        kinds = {t.kind for t in media.tracks}
        for kind in ("audio", "video") if video else ("audio",):
            if kind not in kinds:
                self.pc.addTransceiver(kind, direction="recvonly")

    async def offer(self, media: Media, video: bool) -> str:
        async with self._negotiating:
            self._add(media, video)
            await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers everything
            return str(self.pc.localDescription.sdp)

    async def answer(self, offer_sdp: str, media: Media) -> str:
        async with self._negotiating:
            offer = RTCSessionDescription(sdp=offer_sdp, type="offer")
            await self.pc.setRemoteDescription(offer)
            for track in media.tracks:
                self.pc.addTrack(track)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def add_candidate(self, candidate: Candidate) -> None:
        line = candidate.candidate.removeprefix("candidate:")
        if not line:
            return  # an end-of-candidates marker
        try:
            ice: RTCIceCandidate = candidate_from_sdp(line)
        except (ValueError, IndexError) as exc:
            log.info("ICE candidate refused: %s", exc)
            return
        ice.sdpMid = candidate.sdpMid
        ice.sdpMLineIndex = candidate.sdpMLineIndex
        if ice.sdpMid is None and ice.sdpMLineIndex is None:
            ice.sdpMLineIndex = 0
        await self.pc.addIceCandidate(ice)

    async def stats(self) -> dict[str, Any]:
        """Packets received and lost per kind (``getStats``' inbound-rtp; aiortc
        counts no bytes there)."""
        report = await self.pc.getStats()
        out: dict[str, Any] = {}
        for stat in report.values():
            if stat.type == "inbound-rtp":
                out[stat.kind] = {"packets": stat.packetsReceived, "lost": stat.packetsLost}
        return out

    async def close(self) -> None:
        """Close once; a caller that is cancelled meanwhile does not stop it
        (cut short, aiortc would leave sockets of its ICE transports open)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        async with self._negotiating:
            await self.pc.close()
        for reader in self._readers:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
