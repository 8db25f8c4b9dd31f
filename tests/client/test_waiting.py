"""The table of messages waiting for their keys, in a profile from before
its bounds (the bounds themselves: test_malicious_server_functional.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taube.client.profile import Profile

OLD_TABLE = """
CREATE TABLE undecrypted (
    conversation TEXT NOT NULL,
    seq INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    frame BLOB NOT NULL,
    PRIMARY KEY (conversation, seq)
);
INSERT INTO undecrypted VALUES ('c1', 7, 's1', x'00');
"""


def test_an_old_profile_keeps_what_waited_and_gets_the_bounds(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "taube-client.db")
    db.executescript(OLD_TABLE)
    db.close()
    profile = Profile(tmp_path, passphrase="a passphrase for the test")
    try:
        rows = profile.execute(
            "SELECT conversation, seq, session_id, sender_device, stored_ms FROM undecrypted"
        ).fetchall()
        [(conversation, seq, session, device, stored)] = rows
        assert (conversation, seq, session, device) == ("c1", 7, "s1", "")
        assert stored > 0  # it starts waiting now, not at the epoch
        indexes = {r[1] for r in profile.execute("PRAGMA index_list(undecrypted)")}
        assert {"undecrypted_session", "undecrypted_device", "undecrypted_stored"} <= indexes
    finally:
        profile.close()
    # opened again: nothing changes
    again = Profile(tmp_path, passphrase="a passphrase for the test")
    try:
        assert again.execute("SELECT stored_ms FROM undecrypted").fetchone()[0] == stored
    finally:
        again.close()
