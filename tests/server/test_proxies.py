"""The client address behind reverse proxies (``server.trusted_proxies``)."""

from __future__ import annotations

import ipaddress

import pytest

from taube.server.proxies import Network, client_ip

LOCAL: list[Network] = [ipaddress.ip_network("127.0.0.1/32")]
CHAIN: list[Network] = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "header", "proxies", "expected"),
    [
        # no proxies configured: the header means nothing
        ("127.0.0.1", "203.0.113.5", [], "127.0.0.1"),
        # from a trusted proxy: the address it saw
        ("127.0.0.1", "203.0.113.5", LOCAL, "203.0.113.5"),
        # from anyone else: ignored (it could claim any address)
        ("198.51.100.1", "203.0.113.5", LOCAL, "198.51.100.1"),
        # a client's own made-up entries before the proxy's do not count
        ("127.0.0.1", "1.2.3.4, 203.0.113.5", LOCAL, "203.0.113.5"),
        # a chain of trusted proxies is walked from the right
        ("127.0.0.1", "203.0.113.5, 10.1.2.3", CHAIN, "203.0.113.5"),
        ("127.0.0.1", "1.2.3.4, 203.0.113.5, 10.1.2.3", CHAIN, "203.0.113.5"),
        # garbage stops the walk at the last address we can believe
        ("127.0.0.1", "junk, 10.1.2.3", CHAIN, "10.1.2.3"),
        ("127.0.0.1", "junk", LOCAL, "127.0.0.1"),
        # no header: the peer
        ("127.0.0.1", None, LOCAL, "127.0.0.1"),
        (None, "203.0.113.5", LOCAL, "unknown"),
        # IPv6, and IPv4 mapped into IPv6
        ("::ffff:127.0.0.1", "2001:db8::1", LOCAL, "2001:db8::1"),
    ],
)
def test_client_ip(
    peer: str | None, header: str | None, proxies: list[Network], expected: str
) -> None:
    assert client_ip(peer, header, proxies) == expected
