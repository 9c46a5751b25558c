"""Command line: serve, config, db, org, user, token, cron. Exit 2 on bad input."""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn

from schedd import __version__
from schedd import config as config_mod
from schedd.errors import NotFound, ScheddError
from schedd.store.lock import DatabaseLock
from schedd.timefmt import iso, utc_compact, utc_seconds

log = logging.getLogger("schedd")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ScheddError as exc:
        print(f"schedd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (`schedd serve: argument --port: ...`) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="schedd", description="A scheduler daemon for one host.")
    parser.add_argument("--version", action="version", version=f"schedd {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str, *, db: bool = True,
                parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        p.add_argument("--config", help="TOML config file (default: $SCHEDD_CONFIG, else built-in defaults)")
        if db:
            p.add_argument("--db", help="SQLite database file, or a postgresql:// URL (default: [database] url, "
                                        "[database] path, $STATE_DIRECTORY/schedd.db or ./schedd.db)")
        return p

    p = command("serve", _serve, "run the daemon (in the foreground unless --daemon)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port to listen on (default 8470; 0 picks a free one)")
    p.add_argument("--unix-socket", metavar="PATH",
                   help="listen on this Unix socket instead of host:port (default: [server] unix_socket)")
    p.add_argument("--daemon", action="store_true",
                   help="detach into the background (hosts without systemd); needs --pidfile")
    p.add_argument("--pidfile", metavar="PATH", help="with --daemon: write the daemon's pid here")
    p.add_argument("--log-file", metavar="PATH",
                   help="append log lines to PATH (default: stderr; syslog with --daemon)")

    cfg = sub.add_parser("config", help="write or check a config file").add_subparsers(metavar="ACTION")
    p = cfg.add_parser("init", help="write the default config to PATH")
    p.add_argument("path")
    p.set_defaults(func=_config_init)
    p = cfg.add_parser("check", help="validate the config at PATH (exit 2 naming the bad key)")
    p.add_argument("path")
    p.set_defaults(func=_config_check)

    dbp = sub.add_parser("db", help="database maintenance").add_subparsers(metavar="ACTION")
    command("migrate", _db_migrate, "apply pending migrations", parent=dbp)
    p = command("backup", _db_backup, "online backup of the database to PATH", parent=dbp)
    p.add_argument("path")
    p = command("restore", _db_restore, "replace the database with BACKUP (the daemon must be stopped)",
                parent=dbp)
    p.add_argument("backup", metavar="BACKUP")
    p = dbp.add_parser("copy", help="copy every table from SRC to the empty DST (an SQLite file or a "
                                    "postgresql:// URL each), then compare row counts",
                       description="copy every table from SRC to the empty DST (an SQLite file or a "
                                   "postgresql:// URL each), then compare row counts")
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DST")
    p.set_defaults(func=_db_copy)

    orgp = sub.add_parser("org", help="organizations").add_subparsers(metavar="ACTION")
    p = command("add", _org_add, "create an organization", parent=orgp)
    p.add_argument("name")

    userp = sub.add_parser("user", help="users").add_subparsers(metavar="ACTION")
    p = command("add", _user_add, "create a user (prompts for the password)", parent=userp)
    p.add_argument("name")
    p.add_argument("--org", action="append", default=[], help="organization to join (repeatable)")
    p.add_argument("--admin", action="store_true", help="administrator: sees every org and the job APIs")
    p.add_argument("--email")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--create-org", action="store_true", help="create the --org organizations that do not exist")

    _grant_parsers(userp, command)

    tokp = sub.add_parser("token", help="API tokens").add_subparsers(metavar="ACTION")
    p = command("create", _token_create, "print a new API token for USER", parent=tokp)
    p.add_argument("name", metavar="USER")
    p.add_argument("--ttl", help="lifetime such as 30d or 12h (default: [auth] token_ttl)")
    _revocation_parsers(command, userp, tokp)

    cronp = sub.add_parser("cron", help="cron expressions").add_subparsers(metavar="ACTION")
    p = cronp.add_parser("next", help="print the next fire times of EXPR")
    p.add_argument("expr")
    p.add_argument("--tz", default="UTC", help="IANA time zone (default UTC)")
    p.add_argument("--after", help="ISO-8601 start, exclusive (default now)")
    p.add_argument("--count", type=int, default=5, help="how many fire times (default 5)")
    p.set_defaults(func=_cron_next)

    # A command group without its action (`schedd config`) shows that group's help.
    for group in sub.choices.values():
        if group.get_default("func") is None:
            group.set_defaults(func=functools.partial(_group_help, group))
    return parser


def _group_help(group: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    group.print_help(sys.stderr)
    return 2


# -- helpers ---------------------------------------------------------------------------

def _load_config(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.resolve(getattr(args, "config", None))


def _db_path(args: argparse.Namespace, config: config_mod.Config) -> str:
    return getattr(args, "db", None) or config_mod.default_db_path(config)


def _with_db(args: argparse.Namespace, work: Callable[[Any, config_mod.Config], Awaitable[int]]) -> int:
    """Open the store (migrating it), run `work(store, config)`, close."""
    from schedd.store.select import make_store

    config = _load_config(args)

    async def go() -> int:
        store = make_store(_db_path(args, config), config.database)
        await store.open()
        try:
            return await work(store, config)
        finally:
            await store.close()

    return asyncio.run(go())


def _with_accounts(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    """`_with_db` for the account commands: run `work(accounts)` over the database."""
    from schedd.accounts import Accounts

    async def go(db: Any, config: config_mod.Config) -> int:
        return await work(Accounts(db, config.auth))

    return _with_db(args, go)


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()


# -- commands --------------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    from schedd import daemon
    from schedd.store.db import check_database_file

    if args.daemon and not args.pidfile:
        raise ScheddError("--daemon needs --pidfile PATH (it is how the daemon is found and stopped)")
    if args.pidfile and not args.daemon:
        raise ScheddError("--pidfile is only for --daemon")
    if args.daemon:
        owner = daemon.pidfile_owner(os.path.abspath(args.pidfile))
        if owner is not None:
            raise ScheddError(f"already running as pid {owner} ({os.path.abspath(args.pidfile)})")
    # Every path is made absolute before a detached daemon moves to "/"; the config path is
    # kept for SIGHUP, which reads the file again.
    config = config_mod.resolve(args.config)
    config_path = args.config or os.environ.get("SCHEDD_CONFIG") or None
    config_path = config_path and os.path.abspath(config_path)
    shown_db = args.db or config_mod.default_db_path(config)
    if config_mod.is_server_url(shown_db):
        # Several instances share a server: the firing lease, not a lock, keeps each fire single.
        return _serve_locked(args, config, config_path, shown_db, DatabaseLock.none())
    db_path = os.path.abspath(shown_db)
    check_database_file(shown_db)
    # Before anything opens the database: a second daemon on it would recover the first's
    # runs and fire every schedule twice. Held until this process ends.
    lock = DatabaseLock.acquire(shown_db)
    try:
        return _serve_locked(args, config, config_path, db_path, lock)
    finally:
        lock.release()


def _serve_locked(args: argparse.Namespace, config: config_mod.Config, config_path: str | None,
                  db_path: str, lock: DatabaseLock) -> int:
    from schedd import daemon, logs
    from schedd.server import serve

    unix_socket = args.unix_socket or config.server.unix_socket
    unix_socket = unix_socket and os.path.abspath(unix_socket)
    target = _log_target(args)

    ready_fd = None
    if args.daemon:
        outcome = daemon.daemonize(args.pidfile, preserve=[] if lock.fd is None else [lock.fd])
        if isinstance(outcome, int):
            return outcome
        lock.claim()  # the detached daemon's pid, not the parent's
        ready_fd = outcome.ready_fd
    logs.setup(config.logging.format, config.logging.level, target=target, background=True)
    notifier = daemon.Notifier.from_environ(ready_fd=ready_fd)
    try:
        return asyncio.run(serve(config, config_path=config_path, db_path=db_path, host=args.host,
                                 port=args.port, unix_socket=unix_socket, notifier=notifier))
    except BaseException as exc:
        # main() prints a ScheddError on stderr: logged too where stderr is not the log.
        expected = isinstance(exc, (ScheddError, KeyboardInterrupt, SystemExit))
        if not expected or (target is not None and isinstance(exc, ScheddError)):
            log.error("action=serve_failed error=%s", str(exc), exc_info=not expected)
        notifier.failed(str(exc) or type(exc).__name__)
        raise
    finally:
        notifier.close()
        logs.shutdown()


def _log_target(args: argparse.Namespace) -> str | None:
    """Where log lines go: --log-file (checked writable now), syslog when detached, else stderr."""
    from schedd import logs

    if args.log_file:
        path = os.path.abspath(args.log_file)
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise ScheddError(f"--log-file: cannot write {path}: {exc.strerror}") from exc
        return path
    if args.daemon:
        if not os.path.exists(logs.SYSLOG_SOCKET):
            raise ScheddError(f"--daemon: no syslog at {logs.SYSLOG_SOCKET}; pass --log-file PATH")
        return logs.SYSLOG
    return None


def _config_init(args: argparse.Namespace) -> int:
    config_mod.write_default(args.path)
    print(args.path)
    return 0


def _config_check(args: argparse.Namespace) -> int:
    config_mod.load(args.path)
    print(f"{args.path}: ok")
    return 0


def _db_migrate(args: argparse.Namespace) -> int:
    async def work(store: Any, config: config_mod.Config) -> int:
        done = store.applied_migrations
        applied = ", ".join(f"{version:04d}" for version in done)
        if done and done[0] == 1:
            print(f"{store.location}: created the schema (migrations {applied})")
        elif done:
            print(f"{store.location}: applied migrations {applied}")
        else:
            print(f"{store.location}: schema up to date")
        return 0

    return _with_db(args, work)


def _db_backup(args: argparse.Namespace) -> int:
    from schedd.store.db import backup

    config = _load_config(args)
    source = _db_path(args, config)
    if config_mod.is_server_url(source):  # PostgreSQL: every table, in one snapshot, into a new SQLite file
        from schedd.store.copy import backup_to_sqlite

        asyncio.run(backup_to_sqlite(source, args.path))
        print(args.path)
        return 0
    if not os.path.exists(source):
        raise ScheddError(f"no database at {source}")
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = 100 * done // max(1, total)
        if total > 4096 and percent // 10 != shown[0]:
            shown[0] = percent // 10
            print(f"backup: {done}/{total} pages ({percent}%)", file=sys.stderr)

    backup(source, args.path, progress)
    print(args.path)
    return 0


def _db_restore(args: argparse.Namespace) -> int:
    from schedd.store.db import check_database_file, restore
    from schedd.store.lock import DatabaseInUse

    config = _load_config(args)
    target = _db_path(args, config)
    check_database_file(target)  # a mistyped --db is refused before a lock file is made beside it
    try:
        lock = DatabaseLock.acquire(target)
    except DatabaseInUse as exc:
        raise ScheddError(f"{exc}; stop it before restoring") from exc
    with lock:  # no daemon can start on the file while it is replaced
        stamp = utc_compact(time.time())
        aside = restore(args.backup, target, stamp=stamp)
    print(f"{target} restored from {args.backup}")
    if aside is not None:
        print(f"the database it replaced is kept as {aside}")
    return 0


def _db_copy(args: argparse.Namespace) -> int:
    from schedd.store.copy import copy, shown

    copied = asyncio.run(copy(args.source, args.destination))
    for table, rows in copied.counts.items():
        print(f"{table}: {rows} rows")
    print(f"copied {shown(args.source)} to {shown(args.destination)}; row counts agree")
    return 0


def _org_add(args: argparse.Namespace) -> int:
    from schedd.accounts import Accounts

    async def work(db: Any, config: config_mod.Config) -> int:
        await Accounts(db, config.auth).add_org(args.name, at=_now())
        print(args.name)
        return 0

    return _with_db(args, work)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        with open("/dev/tty", "rb"):
            pass
    except OSError:
        raise ScheddError("no terminal to ask for the password: pass --password-stdin "
                          "and write the password to standard input") from None
    try:
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except EOFError:
        raise ScheddError("no password was given") from None
    if again != first:
        raise ScheddError("the passwords differ")
    return first


def _user_add(args: argparse.Namespace) -> int:
    from schedd.accounts import Accounts

    password = _read_password(args)

    async def work(db: Any, config: config_mod.Config) -> int:
        accounts = Accounts(db, config.auth)
        await accounts.ensure_default_org(at=_now())
        try:
            await accounts.create_user(args.name, password, admin=args.admin, orgs=tuple(args.org),
                                       email=args.email, create_orgs=args.create_org, at=_now())
        except NotFound as exc:
            raise ScheddError(f"--org: no organization {exc.ident!r}; create it with "
                              f"`schedd org add {exc.ident}` or pass --create-org") from exc
        print(args.name)
        return 0

    return _with_db(args, work)


# -- scope grants: who may write the maintenance windows of a scope -----------------------

def _grant_parsers(userp: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    p = command("grant", _user_grant, "let a user write the maintenance windows of a scope's services",
                parent=userp)
    p.add_argument("name")
    p.add_argument("--scope", required=True, help="the scope, by its config name or id")
    p = command("revoke", _user_revoke, "take a scope grant back from a user", parent=userp)
    p.add_argument("name")
    p.add_argument("--scope", required=True,
                   help="the scope, by its config name or id (an id no longer in the config too)")


def _user_grant(args: argparse.Namespace) -> int:
    from schedd import grants

    async def work(db: Any, config: config_mod.Config) -> int:
        scope = grants.resolve(config, args.scope)
        held = await grants.grant(db, args.name, scope, at=_now())
        print(f"{args.name} may write the windows of: {grants.describe(config, held)}")
        return 0

    return _with_db(args, work)


def _user_revoke(args: argparse.Namespace) -> int:
    from schedd import grants

    async def work(db: Any, config: config_mod.Config) -> int:
        scope = grants.resolve(config, args.scope, declared=False)
        removed, held = await grants.revoke(db, args.name, scope)
        if not removed:
            print(f"schedd: {args.name} had no grant of scope {scope}", file=sys.stderr)
        print(f"{args.name} may write the windows of: {grants.describe(config, held)}")
        return 0

    return _with_db(args, work)


def _token_create(args: argparse.Namespace) -> int:
    from schedd.accounts import Accounts

    ttl = config_mod.parse_duration(args.ttl, "--ttl") if args.ttl else None

    async def work(db: Any, config: config_mod.Config) -> int:
        token = await Accounts(db, config.auth).create_token(args.name, ttl=ttl, at=_now())
        print(token)
        return 0

    return _with_db(args, work)


# -- revocation: tokens, users and memberships taken back ------------------------------

def _revocation_parsers(command: Callable[..., argparse.ArgumentParser], userp: Any, tokp: Any) -> None:
    p = command("list", _token_list, "list tokens (live ones unless --all); never their secrets", parent=tokp)
    p.add_argument("--user", metavar="NAME", help="only the tokens of this user")
    p.add_argument("--all", action="store_true", help="also revoked and expired tokens")
    p = command("revoke", _token_revoke, "revoke the token with this ID (see `token list`)", parent=tokp)
    p.add_argument("id", metavar="ID", type=_token_id)

    command("list", _user_list, "list users, their orgs and whether they are disabled", parent=userp)
    p = command("disable", _user_disable, "refuse the user's logins and revoke its tokens and sessions",
                parent=userp)
    p.add_argument("name")
    p = command("enable", _user_enable, "let a disabled user log in again", parent=userp)
    p.add_argument("name")
    p = command("passwd", _user_passwd, "set a user's password (prompts for it); revokes its tokens",
                parent=userp)
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--keep-tokens", action="store_true", help="leave the user's tokens and sessions valid")
    p = command("remove", _user_remove, "take a user out of an organization", parent=userp)
    p.add_argument("name")
    p.add_argument("--org", required=True, help="the organization to leave")


def _token_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a token id (a number from `schedd token list`)")
    return int(text)


def _iso(at: float | None) -> str:
    return "-" if at is None else utc_seconds(at)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _token_list(args: argparse.Namespace) -> int:
    from schedd.accounts import Accounts

    async def work(db: Any, config: config_mod.Config) -> int:
        at = _now()
        tokens = await Accounts(db, config.auth).list_tokens(args.user)
        shown = [t for t in tokens if args.all or t.state(at) == "live"]
        _table(("ID", "USER", "KIND", "NAME", "CREATED", "EXPIRES", "STATE"),
               [(str(t.id), t.user, t.kind, t.name or "-", _iso(t.created_at), _iso(t.expires_at), t.state(at))
                for t in shown])
        return 0

    return _with_db(args, work)


def _token_revoke(args: argparse.Namespace) -> int:
    async def work(accounts: Any) -> int:
        revoked = await accounts.revoke_token_id(args.id, at=_now())
        print(f"token {args.id} {'revoked' if revoked else 'was already revoked'}")
        return 0

    return _with_accounts(args, work)


def _user_list(args: argparse.Namespace) -> int:
    async def work(accounts: Any) -> int:
        users = await accounts.list_users()
        _table(("NAME", "ADMIN", "STATE", "ORGS", "CREATED"),
               [(u.name, "yes" if u.is_admin else "no", "disabled" if u.disabled_at is not None else "enabled",
                 ",".join(u.orgs) or "-", _iso(u.created_at)) for u in users])
        return 0

    return _with_accounts(args, work)


def _user_disable(args: argparse.Namespace) -> int:
    async def work(accounts: Any) -> int:
        revoked = await accounts.disable(args.name, at=_now())
        print(f"{args.name} disabled; {revoked} token(s) revoked")
        return 0

    return _with_accounts(args, work)


def _user_enable(args: argparse.Namespace) -> int:
    async def work(accounts: Any) -> int:
        await accounts.enable(args.name, at=_now())
        print(f"{args.name} enabled")
        return 0

    return _with_accounts(args, work)


def _user_passwd(args: argparse.Namespace) -> int:
    from schedd.accounts import Accounts

    password = _read_password(args)

    async def work(db: Any, config: config_mod.Config) -> int:
        revoked = await Accounts(db, config.auth).set_password(
            args.name, password, revoke_tokens=not args.keep_tokens, at=_now())
        print(f"password of {args.name} set; {revoked} token(s) revoked")
        return 0

    return _with_db(args, work)


def _user_remove(args: argparse.Namespace) -> int:
    from schedd.accounts import Accounts

    async def work(db: Any, config: config_mod.Config) -> int:
        if not await Accounts(db, config.auth).remove_member(args.name, args.org):
            raise ScheddError(f"{args.name} is not a member of {args.org}")
        print(f"{args.name} removed from {args.org}")
        return 0

    return _with_db(args, work)


def _cron_next(args: argparse.Namespace) -> int:
    from schedd.cron import load_zone, parse

    cron = parse(args.expr)
    tz = load_zone(args.tz)
    if args.count < 1 or args.count > 10000:
        raise ScheddError("--count: must be from 1 to 10000")
    if args.after:
        try:
            start = datetime.fromisoformat(args.after.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise ScheddError(f"--after: {args.after!r} is not an ISO-8601 date-time") from exc
        if start.tzinfo is None:
            start = start.replace(tzinfo=tz)
        after = start.timestamp()
    else:
        after = _now()
    shown = 0
    for fire in cron.iter_after(after, tz):
        if shown >= args.count:
            break
        print(iso(fire, tz))
        shown += 1
    if not shown:
        raise ScheddError(f"no fire time after {iso(after, tz, seconds=True)}")
    return 0

