"""One typed configuration tree: a TOML file, then ``TAUBE_*`` variables, then flags.

Every key has an environment variable ``TAUBE_<SECTION>_<KEY>``
(``TAUBE_SERVER_PORT=8470``). Unknown keys in the file, and unknown
variables with a section's prefix, are refused with a message naming them.
The reference in ``docs/admin-guide.md`` lists every key.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
import typing
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from taube.store import is_postgres_url


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "taube")


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerSection(Section):
    #: the address to listen on
    host: str = "127.0.0.1"
    #: the port to listen on (0: any free port, printed at start)
    port: int = 8470
    #: the domain of this server's addresses (``name@domain``)
    domain: str = "localhost"
    #: the database and the attachment files live here
    data_dir: str = msgspec.field(default_factory=default_data_dir)
    #: extra browser origins allowed on the WebSocket (the server's own always is)
    origins: list[str] = []
    #: this node's name in logs and on the bus (empty: ``<hostname>-<pid>``)
    node_id: str = ""
    #: reverse proxies (addresses or networks, ``10.0.0.0/8``) whose ``X-Forwarded-For``
    #: names the client; from anyone else the header is ignored
    trusted_proxies: list[str] = []

    def __post_init__(self) -> None:
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: not an address or network: {proxy!r}") from None

    @property
    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(proxy, strict=False) for proxy in self.trusted_proxies]


class StorageSection(Section):
    #: empty: SQLite in ``<data_dir>/taube.db``; a path: that SQLite file;
    #: ``postgresql://user:password@host:5432/db``: PostgreSQL (``taube[postgres]``),
    #: which several nodes can share (URL parameters such as ``search_path`` go to the server)
    database: str = ""
    #: SQLite ``synchronous``: FULL syncs every group commit (durable acks)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: where attachment bytes live: ``directory`` (``<data_dir>/blobs``, one node) or
    #: ``database`` (chunks in the database; needed when several nodes share PostgreSQL)
    blobs: Literal["directory", "database"] = "directory"


class BusSection(Section):
    #: empty: in-process (one node); ``redis://host:6379/0``: Redis pub/sub wakes the
    #: other nodes (``taube[redis]``); every node of a deployment names the same one
    url: str = ""
    #: the prefix of this deployment's Redis channel (pub/sub ignores the database
    #: number: deployments sharing a Redis need different prefixes)
    channel: str = "taube"
    #: every this many seconds a node looks in the database for entries its
    #: devices have not been sent (a lost wake-up is late by at most this); 0: never
    recheck_s: float = 5.0

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("bus.url must be empty or a redis://, rediss:// or unix:// URL")
        if self.recheck_s < 0:
            raise ValueError("bus.recheck_s must not be negative")


class LimitsSection(Section):
    #: largest WebSocket frame; larger ones get ``frame_too_large``
    max_frame_bytes: int = 1 << 20
    #: largest JSON request body
    max_body_bytes: int = 1 << 20
    #: largest attachment
    max_blob_bytes: int = 100 << 20
    #: attachment bytes one account may keep on the server at once
    blob_quota_bytes: int = 4 << 30
    #: WebSocket frames per second per connection, and the burst above it
    ws_rate: float = 2000.0
    ws_burst: float = 4000.0
    #: a WebSocket must send ``hello`` within this time
    hello_timeout_s: float = 10.0
    #: WebSocket ping interval; a peer that misses a pong is dropped
    heartbeat_s: float = 30.0
    #: register/login attempts per minute per client IP and per account
    auth_per_ip_per_minute: float = 60.0
    auth_per_account_per_minute: float = 10.0
    #: password hashes computed at once; more callers wait, then get 429
    argon2_concurrency: int = 2
    argon2_queue: int = 32


class AuthSection(Section):
    #: a device token expires after this long unused (use extends it)
    token_lifetime_s: float = 90 * 86400.0
    #: argon2id cost parameters for account passwords
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 1


class RetentionSection(Section):
    #: undelivered ciphertext is deleted after this long
    max_age_s: float = 30 * 86400.0
    #: uploaded blobs never attached to a message are deleted after this long
    unattached_blob_s: float = 86400.0
    #: how often retention runs
    sweep_interval_s: float = 60.0
    #: how often acknowledged cursors are written (acks in between are merged)
    ack_flush_s: float = 0.05


class FederationSection(Section):
    #: talk to taube servers of other domains (found by ``/.well-known/taube/server``)
    enabled: bool = True
    #: this server's base URL as other servers reach it (empty: taken from the request)
    public_url: str = ""
    #: where a domain's ``https://DOMAIN`` is reached instead (tests, private networks):
    #: ``{"b.example" = "http://127.0.0.1:8471"}``; discovery still asks that host
    hosts: dict[str, str] = {}
    #: accept ``http://`` server URLs from discovery (tests on loopback only)
    allow_http: bool = False
    #: if not empty, only these domains may federate with this server
    allow: list[str] = []
    #: these domains may not federate with this server (checked after ``allow``)
    deny: list[str] = []
    #: signed requests per minute each remote server may make (and the burst)
    requests_per_minute: float = 6000.0
    #: unsigned or badly signed requests per minute per client address before it is throttled
    failures_per_minute: float = 60.0
    #: largest server-to-server request body, and largest answer taken from a remote
    max_body_bytes: int = 1 << 20
    #: how long a discovered server and its keys are cached
    cache_s: float = 3600.0
    #: how long to remember a domain that has no taube server
    negative_cache_s: float = 300.0
    #: a remote server that does not answer within this is unavailable
    timeout_s: float = 10.0
    #: the server key is replaced after this many days (the old one stays valid for a week)
    key_rotation_days: float = 365.0

    def __post_init__(self) -> None:
        for domain, url in self.hosts.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"federation.hosts: {domain!r} needs an http(s):// URL")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ValueError("federation.public_url must be an http(s):// URL")


class LogSection(Section):
    #: debug, info, warning or error
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: json (one object per line) or text
    format: Literal["json", "text"] = "json"


class TurnSection(Section):
    #: the TURN server(s) clients relay calls through, as WebRTC names them
    #: (``turn:turn.example.org:3478?transport=udp``); empty: no TURN (calls
    #: then connect only where the devices reach each other directly)
    urls: list[str] = []
    #: coturn's ``static-auth-secret`` (``use-auth-secret``): credentials are
    #: derived from it and expire after ``ttl_s``
    secret: str = ""
    #: how long handed-out credentials stay valid
    ttl_s: float = 12 * 3600.0

    def __post_init__(self) -> None:
        for url in self.urls:
            if not url.startswith(("turn:", "turns:", "stun:")):
                raise ValueError(f"turn.urls: not a turn:, turns: or stun: URL: {url!r}")
        if self.urls and not self.secret:
            raise ValueError("turn.secret must be set when turn.urls is")
        if self.ttl_s <= 0:
            raise ValueError("turn.ttl_s must be positive")


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    storage: StorageSection = msgspec.field(default_factory=StorageSection)
    bus: BusSection = msgspec.field(default_factory=BusSection)
    limits: LimitsSection = msgspec.field(default_factory=LimitsSection)
    auth: AuthSection = msgspec.field(default_factory=AuthSection)
    retention: RetentionSection = msgspec.field(default_factory=RetentionSection)
    federation: FederationSection = msgspec.field(default_factory=FederationSection)
    log: LogSection = msgspec.field(default_factory=LogSection)
    turn: TurnSection = msgspec.field(default_factory=TurnSection)

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir).expanduser()

    @property
    def database_path(self) -> Path:
        return (
            Path(self.storage.database) if self.storage.database else (self.data_dir / "taube.db")
        )

    @property
    def database(self) -> str:
        """What the store opens: the PostgreSQL URL, or the SQLite file's path."""
        if is_postgres_url(self.storage.database):
            return self.storage.database
        return str(self.database_path)

    def public_dict(self) -> dict[str, Any]:
        """The configuration as printed: secrets show as ``****``."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["storage"]["database"] = masked_url(self.storage.database)
        data["bus"]["url"] = masked_url(self.bus.url)
        if self.turn.secret:
            data["turn"]["secret"] = "****"  # noqa: S105 - the mask, not a secret
        return data

    @property
    def node_id(self) -> str:
        """This process's name in logs and on the bus."""
        return self.server.node_id or f"{socket.gethostname()}-{os.getpid()}"


def masked_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password`` parameter) as ``****``."""
    if not is_postgres_url(url) and not url.startswith(("redis://", "rediss://", "unix://")):
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:****@{host}"
    query = parts.query
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if any(key.lower() == "password" for key, _ in pairs):
        masked = [(k, "****" if k.lower() == "password" else v) for k, v in pairs]
        query = urllib.parse.urlencode(masked, safe="*")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


class ConfigError(Exception):
    """The configuration is invalid; the message says where and why."""


#: ``[section]`` name -> its type, read off ``Config`` itself
SECTION_TYPES: dict[str, type[Section]] = typing.get_type_hints(Config)
SECTIONS = tuple(SECTION_TYPES)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith("TAUBE_"):
            continue
        rest = name[len("TAUBE_") :].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue  # TAUBE_PASSWORD, TAUBE_REQUIRE_SERVICES, ...: not server config
        key = rest[len(section) + 1 :]
        if key not in SECTION_TYPES[section].__struct_fields__:
            raise ConfigError(f"unknown setting {name} (no key {key!r} in [{section}])")
        as_text = SECTION_TYPES[section].__annotations__.get(key) in ("str", str)
        overrides.setdefault(section, {})[key] = _parse_env(value, text=as_text)
    return overrides


def _parse_env(value: str, *, text: bool = False) -> Any:
    """Environment values are TOML values when they parse as one, else strings.

    For a text setting only a quoted TOML string is parsed: ``1234`` stays
    the text "1234"."""
    if text and not value.startswith(('"', "'")):
        return value
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the configuration: file, then environment, then ``overrides``."""
    environ = os.environ if environ is None else environ
    data: dict[str, dict[str, Any]] = {}
    if path is None and environ.get("TAUBE_CONFIG"):
        path = Path(environ["TAUBE_CONFIG"])
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        for section, values in raw.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: {section!r} must be a [section]")
            data[section] = dict(values)
    for source in (_env_overrides(environ), overrides or {}):
        for section, values in source.items():
            data.setdefault(section, {}).update(values)
    try:
        return msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
