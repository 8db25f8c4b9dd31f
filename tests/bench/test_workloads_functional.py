"""Each benchmark workload, tiny, against a real server: the tools must not rot.

These check that a workload runs end to end and that its report adds up
(every message delivered, nothing sent twice); they never judge speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench.__main__ import main

from taube.testing.deltachat import DeltaChatCore
from taube.testing.mailserver import MailServer
from tests.conftest import missing_service


def _run(tmp_path: Path, *argv: str) -> dict[str, Any]:
    output = tmp_path / "result.json"
    code = main([*argv, "--no-pin", "--tmp-dir", str(tmp_path), "--output", str(output)])
    assert code == 0
    report: dict[str, Any] = json.loads(output.read_text())
    return report


def test_fanout_with_a_stalled_member(tmp_path: Path) -> None:
    report = _run(
        tmp_path,
        "fanout",
        "--sizes",
        "4,8",
        "--probes",
        "2",
        "--burst-deliveries",
        "60",
        "--stall-prefill-mib",
        "1",
        "--wait-quiet",
        "0",
    )
    rows = report["results"]
    assert [(r["size"], r["stalled"]) for r in rows] == [
        (4, False),
        (8, False),
        (4, True),
        (8, True),
    ]
    for row in rows:
        burst = row["burst"]
        assert burst["complete"]
        assert burst["recipients"] == row["size"] - 1 - row["stalled"]
        assert burst["deliveries"] == burst["messages"] * burst["recipients"]
        assert row["probes"]["incomplete"] == 0
    stall = report["stalled_member"]
    assert stall["prefill_messages"] == 8
    assert stall["closed"] is None  # still connected: stalled, not dropped


def test_idle_counts_connections(tmp_path: Path) -> None:
    report = _run(tmp_path, "idle", "--counts", "5,10", "--settle", "0.2")
    steps = report["steps"]
    assert [s["connections"] for s in steps] == [5, 10]
    assert all(s["closed_meanwhile"] == 0 for s in steps)
    assert report["baseline_rss_kib"] > 0


def test_reconnect_storm_catches_up(tmp_path: Path) -> None:
    report = _run(
        tmp_path,
        "reconnect",
        "--devices",
        "12",
        "--group-size",
        "5",
        "--backlog",
        "2",
        "--runs",
        "1",
        "--wait-quiet",
        "0",
    )
    assert report["groups"] == 3
    (storm,) = report["storms"]
    assert storm["back"] == 12
    assert storm["failed"] == 0
    assert storm["incomplete_backlog"] == 0
    assert storm["p100_back_s"] is not None


def test_backlog_drains_and_stays_acknowledged(tmp_path: Path) -> None:
    report = _run(tmp_path, "backlog", "--messages", "300", "--runs", "2", "--wait-quiet", "0")
    for run in report["runs"]:
        assert run["received"] == 300
        assert run["resent_after_reconnect"] == 0


def test_attachments_under_load(tmp_path: Path) -> None:
    report = _run(
        tmp_path,
        "attachments",
        "--sizes",
        "0.1",
        "--rate",
        "50",
        "--pairs",
        "2",
        "--blob-duration",
        "0.5",
        "--warmup",
        "0",
    )
    (alone,) = report["alone"]
    (loaded,) = report["under_load"]
    for result in (alone, loaded):
        assert result["count"] >= 1
        assert result["upload_mb_per_s"] > 0
        assert result["download_mb_per_s"] > 0
    assert loaded["load"]["acked"] == loaded["load"]["sent"]
    assert report["load_alone"]["delivered"] == report["load_alone"]["sent"]


@pytest.mark.services
def test_mail_in_and_latency_beside_delta_chat(tmp_path: Path) -> None:
    reason = MailServer.missing() or DeltaChatCore.missing()
    if reason:
        missing_service(reason)
    report = _run(
        tmp_path, "mail", "--mails", "6", "--dc-mails", "3", "--probes", "2", "--wait-quiet", "0"
    )
    plain, encrypted = report["in_plain"], report["in_encrypted"]
    assert (plain["received"], plain["encrypted"]) == (6, 0)
    assert (encrypted["received"], encrypted["encrypted"]) == (3, 3)
    for path in ("latency_taube_to_deltachat", "latency_deltachat_to_deltachat"):
        summary = report[path]
        assert summary["latency_ms"]["count"] == 2
        assert summary["latency_ms"]["missing"] == 0
        assert summary["to_smtp_ms"]["count"] == 2
        assert summary["mismatched"] == 0
        assert summary["without_padlock"] == 0  # encrypted both ways
