"""Finding a mail account's servers from its address (Thunderbird's autoconfig).

The domain publishes ``config-v1.1.xml`` (at ``autoconfig.<domain>`` or
under ``/.well-known/autoconfig/`` of the domain); it names the IMAP and
SMTP servers, ports and TLS. Only HTTPS is asked, the answer is at most
64 KB, and the XML is parsed without entities or DTDs (expat ≥ 2.4 refuses
entity expansion attacks; a document that declares a DTD is refused here
before parsing).
"""

from __future__ import annotations

import dataclasses
from xml.etree import ElementTree

import aiohttp

from taube.connectors.email.account import Security

MAX_BYTES = 64 * 1024
TIMEOUT = 10.0


class AutoconfigError(Exception):
    """No usable configuration was found."""


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    imap_host: str
    imap_port: int
    imap_security: Security
    smtp_host: str
    smtp_port: int
    smtp_security: Security
    #: the login name ("" for the address itself)
    user: str = ""


def urls_for(address: str) -> list[str]:
    domain = address.rpartition("@")[2].lower()
    return [
        f"https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={address}",
        f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


async def discover(address: str, urls: list[str] | None = None) -> ServerSettings:
    """The servers of ``address`` (``urls``: where to ask, default ``urls_for``)."""
    problems = []
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in urls or urls_for(address):
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status != 200:
                        problems.append(f"{url}: HTTP {response.status}")
                        continue
                    body = await response.content.read(MAX_BYTES + 1)
            except (aiohttp.ClientError, TimeoutError) as exc:
                problems.append(f"{url}: {exc or type(exc).__name__}")
                continue
            if len(body) > MAX_BYTES:
                problems.append(f"{url}: larger than 64 KB")
                continue
            try:
                return parse(body, address)
            except AutoconfigError as exc:
                problems.append(f"{url}: {exc}")
    raise AutoconfigError("; ".join(problems) or "nowhere to ask")


def parse(document: bytes, address: str) -> ServerSettings:
    """The first IMAP and SMTP servers of a ``clientConfig`` document."""
    if b"<!DOCTYPE" in document.upper() or b"<!ENTITY" in document.upper():
        raise AutoconfigError("a DTD is not allowed")
    try:
        root = ElementTree.fromstring(document)  # noqa: S314 - no DTD (checked above)
    except ElementTree.ParseError as exc:
        raise AutoconfigError(f"not XML: {exc}") from exc
    imaps = root.findall(".//incomingServer[@type='imap']")
    # IMAP over TLS from the first byte first (the connector's IMAP has no STARTTLS)
    imaps.sort(key=lambda e: (e.findtext("socketType") or "").strip().upper() != "SSL")
    imap = imaps[0] if imaps else None
    smtp = root.find(".//outgoingServer[@type='smtp']")
    if imap is None or smtp is None:
        raise AutoconfigError("no IMAP and SMTP servers named")
    imap_host, imap_port, imap_security, user = _server(imap, address)
    smtp_host, smtp_port, smtp_security, _ = _server(smtp, address)
    return ServerSettings(
        imap_host, imap_port, imap_security, smtp_host, smtp_port, smtp_security, user
    )


def _server(element: ElementTree.Element, address: str) -> tuple[str, int, Security, str]:
    host = (element.findtext("hostname") or "").strip()
    local, _, domain = address.partition("@")
    host = host.replace("%EMAILDOMAIN%", domain)
    try:
        port = int((element.findtext("port") or "").strip())
    except ValueError as exc:
        raise AutoconfigError("a server without a port") from exc
    socket = (element.findtext("socketType") or "").strip().upper()
    security = {"SSL": Security.SSL, "STARTTLS": Security.STARTTLS}.get(socket)
    if not host or not 0 < port < 65536 or security is None:
        raise AutoconfigError(f"unusable server {host!r}:{port} ({socket or 'no TLS'})")
    user = (element.findtext("username") or "%EMAILADDRESS%").strip()
    user = user.replace("%EMAILADDRESS%", address).replace("%EMAILLOCALPART%", local)
    return host, port, security, "" if user == address else user
