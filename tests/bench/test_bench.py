"""The benchmark helpers that need no server: options, Synapse's settings, tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as entry
from bench import crypto, fanout, harness, matrix, synapse


def test_every_workload_parses_its_defaults() -> None:
    for name in entry.WORKLOADS:
        parser = argparse.ArgumentParser()
        entry.load(name).add_arguments(parser)
        parser.parse_args([])


def test_all_takes_only_known_names() -> None:
    with pytest.raises(SystemExit):
        entry.main(["all", "--only", "nonsense"])
    assert "scaleout" not in entry.DEFAULT_ALL
    assert set(entry.DEFAULT_ALL) < set(entry.WORKLOADS)


def test_crypto_shares_with_each_device_count(tmp_path: Path) -> None:
    output = tmp_path / "crypto.json"
    assert (
        entry.main(
            ["crypto", "--count", "50", "--repeat", "1", "--devices", "3,7", "--json", str(output)]
        )
        == 0
    )
    result = json.loads(output.read_text())
    for devices in (3, 7):
        assert result[f"share_{devices}_cold_ms"] >= result[f"share_{devices}_warm_ms"]


def test_synapse_listens_on_loopback_without_limits(tmp_path: Path) -> None:
    config = matrix.overrides(tmp_path, 8448)
    (listener,) = config["listeners"]
    assert listener["bind_addresses"] == ["127.0.0.1"]
    assert listener["port"] == 8448
    assert config["database"]["name"] == "sqlite3"
    assert config["federation_domain_whitelist"] == []
    assert config["trusted_key_servers"] == []
    for key in ("rc_message", "rc_registration", "rc_joins_per_room", "rc_room_creation"):
        assert config[key]["per_second"] >= 100_000
    assert config["rc_login"]["address"]["per_second"] >= 100_000


def test_tcp_queues_of_an_unknown_connection() -> None:
    assert fanout.tcp_queues(1, 2) == {"server_unsent": -1, "member_unread": -1}


def _step(rate: float, p50: float, p99: float) -> dict[str, Any]:
    lat = {"p50": p50, "p99": p99}
    return {
        "phase": "fixed",
        "offered_rate": rate,
        "durable_rate": rate,
        "ack_latency_ms": lat,
        "delivery_latency_ms": lat,
        "sustained": True,
    }


def _fan(deliveries: float, last: float) -> dict[str, Any]:
    return {
        "size": 100,
        "burst": {"deliveries_per_s": deliveries},
        "probes": {"last_member_ms": {"p50": last, "p99": last}},
    }


def test_comparison_gives_ratios() -> None:
    report = {
        "taube": {
            "ramp": {"max_sustained_durable_rate": 6000.0},
            "steps": [_step(10, 2.0, 4.0)],
            "fanout": _fan(90_000, 4.0),
        },
        "synapse": {
            "ramp": {"max_sustained_durable_rate": 30.0},
            "steps": [_step(10, 40.0, 80.0)],
            "fanout": _fan(300, 200.0),
        },
    }
    text = synapse.comparison(report)
    assert "200x" in text  # 6,000 / 30
    assert "300x" in text  # 90,000 / 300
    assert "0.050x" in text  # 2 ms / 40 ms


def test_table_aligns_columns() -> None:
    text = harness.table(("name", "value"), [("a", "1"), ("longer", "1,000")])
    lines = text.splitlines()
    assert len({len(line) for line in lines[:2]}) == 1
    assert lines[-1].endswith("1,000")


def test_fd_limit_is_raised_within_the_hard_limit() -> None:
    import resource

    soft = harness.raise_fd_limit(64)
    assert soft >= 64
    assert soft <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_crypto_share_keys() -> None:
    result = crypto.bench_share(2)
    assert set(result) == {"share_2_warm_ms", "share_2_cold_ms", "share_2_receive_total_ms"}
