"""The protocol version, exchanged in the first WebSocket frame.

A server speaks every version from ``MIN_PROTOCOL_VERSION`` to
``PROTOCOL_VERSION``. A frame type's tag is never reused; new fields get
defaults, so older peers keep working within one version.
"""

PROTOCOL_VERSION = 1
MIN_PROTOCOL_VERSION = 1
