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
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import tomli_w

from schedd.errors import ValidationError
from schedd.values import IDENT_RE, NotAChoice, choice


class ConfigError(ValidationError):
    """A configuration value was rejected; `field` is its dotted key."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The `[logging] level` values, any case."""


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


def _one_of(*allowed: str) -> Callable[[object, str], str]:
    """One of `allowed`, any case, returned spelt as in `allowed`."""
    def check(value: object, key: str) -> str:
        text = _string(value, key)
        try:
            found = choice(text, allowed, fold_case=True)
        except NotAChoice as exc:
            raise ConfigError(key, str(exc)) from None
        return text if found is None else found  # None only for "", which _string refused
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


_MAX_MIN_INTERVAL = 86400.0  # the interval check looks at most one midnight ahead


def _min_interval(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds > _MAX_MIN_INTERVAL:
        raise ConfigError(key, f"{value!r} is longer than a day")
    return seconds



_MAX_FIRE_LEAD = 1.0


def _fire_lead(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds > _MAX_FIRE_LEAD:
        raise ConfigError(key, f"{value!r} is longer than {_MAX_FIRE_LEAD:g} s")
    return seconds


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


# --- declaring a key ---------------------------------------------------------------

Check = Callable[[object, str], Any]


def setting(default: Any, check: Check, *, duration: bool = False,
            write: Callable[[Any], Any] | None = None) -> Any:
    """A record field that is a TOML key: its default and the check its value passes.

    Each key is named once, as its record's field; the table readers and `to_dict` take the
    checks and defaults from here. A `duration` is written back as "12h"; `write` turns
    the value into what TOML writes (header pairs into a table).
    """
    return field(default=default, metadata={"check": check, "duration": duration, "write": write})


def required(check: Check) -> Any:
    """A key without a default: leaving it out is an error ("is required")."""
    return field(metadata={"check": check, "duration": False})


# --- the records: every key, its default and its check ----------------------------

@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = setting("127.0.0.1", _string)
    port: int = setting(8470, _integer(0, 65535))
    unix_socket: str | None = setting(None, _string)
    max_body: int = setting(1048576, _integer(1))
    max_connections: int = setting(1024, _integer(1, 1_000_000))
    # None: 64 + 8 per [scheduler] max_concurrent_runs (see schedd.listener)
    reserved_fds: int | None = setting(None, _integer(16, 1_000_000))
    listen_backlog: int = setting(128, _integer(1, 65535))
    header_timeout: float = setting(10.0, _positive_duration, duration=True)
    body_timeout: float = setting(30.0, _positive_duration, duration=True)
    keepalive_timeout: float = setting(75.0, _positive_duration, duration=True)


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    path: str | None = setting(None, _string)  # None: see default_db_path()
    url: str | None = setting(None, _postgres_url)  # postgresql://...: a PostgreSQL server instead of the file
    # this instance's name among those sharing a server; None: the host name
    instance: str | None = setting(None, _instance_name)
    # seconds the firing lease lasts unless renewed; a standby takes over after it
    lease_ttl: float = setting(3.0, _lease_ttl, duration=True)
    # FULL: the WAL is synced at every commit: acknowledged means on disk
    synchronous: str = setting("FULL", _one_of("OFF", "NORMAL", "FULL", "EXTRA"))
    pool_size: int = setting(10, _integer(1, 200))  # PostgreSQL: connections each instance keeps (1-200)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    timezone: str = setting("UTC", _timezone)
    max_concurrent_runs: int = setting(64, _integer(1))
    misfire_grace: float = setting(60.0, parse_duration, duration=True)
    misfire_max: int = setting(10, _integer(1))
    shutdown_grace: float = setting(30.0, parse_duration, duration=True)
    retention_sweep: float = setting(3600.0, parse_duration, duration=True)
    # runs of schedules without a retention of their own; 0 keeps all
    history_retention: float = setting(90 * 86400.0, parse_duration, duration=True)
    # a due batch is read and recorded this long ahead; its runs start on time (0-1 s)
    fire_lead: float = setting(0.1, _fire_lead, duration=True)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    token_ttl: float = setting(43200.0, parse_duration, duration=True)
    login_max_failures: int = setting(5, _integer(1))  # per source address and user id
    login_lockout: float = setting(60.0, parse_duration, duration=True)
    # failed logins, from every address together, before logins slow down
    login_budget: int = setting(100, _integer(1, 1_000_000))
    login_budget_per_minute: int = setting(60, _integer(1, 1_000_000))
    login_max_delay: float = setting(2.0, _max_delay, duration=True)
    login_hash_concurrency: int = setting(1, _integer(1, 64))
    # addresses/networks whose X-Forwarded-For is believed
    trusted_proxies: tuple[str, ...] = setting((), _proxies)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    format: str = setting("logfmt", _one_of("logfmt", "json"))
    level: str = setting("INFO", _one_of(*LOG_LEVELS))


@dataclass(frozen=True, slots=True)
class CommandExecutorConfig:
    """An `[executors.<section>]` table: a command a job family runs its runs with."""

    PLACEHOLDERS: ClassVar[frozenset[str]] = frozenset({"org_id", "project_id", "cube_id", "full_build", "run_id"})
    """What the command can fill in; a placeholder outside the set is a typo caught at load."""

    enabled: bool = setting(True, _boolean)
    command: tuple[str, ...] = setting((), _command(PLACEHOLDERS))
    timeout: float = setting(3600.0, parse_duration, duration=True)


@dataclass(frozen=True, slots=True)
class MaintenanceExecutorConfig:
    PLACEHOLDERS: ClassVar[frozenset[str]] = frozenset({"org_id", "run_id"})

    enabled: bool = setting(True, _boolean)
    command: tuple[str, ...] = setting((), _command(PLACEHOLDERS))
    timeout: float = setting(3600.0, parse_duration, duration=True)
    after_first_build: bool = setting(True, _boolean)


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
    id: int = required(_integer(1))


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    name: str
    base_url: str | None = setting(None, _base_url)
    timeout: float = setting(30.0, parse_duration, duration=True)
    headers: tuple[tuple[str, str], ...] = setting((), _headers, write=dict)
    id: int | None = setting(None, _integer(1))
    scope: str | None = setting(None, _string)


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
    max_schedules: int | None = setting(None, _integer(0))
    min_interval: float | None = setting(None, _min_interval, duration=True)
    max_concurrent_runs: int | None = setting(None, _integer(1))
    max_queued_runs: int | None = setting(None, _integer(0))


@dataclass(frozen=True, slots=True)
class QuotasConfig:
    """[quotas]: what one org may hold and use of what every org shares; admins are exempt
    from the limits on creating schedules (max_schedules, max_jobs, min_interval)."""

    max_schedules: int = setting(10_000, _integer(0))
    max_jobs: int = setting(10_000, _integer(0))
    min_interval: float = setting(60.0, _min_interval, duration=True)
    max_concurrent_runs: int | None = setting(None, _integer(1))
    max_queued_runs: int = setting(1_000, _integer(0))
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




# --- sections ----------------------------------------------------------------------

R = TypeVar("R")


def _read(record: type[R], data: object, key: str, **given: Any) -> R:
    """`record` from its TOML table `key`: each key of the record's fields (but those `given`),
    checked by its field's check, its default when left out. A `name` given is the table's
    own name ([services.NAME]), never a key in it."""
    table = _Table(data, key, _keys(record, skip=("name",) if "name" in given else ()))
    values = dict(given)
    for f in fields(record):  # type: ignore[arg-type]
        if f.name in given or "check" not in f.metadata:
            continue
        if f.name not in table.data and f.default is MISSING:
            raise ConfigError(f"{key}.{f.name}", "is required")
        values[f.name] = table.get(f.name, f.default, f.metadata["check"])
    return record(**values)


def _executors(data: object) -> ExecutorsConfig:
    t = _Table(data, "executors", _keys(ExecutorsConfig))
    sections: dict[str, Any] = {
        name: _read(record, t.data.get(name, {}), f"executors.{name}") for name, record in _sections()}
    return ExecutorsConfig(**sections)


def _sections() -> list[tuple[str, Any]]:
    """The `[executors.<section>]` tables, with the record each reads into."""
    factories: list[tuple[str, Any]] = [(f.name, f.default_factory) for f in fields(ExecutorsConfig)]
    return [(name, type(factory())) for name, factory in factories]


def _named_tables(data: object, key: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ConfigError(key, f"must be a table of [{key}.NAME] tables, not {_kind(data)}")
    for name in data:
        if not IDENT_RE.fullmatch(name):
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
        scope = _read(ScopeConfig, body, f"scopes.{name}", name=name)
        _unique_id(ids, scope.id, f"scopes.{name}", "scopes", name)
        scopes[name] = scope
    return types.MappingProxyType(scopes)


def _services(data: object, scopes: Mapping[str, ScopeConfig]) -> Mapping[str, ServiceConfig]:
    services: dict[str, ServiceConfig] = {}
    ids: dict[int, str] = {}
    for name, body in _named_tables(data, "services").items():
        key = f"services.{name}"
        service = _read(ServiceConfig, body, key, name=name)
        if service.scope is not None:
            if service.scope not in scopes:
                raise ConfigError(f"{key}.scope", f"no [scopes.{service.scope}] is declared")
            if service.id is None:
                raise ConfigError(
                    f"{key}.id", "is required when scope is given (maintenance windows name the service by id)")
        _unique_id(ids, service.id, key, "services", name)
        services[name] = service
    return types.MappingProxyType(services)


def _quotas(data: object) -> QuotasConfig:
    t = _Table(data, "quotas", _keys(QuotasConfig))
    orgs = {name: _read(OrgQuotaConfig, body, f"quotas.orgs.{name}", name=name)
            for name, body in _named_tables(t.data.get("orgs", {}), "quotas.orgs").items()}
    return _read(QuotasConfig, data, "quotas", orgs=types.MappingProxyType(orgs))


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
        server=_read(ServerConfig, data.get("server", {}), "server"),
        database=_read(DatabaseConfig, data.get("database", {}), "database"),
        scheduler=_read(SchedulerConfig, data.get("scheduler", {}), "scheduler"),
        auth=_read(AuthConfig, data.get("auth", {}), "auth"),
        logging=_read(LoggingConfig, data.get("logging", {}), "logging"),
        executors=_executors(data.get("executors", {})),
        scopes=scopes,
        services=_services(data.get("services", {}), scopes),
        quotas=_quotas(data.get("quotas", {})),
    )


def _record_dict(record: Any, skip: tuple[str, ...] = ()) -> dict:
    """A record's keys for TOML: None and empty tuples left out, durations spelt "12h"."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name in skip or value is None or value == ():
            continue
        if f.metadata.get("duration"):
            value = _format_duration(value)
        elif f.metadata.get("write"):
            value = f.metadata["write"](value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def to_dict(config: Config) -> dict:
    """The TOML-writable form of `config`; `from_dict(to_dict(c)) == c`."""
    out = {
        "server": _record_dict(config.server),
        "database": _record_dict(config.database),
        "scheduler": _record_dict(config.scheduler),
        "auth": _record_dict(config.auth),
        "logging": _record_dict(config.logging),
        "executors": {name: _record_dict(getattr(config.executors, name)) for name, _ in _sections()},
    }
    if config.scopes:
        out["scopes"] = {n: _record_dict(s, skip=("name",)) for n, s in config.scopes.items()}
    if config.services:
        out["services"] = {
            n: _record_dict(s, skip=("name",)) for n, s in config.services.items()
        }
    out["quotas"] = _record_dict(config.quotas, skip=("orgs",))
    if config.quotas.orgs:
        out["quotas"]["orgs"] = {
            n: _record_dict(o, skip=("name",)) for n, o in config.quotas.orgs.items()
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
