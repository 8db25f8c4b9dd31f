"""The client's address behind reverse proxies (``server.trusted_proxies``).

``X-Forwarded-For`` is believed only from a listed proxy: anyone else could
write any address into it and so escape the per-IP rate limits. Behind a
chain of proxies the header is read from the right, skipping the trusted
ones: the first address that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in proxies)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """The client's address: ``peer``, or what trusted proxies say it is."""
    if peer is None:
        return "unknown"
    if not proxies or not forwarded_for or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage from before the first trusted proxy: stop believing
        client = hop
        if not _trusted(hop, proxies):
            break
    return client
