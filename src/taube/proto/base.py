"""The base class of every wire type."""

from __future__ import annotations

import msgspec


class Wire(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A wire type: unknown fields are an error, defaults are left out.

    Treat instances as values: build changed copies with ``msgspec.structs.replace``.
    """
