"""Finding a mail account's servers from the domain (Thunderbird's autoconfig)."""

from __future__ import annotations

import pytest
from aiohttp import web

from taube.connectors.email.account import Security
from taube.connectors.email.autoconfig import (
    AutoconfigError,
    ServerSettings,
    discover,
    parse,
)

CONFIG = b"""<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="pop3"><hostname>pop.example.org</hostname><port>995</port>
      <socketType>SSL</socketType></incomingServer>
    <incomingServer type="imap"><hostname>imap.%EMAILDOMAIN%</hostname><port>993</port>
      <socketType>SSL</socketType><username>%EMAILLOCALPART%</username></incomingServer>
    <outgoingServer type="smtp"><hostname>smtp.example.org</hostname><port>587</port>
      <socketType>STARTTLS</socketType><username>%EMAILLOCALPART%</username></outgoingServer>
  </emailProvider>
</clientConfig>"""

EXPECTED = ServerSettings(
    "imap.example.org", 993, Security.SSL, "smtp.example.org", 587, Security.STARTTLS, "alice"
)


def test_the_imap_and_smtp_servers_are_read() -> None:
    assert parse(CONFIG, "alice@example.org") == EXPECTED


@pytest.mark.parametrize(
    "document",
    [
        CONFIG.replace(
            b"<socketType>SSL</socketType><username>", b"<socketType>plain</socketType><username>"
        ),
        CONFIG.replace(b"<port>993</port>", b"<port>lots</port>"),
        CONFIG.replace(b'type="smtp"', b'type="ews"'),
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><clientConfig>&a;</clientConfig>",
        b"not xml at all <",
    ],
    ids=["without TLS", "no port", "no SMTP", "a DTD", "not XML"],
)
def test_what_cannot_be_used_is_refused(document: bytes) -> None:
    with pytest.raises(AutoconfigError):
        parse(document, "alice@example.org")


async def test_discovery_asks_each_place_in_turn() -> None:
    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def config(request: web.Request) -> web.Response:
        return web.Response(body=CONFIG, content_type="text/xml")

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"<x>" + b" " * 100_000 + b"</x>", content_type="text/xml")

    app = web.Application()
    app.router.add_get("/missing", missing)
    app.router.add_get("/config", config)
    app.router.add_get("/huge", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        found = await discover("alice@example.org", [f"{base}/missing", f"{base}/config"])
        assert found == EXPECTED
        with pytest.raises(AutoconfigError, match="64 KB"):
            await discover("alice@example.org", [f"{base}/huge"])
    finally:
        await runner.cleanup()
