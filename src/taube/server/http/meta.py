"""What the server is."""

from __future__ import annotations

import taube
from taube.proto import http
from taube.proto.version import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
from taube.server.http.call import Call


async def server_info(call: Call) -> http.ServerInfo:
    config = call.srv.config
    return http.ServerInfo(
        server="taube",
        version=taube.__version__,
        protocol=PROTOCOL_VERSION,
        min_protocol=MIN_PROTOCOL_VERSION,
        domain=config.server.domain,
        max_frame_bytes=config.limits.max_frame_bytes,
        max_blob_bytes=config.limits.max_blob_bytes,
    )
