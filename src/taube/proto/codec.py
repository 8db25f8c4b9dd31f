"""Encoding and decoding. Decoders raise ``ProtocolError`` and nothing else."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from taube.proto.errors import ErrorCode, ProtocolError
from taube.proto.frames import ClientFrame, ServerFrame

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_client_decoder = msgspec.json.Decoder(ClientFrame)
_server_decoder = msgspec.json.Decoder(ServerFrame)
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def _error(exc: Exception) -> ProtocolError:
    text = str(exc)
    if text.startswith("Invalid value") and text.endswith("- at `$.type`"):
        return ProtocolError(ErrorCode.UNKNOWN_TYPE, text)
    return ProtocolError(ErrorCode.BAD_REQUEST, text)


def decode(data: bytes | str, type_: type[T]) -> T:
    """Decode ``data`` as ``type_``: any failure is a ``ProtocolError``."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(data)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _error(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - defensive
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"undecodable: {exc}") from None


def decode_client_frame(data: bytes | str) -> ClientFrame:
    try:
        frame: ClientFrame = _client_decoder.decode(data)
        return frame
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _error(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - defensive
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"undecodable: {exc}") from None


def decode_server_frame(data: bytes | str) -> ServerFrame:
    try:
        frame: ServerFrame = _server_decoder.decode(data)
        return frame
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _error(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - defensive
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"undecodable: {exc}") from None
