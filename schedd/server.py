"""`schedd serve`: the daemon until SIGTERM or SIGINT; SIGHUP reloads the config file.

Start-up order is what READY=1 promises: database open and recovered, heap loaded,
listener bound. Shutdown is the reverse, with STOPPING=1 first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import fields

from aiohttp import web

from schedd import config as config_mod
from schedd import daemon, listener, logs
from schedd.api.ops import engine_turning
from schedd.app import make_app
from schedd.compose import build_core
from schedd.config import Config
from schedd.core import Core
from schedd.errors import ScheddError
from schedd.http.common import ACCOUNTS

log = logging.getLogger("schedd.server")


def status_line(core: Core) -> str:
    """What `systemctl status` shows beside the unit."""
    runner = core.runner
    return f"{len(core.engine)} timers armed, {runner.in_flight} runs in flight, {runner.queued} queued"


async def serve(
    config: Config, *, config_path: str | None = None, db_path: str | None = None,
    host: str | None = None, port: int | None = None, unix_socket: str | None = None,
    notifier: daemon.Notifier | None = None,
) -> int:
    """Run until a stop signal; exit status 0 after a clean shutdown."""
    notifier = notifier or daemon.Notifier.from_environ()
    watchdog = daemon.watchdog_interval()
    fds = listener.budget(config)
    core = build_core(config, db_path=db_path)
    app = make_app(core)
    runner = web.AppRunner(app, handle_signals=False, **listener.handler_args(config.server))
    await runner.setup()  # starts the core: database open, runs recovered, heap loaded
    unix_socket = unix_socket or config.server.unix_socket
    try:
        await _listen(runner, core, host or config.server.host,
                      config.server.port if port is None else port, unix_socket, fds.max_connections)
    except BaseException:
        await runner.cleanup()
        raise

    reloader = Reloader(app, core, config_path, notifier)
    signals = daemon.Signals(reloader.reload)
    background = [
        asyncio.create_task(signals.reloads(), name="schedd-reload"),
        asyncio.create_task(daemon.report_status(notifier, lambda: status_line(core)), name="schedd-status"),
    ]
    keep_alive = None
    if watchdog is not None:
        def healthy() -> bool:
            return engine_turning(core) or signals.stop.is_set()  # stopping: the engine stands still

        keep_alive = asyncio.create_task(daemon.keep_alive(notifier, watchdog, healthy), name="schedd-watchdog")
    notifier.ready(status_line(core))

    await signals.stop.wait()
    notifier.stopping()
    log.info("action=stopping signal=%s grace=%gs in_flight=%d", signals.stopped_by,
             core.config.scheduler.shutdown_grace, core.runner.in_flight)
    await _cancel(background)
    await runner.cleanup()
    finished, interrupted = core.stopped or (0, 0)
    log.info("action=stopped runs_finished=%d runs_interrupted=%d", finished, interrupted)
    # Pinging until the end: a shutdown that waits for runs is not a stall. A second
    # TERM or INT meanwhile changes nothing (systemd's TimeoutStopSec ends a stuck stop).
    await _cancel([keep_alive] if keep_alive else [])
    signals.remove()
    if unix_socket:
        with contextlib.suppress(OSError):
            os.unlink(unix_socket)
    notifier.close()
    return 0


async def _listen(runner: web.AppRunner, core: Core, host: str, port: int, unix_socket: str | None,
                  max_connections: int) -> None:
    server = core.config.server
    where = unix_socket or f"{host}:{port}"
    try:
        if unix_socket:
            sockets = listener.bind_unix(unix_socket, server.listen_backlog)
        else:
            sockets = await listener.bind(host, port, server.listen_backlog)
    except OSError as exc:
        raise ScheddError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
    guard = listener.Guard(server, max_connections)
    site = listener.BoundedSite(runner, sockets, guard, listener.handler_args(server))
    await site.start()
    timers = len(core.engine)
    if unix_socket:
        log.info("action=listening unix_socket=%s db=%s timers=%d max_connections=%d", unix_socket, core.store.location,
                 timers, max_connections)
        return
    actual = next((addr[1] for addr in site.addresses if isinstance(addr, tuple)), port)
    log.info("action=listening host=%s port=%d db=%s timers=%d max_connections=%d", host, actual, core.store.location,
             timers, max_connections)


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Reloader:
    """SIGHUP: read the config file again and swap it in, or refuse it and keep the old one.

    Schedules, timers and runs are never touched. Server and database settings are
    read at start only; a reload that changes them says they need a restart.
    """

    def __init__(self, app: web.Application, core: Core, path: str | None, notifier: daemon.Notifier) -> None:
        self.app = app
        self.core = core
        self.path = path
        self.notifier = notifier

    def reload(self) -> bool:
        self.notifier.reloading()
        try:
            return self._reload()
        except Exception:  # the daemon keeps serving; the next SIGHUP may work
            log.exception("action=reload_failed config=%s", self.path or "-")
            return False
        finally:
            self.notifier.ready(status_line(self.core))

    def _reload(self) -> bool:
        shown = self.path or "-"
        try:
            new = config_mod.load(self.path) if self.path else config_mod.default()
        except config_mod.ConfigError as exc:
            log.error("action=reload_refused config=%s error=%s", shown, str(exc))
            return False
        old = self.core.config
        logs.reconfigure(new.logging.format, new.logging.level)
        self.core.reconfigure(new)
        self.app[ACCOUNTS].reconfigure(new.auth)
        restart = _restart_keys(old, new)
        log.info("action=reloaded config=%s restart_needed=%s", shown, ",".join(restart) or "-")
        return True


def _restart_keys(old: Config, new: Config) -> list[str]:
    """Keys of [server] and [database] that differ: read once, at start."""
    changed = []
    for section in ("server", "database"):
        before, after = getattr(old, section), getattr(new, section)
        changed += [f"{section}.{f.name}" for f in fields(before)
                    if getattr(before, f.name) != getattr(after, f.name)]
    return changed
