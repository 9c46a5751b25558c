"""The TOML configuration: defaults, the example file, validation, durations, writing."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import pytest
import tomli_w

from schedd import config
from schedd.config import ConfigError, parse_duration
from schedd.errors import ValidationError

EXAMPLE = Path(__file__).resolve().parent.parent / "etc" / "schedd.toml"


def _get(cfg: config.Config, dotted: str) -> object:
    value: object = cfg
    for part in dotted.split("."):
        value = value[part] if isinstance(value, Mapping) else getattr(value, part)
    return value


def _write(tmp_path: Path, text: str, name: str = "schedd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


DEFAULTS = [
    ("server.host", "127.0.0.1"),
    ("server.port", 8470),
    ("server.unix_socket", None),
    ("server.max_body", 1048576),
    ("database.path", None),
    ("database.synchronous", "FULL"),
    ("scheduler.timezone", "UTC"),
    ("scheduler.max_concurrent_runs", 64),
    ("scheduler.misfire_grace", 60.0),
    ("scheduler.misfire_max", 10),
    ("scheduler.shutdown_grace", 30.0),
    ("scheduler.retention_sweep", 3600.0),
    ("auth.token_ttl", 43200.0),
    ("auth.login_max_failures", 5),
    ("auth.login_lockout", 60.0),
    ("logging.format", "logfmt"),
    ("logging.level", "INFO"),
    ("executors.maintenance.enabled", True),
    ("executors.maintenance.command", ()),
    ("executors.maintenance.timeout", 3600.0),
    ("executors.maintenance.after_first_build", True),
    ("executors.aggregate.enabled", True),
    ("executors.aggregate.command", ()),
    ("executors.aggregate.timeout", 3600.0),
    ("scopes", {}),
    ("services", {}),
]


@pytest.mark.parametrize(("key", "expected"), DEFAULTS, ids=[k for k, _ in DEFAULTS])
def test_defaults_are_the_documented_values(key, expected):
    assert _get(config.default(), key) == expected
    assert _get(config.from_dict({}), key) == expected


def test_an_empty_file_means_the_defaults(tmp_path):
    assert config.load(_write(tmp_path, "")) == config.default()


def test_records_are_frozen():
    cfg = config.default()
    with pytest.raises(AttributeError):
        cfg.server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.scopes["x"] = config.ScopeConfig("x", 1)  # type: ignore[index]


EXAMPLE_SHOWS = [
    ("server.port", 8470),
    ("scheduler.misfire_grace", 60.0),
    ("scheduler.retention_sweep", 3600.0),
    ("auth.token_ttl", 43200.0),
    ("executors.maintenance.command",
     ("/usr/local/bin/atscale-maintenance", "--org", "{org_id}", "--run", "{run_id}")),
    ("executors.maintenance.after_first_build", True),
    ("executors.aggregate.timeout", 7200.0),
    ("scopes.platform", config.ScopeConfig(name="platform", id=1)),
    ("services.jsonservices", config.ServiceConfig(
        name="jsonservices",
        base_url="https://services.example.com/services/jsonservices",
        timeout=30.0,
        headers=(("Accept", "application/json"), ("X-Client", "schedd")),
        id=1,
        scope="platform",
    )),
    ("services.orders.base_url", "http://127.0.0.1:8081/orders"),
    ("services.orders.timeout", 10.0),
    ("services.orders.id", None),
]


@pytest.mark.parametrize(("key", "expected"), EXAMPLE_SHOWS, ids=[k for k, _ in EXAMPLE_SHOWS])
def test_example_config_loads_with_what_it_shows(key, expected):
    assert _get(config.load(EXAMPLE), key) == expected


def test_example_aggregate_command_has_every_placeholder_as_its_own_item():
    command = config.load(EXAMPLE).executors.aggregate.command
    for placeholder in ("{org_id}", "{project_id}", "{cube_id}", "{full_build}", "{run_id}"):
        assert placeholder in command


def test_example_documents_every_key_with_a_comment():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    documented = {line.lstrip("# ").split(" =")[0] for line in lines if " = " in line}
    every_key = {f.name for cls in (config.ServerConfig, config.DatabaseConfig, config.SchedulerConfig,
                                    config.AuthConfig, config.LoggingConfig,
                                    config.MaintenanceExecutorConfig, config.ServiceConfig)
                 for f in fields(cls)} - {"name"}
    assert every_key <= documented
    for number, line in enumerate(lines):
        if " = " in line and not line.startswith(("#", " ", "]")):
            assert lines[number - 1].startswith("#"), f"line {number + 1} has no comment: {line}"


# (TOML text, dotted key the error must name, words the reason must contain)
INVALID = [
    ("schedulr.timezone = 'UTC'", "schedulr", "unknown section"),
    ("scheduler.misfire_gracee = 1", "scheduler.misfire_gracee", "unknown key"),
    ("server = 1", "server", "must be a table"),
    ("server.port = 70000", "server.port", "70000 is out of range 0-65535"),
    ("server.port = -1", "server.port", "out of range"),
    ("server.port = '80'", "server.port", "must be an integer"),
    ("server.port = true", "server.port", "must be an integer"),
    ("server.port = 80.0", "server.port", "must be an integer"),
    ("server.host = 5", "server.host", "must be a string"),
    ("server.host = ''", "server.host", "must not be empty"),
    ("server.unix_socket = ''", "server.unix_socket", "must not be empty"),
    ("server.max_body = 0", "server.max_body", "1 or more"),
    ("database.path = 3", "database.path", "must be a string"),
    ("database.synchronous = 'SOMETIMES'", "database.synchronous", "not one of OFF, NORMAL, FULL, EXTRA"),
    ("scheduler.timezone = 'Mars/Olympus'", "scheduler.timezone", "not a known IANA time zone"),
    ("scheduler.timezone = '../etc/passwd'", "scheduler.timezone", "not a known IANA time zone"),
    ("scheduler.timezone = 'America'", "scheduler.timezone", "not a known IANA time zone"),
    ("scheduler.max_concurrent_runs = 0", "scheduler.max_concurrent_runs", "1 or more"),
    ("scheduler.misfire_grace = '-1s'", "scheduler.misfire_grace", "must not be negative"),
    ("scheduler.misfire_max = 0", "scheduler.misfire_max", "1 or more"),
    ("scheduler.shutdown_grace = 'abc'", "scheduler.shutdown_grace", "not a duration"),
    ("scheduler.retention_sweep = [1]", "scheduler.retention_sweep", "must be a duration"),
    ("auth.token_ttl = true", "auth.token_ttl", "must be a duration"),
    ("auth.login_max_failures = 0", "auth.login_max_failures", "1 or more"),
    ("auth.login_lockout = -5", "auth.login_lockout", "must not be negative"),
    ("logging.format = 'xml'", "logging.format", "not one of logfmt, json"),
    ("logging.level = 'LOUD'", "logging.level", "not one of"),
    ("executors.nope.command = ['/bin/true']", "executors.nope", "unknown key"),
    ("executors.maintenance.enabled = 'yes'", "executors.maintenance.enabled", "true or false"),
    ("executors.maintenance.command = []", "executors.maintenance.command", "non-empty array"),
    ("executors.maintenance.command = '/bin/true'", "executors.maintenance.command", "non-empty array"),
    ("executors.maintenance.command = ['/bin/x', 3]", "executors.maintenance.command[1]", "must be a string"),
    ("executors.maintenance.command = ['/bin/x', '{cube_id}']", "executors.maintenance.command[1]",
     "unknown placeholder {cube_id}"),
    ("executors.aggregate.command = ['/bin/x', '--org={orgid}']", "executors.aggregate.command[1]",
     "unknown placeholder {orgid}"),
    ("executors.aggregate.command = ['{org_id}']", "executors.aggregate.command[0]", "fixed, non-empty path"),
    ("executors.aggregate.command = ['', 'x']", "executors.aggregate.command[0]", "fixed, non-empty path"),
    ("executors.aggregate.timeout = '-5m'", "executors.aggregate.timeout", "must not be negative"),
    ("executors.aggregate.after_first_build = true", "executors.aggregate.after_first_build", "unknown key"),
    ("scopes = 1", "scopes", "must be a table"),
    ("scopes.platform.color = 'red'", "scopes.platform.color", "unknown key"),
    ("scopes.platform = {}", "scopes.platform.id", "is required"),
    ("scopes.platform.id = 0", "scopes.platform.id", "1 or more"),
    ("scopes.platform.id = '1'", "scopes.platform.id", "must be an integer"),
    ("scopes.a.id = 1\nscopes.b.id = 1", "scopes.b.id", "1 is already the id of [scopes.a]"),
    ("scopes.'bad name'.id = 1", "scopes", "'bad name' is not a valid name"),
    ("services.x.name = 'y'", "services.x.name", "unknown key"),
    ("services.x.base_url = 'ftp://h/'", "services.x.base_url", "not an http(s) URL with a host"),
    ("services.x.base_url = 'https:///path'", "services.x.base_url", "not an http(s) URL with a host"),
    ("services.x.base_url = 'h/path'", "services.x.base_url", "not an http(s) URL with a host"),
    ("services.x.base_url = 'https://h/x?y=1'", "services.x.base_url", "query or a fragment"),
    ("services.x.base_url = 'https://h/x#f'", "services.x.base_url", "query or a fragment"),
    ("services.x.base_url = 'https://h:99999/'", "services.x.base_url", "invalid port"),
    ("services.x.base_url = 'https://h/a b'", "services.x.base_url", "spaces or control characters"),
    ("services.x.timeout = 'abc'", "services.x.timeout", "not a duration"),
    ("services.x.headers = 'X-A: 1'", "services.x.headers", "must be a table"),
    (r'services.x.headers = { X-A = "a\nb" }', "services.x.headers.X-A", "CR, LF or NUL"),
    (r'services.x.headers = { X-A = "a\rb" }', "services.x.headers.X-A", "CR, LF or NUL"),
    ('services.x.headers = { "Bad Name" = "a" }', "services.x.headers.Bad Name", "not a valid header name"),
    ("services.x.headers = { X-A = 5 }", "services.x.headers.X-A", "must be a string"),
    ("services.x.id = -3", "services.x.id", "1 or more"),
    ("services.jsonservices.id = 1\nservices.jsonservices.scope = 'nope'",
     "services.jsonservices.scope", "no [scopes.nope] is declared"),
    ("scopes.p.id = 1\nservices.x.scope = 'p'", "services.x.id", "required when scope is given"),
    ("services.a.id = 7\nservices.b.id = 7", "services.b.id", "7 is already the id of [services.a]"),
]


@pytest.mark.parametrize(("text", "key", "reason"), INVALID, ids=[row[0] for row in INVALID])
def test_invalid_value_is_rejected_naming_its_key(tmp_path, text, key, reason):
    with pytest.raises(ConfigError) as caught:
        config.load(_write(tmp_path, text))
    error = caught.value
    message = str(error)
    assert error.field == key, f"input {text!r} gave {message!r}"
    assert message.startswith(f"{key}: "), f"input {text!r} gave {message!r}"
    assert reason in message, f"input {text!r} gave {message!r}"
    assert "\n" not in message, f"input {text!r} gave {message!r}"


def test_config_error_is_a_validation_error():
    with pytest.raises(ValidationError):
        config.from_dict({"server": {"port": 70000}})


def test_from_dict_rejects_a_non_table():
    with pytest.raises(ConfigError, match="^config: must be a table"):
        config.from_dict([])  # type: ignore[arg-type]


NORMALIZED = [
    ("database.synchronous = 'full'", "database.synchronous", "FULL"),
    ("logging.level = 'debug'", "logging.level", "DEBUG"),
    ("logging.format = 'JSON'", "logging.format", "json"),
    ("services.x.base_url = 'https://h.example/api//'", "services.x.base_url", "https://h.example/api"),
    ("services.x.base_url = 'http://h:8080'", "services.x.base_url", "http://h:8080"),
    ("executors.aggregate.command = ['/bin/find', '.', '-exec', '{}', ';']", "executors.aggregate.command",
     ("/bin/find", ".", "-exec", "{}", ";")),
    ("server.port = 0", "server.port", 0),
    ("scheduler.timezone = 'America/New_York'", "scheduler.timezone", "America/New_York"),
    ("scopes.a.id = 1\nscopes.b.id = 2\nservices.x.id = 1\nservices.x.scope = 'b'", "services.x.scope", "b"),
]


@pytest.mark.parametrize(("text", "key", "expected"), NORMALIZED, ids=[row[0] for row in NORMALIZED])
def test_accepted_value_is_stored_in_its_canonical_form(tmp_path, text, key, expected):
    assert _get(config.load(_write(tmp_path, text)), key) == expected, f"input {text!r}"


DURATIONS = [
    ("30s", 30.0),
    ("5m", 300.0),
    (90, 90.0),
    ("12h", 43200.0),
    ("30d", 2592000.0),
    (1.5, 1.5),
    ("1.5h", 5400.0),
    ("90", 90.0),
    (0, 0.0),
    (" 2m ", 120.0),
]


@pytest.mark.parametrize(("value", "seconds"), DURATIONS, ids=[repr(v) for v, _ in DURATIONS])
def test_duration_is_read_in_seconds(value, seconds):
    assert parse_duration(value, "--ttl") == seconds, f"input {value!r}"


BAD_DURATIONS = ["-1s", "abc", True, -1, "5 minutes", "1e3", "", "5M", float("nan"), math.inf, None, [30], "99999d"]


@pytest.mark.parametrize("value", BAD_DURATIONS, ids=[repr(v) for v in BAD_DURATIONS])
def test_bad_duration_is_rejected_naming_its_key(value):
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, "--ttl")
    assert caught.value.field == "--ttl", f"input {value!r}"
    assert str(caught.value).startswith("--ttl: "), f"input {value!r}"


def test_write_default_then_load_gives_the_defaults(tmp_path):
    path = tmp_path / "schedd.toml"
    config.write_default(path)
    assert config.load(path) == config.default()


def test_write_default_refuses_to_overwrite(tmp_path):
    path = _write(tmp_path, "server.port = 1\n")
    with pytest.raises(ConfigError, match="^path: .* already exists") as caught:
        config.write_default(path)
    assert isinstance(caught.value.__cause__, FileExistsError)
    assert path.read_text(encoding="utf-8") == "server.port = 1\n"


def test_write_default_into_a_missing_directory_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="^path: cannot write"):
        config.write_default(tmp_path / "missing" / "schedd.toml")


VARIED = """
[server]
unix_socket = "/run/schedd.sock"
max_body = 2048
[database]
path = "/var/lib/schedd/x.db"
synchronous = "extra"
[scheduler]
timezone = "Europe/Paris"
misfire_grace = 1.5
shutdown_grace = 0
retention_sweep = "90s"
[executors.maintenance]
enabled = false
after_first_build = false
[services.bare]
"""


@pytest.mark.parametrize("source", ["example", "varied"])
def test_to_dict_reloads_equal(tmp_path, source):
    original = config.load(EXAMPLE if source == "example" else _write(tmp_path, VARIED, "in.toml"))
    written = tmp_path / "out.toml"
    written.write_text(tomli_w.dumps(config.to_dict(original)), encoding="utf-8")
    assert config.load(written) == original


def test_to_dict_writes_no_none_values():
    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        assert value is not None
    walk(config.to_dict(config.load(EXAMPLE)))


def test_bad_toml_names_the_file_and_keeps_the_cause(tmp_path):
    path = _write(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.field == "toml"
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, tomllib.TOMLDecodeError)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="^path: cannot read") as caught:
        config.load(tmp_path / "nope.toml")
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_resolve_reads_schedd_config_when_no_path_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDD_CONFIG", str(_write(tmp_path, "server.port = 9001\n")))
    assert config.resolve(None).server.port == 9001


def test_resolve_prefers_the_given_path_to_schedd_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDD_CONFIG", str(_write(tmp_path, "server.port = 9001\n", "env.toml")))
    assert config.resolve(str(_write(tmp_path, "server.port = 9002\n", "arg.toml"))).server.port == 9002


def test_resolve_without_path_or_schedd_config_gives_the_defaults(monkeypatch):
    monkeypatch.delenv("SCHEDD_CONFIG", raising=False)
    assert config.resolve(None) == config.default()


def test_resolve_reports_a_missing_schedd_config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDD_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="^SCHEDD_CONFIG: cannot read "):
        config.resolve(None)
    with pytest.raises(ConfigError, match="^--config: cannot read "):
        config.resolve(str(tmp_path / "missing.toml"))


DB_PATHS = [
    ("database.path = '/srv/s.db'", "/var/lib/schedd", "/srv/s.db"),
    ("", "/var/lib/schedd", "/var/lib/schedd/schedd.db"),
    ("", "/var/lib/schedd:/var/lib/other", "/var/lib/schedd/schedd.db"),
    ("", None, "./schedd.db"),
    ("", "", "./schedd.db"),
]


@pytest.mark.parametrize(("text", "state", "expected"), DB_PATHS)
def test_default_db_path(tmp_path, monkeypatch, text, state, expected):
    if state is None:
        monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    else:
        monkeypatch.setenv("STATE_DIRECTORY", state)
    assert config.default_db_path(config.load(_write(tmp_path, text))) == expected
