"""Autocrypt Level 1: header format and parsing, peer-state updates, the recommendation."""

from __future__ import annotations

import base64
import contextlib
import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.connectors.email.autocrypt import (
    STALE_AFTER_MS,
    AutocryptHeader,
    AutocryptHeaderError,
    PeerState,
    PreferEncrypt,
    Recommendation,
    effective_date,
    parse_gossip,
    recommend,
    select_autocrypt_header,
    update_peer,
    update_peer_gossip,
)
from taube.connectors.email.openpgp import MailKey, PublicKey

DAY_MS = 24 * 3600 * 1000
KEYS = {addr: MailKey.generate(addr).public_key for addr in ("a@example.org", "b@example.org")}
A_KEY, B_KEY = KEYS["a@example.org"], KEYS["b@example.org"]
A_KEYDATA = base64.b64encode(A_KEY.to_bytes()).decode()


def header(addr: str = "a@example.org", key: PublicKey = A_KEY, mutual: bool = True) -> str:
    prefer = PreferEncrypt.MUTUAL if mutual else PreferEncrypt.NOPREFERENCE
    return AutocryptHeader(addr, key, prefer).to_value()


# -- the header ----------------------------------------------------------------


def test_round_trip() -> None:
    parsed = AutocryptHeader.parse(header())
    assert parsed == AutocryptHeader("a@example.org", A_KEY, PreferEncrypt.MUTUAL)


def test_the_value_has_delta_chats_attribute_order() -> None:
    value = header("A@Example.org")
    assert value.startswith("addr=a@example.org; prefer-encrypt=mutual; keydata=")
    gossip = AutocryptHeader("b@example.org", B_KEY).to_value()
    assert gossip.startswith("addr=b@example.org; keydata=")


def test_the_header_folds_within_78_columns_and_survives_a_mail_round_trip() -> None:
    message = EmailMessage(policy=email.policy.SMTP)
    message["Autocrypt"] = header()
    message["Autocrypt-Gossip"] = AutocryptHeader("b" * 40 + "@example.org", B_KEY).to_value()
    message.set_content("hi")
    raw = message.as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"=?" not in raw  # no RFC 2047 encoded words
    again = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert AutocryptHeader.parse(str(again["Autocrypt"])).key == A_KEY
    assert AutocryptHeader.parse(str(again["Autocrypt-Gossip"])).key == B_KEY


def test_non_critical_attributes_are_ignored() -> None:
    value = f"addr=a@example.org; _verified=1; _foo=bar; keydata={A_KEYDATA}"
    assert AutocryptHeader.parse(value).key == A_KEY


def test_a_critical_unknown_attribute_invalidates_the_header() -> None:
    with pytest.raises(AutocryptHeaderError, match="critical"):
        AutocryptHeader.parse(f"addr=a@example.org; other=me; keydata={A_KEYDATA}")


@pytest.mark.parametrize("prefer", ["reset", "nopreference", "MUTUAL", ""])
def test_any_prefer_encrypt_but_mutual_is_no_preference(prefer: str) -> None:
    value = f"addr=a@example.org; prefer-encrypt={prefer}; keydata={A_KEYDATA}"
    assert AutocryptHeader.parse(value).prefer_encrypt is PreferEncrypt.NOPREFERENCE


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"keydata={A_KEYDATA}", "addr"),
        ("addr=a@example.org;", "keydata"),
        ("addr=a@example.org; keydata=!!!!", "keydata"),
        ("addr=a@example.org; keydata=aGVsbG8=", "keydata"),
        (f"addr=a@example.org; addr=b@example.org; keydata={A_KEYDATA}", "twice"),
        (f"addr=a@example.org; mutual; keydata={A_KEYDATA}", "not an attribute"),
        (f"addr=a@example.org; keydata={A_KEYDATA}; _pad={'x' * 10240}", "10 KiB"),
    ],
)
def test_invalid_headers(value: str, reason: str) -> None:
    with pytest.raises(AutocryptHeaderError, match=reason):
        AutocryptHeader.parse(value)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(AutocryptHeaderError, ValueError)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_parses_or_fails_cleanly(value: str) -> None:
    with contextlib.suppress(AutocryptHeaderError):
        AutocryptHeader.parse(value)


_ATTRIBUTE = st.sampled_from(["addr", "prefer-encrypt", "keydata", "_x", "x", "", " addr "])
_VALUE = st.one_of(
    st.sampled_from(["a@example.org", "mutual", A_KEYDATA, A_KEYDATA[:40], ""]),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ATTRIBUTE, st.sampled_from(["=", "", "=="]), _VALUE), max_size=6))
def test_attribute_soup_parses_or_fails_cleanly(parts: list[tuple[str, str, str]]) -> None:
    value = "; ".join(f"{name}{sep}{attribute}" for name, sep, attribute in parts)
    try:
        parsed = AutocryptHeader.parse(value)
    except AutocryptHeaderError:
        return
    assert parsed.key == A_KEY
    assert "@" in parsed.addr


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_keydata_parses_or_fails_cleanly(data: bytes) -> None:
    value = f"addr=a@example.org; keydata={base64.b64encode(data).decode()}"
    with pytest.raises(AutocryptHeaderError):
        AutocryptHeader.parse(value)


def test_one_valid_header_for_the_sender_is_selected() -> None:
    values = ["garbage", header("b@example.org", B_KEY), header()]
    selected = select_autocrypt_header(values, "A@example.org")
    assert selected is not None
    assert selected.key == A_KEY


def test_two_valid_headers_for_the_sender_discard_both() -> None:
    assert select_autocrypt_header([header(), header(key=B_KEY)], "a@example.org") is None
    assert select_autocrypt_header([], "a@example.org") is None


def test_gossip_is_kept_for_recipients_only() -> None:
    values = [
        AutocryptHeader("A@example.org", A_KEY).to_value(),
        AutocryptHeader("b@example.org", B_KEY).to_value(),
        "addr=c@example.org; keydata=AAAA",
    ]
    keys = parse_gossip(values, ["a@example.org", "c@example.org"])
    assert keys == {"a@example.org": A_KEY}


# -- peer state ----------------------------------------------------------------


def ac(key: PublicKey = A_KEY, mutual: bool = True) -> AutocryptHeader:
    prefer = PreferEncrypt.MUTUAL if mutual else PreferEncrypt.NOPREFERENCE
    return AutocryptHeader("a@example.org", key, prefer)


def test_effective_date_is_never_in_the_future() -> None:
    assert effective_date(5, 10) == 5
    assert effective_date(50, 10) == 10
    assert effective_date(None, 10) == 10


def test_a_first_header_sets_the_key() -> None:
    peer = update_peer(None, "a@example.org", 1000, ac())
    assert peer == PeerState(
        addr="a@example.org",
        last_seen=1000,
        autocrypt_timestamp=1000,
        public_key=A_KEY,
        prefer_encrypt=PreferEncrypt.MUTUAL,
    )


def test_a_newer_header_wins() -> None:
    peer = update_peer(None, "a@example.org", 1000, ac())
    peer = update_peer(peer, "a@example.org", 2000, ac(B_KEY, mutual=False))
    assert (peer.public_key, peer.prefer_encrypt) == (B_KEY, PreferEncrypt.NOPREFERENCE)
    assert peer.autocrypt_timestamp == 2000


def test_an_older_message_changes_nothing() -> None:
    peer = update_peer(None, "a@example.org", 2000, ac())
    assert update_peer(peer, "a@example.org", 1000, ac(B_KEY)) == peer
    assert update_peer(peer, "a@example.org", 1000, None) == peer


def test_a_mail_without_header_only_moves_last_seen() -> None:
    peer = update_peer(None, "a@example.org", 1000, ac())
    later = update_peer(peer, "a@example.org", 5000, None)
    assert later.last_seen == 5000
    assert (later.public_key, later.autocrypt_timestamp) == (A_KEY, 1000)
    # a header-less mail between the header and last_seen does not move last_seen back
    assert update_peer(later, "a@example.org", 3000, None) == later


def test_a_mail_without_header_from_a_stranger_records_it() -> None:
    peer = update_peer(None, "a@example.org", 1000, None)
    assert peer == PeerState(addr="a@example.org", last_seen=1000)


def test_gossip_updates_only_when_newer() -> None:
    peer = update_peer_gossip(None, "b@example.org", 2000, B_KEY)
    assert (peer.gossip_key, peer.gossip_timestamp) == (B_KEY, 2000)
    assert update_peer_gossip(peer, "b@example.org", 1000, A_KEY) == peer
    assert update_peer_gossip(peer, "b@example.org", 3000, A_KEY).gossip_key == A_KEY


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from([None, "a", "b"])), max_size=12))
def test_peer_timestamps_never_go_back(events: list[tuple[int, str | None]]) -> None:
    peer: PeerState | None = None
    for when, which in events:
        header_ = None if which is None else ac(A_KEY if which == "a" else B_KEY)
        before = peer
        peer = update_peer(peer, "a@example.org", when, header_)
        if before is not None:
            assert peer.last_seen >= before.last_seen
            assert (peer.autocrypt_timestamp or 0) >= (before.autocrypt_timestamp or 0)
        if peer.autocrypt_timestamp is not None:
            assert peer.public_key is not None
            assert peer.last_seen >= peer.autocrypt_timestamp


# -- the recommendation --------------------------------------------------------


def peer_with(key: PublicKey, *, mutual: bool = True, last_seen_ms: int = 0) -> PeerState:
    peer = update_peer(None, "x@example.org", 0, ac(key, mutual))
    return update_peer(peer, "x@example.org", last_seen_ms, None)


def test_unknown_recipients_disable_encryption() -> None:
    advice = recommend({"a@example.org": peer_with(A_KEY), "c@example.org": None})
    assert advice.recommendation is Recommendation.DISABLE
    assert not advice.can_encrypt


def test_all_keys_known_and_mutual_means_encrypt() -> None:
    advice = recommend({"a@example.org": peer_with(A_KEY), "b@example.org": peer_with(B_KEY)})
    assert advice.recommendation is Recommendation.ENCRYPT
    assert advice.can_encrypt
    assert advice.target_keys == {"a@example.org": A_KEY, "b@example.org": B_KEY}


def test_no_mutual_preference_means_available() -> None:
    peers = {"a@example.org": peer_with(A_KEY), "b@example.org": peer_with(B_KEY, mutual=False)}
    assert recommend(peers).recommendation is Recommendation.AVAILABLE
    only_a = {"a@example.org": peer_with(A_KEY)}
    assert recommend(only_a, own_prefer=PreferEncrypt.NOPREFERENCE).recommendation == "available"


def test_a_stale_key_or_a_gossiped_key_discourages() -> None:
    stale = peer_with(A_KEY, last_seen_ms=STALE_AFTER_MS + 1)
    assert recommend({"a@example.org": stale}).recommendation is Recommendation.DISCOURAGE
    gossiped = update_peer_gossip(None, "b@example.org", 0, B_KEY)
    advice = recommend({"b@example.org": gossiped})
    assert advice.recommendation is Recommendation.DISCOURAGE
    assert advice.target_keys == {"b@example.org": B_KEY}
    assert advice.can_encrypt


def test_a_reply_to_an_encrypted_message_is_encrypted() -> None:
    stale = peer_with(A_KEY, last_seen_ms=STALE_AFTER_MS + DAY_MS, mutual=False)
    gossiped = update_peer_gossip(None, "b@example.org", 0, B_KEY)
    advice = recommend({"a@example.org": stale, "b@example.org": gossiped}, reply_to_encrypted=True)
    assert advice.recommendation is Recommendation.ENCRYPT
