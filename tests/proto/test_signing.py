"""Canonical JSON, domain-separated signing, and the key checks of ``proto.signing``."""

from __future__ import annotations

import base64
import itertools

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.ids import DeviceId, UserId
from taube.proto.keys import DeviceKeys, OneTimeKey
from taube.proto.signing import (
    DOMAIN_DEVICE,
    DOMAIN_IDENTITY,
    DOMAIN_ONE_TIME_KEY,
    DOMAIN_STATE,
    b64decode,
    b64encode,
    canonical_json,
    check_curve25519,
    ed25519_public_key,
    signing_bytes,
    verify,
)

DOMAINS = [DOMAIN_IDENTITY, DOMAIN_DEVICE, DOMAIN_ONE_TIME_KEY, DOMAIN_STATE]
ALICE = UserId("alice@example.org")
DEVICE = DeviceId("D" * 22)

#: the order of the Ed25519 base point
L = 2**252 + 27742317777372353535851937790883648493


def _raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def signed_device_keys(identity: Ed25519PrivateKey) -> DeviceKeys:
    unsigned = DeviceKeys(
        user=ALICE,
        device=DEVICE,
        curve25519=b64encode(_raw(X25519PrivateKey.generate())),
        ed25519=b64encode(_raw(Ed25519PrivateKey.generate())),
        signature="A" * 86,
    )
    signature = identity.sign(signing_bytes(DOMAIN_DEVICE, unsigned))
    return msgspec.structs.replace(unsigned, signature=b64encode(signature))


# ---------------------------------------------------------------- canonical JSON


def test_canonical_json_known_answer() -> None:
    obj = {"b": 1, "a": "ü €", "c": [3, {"z": None, "y": True}], "signature": "dropped"}
    assert canonical_json(obj) == b'{"a":"\xc3\xbc \xe2\x82\xac","b":1,"c":[3,{"y":true,"z":null}]}'


def test_canonical_json_of_a_struct_sorts_its_fields_and_drops_the_signature() -> None:
    key = OneTimeKey(
        user=ALICE, device=DEVICE, key_id="k1", key="K" * 43, fallback=True, signature="S" * 86
    )
    assert canonical_json(key) == (
        b'{"device":"'
        + b"D" * 22
        + b'","fallback":true,"key":"'
        + b"K" * 43
        + b'","key_id":"k1","user":"alice@example.org"}'
    )


def test_canonical_json_leaves_out_defaults() -> None:
    key = OneTimeKey(user=ALICE, device=DEVICE, key_id="k1", key="K" * 43, signature="S" * 86)
    assert b"fallback" not in canonical_json(key)


def test_canonical_json_without_another_field() -> None:
    assert canonical_json({"a": 1, "signature": "s"}, without="a") == b'{"signature":"s"}'
    assert canonical_json({"a": 1, "signature": "s"}, without="") == b'{"a":1,"signature":"s"}'


def test_canonical_json_does_not_change_its_argument() -> None:
    obj = {"signature": "s", "a": 1}
    canonical_json(obj)
    assert obj == {"signature": "s", "a": 1}


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_canonical_json_is_independent_of_key_order(obj: dict[str, object]) -> None:
    reordered = dict(reversed(list(obj.items())))
    encoded = canonical_json(obj)
    assert canonical_json(reordered) == encoded
    decoded = msgspec.json.decode(encoded)
    assert list(decoded) == sorted(decoded)
    assert msgspec.json.encode(decoded) == encoded  # no white space, nothing escaped twice
    obj.pop("signature", None)
    assert decoded == obj


# ---------------------------------------------------------------- signing bytes


def test_signing_bytes_are_domain_newline_json() -> None:
    obj = {"a": 1}
    assert signing_bytes(DOMAIN_DEVICE, obj) == b'taube.device.v1\n{"a":1}'


def test_domains_are_distinct() -> None:
    obj = {"a": 1}
    assert len({signing_bytes(domain, obj) for domain in DOMAINS}) == len(DOMAINS)
    for one, other in itertools.permutations(DOMAINS, 2):
        assert not (one + b"\n").startswith(other + b"\n")
        assert b"\n" not in one


# ---------------------------------------------------------------- verify


def test_verify_accepts_a_good_signature() -> None:
    identity = Ed25519PrivateKey.generate()
    keys = signed_device_keys(identity)
    verify(DOMAIN_DEVICE, keys, b64encode(_raw(identity)), keys.signature)


def test_verify_accepts_padded_base64() -> None:
    identity = Ed25519PrivateKey.generate()
    keys = signed_device_keys(identity)
    public = base64.b64encode(_raw(identity)).decode()
    signature = keys.signature + "=="
    assert public.endswith("=")
    verify(DOMAIN_DEVICE, keys, public, signature)


@pytest.mark.parametrize("field", ["user", "device", "curve25519", "ed25519"])
def test_verify_rejects_a_tampered_object(field: str) -> None:
    identity = Ed25519PrivateKey.generate()
    keys = signed_device_keys(identity)
    values = {
        "user": "mallory@example.org",
        "device": "E" * 22,
        "curve25519": b64encode(_raw(X25519PrivateKey.generate())),
        "ed25519": b64encode(_raw(Ed25519PrivateKey.generate())),
    }
    tampered = msgspec.structs.replace(keys, **{field: values[field]})
    with pytest.raises(ProtocolError) as info:
        verify(DOMAIN_DEVICE, tampered, b64encode(_raw(identity)), keys.signature)
    assert info.value.code is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize("domain", [d for d in DOMAINS if d != DOMAIN_DEVICE])
def test_verify_rejects_another_domain(domain: bytes) -> None:
    identity = Ed25519PrivateKey.generate()
    keys = signed_device_keys(identity)
    with pytest.raises(ProtocolError) as info:
        verify(domain, keys, b64encode(_raw(identity)), keys.signature)
    assert info.value.code is ErrorCode.BAD_SIGNATURE


def test_verify_rejects_another_key() -> None:
    keys = signed_device_keys(Ed25519PrivateKey.generate())
    other = b64encode(_raw(Ed25519PrivateKey.generate()))
    with pytest.raises(ProtocolError) as info:
        verify(DOMAIN_DEVICE, keys, other, keys.signature)
    assert info.value.code is ErrorCode.BAD_SIGNATURE


def test_verify_rejects_a_malleated_signature() -> None:
    """``S + L`` satisfies the verification equation; a strict verifier refuses it."""
    identity = Ed25519PrivateKey.generate()
    keys = signed_device_keys(identity)
    raw = b64decode(keys.signature)
    s = int.from_bytes(raw[32:], "little") + L
    malleated = b64encode(raw[:32] + s.to_bytes(32, "little"))
    with pytest.raises(ProtocolError) as info:
        verify(DOMAIN_DEVICE, keys, b64encode(_raw(identity)), malleated)
    assert info.value.code is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        (b64encode(bytes(63)), ErrorCode.BAD_SIGNATURE),
        (b64encode(bytes(65)), ErrorCode.BAD_SIGNATURE),
        ("", ErrorCode.BAD_SIGNATURE),
        (b64encode(bytes(64)), ErrorCode.BAD_SIGNATURE),
        ("!" * 86, ErrorCode.BAD_REQUEST),
        ("A" * 85, ErrorCode.BAD_REQUEST),
    ],
)
def test_verify_rejects_a_malformed_signature(signature: str, code: ErrorCode) -> None:
    identity = Ed25519PrivateKey.generate()
    keys = signed_device_keys(identity)
    with pytest.raises(ProtocolError) as info:
        verify(DOMAIN_DEVICE, keys, b64encode(_raw(identity)), signature)
    assert info.value.code is code


@pytest.mark.parametrize("key", [b64encode(bytes(31)), b64encode(bytes(33)), ""])
def test_an_ed25519_key_is_32_bytes(key: str) -> None:
    with pytest.raises(ProtocolError) as info:
        ed25519_public_key(key)
    assert info.value.code is ErrorCode.BAD_KEY


# ---------------------------------------------------------------- Curve25519 key checks

P = 2**255 - 19

#: every low-order point on Curve25519, as u-coordinates (see cr.yp.to/ecdh.html
#: and libsodium's blocklist): 0 and 1, the two points of order 8, p - 1 (order 2),
#: and the non-canonical encodings p and p + 1
LOW_ORDER_U = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    P - 1,
    P,
    P + 1,
]


def _encodings(u: int) -> list[bytes]:
    """Little-endian, and with the top bit set (X25519 ignores it)."""
    raw = u.to_bytes(32, "little")
    return [raw, raw[:31] + bytes([raw[31] | 0x80])]


LOW_ORDER_KEYS = [raw for u in LOW_ORDER_U for raw in _encodings(u)]


def test_the_low_order_list_is_the_standard_one() -> None:
    hexes = {raw.hex() for raw in LOW_ORDER_KEYS}
    assert "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800" in hexes
    assert "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157" in hexes
    assert "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f" in hexes
    assert len(hexes) == 14


@pytest.mark.parametrize("raw", LOW_ORDER_KEYS, ids=lambda raw: raw.hex()[:12])
def test_check_curve25519_rejects_low_order_points(raw: bytes) -> None:
    for text in (b64encode(raw), base64.b64encode(raw).decode()):
        with pytest.raises(ProtocolError) as info:
            check_curve25519(text)
        assert info.value.code is ErrorCode.BAD_KEY


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_check_curve25519_rejects_wrong_lengths(length: int) -> None:
    with pytest.raises(ProtocolError) as info:
        check_curve25519(b64encode(b"\x09" * length))
    assert info.value.code is ErrorCode.BAD_KEY


@pytest.mark.parametrize("text", ["!" * 43, "A" * 42 + "*", "A" * 41, "A-" * 21 + "A", "é" * 43])
def test_check_curve25519_rejects_bad_base64(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        check_curve25519(text)
    assert info.value.code is ErrorCode.BAD_REQUEST


def test_check_curve25519_accepts_real_keys() -> None:
    for _ in range(20):
        check_curve25519(b64encode(_raw(X25519PrivateKey.generate())))
    check_curve25519(b64encode((9).to_bytes(32, "little")))  # the base point


# ---------------------------------------------------------------- base64


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_b64_round_trips_padded_and_unpadded(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text
    assert b64decode(text) == data
    assert b64decode(base64.b64encode(data).decode()) == data


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=50))
def test_b64decode_raises_only_protocol_error(text: str) -> None:
    try:
        b64decode(text)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.BAD_REQUEST  # noqa: PT017 - any text, either outcome


@pytest.mark.parametrize("text", ["Q", "AB=C", "QU JD", "a-_b", "QUJD\n", "é", "\x00"])
def test_b64decode_rejects_garbage(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        b64decode(text)
    assert info.value.code is ErrorCode.BAD_REQUEST


def test_b64encode_is_standard_alphabet() -> None:
    assert b64encode(b"\xfb\xff") == "+/8"
    assert b64decode("+/8") == b"\xfb\xff"
    assert b64decode("+/8=") == b"\xfb\xff"
