"""Wire types: every frame and HTTP body round-trips; decoders raise only ``ProtocolError``.

Values are generated from the types themselves: ``msgspec.inspect`` gives each
field's constraints (id patterns, lengths, bounds), and ``strategy_for`` turns
them into a hypothesis strategy. ``st.from_type`` cannot be used here: it
knows nothing of msgspec's ``Meta`` constraints, so it builds ids and keys
that the decoder rightly refuses.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import typing
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taube.proto import codec, frames, http, people
from taube.proto.base import Wire
from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.keys import DeviceKeys, IdentityKey, OneTimeKey
from taube.proto.state import StateEvent

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=300, deadline=None)

INT64 = (-(2**63), 2**63 - 1)
MAX_ITEMS = 3  # lists and dicts: a few items prove the point, many only cost time
MAX_BYTES = 64


def _members(union: Any) -> list[type[Wire]]:
    return list(typing.get_args(union))


CLIENT_FRAMES = _members(frames.ClientFrame)
SERVER_FRAMES = _members(frames.ServerFrame)
HTTP_BODIES = [
    obj
    for module in (http, people)
    for _, obj in inspect.getmembers(module, inspect.isclass)
    if issubclass(obj, Wire) and obj.__module__ == module.__name__
]
#: request bodies of the API that live outside ``proto.http``
OTHER_BODIES: list[type[Wire]] = [IdentityKey, DeviceKeys, OneTimeKey, StateEvent]
ALL_TYPES: list[type[Wire]] = CLIENT_FRAMES + SERVER_FRAMES + HTTP_BODIES + OTHER_BODIES
TAGS = [
    mi.type_info(cls).tag  # type: ignore[attr-defined]
    for cls in CLIENT_FRAMES + SERVER_FRAMES
]


# ---------------------------------------------------------------- strategies from the types


def _str_strategy(t: mi.StrType) -> st.SearchStrategy[str]:
    low = t.min_length or 0
    high = t.max_length
    if t.pattern is not None:
        base = st.from_regex(t.pattern, fullmatch=True)
        return base.filter(lambda s: low <= len(s) and (high is None or len(s) <= high))
    return st.text(min_size=low, max_size=min(high, 80) if high is not None else 80)


def _int_strategy(t: mi.IntType) -> st.SearchStrategy[int]:
    low, high = INT64
    if t.ge is not None:
        low = max(low, t.ge)
    if t.gt is not None:
        low = max(low, t.gt + 1)
    if t.le is not None:
        high = min(high, t.le)
    if t.lt is not None:
        high = min(high, t.lt - 1)
    return st.integers(min_value=low, max_value=high)


def strategy_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values that satisfy the msgspec type ``t`` and all its constraints."""
    if isinstance(t, mi.StructType):
        required = {f.name: strategy_for(f.type) for f in t.fields if f.required}
        optional = {f.name: strategy_for(f.type) for f in t.fields if not f.required}
        cls = t.cls
        return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))
    if isinstance(t, mi.StrType):
        return _str_strategy(t)
    if isinstance(t, mi.IntType):
        return _int_strategy(t)
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.BytesType):
        high = MAX_BYTES if t.max_length is None else min(t.max_length, MAX_BYTES)
        return st.binary(min_size=t.min_length or 0, max_size=high)
    if isinstance(t, mi.ListType):
        low = t.min_length or 0
        return st.lists(strategy_for(t.item_type), min_size=low, max_size=max(low, MAX_ITEMS))
    if isinstance(t, mi.DictType):
        return st.dictionaries(
            strategy_for(t.key_type), strategy_for(t.value_type), max_size=MAX_ITEMS
        )
    if isinstance(t, mi.UnionType):
        return st.one_of([strategy_for(member) for member in t.types])
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.EnumType):
        return st.sampled_from(list(t.cls))
    raise NotImplementedError(f"no strategy for {t!r}")


def instances(cls: Any) -> st.SearchStrategy[Any]:
    return strategy_for(mi.type_info(cls))


def _name(cls: type) -> str:
    return cls.__name__


# ---------------------------------------------------------------- round trips


def test_the_type_lists_are_complete() -> None:
    assert len(CLIENT_FRAMES) == 7
    assert len(SERVER_FRAMES) == 11
    assert len(TAGS) == len(set(TAGS)), "a tag is used twice"
    assert http.Credentials in HTTP_BODIES
    assert http.BlobCreated in HTTP_BODIES


def test_every_api_body_is_covered() -> None:
    from taube.proto.api import ENDPOINTS

    used = {t for e in ENDPOINTS for t in (e.request, e.response) if t is not None}
    assert used <= set(ALL_TYPES)


@pytest.mark.parametrize("cls", CLIENT_FRAMES, ids=_name)
@FAST
@given(data=st.data())
def test_client_frames_round_trip(cls: type[Wire], data: st.DataObject) -> None:
    frame = data.draw(instances(cls))
    encoded = codec.encode(frame)
    assert codec.decode_client_frame(encoded) == frame
    assert codec.decode_client_frame(encoded.decode()) == frame
    assert codec.decode(encoded, cls) == frame
    assert json.loads(encoded)["type"] == mi.type_info(cls).tag  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", SERVER_FRAMES, ids=_name)
@FAST
@given(data=st.data())
def test_server_frames_round_trip(cls: type[Wire], data: st.DataObject) -> None:
    frame = data.draw(instances(cls))
    encoded = codec.encode(frame)
    assert codec.decode_server_frame(encoded) == frame
    assert codec.decode(encoded, cls) == frame
    assert json.loads(encoded)["type"] == mi.type_info(cls).tag  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", HTTP_BODIES + OTHER_BODIES, ids=_name)
@FAST
@given(data=st.data())
def test_http_bodies_round_trip(cls: type[Wire], data: st.DataObject) -> None:
    body = data.draw(instances(cls))
    assert codec.decode(codec.encode(body), cls) == body


def test_a_client_frame_is_not_a_server_frame() -> None:
    encoded = codec.encode(frames.Ping(ref="x"))
    with pytest.raises(ProtocolError) as info:
        codec.decode_server_frame(encoded)
    assert info.value.code is ErrorCode.UNKNOWN_TYPE


# ---------------------------------------------------------------- decoders raise nothing else


def _decoders() -> list[Any]:
    found: list[Any] = [codec.decode_client_frame, codec.decode_server_frame]
    found += [lambda data, cls=cls: codec.decode(data, cls) for cls in ALL_TYPES]
    return found


DECODERS = _decoders()


def _decode_everything(data: bytes | str) -> None:
    for decoder in DECODERS:
        with contextlib.suppress(ProtocolError):
            decoder(data)


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    _decode_everything(data)


@FUZZ
@given(text=st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\ud800", "\udfff"])))
def test_arbitrary_text_raises_only_protocol_error(text: str) -> None:
    _decode_everything(text)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

#: objects that look like frames: a real tag, real field names, junk values
FRAME_LIKE = st.builds(
    lambda tag, fields: {"type": tag, **fields},
    st.sampled_from(TAGS),
    st.dictionaries(
        st.sampled_from(
            sorted({f.name for cls in ALL_TYPES for f in mi.type_info(cls).fields})  # type: ignore[attr-defined]
        ),
        JSON,
        max_size=6,
    ),
)


@FUZZ
@given(value=JSON | FRAME_LIKE)
def test_arbitrary_json_raises_only_protocol_error(value: Any) -> None:
    _decode_everything(json.dumps(value).encode())


def test_deep_nesting_is_a_protocol_error() -> None:
    for data in (b"[" * 100_000, b'{"a":' * 100_000, b'{"type":"ping","ref":' + b"[" * 50_000):
        _decode_everything(data)


# ---------------------------------------------------------------- mutations of valid frames


def _valid(cls: type[Wire]) -> st.SearchStrategy[tuple[type[Wire], dict[str, Any]]]:
    return instances(cls).map(lambda frame: (cls, json.loads(codec.encode(frame))))


ANY_FRAME = st.one_of([_valid(cls) for cls in CLIENT_FRAMES + SERVER_FRAMES])


def _decode_frame(cls: type[Wire], obj: Any) -> Any:
    data = json.dumps(obj).encode()
    if cls in CLIENT_FRAMES:
        return codec.decode_client_frame(data)
    return codec.decode_server_frame(data)


@FAST
@given(frame=ANY_FRAME, data=st.data())
def test_a_dropped_field(frame: tuple[type[Wire], dict[str, Any]], data: st.DataObject) -> None:
    cls, obj = frame
    key = data.draw(st.sampled_from(sorted(obj)))
    del obj[key]
    required = {f.name for f in mi.type_info(cls).fields if f.required}  # type: ignore[attr-defined]
    if key == "type" or key in required:
        with pytest.raises(ProtocolError) as info:
            _decode_frame(cls, obj)
        assert info.value.code is ErrorCode.BAD_REQUEST
        assert key in info.value.message
    else:  # an optional field falls back to its default
        assert isinstance(_decode_frame(cls, obj), cls)


@FAST
@given(
    frame=ANY_FRAME,
    name=st.text(min_size=1, max_size=20).filter(lambda n: n != "type"),
    value=JSON,
)
def test_an_unknown_field_is_bad_request(
    frame: tuple[type[Wire], dict[str, Any]], name: str, value: Any
) -> None:
    cls, obj = frame
    known = {f.name for f in mi.type_info(cls).fields}  # type: ignore[attr-defined]
    if name in known:
        return
    obj[name] = value
    with pytest.raises(ProtocolError) as info:
        _decode_frame(cls, obj)
    assert info.value.code is ErrorCode.BAD_REQUEST


def _other_kind(value: Any) -> st.SearchStrategy[Any]:
    """JSON values of a different kind than ``value``."""
    kinds: list[st.SearchStrategy[Any]] = [
        st.booleans().filter(lambda _: not isinstance(value, bool)),
        # msgspec takes an integer where a float goes: not a wrong type
        st.integers().filter(
            lambda _: isinstance(value, bool) or not isinstance(value, (int, float))
        ),
        st.text(max_size=5).filter(lambda _: not isinstance(value, str)),
        st.lists(st.integers(), max_size=2).filter(lambda _: not isinstance(value, list)),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2).filter(
            lambda _: not isinstance(value, dict)
        ),
    ]
    return st.one_of(kinds)


@FAST
@given(frame=ANY_FRAME, data=st.data())
def test_a_value_of_the_wrong_type(
    frame: tuple[type[Wire], dict[str, Any]], data: st.DataObject
) -> None:
    cls, obj = frame
    key = data.draw(st.sampled_from(sorted(obj)))
    original = obj[key]
    obj[key] = data.draw(_other_kind(original))
    with pytest.raises(ProtocolError) as info:
        _decode_frame(cls, obj)
    assert info.value.code in (ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_TYPE)
    if key != "type":
        assert info.value.code is ErrorCode.BAD_REQUEST


@FAST
@given(frame=ANY_FRAME, tag=st.text(max_size=20))
def test_an_unknown_type_tag(frame: tuple[type[Wire], dict[str, Any]], tag: str) -> None:
    cls, obj = frame
    if tag in TAGS:
        return
    obj["type"] = tag
    with pytest.raises(ProtocolError) as info:
        _decode_frame(cls, obj)
    assert info.value.code is ErrorCode.UNKNOWN_TYPE


@pytest.mark.parametrize("data", [b'{"type":"no.such"}', b'{"type":"msg.sendx","id":1}'])
def test_unknown_type_examples(data: bytes) -> None:
    for decoder in (codec.decode_client_frame, codec.decode_server_frame):
        with pytest.raises(ProtocolError) as info:
            decoder(data)
        assert info.value.code is ErrorCode.UNKNOWN_TYPE
        assert info.value.status == 400


def test_an_unknown_field_example() -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode_client_frame(b'{"type":"ping","ref":"a","admin":true}')
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert "admin" in info.value.message


def test_constraints_are_enforced() -> None:
    conversation = "A" * 22
    for bad in (
        {"type": "msg.ack", "conversation": conversation, "seq": -1},
        {"type": "msg.ack", "conversation": "A" * 21, "seq": 1},
        {"type": "msg.ack", "conversation": "A" * 21 + "=", "seq": 1},
        {"type": "typing", "conversation": conversation, "active": 1},
        {"type": "todevice.send", "id": conversation, "messages": []},
        {"type": "ping", "ref": "x" * 65},
    ):
        with pytest.raises(ProtocolError) as info:
            codec.decode_client_frame(json.dumps(bad))
        assert info.value.code is ErrorCode.BAD_REQUEST, bad


@pytest.mark.parametrize("suffix", ["\n", "\r", " ", "\n\n"])
def test_ids_with_trailing_white_space_are_refused(suffix: str) -> None:
    """``$`` in a Python regex also matches before a final newline."""
    conversation, blob = "A" * 22 + suffix, "B" * 32 + suffix
    cases: list[tuple[type[Wire], dict[str, Any]]] = [
        (frames.Ack, {"conversation": conversation, "seq": 1}),
        (http.DeviceRef, {"user": "bob@example.org" + suffix, "device": "A" * 22}),
        (http.DeviceRef, {"user": "bob@example.org", "device": "A" * 22 + suffix}),
        (http.BlobCreated, {"blob": blob, "size": 1}),
    ]
    for cls, obj in cases:
        with pytest.raises(ProtocolError) as info:
            codec.decode(json.dumps(obj), cls)
        assert info.value.code is ErrorCode.BAD_REQUEST


def test_msgspec_errors_do_not_escape() -> None:
    # A ValidationError is a DecodeError subclass; both are translated.
    assert issubclass(msgspec.ValidationError, msgspec.DecodeError)
    with pytest.raises(ProtocolError):
        codec.decode(b"{}", http.Credentials)
