"""Call signalling messages: parsing, freshness, states (no network)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.client.calls import signalling as sig
from taube.client.calls.signalling import CallState, SignallingError

NOW = 1_800_000_000_000


def invite(**changes: object) -> dict[str, object]:
    content: dict[str, object] = {
        "call": sig.new_call_id(),
        "conversation": "c" * 22,
        "ts": NOW,
        "sdp": "v=0\r\n",
        "video": True,
    }
    content.update(changes)
    return content


def test_an_invite_parses_and_unknown_fields_are_ignored() -> None:
    parsed = sig.parse(sig.INVITE, invite(future_field=1))
    assert isinstance(parsed, sig.Invite)
    assert parsed.video is True
    assert parsed.lifetime_ms == sig.RING_MS


@pytest.mark.parametrize(
    "bad",
    [
        {"call": "short"},
        {"call": "x" * 100},
        {"call": "../../etc/passwd"},
        {"sdp": ""},
        {"sdp": "not an offer"},
        {"sdp": "v" * (sig.MAX_SDP + 1)},
        {"ts": "yesterday"},
        {"lifetime_ms": 10},
        {"lifetime_ms": 3_600_000},
    ],
)
def test_malformed_invites_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(SignallingError):
        sig.parse(sig.INVITE, invite(**bad))


def test_unknown_type_and_missing_fields_are_refused() -> None:
    with pytest.raises(SignallingError):
        sig.parse("taube.call.nonsense", {"call": sig.new_call_id()})
    with pytest.raises(SignallingError):
        sig.parse(sig.ANSWER, {"call": sig.new_call_id()})
    with pytest.raises(SignallingError):
        sig.parse(sig.CANDIDATES, {"call": sig.new_call_id(), "candidates": [{}] * 65})


def test_freshness() -> None:
    fresh = sig.parse(sig.INVITE, invite())
    assert isinstance(fresh, sig.Invite)
    sig.check_fresh(fresh, NOW + sig.RING_MS)
    with pytest.raises(SignallingError, match="stale"):
        sig.check_fresh(fresh, NOW + sig.RING_MS + 1)
    with pytest.raises(SignallingError, match="future"):
        sig.check_fresh(fresh, NOW - sig.MAX_SKEW_MS - 1)


def test_call_ids_are_random_and_valid() -> None:
    ids = {sig.new_call_id() for _ in range(100)}
    assert len(ids) == 100
    for call_id in ids:
        sig.parse(sig.HANGUP, {"call": call_id})


def test_states_only_move_forward() -> None:
    assert CallState.RINGING not in sig.NEXT[CallState.CONNECTED]
    assert not sig.NEXT[CallState.ENDED]
    for state, nexts in sig.NEXT.items():
        if state is not CallState.ENDED:
            assert CallState.ENDED in nexts  # any call can end


@given(
    st.sampled_from(sorted(sig.TYPES)),
    st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.integers(), st.text())),
)
def test_parse_never_raises_anything_else(type_: str, content: dict[str, object]) -> None:
    with contextlib.suppress(SignallingError):
        sig.parse(type_, content)
