"""Public test helpers: a real server process, and a raw protocol client."""

from taube.testing.rawclient import RawClient, seal, unseal
from taube.testing.server import ServerProcess

__all__ = ["RawClient", "ServerProcess", "seal", "unseal"]
