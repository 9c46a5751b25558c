"""`schedd serve`: the daemon in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from schedd.api.app import make_app
from schedd.config import Config
from schedd.core import Core

log = logging.getLogger("schedd.server")


async def serve(
    config: Config, *, db_path: str | None = None, host: str | None = None, port: int | None = None
) -> int:
    """Run until a stop signal; exit status 0 after a clean shutdown."""
    core = Core(config, db_path=db_path)
    app = make_app(core)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()  # starts the core: database open, heap loaded
    host = host or config.server.host
    port = config.server.port if port is None else port
    site = web.TCPSite(runner, host, port)
    await site.start()
    actual_port = next((addr[1] for addr in runner.addresses if isinstance(addr, tuple)), port)
    log.info("action=listening host=%s port=%d db=%s timers=%d", host, actual_port, core.db.path, len(core.engine))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("action=stopping grace=%gs in_flight=%d", config.scheduler.shutdown_grace, core.runner.in_flight)
    await runner.cleanup()
    return 0
