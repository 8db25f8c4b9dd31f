"""Addresses and random ids."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import (
    ADDRESS_PATTERN,
    BLOB_ID_PATTERN,
    RANDOM_ID_PATTERN,
    UserId,
    UserIdField,
    domain_of,
    new_blob_id,
    new_conversation_id,
    new_device_id,
    new_message_id,
    parse_address,
)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("alice@example.org", "alice@example.org"),
        ("  Alice@Example.ORG\n", "alice@example.org"),
        ("a.b-c_d@sub.example.org", "a.b-c_d@sub.example.org"),
        ("0@x", "0@x"),
        ("bob@localhost:8470", "bob@localhost:8470"),
        ("bob@127.0.0.1", "bob@127.0.0.1"),
        ("a" * 64 + "@example.org", "a" * 64 + "@example.org"),
    ],
)
def test_parse_address_normalises(text: str, address: str) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "@example.org",
        "alice@",
        "+491701234567",  # a phone number is not an address
        "+49 170 1234567@example.org",
        "+491701234567@example.org",
        "(030) 1234567",
        "alice@@example.org",
        "alice@exa mple.org",
        "al ice@example.org",
        ".alice@example.org",
        "-alice@example.org",
        "alice@-example.org",
        "alice@example.org-",
        "alice@example.org.",
        "alice@example.org:",
        "alice@example.org:123456",
        "a" * 65 + "@example.org",
        "alice@" + "a" * 254,
        "alice@example.org\nbob@example.org",
        "alice@example.org\x00",
        "älice@example.org",
        "alice@exämple.org",
        "alice@example.org/path",
        "<alice@example.org>",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_address(text)
    assert info.value.code is ErrorCode.BAD_REQUEST


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_parse_address_raises_only_protocol_error(text: str) -> None:
    try:
        address = parse_address(text)
    except ProtocolError:
        return
    assert address == address.strip().lower()
    assert re.fullmatch(ADDRESS_PATTERN, address)
    assert parse_address(address) == address  # normal forms are fixed points


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"\+?[0-9 ()/-]{3,20}", fullmatch=True))
def test_phone_numbers_are_not_addresses(text: str) -> None:
    with pytest.raises(ProtocolError):
        parse_address(text)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(ADDRESS_PATTERN, fullmatch=True).filter(lambda a: len(a) <= 320))
def test_parse_address_agrees_with_the_wire_type(address: str) -> None:
    assert parse_address(address) == address
    assert parse_address(address.upper()) == address
    assert msgspec.convert(address, UserIdField) == address


def test_domain_of() -> None:
    assert domain_of(UserId("alice@example.org")) == "example.org"
    assert domain_of(UserId("alice@localhost:8470")) == "localhost:8470"


@pytest.mark.parametrize(
    ("make", "pattern", "nbytes"),
    [
        (new_device_id, RANDOM_ID_PATTERN, 16),
        (new_conversation_id, RANDOM_ID_PATTERN, 16),
        (new_message_id, RANDOM_ID_PATTERN, 16),
        (new_blob_id, BLOB_ID_PATTERN, 24),
    ],
)
def test_new_ids_match_their_patterns(make: Callable[[], str], pattern: str, nbytes: int) -> None:
    made = {make() for _ in range(200)}
    assert len(made) == 200
    for value in made:
        assert re.fullmatch(pattern, value)
        assert re.search(pattern, value)  # the way msgspec applies it
        padded = value + "=" * (-len(value) % 4)
        assert len(base64.urlsafe_b64decode(padded)) == nbytes


@pytest.mark.parametrize("pattern", [RANDOM_ID_PATTERN, BLOB_ID_PATTERN, ADDRESS_PATTERN])
def test_patterns_refuse_a_trailing_newline(pattern: str) -> None:
    """msgspec applies patterns with ``re.search``, where ``$`` matches before a final newline."""
    good = {RANDOM_ID_PATTERN: "A" * 22, BLOB_ID_PATTERN: "A" * 32}.get(pattern, "a@b")
    assert re.search(pattern, good)
    assert not re.search(pattern, good + "\n")


def test_new_ids_never_start_with_a_dash() -> None:
    """An id on a command line (``taube send ID ...``) must not look like an option."""
    ids = [new_message_id() for _ in range(2000)] + [new_conversation_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
