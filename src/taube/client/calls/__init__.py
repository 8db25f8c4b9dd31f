"""Voice and video calls: signalling over Olm to-device messages, media by
WebRTC (aiortc, the ``calls`` extra).

- ``signalling``: the messages, their checks (freshness, replay), the states
- ``manager``: ``Calls`` and ``Call``, the calls of this device
- ``media``: aiortc peer connections, a test tone and picture, files
"""

from taube.client.calls.manager import Call, CallError, Calls
from taube.client.calls.signalling import CallState, EndReason, SignallingError

__all__ = ["Call", "CallError", "CallState", "Calls", "EndReason", "SignallingError"]
