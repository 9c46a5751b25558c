"""The TOML configuration: load and validate it, hand out its defaults, write it back.

Every value is checked here, once, so the rest of schedd reads frozen records and never
a raw mapping. A rejected value raises `ConfigError` whose field is the dotted key.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import types
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import tomli_w

from schedd.errors import ValidationError


class ConfigError(ValidationError):
    """A configuration value was rejected; `field` is its dotted key."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The `[logging] level` values, any case."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8470
    unix_socket: str | None = None
    max_body: int = 1048576
    max_connections: int = 1024
    reserved_fds: int | None = None  # None: 64 + 8 per [scheduler] max_concurrent_runs (see schedd.listener)
    listen_backlog: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 75.0


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    path: str | None = None  # None: see default_db_path()
    url: str | None = None  # postgresql://...: a PostgreSQL server instead of the file
    instance: str | None = None  # this instance's name among those sharing a server; None: the host name
    lease_ttl: float = 3.0  # seconds the firing lease lasts unless renewed; a standby takes over after it
    synchronous: str = "FULL"  # the WAL is synced at every commit: acknowledged means on disk
    pool_size: int = 10  # PostgreSQL: connections each instance keeps (1-200)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    timezone: str = "UTC"
    max_concurrent_runs: int = 64
    misfire_grace: float = 60.0
    misfire_max: int = 10
    shutdown_grace: float = 30.0
    retention_sweep: float = 3600.0
    history_retention: float = 90 * 86400.0  # runs of schedules without a retention of their own; 0 keeps all
    fire_lead: float = 0.1  # a due batch is read and recorded this long ahead; its runs start on time


@dataclass(frozen=True, slots=True)
class AuthConfig:
    token_ttl: float = 43200.0
    login_max_failures: int = 5  # per source address and user id
    login_lockout: float = 60.0
    login_budget: int = 100  # failed logins, from every address together, before logins slow down
    login_budget_per_minute: int = 60
    login_max_delay: float = 2.0
    login_hash_concurrency: int = 1
    trusted_proxies: tuple[str, ...] = ()  # addresses/networks whose X-Forwarded-For is believed


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    format: str = "logfmt"
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class CommandExecutorConfig:
    """An `[executors.<section>]` table: a command a job family runs its runs with."""

    PLACEHOLDERS: ClassVar[frozenset[str]] = frozenset({"org_id", "project_id", "cube_id", "full_build", "run_id"})
    """What the command can fill in; a placeholder outside the set is a typo caught at load."""

    enabled: bool = True
    command: tuple[str, ...] = ()
    timeout: float = 3600.0


@dataclass(frozen=True, slots=True)
class MaintenanceExecutorConfig:
    PLACEHOLDERS: ClassVar[frozenset[str]] = frozenset({"org_id", "run_id"})

    enabled: bool = True
    command: tuple[str, ...] = ()
    timeout: float = 3600.0
    after_first_build: bool = True


@dataclass(frozen=True, slots=True)
class AggregateExecutorConfig(CommandExecutorConfig):
    """The aggregate build executor: a command executor with nothing added."""


@dataclass(frozen=True, slots=True)
class ExecutorsConfig:
    """One table per command section; each reads as its record's fields say (see `_executors`)."""

    maintenance: MaintenanceExecutorConfig = field(default_factory=MaintenanceExecutorConfig)
    aggregate: AggregateExecutorConfig = field(default_factory=AggregateExecutorConfig)


@dataclass(frozen=True, slots=True)
class ScopeConfig:
    name: str
    id: int


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    name: str
    base_url: str | None = None
    timeout: float = 30.0
    headers: tuple[tuple[str, str], ...] = ()
    id: int | None = None
    scope: str | None = None


def _empty_mapping() -> Mapping[str, Any]:
    return types.MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OrgLimits:
    """The limits in force for one org (or for service jobs, which belong to no org)."""

    max_schedules: int
    min_interval: float
    max_concurrent_runs: int | None  # None: half of [scheduler] max_concurrent_runs
    max_queued_runs: int


@dataclass(frozen=True, slots=True)
class OrgQuotaConfig:
    """[quotas.orgs.NAME]: one org's own limits; a key left out takes [quotas]' value."""

    name: str
    max_schedules: int | None = None
    min_interval: float | None = None
    max_concurrent_runs: int | None = None
    max_queued_runs: int | None = None


@dataclass(frozen=True, slots=True)
class QuotasConfig:
    """[quotas]: what one org may hold and use of what every org shares; admins are exempt
    from the limits on creating schedules (max_schedules, max_jobs, min_interval)."""

    max_schedules: int = 10_000
    max_jobs: int = 10_000
    min_interval: float = 60.0
    max_concurrent_runs: int | None = None
    max_queued_runs: int = 1_000
    orgs: Mapping[str, OrgQuotaConfig] = field(default_factory=_empty_mapping)

    def for_org(self, org_id: str | None) -> OrgLimits:
        """The limits of `org_id` (None: service jobs), its own where [quotas.orgs.NAME] sets them."""
        own = self.orgs.get(org_id) if org_id is not None else None

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        if own is None:
            return OrgLimits(self.max_schedules, self.min_interval, self.max_concurrent_runs,
                             self.max_queued_runs)
        return OrgLimits(
            max_schedules=pick(own.max_schedules, self.max_schedules),
            min_interval=pick(own.min_interval, self.min_interval),
            max_concurrent_runs=pick(own.max_concurrent_runs, self.max_concurrent_runs),
            max_queued_runs=pick(own.max_queued_runs, self.max_queued_runs),
        )


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    executors: ExecutorsConfig = field(default_factory=ExecutorsConfig)
    scopes: Mapping[str, ScopeConfig] = field(default_factory=_empty_mapping)
    services: Mapping[str, ServiceConfig] = field(default_factory=_empty_mapping)
    quotas: QuotasConfig = field(default_factory=QuotasConfig)


# --- durations ---------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"([+-]?[0-9]+(?:\.[0-9]+)?)[ \t]*([smhd]?)")
# Past this, adding the duration to a datetime overflows somewhere deep in the runner.
_MAX_DURATION = 100 * 365 * 86400


def parse_duration(value: object, key: str) -> float:
    """Seconds from a number of seconds or a string such as "30s", "5m", "12h", "30d"."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise ConfigError(key, f'{value!r} is not a duration (seconds, or e.g. "30s", "5m", "12h", "30d")')
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(key, f"{value!r} is not a finite number of seconds")
        seconds = float(value)
    else:
        raise ConfigError(key, f"must be a duration (seconds, or a string such as \"5m\"), not {_kind(value)}")
    if seconds < 0:
        raise ConfigError(key, f"{value!r} must not be negative")
    if seconds > _MAX_DURATION:
        raise ConfigError(key, f"{value!r} is longer than 100 years")
    return seconds


def _positive_duration(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds == 0:
        raise ConfigError(key, "must be longer than 0 s")
    return seconds


def _format_duration(seconds: float) -> str | float:
    """The largest whole unit that says `seconds` exactly ("12h"); else the plain number."""
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return "0s" if seconds == 0 else seconds


# --- reading tables ----------------------------------------------------------------

_MISSING = object()
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    text = repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    return f"{names.get(type(value), type(value).__name__)} {shown}"


class _Table:
    """One TOML table being read; a key the record does not have is an error."""

    def __init__(self, data: object, key: str, known: tuple[str, ...]) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(key, f"must be a table, not {_kind(data)}")
        for name in data:
            if name not in known:
                raise ConfigError(f"{key}.{name}", f"unknown key (known: {', '.join(known)})")
        self.data = data
        self.key = key

    def get(self, name: str, default: Any, check: Callable[[object, str], Any]) -> Any:
        value = self.data.get(name, _MISSING)
        return default if value is _MISSING else check(value, f"{self.key}.{name}")


def _keys(record: type, *, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in fields(record) if f.name not in skip)


def _string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, not {_kind(value)}")
    if not value:
        raise ConfigError(key, "must not be empty")
    return value


def _boolean(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, not {_kind(value)}")
    return value


def _integer(low: int, high: int | None = None) -> Callable[[object, str], int]:
    def check(value: object, key: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, f"must be an integer, not {_kind(value)}")
        if high is not None and not low <= value <= high:
            raise ConfigError(key, f"{value} is out of range {low}-{high}")
        if value < low:
            raise ConfigError(key, f"must be {low} or more, not {value}")
        return value
    return check


def _choice(*allowed: str) -> Callable[[object, str], str]:
    """One of `allowed`, any case, returned spelt as in `allowed`."""
    def check(value: object, key: str) -> str:
        text = _string(value, key)
        for option in allowed:
            if text.lower() == option.lower():
                return option
        raise ConfigError(key, f"{text!r} is not one of {', '.join(allowed)}")
    return check


def _timezone(value: object, key: str) -> str:
    name = _string(value, key)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(key, f"{name!r} is not a known IANA time zone") from None
    return name


def _command(known: frozenset[str]) -> Callable[[object, str], tuple[str, ...]]:

    def check(value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise ConfigError(key, f"must be a non-empty array of strings (argv), not {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{key}[{index}]", f"must be a string, not {_kind(item)}")
            for name in _PLACEHOLDER.findall(item):
                if name not in known:
                    shown = ", ".join("{" + n + "}" for n in sorted(known))
                    raise ConfigError(f"{key}[{index}]", f"unknown placeholder {{{name}}} (known: {shown})")
        # The program is fixed by whoever wrote the config, never by a value from a request.
        if not value[0] or _PLACEHOLDER.search(value[0]):
            raise ConfigError(f"{key}[0]", "the program must be a fixed, non-empty path")
        return tuple(value)
    return check


def _base_url(value: object, key: str) -> str:
    url = _string(value, key)
    if "?" in url or "#" in url:
        raise ConfigError(key, f"{url!r} must not have a query or a fragment")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ConfigError(key, f"{url!r} must not contain spaces or control characters")
    parts = urllib.parse.urlsplit(url)
    try:
        _ = parts.port  # reading the port is what checks it
    except ValueError:
        raise ConfigError(key, f"{url!r} has an invalid port") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, f"{url!r} is not an http(s) URL with a host")
    return url.rstrip("/")


def _headers(value: object, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a table of header names to values, not {_kind(value)}")
    pairs = []
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"{key}.{name}", "is not a valid header name (letters, digits and !#$%&'*+.^_`|~- only)")
        if not isinstance(text, str):
            raise ConfigError(f"{key}.{name}", f"must be a string, not {_kind(text)}")
        if any(ch in text for ch in "\r\n\0"):
            raise ConfigError(f"{key}.{name}", "must not contain CR, LF or NUL")
        pairs.append((name, text))
    return tuple(pairs)


# --- sections ----------------------------------------------------------------------

def _server(data: object) -> ServerConfig:
    t, d = _Table(data, "server", _keys(ServerConfig)), ServerConfig()
    return ServerConfig(
        host=t.get("host", d.host, _string),
        port=t.get("port", d.port, _integer(0, 65535)),
        unix_socket=t.get("unix_socket", d.unix_socket, _string),
        max_body=t.get("max_body", d.max_body, _integer(1)),
        max_connections=t.get("max_connections", d.max_connections, _integer(1, 1_000_000)),
        reserved_fds=t.get("reserved_fds", d.reserved_fds, _integer(16, 1_000_000)),
        listen_backlog=t.get("listen_backlog", d.listen_backlog, _integer(1, 65535)),
        header_timeout=t.get("header_timeout", d.header_timeout, _positive_duration),
        body_timeout=t.get("body_timeout", d.body_timeout, _positive_duration),
        keepalive_timeout=t.get("keepalive_timeout", d.keepalive_timeout, _positive_duration),
    )


def _database(data: object) -> DatabaseConfig:
    t, d = _Table(data, "database", _keys(DatabaseConfig)), DatabaseConfig()
    return DatabaseConfig(
        path=t.get("path", d.path, _string),
        url=t.get("url", d.url, _postgres_url),
        instance=t.get("instance", d.instance, _instance_name),
        lease_ttl=t.get("lease_ttl", d.lease_ttl, _lease_ttl),
        synchronous=t.get("synchronous", d.synchronous, _choice("OFF", "NORMAL", "FULL", "EXTRA")),
        pool_size=t.get("pool_size", d.pool_size, _integer(1, 200)),
    )


def _postgres_url(value: object, key: str) -> str:
    text = _string(value, key)
    if not is_server_url(text):
        raise ConfigError(key, f"must be a postgresql:// URL (a file goes in database.path), got {text[:40]!r}")
    return text


def _instance_name(value: object, key: str) -> str:
    text = _string(value, key)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}", text):
        raise ConfigError(key, "must be 1-63 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    return text


def _lease_ttl(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if not 1.0 <= seconds <= 60.0:
        raise ConfigError(key, f"must be between 1s and 60s, got {value!r}")
    return seconds


def is_server_url(target: str) -> bool:
    """Whether `--db` / `[database]` names a PostgreSQL server rather than a SQLite file."""
    return target.startswith(("postgresql://", "postgres://"))


def _scheduler(data: object) -> SchedulerConfig:
    t, d = _Table(data, "scheduler", _keys(SchedulerConfig)), SchedulerConfig()
    return SchedulerConfig(
        timezone=t.get("timezone", d.timezone, _timezone),
        max_concurrent_runs=t.get("max_concurrent_runs", d.max_concurrent_runs, _integer(1)),
        misfire_grace=t.get("misfire_grace", d.misfire_grace, parse_duration),
        misfire_max=t.get("misfire_max", d.misfire_max, _integer(1)),
        shutdown_grace=t.get("shutdown_grace", d.shutdown_grace, parse_duration),
        retention_sweep=t.get("retention_sweep", d.retention_sweep, parse_duration),
        history_retention=t.get("history_retention", d.history_retention, parse_duration),
        fire_lead=t.get("fire_lead", d.fire_lead, _fire_lead),
    )


def _auth(data: object) -> AuthConfig:
    t, d = _Table(data, "auth", _keys(AuthConfig)), AuthConfig()
    return AuthConfig(
        token_ttl=t.get("token_ttl", d.token_ttl, parse_duration),
        login_max_failures=t.get("login_max_failures", d.login_max_failures, _integer(1)),
        login_lockout=t.get("login_lockout", d.login_lockout, parse_duration),
        login_budget=t.get("login_budget", d.login_budget, _integer(1, 1_000_000)),
        login_budget_per_minute=t.get("login_budget_per_minute", d.login_budget_per_minute,
                                      _integer(1, 1_000_000)),
        login_max_delay=t.get("login_max_delay", d.login_max_delay, _max_delay),
        login_hash_concurrency=t.get("login_hash_concurrency", d.login_hash_concurrency, _integer(1, 64)),
        trusted_proxies=t.get("trusted_proxies", d.trusted_proxies, _proxies),
    )


MAX_LOGIN_DELAY = 60.0


def _max_delay(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds > MAX_LOGIN_DELAY:
        raise ConfigError(key, f"{value!r} is longer than {MAX_LOGIN_DELAY:.0f} s: a login would wait too long")
    return seconds


UNIX_PEER = "unix"
"""In `trusted_proxies`: connections over the Unix socket come from a trusted proxy."""


def _proxies(value: object, key: str) -> tuple[str, ...]:
    """Addresses or networks ("10.0.0.0/8", "::1"), or "unix"; each kept in its normal form."""
    if not isinstance(value, list):
        raise ConfigError(key, f"must be an array of addresses or networks, not {_kind(value)}")
    found = []
    for index, item in enumerate(value):
        text = _string(item, f"{key}[{index}]")
        if text == UNIX_PEER:
            found.append(text)
            continue
        try:
            found.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ConfigError(f"{key}[{index}]", f"{text!r} is not an IP address or network, nor \"unix\"") from None
    return tuple(dict.fromkeys(found))


def _logging(data: object) -> LoggingConfig:
    t, d = _Table(data, "logging", _keys(LoggingConfig)), LoggingConfig()
    return LoggingConfig(
        format=t.get("format", d.format, _choice("logfmt", "json")),
        level=t.get("level", d.level, _choice(*LOG_LEVELS)),
    )


_EXECUTOR_VALUES: dict[str, Callable[[object, str], Any]] = {
    "enabled": _boolean, "timeout": parse_duration, "after_first_build": _boolean,
}


def _executors(data: object) -> ExecutorsConfig:
    t = _Table(data, "executors", _keys(ExecutorsConfig))
    sections: dict[str, Any] = {
        name: _executor_section(t.data.get(name, {}), name, record) for name, record in _sections()}
    return ExecutorsConfig(**sections)


def _sections() -> list[tuple[str, Any]]:
    """The `[executors.<section>]` tables, with the record each reads into."""
    factories: list[tuple[str, Any]] = [(f.name, f.default_factory) for f in fields(ExecutorsConfig)]
    return [(name, type(factory())) for name, factory in factories]


def _executor_section(data: object, name: str, record: Any) -> Any:
    table, default = _Table(data, f"executors.{name}", _keys(record)), record()
    values = {
        f.name: table.get(f.name, getattr(default, f.name),
                          _command(record.PLACEHOLDERS) if f.name == "command" else _EXECUTOR_VALUES[f.name])
        for f in fields(record)}
    return record(**values)


def _named_tables(data: object, key: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ConfigError(key, f"must be a table of [{key}.NAME] tables, not {_kind(data)}")
    for name in data:
        if not _NAME.fullmatch(name):
            raise ConfigError(key, f"{name!r} is not a valid name (1-128 of A-Z a-z 0-9 . _ -, first alphanumeric)")
    return data


def _unique_id(seen: dict[int, str], ident: int | None, key: str, section: str, name: str) -> None:
    if ident is None:
        return
    if ident in seen:
        raise ConfigError(f"{key}.id", f"{ident} is already the id of [{section}.{seen[ident]}]")
    seen[ident] = name


def _scopes(data: object) -> Mapping[str, ScopeConfig]:
    scopes: dict[str, ScopeConfig] = {}
    ids: dict[int, str] = {}
    for name, body in _named_tables(data, "scopes").items():
        key = f"scopes.{name}"
        t = _Table(body, key, _keys(ScopeConfig, skip=("name",)))
        if "id" not in t.data:
            raise ConfigError(f"{key}.id", "is required")
        ident = t.get("id", None, _integer(1))
        _unique_id(ids, ident, key, "scopes", name)
        scopes[name] = ScopeConfig(name=name, id=ident)
    return types.MappingProxyType(scopes)


def _services(data: object, scopes: Mapping[str, ScopeConfig]) -> Mapping[str, ServiceConfig]:
    services: dict[str, ServiceConfig] = {}
    ids: dict[int, str] = {}
    for name, body in _named_tables(data, "services").items():
        key = f"services.{name}"
        t, d = _Table(body, key, _keys(ServiceConfig, skip=("name",))), ServiceConfig(name)
        service = ServiceConfig(
            name=name,
            base_url=t.get("base_url", d.base_url, _base_url),
            timeout=t.get("timeout", d.timeout, parse_duration),
            headers=t.get("headers", d.headers, _headers),
            id=t.get("id", d.id, _integer(1)),
            scope=t.get("scope", d.scope, _string),
        )
        if service.scope is not None:
            if service.scope not in scopes:
                raise ConfigError(f"{key}.scope", f"no [scopes.{service.scope}] is declared")
            if service.id is None:
                raise ConfigError(
                    f"{key}.id", "is required when scope is given (maintenance windows name the service by id)")
        _unique_id(ids, service.id, key, "services", name)
        services[name] = service
    return types.MappingProxyType(services)


_MAX_MIN_INTERVAL = 86400.0  # the interval check looks at most one midnight ahead


_MAX_FIRE_LEAD = 1.0


def _fire_lead(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds > _MAX_FIRE_LEAD:
        raise ConfigError(key, f"{value!r} is longer than {_MAX_FIRE_LEAD:g} s")
    return seconds


def _min_interval(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds > _MAX_MIN_INTERVAL:
        raise ConfigError(key, f"{value!r} is longer than a day")
    return seconds


def _quotas(data: object) -> QuotasConfig:
    t, d = _Table(data, "quotas", _keys(QuotasConfig)), QuotasConfig()
    orgs: dict[str, OrgQuotaConfig] = {}
    for name, body in _named_tables(t.data.get("orgs", {}), "quotas.orgs").items():
        o = _Table(body, f"quotas.orgs.{name}", _keys(OrgQuotaConfig, skip=("name",)))
        orgs[name] = OrgQuotaConfig(
            name=name,
            max_schedules=o.get("max_schedules", None, _integer(0)),
            min_interval=o.get("min_interval", None, _min_interval),
            max_concurrent_runs=o.get("max_concurrent_runs", None, _integer(1)),
            max_queued_runs=o.get("max_queued_runs", None, _integer(0)),
        )
    return QuotasConfig(
        max_schedules=t.get("max_schedules", d.max_schedules, _integer(0)),
        max_jobs=t.get("max_jobs", d.max_jobs, _integer(0)),
        min_interval=t.get("min_interval", d.min_interval, _min_interval),
        max_concurrent_runs=t.get("max_concurrent_runs", d.max_concurrent_runs, _integer(1)),
        max_queued_runs=t.get("max_queued_runs", d.max_queued_runs, _integer(0)),
        orgs=types.MappingProxyType(orgs),
    )


# --- public API --------------------------------------------------------------------

def from_dict(data: Mapping) -> Config:
    """A validated Config from parsed TOML; missing keys take their defaults."""
    if not isinstance(data, Mapping):
        raise ConfigError("config", f"must be a table, not {_kind(data)}")
    known = _keys(Config)
    for name in data:
        if name not in known:
            raise ConfigError(name, f"unknown section (known: {', '.join(known)})")
    scopes = _scopes(data.get("scopes", {}))
    return Config(
        server=_server(data.get("server", {})),
        database=_database(data.get("database", {})),
        scheduler=_scheduler(data.get("scheduler", {})),
        auth=_auth(data.get("auth", {})),
        logging=_logging(data.get("logging", {})),
        executors=_executors(data.get("executors", {})),
        scopes=scopes,
        services=_services(data.get("services", {}), scopes),
        quotas=_quotas(data.get("quotas", {})),
    )


def _record_dict(record: Any, durations: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> dict:
    """A record's fields for TOML: None and empty tuples left out, durations spelt "12h"."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name in skip or value is None or value == ():
            continue
        if f.name in durations:
            value = _format_duration(value)
        elif f.name == "headers":
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def to_dict(config: Config) -> dict:
    """The TOML-writable form of `config`; `from_dict(to_dict(c)) == c`."""
    grace = ("misfire_grace", "shutdown_grace", "retention_sweep", "history_retention")
    out = {
        "server": _record_dict(config.server, durations=("header_timeout", "body_timeout", "keepalive_timeout")),
        "database": _record_dict(config.database, durations=("lease_ttl",)),
        "scheduler": _record_dict(config.scheduler, durations=grace),
        "auth": _record_dict(config.auth, durations=("token_ttl", "login_lockout", "login_max_delay")),
        "logging": _record_dict(config.logging),
        "executors": {
            name: _record_dict(getattr(config.executors, name), durations=("timeout",)) for name, _ in _sections()
        },
    }
    if config.scopes:
        out["scopes"] = {n: _record_dict(s, skip=("name",)) for n, s in config.scopes.items()}
    if config.services:
        out["services"] = {
            n: _record_dict(s, durations=("timeout",), skip=("name",)) for n, s in config.services.items()
        }
    out["quotas"] = _record_dict(config.quotas, durations=("min_interval",), skip=("orgs",))
    if config.quotas.orgs:
        out["quotas"]["orgs"] = {
            n: _record_dict(o, durations=("min_interval",), skip=("name",)) for n, o in config.quotas.orgs.items()
        }
    return out


def default() -> Config:
    """The configuration schedd runs with when no file is given."""
    return Config()


def load(path: str | os.PathLike) -> Config:
    """The validated configuration in the TOML file at `path`."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("toml", f"{os.fspath(path)}: {error}") from error
    except OSError as error:
        raise ConfigError("path", f"cannot read {os.fspath(path)}: {error.strerror}") from error
    return from_dict(data)


_HEADER = (
    "# schedd configuration: the defaults, written by `schedd config init`.\n"
    "# etc/schedd.toml in the source tree explains every key.\n\n"
)


def write_default(path: str | os.PathLike) -> None:
    """Write the default configuration to `path`, which must not exist yet."""
    text = _HEADER + tomli_w.dumps(to_dict(default()))
    try:
        with open(path, "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError as error:
        raise ConfigError("path", f"{os.fspath(path)} already exists; not overwriting it") from error
    except OSError as error:
        raise ConfigError("path", f"cannot write {os.fspath(path)}: {error.strerror}") from error


def resolve(path: str | None) -> Config:
    """The configuration from `path` (--config), else from $SCHEDD_CONFIG, else the defaults.

    A file that cannot be read is reported under the flag or variable that named it.
    """
    source = "--config"
    if not path:
        path, source = os.environ.get("SCHEDD_CONFIG"), "SCHEDD_CONFIG"
    if not path:
        return default()
    try:
        return load(path)
    except ConfigError as exc:
        if exc.field == "path":
            raise ConfigError(source, exc.reason) from exc
        raise


def default_db_path(config: Config) -> str:
    """The store: the configured URL, else the configured path, else in $STATE_DIRECTORY, else ./schedd.db."""
    if config.database.url:
        return config.database.url
    if config.database.path:
        return config.database.path
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return os.path.join(state, "schedd.db") if state else "./schedd.db"
