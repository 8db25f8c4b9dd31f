"""The configuration tree: defaults, TOML file, ``TAUBE_*`` variables, ``--print-config``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from taube.server.config import SECTIONS, Config, ConfigError, load


@pytest.fixture(autouse=True)
def _data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default data directory follows ``XDG_DATA_HOME``; keep it in tmp."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "taube.toml"
    path.write_text(text, "utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load(environ={})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8470
    assert config.server.domain == "localhost"
    assert config.server.origins == []
    assert config.storage.synchronous == "FULL"
    assert config.retention.max_age_s == 30 * 86400
    assert config.log.level == "info"
    assert config.data_dir == tmp_path / "xdg" / "taube"
    assert config.database_path == tmp_path / "xdg" / "taube" / "taube.db"


def test_defaults_equal_an_empty_config() -> None:
    assert msgspec.to_builtins(load(environ={})) == msgspec.to_builtins(Config())


def test_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
port = 9000
domain = "example.org"
origins = ["https://app.example.org"]

[storage]
database = "/srv/taube/db.sqlite"
synchronous = "NORMAL"

[limits]
ws_rate = 10
""",
    )
    config = load(path, environ={})
    assert config.server.port == 9000
    assert config.server.domain == "example.org"
    assert config.server.origins == ["https://app.example.org"]
    assert config.database_path == Path("/srv/taube/db.sqlite")
    assert config.storage.synchronous == "NORMAL"
    assert config.limits.ws_rate == 10.0
    assert isinstance(config.limits.ws_rate, float)
    assert config.server.host == "127.0.0.1"  # untouched keys keep their defaults


def test_taube_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n")
    assert load(environ={"TAUBE_CONFIG": str(path)}).server.port == 9001


def test_data_dir_expands_the_home_directory() -> None:
    config = load(environ={}, overrides={"server": {"data_dir": "~/taube-data"}})
    assert config.data_dir == Path.home() / "taube-data"


@pytest.mark.parametrize(
    ("name", "value", "section", "key", "expected"),
    [
        ("TAUBE_SERVER_PORT", "9002", "server", "port", 9002),
        ("TAUBE_SERVER_PORT", '"9003"', "server", "port", 9003),
        ("TAUBE_SERVER_HOST", "0.0.0.0", "server", "host", "0.0.0.0"),  # not TOML: a string
        ("TAUBE_SERVER_HOST", '"::1"', "server", "host", "::1"),
        ("TAUBE_SERVER_DOMAIN", "example.org", "server", "domain", "example.org"),
        (
            "TAUBE_SERVER_ORIGINS",
            '["https://a.example", "https://b.example"]',
            "server",
            "origins",
            ["https://a.example", "https://b.example"],
        ),
        ("TAUBE_LIMITS_WS_RATE", "12.5", "limits", "ws_rate", 12.5),
        ("TAUBE_LIMITS_MAX_BLOB_BYTES", "1_048_576", "limits", "max_blob_bytes", 1 << 20),
        ("TAUBE_STORAGE_SYNCHRONOUS", "NORMAL", "storage", "synchronous", "NORMAL"),
        ("TAUBE_STORAGE_DATABASE", "/tmp/x.db", "storage", "database", "/tmp/x.db"),
        ("TAUBE_LOG_LEVEL", "debug", "log", "level", "debug"),
        ("TAUBE_AUTH_ARGON2_TIME_COST", "1", "auth", "argon2_time_cost", 1),
        ("TAUBE_RETENTION_ACK_FLUSH_S", "0", "retention", "ack_flush_s", 0.0),
    ],
)
def test_environment_overrides(
    name: str, value: str, section: str, key: str, expected: object
) -> None:
    config = load(environ={name: value})
    assert getattr(getattr(config, section), key) == expected


def test_every_key_has_a_variable() -> None:
    """``TAUBE_<SECTION>_<KEY>`` reaches every key, including ones with underscores."""
    defaults = msgspec.to_builtins(Config())
    for section in SECTIONS:
        for key, value in defaults[section].items():
            raw = json.dumps(value)  # JSON numbers, strings and arrays are TOML too
            name = f"TAUBE_{section.upper()}_{key.upper()}"
            config = load(environ={name: raw})
            assert msgspec.to_builtins(config)[section][key] == value, name


def test_precedence_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 1\nhost = "h.file"\ndomain = "d.file"\n')
    config = load(
        path,
        environ={"TAUBE_SERVER_PORT": "2", "TAUBE_SERVER_HOST": "h.env"},
        overrides={"server": {"port": 3}},
    )
    assert (config.server.port, config.server.host, config.server.domain) == (3, "h.env", "d.file")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nprot = 1\n", "prot"),
        ("[srever]\nport = 1\n", "srever"),
        ("[limits]\nws_rate = 1\nws_rat = 2\n", "ws_rat"),
        ("port = 1\n", "port"),
    ],
)
def test_unknown_keys_in_the_file_are_refused(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    "name", ["TAUBE_SERVER_PROT", "TAUBE_LIMITS_WS", "TAUBE_LOG_FILE", "TAUBE_STORAGE_"]
)
def test_unknown_variables_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(environ={name: "1"})


@pytest.mark.parametrize(
    "name",
    [
        "TAUBE_PASSWORD",
        "TAUBE_REQUIRE_SERVICES",
        "TAUBE_SERVERX",
        "TAUBE_LOGS_LEVEL",
        "TAUBE_",
        "XTAUBE_SERVER_PORT",
        "taube_server_port",
    ],
)
def test_other_variables_are_ignored(name: str) -> None:
    config = load(environ={name: "not a setting"})
    assert msgspec.to_builtins(config) == msgspec.to_builtins(Config())


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[server]\nport = "many"\n', "port"),
        ('[storage]\nsynchronous = "OFF"\n', "synchronous"),
        ('[log]\nlevel = "loud"\n', "level"),
        ('[server]\norigins = "https://a.example"\n', "origins"),
    ],
)
def test_wrong_types_are_refused(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        load(write(tmp_path, text), environ={})


def test_a_wrongly_typed_variable_is_refused() -> None:
    with pytest.raises(ConfigError, match="port"):
        load(environ={"TAUBE_SERVER_PORT": "eighty"})


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load(write(tmp_path, "[server\nport = 1"), environ={})


def test_public_dict_is_json() -> None:
    data = load(environ={}).public_dict()
    assert set(data) == set(SECTIONS)
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://taube:s3cret@db:5432/taube", "postgresql://taube:****@db:5432/taube"),
        (
            "postgresql://taube@db/taube?password=s3cret&search_path=a,b",
            "postgresql://taube@db/taube?password=****&search_path=a%2Cb",
        ),
        ("postgresql://db/taube?search_path=a,b", "postgresql://db/taube?search_path=a,b"),
        ("/srv/taube/db.sqlite", "/srv/taube/db.sqlite"),
    ],
)
def test_the_database_password_prints_as_stars(url: str, shown: str) -> None:
    config = load(environ={"TAUBE_STORAGE_DATABASE": url})
    assert config.storage.database == url  # the store gets the real one
    assert config.public_dict()["storage"]["database"] == shown


def test_a_postgresql_url_selects_postgresql(tmp_path: Path) -> None:
    url = "postgresql://taube@127.0.0.1/taube"
    config = load(environ={"TAUBE_STORAGE_DATABASE": url, "TAUBE_STORAGE_BLOBS": "database"})
    assert config.database == url
    assert config.storage.blobs == "database"
    assert load(environ={}).database == str(tmp_path / "xdg" / "taube" / "taube.db")
    with pytest.raises(ConfigError, match="blobs"):
        load(environ={"TAUBE_STORAGE_BLOBS": "s3"})


def test_the_bus_and_proxies(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            """
[server]
node_id = "eu-1"
trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]

[bus]
url = "redis://:s3cret@redis.internal:6379/2"
channel = "prod"
recheck_s = 2.5
""",
        ),
        environ={},
    )
    assert config.node_id == "eu-1"
    assert config.bus.url == "redis://:s3cret@redis.internal:6379/2"
    assert config.public_dict()["bus"]["url"] == "redis://:****@redis.internal:6379/2"
    assert config.bus.channel == "prod"
    assert config.bus.recheck_s == 2.5
    assert [str(n) for n in config.server.trusted_networks] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
    ]
    env = load(environ={"TAUBE_BUS_URL": "redis://127.0.0.1:6379/0"})
    assert env.bus.url == "redis://127.0.0.1:6379/0"


def test_bus_defaults_to_in_process_and_node_id_to_host_and_pid() -> None:
    config = load(environ={})
    assert config.bus.url == ""
    assert config.bus.recheck_s == 5.0
    assert config.server.trusted_proxies == []
    assert config.node_id.endswith(f"-{os.getpid()}")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TAUBE_BUS_URL": "http://redis:6379"}, "bus.url"),
        ({"TAUBE_BUS_RECHECK_S": "-1"}, "recheck_s"),
        ({"TAUBE_SERVER_TRUSTED_PROXIES": '["nginx"]'}, "trusted_proxies"),
        ({"TAUBE_BUS_URLS": "redis://x"}, "TAUBE_BUS_URLS"),
    ],
)
def test_bad_bus_and_proxy_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(environ=env)


# ---------------------------------------------------------------- taube serve --print-config


def _taube(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAUBE_")}
    clean["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return subprocess.run(
        [sys.executable, "-m", "taube", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_print_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nws_rate = 7\n")
    done = _taube(
        ["serve", "--print-config", "--config", str(path), "--domain", "example.org"],
        {"TAUBE_SERVER_PORT": "9100", "TAUBE_PASSWORD": "ignored"},
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["server"]["port"] == 9100
    assert data["server"]["domain"] == "example.org"
    assert data["server"]["data_dir"] == str(tmp_path / "xdg" / "taube")
    assert data["limits"]["ws_rate"] == 7.0
    assert set(data) == set(SECTIONS)


def test_print_config_with_a_database_flag(tmp_path: Path) -> None:
    done = _taube(
        ["serve", "--print-config", "--database", "postgresql://taube:pw@127.0.0.1/taube"],
        {"TAUBE_STORAGE_DATABASE": "/elsewhere.db"},
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["storage"]["database"] == (
        "postgresql://taube:****@127.0.0.1/taube"
    )


def test_print_config_with_a_bus_flag(tmp_path: Path) -> None:
    done = _taube(
        ["serve", "--print-config", "--bus", "redis://:pw@127.0.0.1:6379/1"], {}, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bus"]["url"] == "redis://:****@127.0.0.1:6379/1"


def test_print_config_flags_beat_the_environment(tmp_path: Path) -> None:
    done = _taube(
        ["serve", "--print-config", "--port", "9200"], {"TAUBE_SERVER_PORT": "9100"}, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["server"]["port"] == 9200


def test_serve_refuses_an_unknown_variable(tmp_path: Path) -> None:
    done = _taube(["serve", "--print-config"], {"TAUBE_SERVER_PROT": "1"}, tmp_path)
    assert done.returncode == 2
    assert "TAUBE_SERVER_PROT" in done.stderr
    assert done.stdout == ""
