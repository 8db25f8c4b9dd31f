"""JSON Schema and OpenAPI, generated from the wire types.

``scripts/gen-schema`` writes these into ``schema/``; ``scripts/check`` fails
when the committed files differ from what this module generates.
"""

from __future__ import annotations

from typing import Any

import msgspec

import taube
from taube.proto.api import ENDPOINTS, PREFIX
from taube.proto.frames import ClientFrame, ServerFrame
from taube.proto.http import ErrorBody
from taube.proto.version import PROTOCOL_VERSION

REF = "#/components/schemas/{name}"


def frames_schema() -> dict[str, Any]:
    """One JSON Schema document for every WebSocket frame, both directions."""
    (client, server), components = msgspec.json.schema_components(
        [ClientFrame, ServerFrame], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"taube WebSocket frames, protocol {PROTOCOL_VERSION}",
        "$defs": {**components, "ClientFrame": client, "ServerFrame": server},
    }


def openapi() -> dict[str, Any]:
    types = [ErrorBody]
    for endpoint in ENDPOINTS:
        types += [t for t in (endpoint.request, endpoint.response) if t is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas, strict=True))
    error = {"content": {"application/json": {"schema": by_type[ErrorBody]}}}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        operation: dict[str, Any] = {
            "operationId": endpoint.name,
            "summary": endpoint.summary,
            "responses": {},
        }
        params = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in endpoint.path.split("/")
            if part.startswith("{")
        ]
        if params:
            operation["parameters"] = params
        if endpoint.auth:
            operation["security"] = [{"bearer": []}]
        if endpoint.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[endpoint.request]}},
            }
        elif endpoint.raw_request:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        ok: dict[str, Any] = {"description": "OK"}
        if endpoint.response is not None:
            ok["content"] = {"application/json": {"schema": by_type[endpoint.response]}}
        elif endpoint.raw_response:
            ok["content"] = {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        operation["responses"][str(endpoint.status)] = ok
        codes = set(endpoint.errors) | {400, 429, 500, 503}
        if endpoint.auth:
            codes.add(401)
        for code in sorted(codes):
            operation["responses"][str(code)] = {"description": "error", **error}
        paths.setdefault(PREFIX + endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taube",
            "version": taube.__version__,
            "description": "The taube HTTP API. The live stream is a WebSocket at "
            f"{PREFIX}/ws; its frames are in schema/frames.schema.json.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
