"""``python -m bench attachments``: blob upload and download MB/s, alone and under load.

Blobs are random bytes (already encrypted, as far as the server can tell),
uploaded with ``POST /api/v1/blobs`` and downloaded with ``GET
/api/v1/blobs/{id}`` by their owner, one after the other for
``--blob-duration`` seconds per size, over one keep-alive HTTP connection:

1. alone, on an idle server;
2. while workload 1 (``bench delivery``: sender/receiver pairs, open loop)
   runs at ``--rate`` messages/s, about half of this machine's maximum
   sustained durable rate (7,357/s in the quiet run of session 1).

Also measured: workload 1 at that rate with no blobs moving, so the
table shows what the blobs cost the messages (ack and delivery latency).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from typing import Any

import aiohttp

from bench import delivery, harness, loadgen

#: the run's blobs fit in an account's quota
ATTACHMENTS_ENV = {"TAUBE_LIMITS_BLOB_QUOTA_BYTES": str(1 << 40)}


def _sizes(text: str) -> list[float]:
    try:
        sizes = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def add_arguments(p: argparse.ArgumentParser) -> None:
    delivery.add_arguments(p)
    p.set_defaults(pairs=50, warmup=2.0, drain_timeout=10.0, ramp=False)
    p.add_argument("--sizes", type=_sizes, default=_sizes("1,10"), help="blob sizes in MiB (1,10)")
    p.add_argument(
        "--rate", type=float, default=3500.0, help="workload 1 messages/s under the blobs (3500)"
    )
    p.add_argument(
        "--blob-duration", type=float, default=8.0, help="seconds per blob size and phase (8)"
    )


class BlobClient:
    """Uploads and downloads as one device, timing each request."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BlobClient:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def upload(self, data: bytes) -> str:
        assert self.session is not None
        async with self.session.post(
            self.base_url + "/api/v1/blobs", data=data, headers=self.headers
        ) as response:
            body = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"upload: {response.status} {body}")
        return str(body["blob"])

    async def download(self, blob: str) -> int:
        assert self.session is not None
        size = 0
        async with self.session.get(
            f"{self.base_url}/api/v1/blobs/{blob}", headers=self.headers
        ) as response:
            if response.status >= 400:
                raise RuntimeError(f"download: {response.status}")
            async for chunk in response.content.iter_chunked(1 << 20):
                size += len(chunk)
        return size

    async def loop(self, size_mib: float, duration: float) -> dict[str, Any]:
        """Upload, then download, again and again for ``duration`` seconds."""
        data = os.urandom(int(size_mib * (1 << 20)))
        ups: list[float] = []
        downs: list[float] = []
        end = time.perf_counter() + duration
        while time.perf_counter() < end or not ups:
            mark = time.perf_counter()
            blob = await self.upload(data)
            ups.append(time.perf_counter() - mark)
            mark = time.perf_counter()
            got = await self.download(blob)
            downs.append(time.perf_counter() - mark)
            if got != len(data):
                raise RuntimeError(f"downloaded {got} bytes of {len(data)}")
        mb = len(data) / 1e6
        return {
            "size_mib": size_mib,
            "count": len(ups),
            "upload_mb_per_s": mb * len(ups) / sum(ups),
            "download_mb_per_s": mb * len(downs) / sum(downs),
            "upload_ms": loadgen.summarize(ups),
            "download_ms": loadgen.summarize(downs),
        }


async def _measure(args: argparse.Namespace, server: harness.RunningServer) -> dict[str, Any]:
    bench = delivery.DeliveryRun(args, server.server, server.pid)
    report: dict[str, Any] = {"alone": [], "under_load": [], "load_alone": None}
    try:
        with bench.progress:
            await bench.setup()
            gc.collect()
            gc.freeze()
            token = bench.pairs[0].sender.token
            async with BlobClient(server.url, token) as blobs:
                for size in args.sizes:
                    bench.status_line = f"blobs of {size:g} MiB, server otherwise idle"
                    result = await blobs.loop(size, args.blob_duration)
                    report["alone"].append(result)
                    bench.log(_blob_line("alone", result))
                if args.warmup > 0:
                    await bench.step("warmup", min(500.0, args.rate), args.warmup)
                report["load_alone"] = await bench.step("fixed", args.rate, args.blob_duration)
                for size in args.sizes:
                    step, result = await asyncio.gather(
                        bench.step(f"fixed+{size:g}MiB", args.rate, args.blob_duration),
                        blobs.loop(size, args.blob_duration),
                    )
                    result["load"] = step
                    report["under_load"].append(result)
                    bench.log(_blob_line(f"with {args.rate:,.0f} msg/s", result))
    finally:
        await bench.close()
    return report


def _blob_line(phase: str, r: dict[str, Any]) -> str:
    return (
        f"{r['size_mib']:g} MiB blobs {phase}: upload {r['upload_mb_per_s']:,.0f} MB/s,"
        f" download {r['download_mb_per_s']:,.0f} MB/s ({r['count']} of each)"
    )


def table(report: dict[str, Any], rate: float) -> str:
    rows = []
    baseline = report["load_alone"]
    for phase, results in (
        ("idle server", report["alone"]),
        (f"{rate:,.0f} msg/s", report["under_load"]),
    ):
        for r in results:
            load = r.get("load")
            rows.append(
                (
                    f"{r['size_mib']:g} MiB",
                    phase,
                    str(r["count"]),
                    f"{r['upload_mb_per_s']:,.0f}",
                    f"{r['download_mb_per_s']:,.0f}",
                    harness.ms(r["upload_ms"]["p50"]),
                    harness.ms(r["download_ms"]["p50"]),
                    "-" if load is None else harness.rate(load["durable_rate"]),
                    "-" if load is None else harness.ms(load["ack_latency_ms"]["p50"]),
                    "-" if load is None else harness.ms(load["delivery_latency_ms"]["p99"]),
                )
            )
    if baseline is not None:
        rows.append(
            (
                "none",
                f"{rate:,.0f} msg/s",
                "0",
                "-",
                "-",
                "-",
                "-",
                harness.rate(baseline["durable_rate"]),
                harness.ms(baseline["ack_latency_ms"]["p50"]),
                harness.ms(baseline["delivery_latency_ms"]["p99"]),
            )
        )
    head = (
        "blob",
        "while",
        "count",
        "up MB/s",
        "down MB/s",
        "up p50 ms",
        "down p50 ms",
        "msgs durable/s",
        "ack p50 ms",
        "deliver p99 ms",
    )
    return harness.table(head, rows)


def run(args: argparse.Namespace) -> int:
    done = harness.measure_on_server(
        "attachments", args, _measure, {**ATTACHMENTS_ENV, **dict(args.server_env)}
    )
    if done is None:
        return 130
    report, path = done
    print(table(report, args.rate))
    print(f"results: {path}", file=sys.stderr)
    return 0
