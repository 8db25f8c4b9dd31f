"""Megolm: rotation, room keys bound to their creator, replay detection, export."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from taube.crypto import (
    MAX_AGE_MS,
    MAX_MESSAGES,
    BadPayload,
    DecryptionFailed,
    InboundGroupStore,
    MegolmCiphertext,
    OutboundGroup,
    ReplayedMessage,
    SeenIndexes,
    SessionExpired,
    UnknownSession,
)
from taube.proto.signing import b64decode, b64encode

from .helpers import (
    CONVERSATION,
    NOW,
    OTHER_CONVERSATION,
    PICKLE_KEY,
    Device,
    make_device,
    message,
    message_id,
)

DAY = 24 * 60 * 60 * 1000


def setup_pair() -> tuple[Device, Device, OutboundGroup]:
    alice, bob = make_device(), make_device("bob@example.org")
    group = OutboundGroup.create(CONVERSATION, NOW)
    assert bob.inbound.add_room_key(group.room_key(), alice.verified)
    return alice, bob, group


def test_round_trip_through_the_full_pipeline() -> None:
    alice, bob, group = setup_pair()
    body = group.encrypt_payload(message(alice, 1, "hello"), now_ms=NOW)
    decrypted = bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)
    assert decrypted.payload.content == {"body": "hello"}
    assert (decrypted.session_id, decrypted.message_index) == (group.session_id, 0)
    assert group.message_index == 1
    wire = msgspec.json.decode(body)
    assert set(wire) == {"algorithm", "session_id", "ciphertext"}
    assert b"hello" not in body


def test_encrypt_payload_refuses_another_conversation() -> None:
    alice, _, group = setup_pair()
    other = msgspec.structs.replace(message(alice, 1), conversation=OTHER_CONVERSATION)
    with pytest.raises(BadPayload):
        group.encrypt_payload(other, now_ms=NOW)


# ---------------------------------------------------------------- rotation


def test_rotation_after_100_messages() -> None:
    group = OutboundGroup.create(CONVERSATION, NOW)
    for _ in range(MAX_MESSAGES):
        assert not group.needs_rotation(NOW)
        group.encrypt(b"x", now_ms=NOW)
    assert group.message_index == MAX_MESSAGES == 100
    assert group.needs_rotation(NOW)
    with pytest.raises(SessionExpired):
        group.encrypt(b"x", now_ms=NOW)


def test_rotation_after_a_week() -> None:
    group = OutboundGroup.create(CONVERSATION, NOW)
    assert MAX_AGE_MS == 7 * DAY
    assert not group.needs_rotation(NOW + 7 * DAY - 1)
    group.encrypt(b"x", now_ms=NOW + 7 * DAY - 1)
    assert group.needs_rotation(NOW + 7 * DAY)
    with pytest.raises(SessionExpired):
        group.encrypt(b"x", now_ms=NOW + 7 * DAY)


def test_rotation_when_members_change_or_the_clock_goes_back() -> None:
    group = OutboundGroup.create(CONVERSATION, NOW)
    assert group.needs_rotation(NOW, members_changed=True)
    assert group.needs_rotation(NOW - 1)


def test_shared_with_tracks_devices() -> None:
    alice, bob, group = setup_pair()
    carol = make_device("carol@example.org")
    assert group.needs_key(bob.verified)
    group.mark_shared([bob.verified, carol.verified])
    assert not group.needs_key(bob.verified)
    assert group.needs_key(alice.verified)
    assert (bob.user, bob.device, bob.account.curve25519) in group.shared_with
    assert not group.has_departed([alice.verified, bob.verified, carol.verified])
    assert group.has_departed([alice.verified, bob.verified])  # carol left


def test_repr_leaves_out_plaintext_and_keys() -> None:
    alice, bob, group = setup_pair()
    result = bob.inbound.decrypt(alice.verified, CONVERSATION, group.encrypt(b"hush", now_ms=NOW))
    assert "hush" not in repr(result)
    ref = (CONVERSATION, alice.account.curve25519, group.session_id)
    exported = bob.inbound.export(ref)
    assert exported.session_key not in repr(exported)
    assert group.room_key().session_key not in repr(group.room_key())
    assert group.room_key().session_key not in repr(group)


# ---------------------------------------------------------------- replays and order


def test_replay_is_refused_even_though_megolm_decrypts_it() -> None:
    alice, bob, group = setup_pair()
    body = group.encrypt_payload(message(alice, 1), now_ms=NOW)
    bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)
    with pytest.raises(ReplayedMessage):
        bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)
    raw = MegolmCiphertext.from_body(group.encrypt_payload(message(alice, 2), now_ms=NOW))
    bob.inbound.decrypt(alice.verified, CONVERSATION, raw)
    with pytest.raises(ReplayedMessage):
        bob.inbound.decrypt(alice.verified, CONVERSATION, raw)


@settings(max_examples=40, deadline=None)
@given(plaintexts=st.lists(st.binary(max_size=1024), min_size=1, max_size=30), data=st.data())
def test_out_of_order_delivery_of_arbitrary_plaintexts(
    plaintexts: list[bytes], data: st.DataObject
) -> None:
    alice, bob, group = setup_pair()
    sent = [group.encrypt(p, now_ms=NOW) for p in plaintexts]
    order = data.draw(st.permutations(range(len(sent))))
    for i in order:
        result = bob.inbound.decrypt(alice.verified, CONVERSATION, sent[i])
        assert (result.plaintext, result.message_index) == (plaintexts[i], i)


def test_gaps_are_reported_for_missing_messages() -> None:
    alice, bob, group = setup_pair()
    sent = [group.encrypt(b"m", now_ms=NOW) for _ in range(6)]
    for i in (0, 2, 5):
        bob.inbound.decrypt(alice.verified, CONVERSATION, sent[i])
    ref = (CONVERSATION, alice.account.curve25519, group.session_id)
    assert bob.inbound.gaps(ref) == [1, 3, 4]
    bob.inbound.decrypt(alice.verified, CONVERSATION, sent[3])
    assert bob.inbound.gaps(ref) == [1, 4]


def test_a_spliced_copy_does_not_use_up_the_real_message() -> None:
    """The payload's message id is checked before the index is recorded."""
    alice, bob, group = setup_pair()
    body = group.encrypt_payload(message(alice, 1), now_ms=NOW)
    with pytest.raises(BadPayload):
        bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(99), body)
    bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)


# ---------------------------------------------------------------- binding to the creator


def test_a_message_decrypts_only_for_its_creator_and_conversation() -> None:
    alice, bob, group = setup_pair()
    carol = make_device("carol@example.org")
    body = group.encrypt_payload(message(alice, 1), now_ms=NOW)
    with pytest.raises(UnknownSession):
        bob.inbound.decrypt_message(carol.verified, CONVERSATION, message_id(1), body)
    with pytest.raises(UnknownSession):
        bob.inbound.decrypt_message(alice.verified, OTHER_CONVERSATION, message_id(1), body)
    bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)


def test_a_forwarded_key_neither_decrypts_nor_displaces_the_real_one() -> None:
    alice, bob = make_device(), make_device("bob@example.org")
    carol = make_device("carol@example.org")
    group = OutboundGroup.create(CONVERSATION, NOW)
    key = group.room_key()
    # carol got alice's key and passes it on to bob as if it were hers
    assert bob.inbound.add_room_key(key, carol.verified)
    body = group.encrypt_payload(message(alice, 1), now_ms=NOW)
    with pytest.raises(UnknownSession):  # for alice's envelope there is no key yet
        bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)
    with pytest.raises(BadPayload):  # relabelled as carol's, the payload says alice
        bob.inbound.decrypt_message(carol.verified, CONVERSATION, message_id(1), body)
    # alice's own key still gets in, and then her message decrypts
    assert bob.inbound.add_room_key(key, alice.verified)
    bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)


def test_room_key_checks() -> None:
    alice, bob, group = setup_pair()
    key = group.room_key()
    assert not bob.inbound.add_room_key(key, alice.verified)  # known, not further back
    other = OutboundGroup.create(CONVERSATION, NOW).room_key()
    with pytest.raises(BadPayload, match="session id"):
        bob.inbound.add_room_key(
            msgspec.structs.replace(key, session_id=other.session_id), alice.verified
        )
    with pytest.raises(BadPayload):
        bob.inbound.add_room_key(
            msgspec.structs.replace(key, session_key="garbage"), alice.verified
        )
    with pytest.raises(BadPayload):
        bob.inbound.add_room_key(msgspec.structs.replace(key, algorithm="m.megolm"), alice.verified)


def test_a_later_key_cannot_read_earlier_messages_and_an_earlier_key_replaces_it() -> None:
    alice, bob = make_device(), make_device("bob@example.org")
    group = OutboundGroup.create(CONVERSATION, NOW)
    early_key = group.room_key()
    first = group.encrypt(b"before", now_ms=NOW)
    bob.inbound.add_room_key(group.room_key(), alice.verified)  # joined at index 1
    with pytest.raises(UnknownSession):
        bob.inbound.decrypt(alice.verified, CONVERSATION, first)
    assert bob.inbound.add_room_key(early_key, alice.verified)
    assert bob.inbound.decrypt(alice.verified, CONVERSATION, first).plaintext == b"before"


# ---------------------------------------------------------------- tampering


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_is_detected(data: st.DataObject) -> None:
    alice, bob, group = setup_pair()
    sent = group.encrypt(b"the secret plan", now_ms=NOW)
    raw = bytearray(b64decode(sent.ciphertext))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    tampered = msgspec.structs.replace(sent, ciphertext=b64encode(bytes(raw)))
    try:
        result = bob.inbound.decrypt(alice.verified, CONVERSATION, tampered)
    except (DecryptionFailed, UnknownSession):
        assert len(bob.inbound.seen) == 0
        assert (
            bob.inbound.decrypt(alice.verified, CONVERSATION, sent).plaintext == b"the secret plan"
        )
        return
    # vodozemac signs the *parsed* fields, and a missing index field parses
    # as 0: turning the index tag of message 0 into another field is a
    # second encoding of the same message, not a forgery. It is the same
    # (session, index), so the original is then a replay.
    assert (result.plaintext, result.message_index) == (b"the secret plan", 0)
    with pytest.raises(ReplayedMessage):
        bob.inbound.decrypt(alice.verified, CONVERSATION, sent)


def test_a_second_encoding_of_a_message_is_still_a_replay() -> None:
    alice, bob, group = setup_pair()
    sent = group.encrypt(b"once", now_ms=NOW)
    raw = bytearray(b64decode(sent.ciphertext))
    assert raw[1] == 0x08  # protobuf tag: field 1 (the index), varint
    raw[1] ^= 0x10  # → field 3: unknown, so the index reads as the default 0
    other = msgspec.structs.replace(sent, ciphertext=b64encode(bytes(raw)))
    assert other.ciphertext != sent.ciphertext
    assert bob.inbound.decrypt(alice.verified, CONVERSATION, sent).plaintext == b"once"
    with pytest.raises(ReplayedMessage):
        bob.inbound.decrypt(alice.verified, CONVERSATION, other)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"session_id": "x", "ciphertext": "y"}',
        b"\x00",
        b'{"algorithm": "other", "session_id": "' + b"A" * 43 + b'", "ciphertext": "AAAA"}',
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    alice, bob, _ = setup_pair()
    with pytest.raises(DecryptionFailed):
        bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), body)


def test_garbage_ciphertext_of_a_known_session() -> None:
    alice, bob, group = setup_pair()
    garbage = MegolmCiphertext(session_id=group.session_id, ciphertext="AAAA")
    with pytest.raises(DecryptionFailed):
        bob.inbound.decrypt(alice.verified, CONVERSATION, garbage)


# ---------------------------------------------------------------- export / import


def test_export_and_import_at_an_index() -> None:
    alice, bob, group = setup_pair()
    sent = [group.encrypt(f"m{i}".encode(), now_ms=NOW) for i in range(5)]
    ref = (CONVERSATION, alice.account.curve25519, group.session_id)
    exported = bob.inbound.export(ref, 2)
    assert exported.first_index == 2
    linked = InboundGroupStore()
    assert linked.import_session(exported)
    (info,) = linked.sessions()
    assert info.imported
    assert info.first_known_index == 2
    assert info.creator == alice.user
    with pytest.raises(UnknownSession):
        linked.decrypt(alice.verified, CONVERSATION, sent[1])
    assert linked.decrypt(alice.verified, CONVERSATION, sent[4]).plaintext == b"m4"
    # the default exports from the first known index
    assert bob.inbound.export(ref).first_index == 0
    with pytest.raises(UnknownSession):
        linked.export(ref, 1)
    with pytest.raises(UnknownSession):
        linked.export((CONVERSATION, "nope", "nope"))
    lying = msgspec.structs.replace(exported, first_index=0)
    with pytest.raises(BadPayload):
        InboundGroupStore().import_session(lying)
    wire = msgspec.json.encode(exported)
    assert msgspec.json.decode(wire, type=type(exported)) == exported


# ---------------------------------------------------------------- pickling


def test_outbound_pickle_round_trip() -> None:
    alice, bob, group = setup_pair()
    group.encrypt(b"a", now_ms=NOW)
    group.mark_shared([bob.verified])
    again = OutboundGroup.from_pickle(group.pickle(PICKLE_KEY), PICKLE_KEY)
    assert (again.session_id, again.message_index, again.created_ms, again.conversation) == (
        group.session_id,
        1,
        NOW,
        CONVERSATION,
    )
    assert again.shared_with == group.shared_with
    result = bob.inbound.decrypt(alice.verified, CONVERSATION, again.encrypt(b"b", now_ms=NOW))
    assert result.message_index == 1
    with pytest.raises(DecryptionFailed):
        OutboundGroup.from_pickle(group.pickle(PICKLE_KEY), bytes(32))


def test_inbound_pickle_keeps_sessions_and_seen_indexes() -> None:
    alice, bob, group = setup_pair()
    first = group.encrypt(b"a", now_ms=NOW)
    bob.inbound.decrypt(alice.verified, CONVERSATION, first)
    restored = InboundGroupStore.from_pickle(bob.inbound.pickle(PICKLE_KEY), PICKLE_KEY)
    assert restored.sessions() == bob.inbound.sessions()
    with pytest.raises(ReplayedMessage):
        restored.decrypt(alice.verified, CONVERSATION, first)
    assert restored.decrypt(alice.verified, CONVERSATION, group.encrypt(b"b", now_ms=NOW))
    with pytest.raises(DecryptionFailed):
        InboundGroupStore.from_pickle(bob.inbound.pickle(PICKLE_KEY), bytes(32))
    with pytest.raises(DecryptionFailed):  # an outbound pickle is not an inbound one
        InboundGroupStore.from_pickle(group.pickle(PICKLE_KEY), PICKLE_KEY)


# ---------------------------------------------------------------- seen indexes


def test_seen_indexes_serialise() -> None:
    seen = SeenIndexes()
    seen.add("s1", 0)
    seen.add("s1", 3)
    seen.add("s2", 7)
    assert ("s1", 3) in seen
    assert ("s1", 1) not in seen
    assert "s1" not in seen
    again = SeenIndexes.from_bytes(seen.to_bytes())
    assert again.to_bytes() == seen.to_bytes() == b'{"s1":[0,3],"s2":[7]}'
    assert len(again) == 3
    with pytest.raises(ReplayedMessage):
        again.add("s2", 7)
    assert again.gaps("s1") == [1, 2]
    assert again.gaps("unknown") == []


@pytest.mark.parametrize(
    "data", [b"", b"[]", b'{"s": [-1]}', b'{"s": ["x"]}', b'{"s": [9999999999]}']
)
def test_seen_indexes_refuse_bad_data(data: bytes) -> None:
    with pytest.raises(BadPayload):
        SeenIndexes.from_bytes(data)


class ReplayMachine(RuleBasedStateMachine):
    """Messages sent, delivered in any order, any number of times, across
    restarts: each is accepted exactly once, every repeat is a replay."""

    sent = Bundle("sent")

    def __init__(self) -> None:
        super().__init__()
        self.alice, self.bob, self.group = setup_pair()
        self.accepted: set[int] = set()
        self.count = 0

    @rule(target=sent, text=st.binary(max_size=64))
    def send(self, text: bytes) -> tuple[int, bytes, bytes]:
        index = self.count
        self.count += 1
        return (
            index,
            text,
            self.group.encrypt_payload(
                msgspec.structs.replace(message(self.alice, index), content={"b": b64encode(text)}),
                now_ms=NOW,
            ),
        )

    @rule(item=sent)
    def deliver(self, item: tuple[int, bytes, bytes]) -> None:
        index, text, body = item
        if index in self.accepted:
            with pytest.raises(ReplayedMessage):
                self.bob.inbound.decrypt_message(
                    self.alice.verified, CONVERSATION, message_id(index), body
                )
            return
        result = self.bob.inbound.decrypt_message(
            self.alice.verified, CONVERSATION, message_id(index), body
        )
        assert result.message_index == index
        assert b64decode(result.payload.content["b"]) == text
        self.accepted.add(index)

    @rule()
    def restart(self) -> None:
        self.bob.inbound = InboundGroupStore.from_pickle(
            self.bob.inbound.pickle(PICKLE_KEY), PICKLE_KEY
        )

    @invariant()
    def seen_matches_what_was_accepted(self) -> None:
        assert self.bob.inbound.seen.indexes(self.group.session_id) == self.accepted
        ref = (CONVERSATION, self.alice.account.curve25519, self.group.session_id)
        top = max(self.accepted, default=0)
        assert self.bob.inbound.gaps(ref) == [i for i in range(top) if i not in self.accepted]


TestReplayMachine = ReplayMachine.TestCase
TestReplayMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


def test_forgotten_session_keys_decrypt_nothing_and_replays_stay_refused() -> None:
    alice, bob, group = setup_pair()
    first = group.encrypt_payload(message(alice, 1, "gone soon"), now_ms=NOW)
    bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(1), first)
    assert bob.inbound.forget(OTHER_CONVERSATION, group.session_id) == 0
    assert bob.inbound.forget(CONVERSATION, group.session_id) == 1
    assert bob.inbound.sessions() == []
    later = group.encrypt_payload(message(alice, 2, "after"), now_ms=NOW)
    with pytest.raises(UnknownSession):
        bob.inbound.decrypt_message(alice.verified, CONVERSATION, message_id(2), later)
    restored = InboundGroupStore.from_pickle(bob.inbound.pickle(PICKLE_KEY), PICKLE_KEY)
    assert restored.sessions() == []
    assert (group.session_id, 0) in restored.seen
