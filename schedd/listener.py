"""The HTTP listener: a bounded number of client connections, each with deadlines.

schedd accepts connections itself instead of leaving it to asyncio's server: it holds
one of `max_connections` slots before it calls accept(), so beyond the cap new
connections wait in the kernel's listen backlog (and past that are refused by it) and
never take a file descriptor the scheduled runs need. The descriptors for the database,
the log, executors' sockets and child processes are kept out of the cap: `budget()`
checks RLIMIT_NOFILE at start, raises the soft limit when it may, and else lowers the
cap and says so.

Each connection must send its request line and headers within `header_timeout` of their
first byte and its body within `body_timeout` of its headers; an idle keep-alive
connection is closed after `keepalive_timeout` (aiohttp's own timer, which also covers
a connection that never sends a byte). Accept errors and closed connections are logged
at most once a second, with a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from schedd import metrics
from schedd.config import Config, ServerConfig

log = logging.getLogger("schedd.server")

# Descriptors the process itself needs whatever its load: stdio, the log file, the
# database's writer and reader with their WAL and shm files, the event loop's selector
# and self-pipe, the listening sockets, and headroom for libraries.
BASE_FDS = 64
# Per run slot: a child's stdin/stdout/stderr pipes and a pidfd, or an executor's socket
# to its service, with room for a retry overlapping a closing socket.
FDS_PER_RUN = 8
MIN_CONNECTIONS = 8
# How long the accept loop pauses after the process ran out of descriptors or memory.
ACCEPT_BACKOFF = 0.05
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def reserved_fds(config: Config) -> int:
    """Descriptors kept out of the connection cap: configured, or BASE_FDS + FDS_PER_RUN per run slot."""
    if config.server.reserved_fds is not None:
        return config.server.reserved_fds
    return BASE_FDS + FDS_PER_RUN * config.scheduler.max_concurrent_runs


@dataclass(frozen=True, slots=True)
class Budget:
    """What RLIMIT_NOFILE allows: the soft limit in force, the reserve, and the connection cap."""

    nofile: int
    reserved: int
    max_connections: int
    configured: int

    @property
    def clamped(self) -> bool:
        return self.max_connections < self.configured


def budget(config: Config) -> Budget:
    """Fit the connection cap and the reserve under RLIMIT_NOFILE, raising the soft limit if allowed."""
    reserve = reserved_fds(config)
    wanted = config.server.max_connections
    need = wanted + reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. a seccomp filter that forbids setrlimit
            log.warning("action=nofile_not_raised nofile=%d wanted=%d error=%r", soft, target, str(exc))
    if soft == resource.RLIM_INFINITY or soft >= need:
        found = Budget(need if soft == resource.RLIM_INFINITY else soft, reserve, wanted, wanted)
    else:
        found = Budget(soft, reserve, max(MIN_CONNECTIONS, soft - reserve), wanted)
    if found.clamped:
        log.warning("action=max_connections_clamped nofile=%d reserved_fds=%d max_connections=%d configured=%d",
                    found.nofile, found.reserved, found.max_connections, found.configured)
    log.info("action=fd_budget nofile=%d reserved_fds=%d max_connections=%d",
             found.nofile, found.reserved, found.max_connections)
    return found


class Throttled:
    """A warning at most once per `interval` for one kind of event, with how many it stands for.

    `emit(count, total, *detail)` writes the line: each kind has its own literal format, so
    its fields are structured and quoted by the log formatter like any other line.
    """

    def __init__(self, emit: Callable[..., None], interval: float = 1.0) -> None:
        self.emit = emit
        self.interval = interval
        self.total = 0
        self._pending = 0
        self._last = float("-inf")
        self._detail: tuple[Any, ...] = ()
        self._handle: asyncio.TimerHandle | None = None

    def note(self, *detail: Any) -> None:
        self.total += 1
        self._pending += 1
        self._detail = detail
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last >= self.interval:
            self._emit()
        else:
            self._handle = loop.call_at(self._last + self.interval, self._emit)

    def _emit(self) -> None:
        self._handle = None
        if not self._pending:
            return
        self.emit(self._pending, self.total, *self._detail)
        self._pending = 0
        self._last = asyncio.get_running_loop().time()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._emit()


def _log_accept_failed(count: int, total: int, error: str) -> None:
    metrics.LIMITS.labels("server.reserved_fds").inc(count)
    log.warning("action=accept_failed count=%d total=%d error=%s", count, total, error)


def _log_timeout(count: int, total: int, phase: str, limit: float) -> None:
    metrics.LIMITS.labels(f"server.{'header' if phase == 'headers' else phase}_timeout").inc(count)
    log.warning("action=http_timeout count=%d total=%d phase=%s limit=%gs", count, total, phase, limit)


def _log_at_cap(count: int, total: int, max_connections: int) -> None:
    metrics.LIMITS.labels("server.max_connections").inc(count)
    log.warning("action=connections_at_cap count=%d total=%d max_connections=%d", count, total, max_connections)


class Guard:
    """The connection slots and the log lines every connection of one listener shares."""

    def __init__(self, server: ServerConfig, max_connections: int) -> None:
        self.config = server
        self.max_connections = max_connections
        self.slots = asyncio.Semaphore(max_connections)
        self.open = 0
        self.accept_errors = Throttled(_log_accept_failed)
        self.timeouts = Throttled(_log_timeout)
        self.waiting = Throttled(_log_at_cap)

    def close(self) -> None:
        for throttled in (self.accept_errors, self.timeouts, self.waiting):
            throttled.cancel()


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection handler with a slot of the cap and deadlines for a request's head and body.

    It reads two of aiohttp's internals, both stable through 3.x: `_request_count` (the
    requests parsed so far) and `_messages` (parsed requests not yet handled).
    """

    def __init__(self, manager: web.Server, *, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: Any = None  # the payload of the last request, while it is still arriving
        self._released = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard.open += 1
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        if not self._released:
            self._released = True
            self._guard.open -= 1
            self._guard.slots.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a request's head is complete
            self._cancel_timers()
            payload = self._messages[-1][1] if self._messages else None
            if payload is not None and not payload.is_eof():
                self._body = payload
                self._body_timer = self._at(self._guard.config.body_timeout, self._body_expired)
            return
        if self._body is not None and not self._body.is_eof():
            return  # more of the body; its deadline is already set
        self._body = None
        if data and self._head_timer is None:
            self._head_timer = self._at(self._guard.config.header_timeout, self._head_expired)

    def _at(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, callback)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        self._guard.timeouts.note("headers", self._guard.config.header_timeout)
        self.force_close()

    def _body_expired(self) -> None:
        self._body_timer = None
        if self._body is None or self._body.is_eof():
            return
        self._guard.timeouts.note("body", self._guard.config.body_timeout)
        self.force_close()


class BoundedSite(web.BaseSite):
    """A site that accepts on its own sockets, holding a slot of the cap before each accept()."""

    def __init__(self, runner: web.BaseRunner, sockets: list[socket.socket], guard: Guard,
                 handler_args: dict[str, Any]) -> None:
        super().__init__(runner)
        self._sockets = sockets
        self._guard = guard
        self._handler_args = handler_args
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return ", ".join(str(address) for address in self.addresses)

    @property
    def addresses(self) -> list[Any]:
        return [sock.getsockname() for sock in self._sockets]

    async def start(self) -> None:
        await super().start()
        for sock in self._sockets:
            self._tasks.append(asyncio.create_task(self._accept(sock), name="schedd-accept"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        self._guard.close()
        await super().stop()

    def _protocol(self) -> GuardedHandler:
        server = self._runner.server
        assert server is not None  # noqa: S101 - the runner is set up before any site
        return GuardedHandler(server, guard=self._guard, loop=asyncio.get_running_loop(), **self._handler_args)

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        guard = self._guard
        while True:
            if guard.slots.locked():
                guard.waiting.note(guard.max_connections)
            await guard.slots.acquire()
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                guard.slots.release()
                if exc.errno in _OUT_OF_RESOURCES:
                    guard.accept_errors.note(errno.errorcode.get(exc.errno or 0, str(exc.errno)))
                    await asyncio.sleep(ACCEPT_BACKOFF)
                continue  # ECONNABORTED and the like: that client is gone, take the next
            except BaseException:
                guard.slots.release()
                raise
            try:
                await loop.connect_accepted_socket(self._protocol, conn)
            except OSError as exc:  # could not set the connection up: drop it, keep listening
                conn.close()
                guard.slots.release()
                guard.accept_errors.note(exc.strerror or str(exc))


async def bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address of `host` (as asyncio's create_server binds them)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_unix(path: str, backlog: int) -> list[socket.socket]:
    """A listening Unix socket at `path`; a stale socket file left there by a crash is replaced."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return [sock]


def handler_args(server: ServerConfig) -> dict[str, Any]:
    """What every connection handler is made with: no access log (schedd logs each request itself)."""
    return {"access_log": None, "keepalive_timeout": server.keepalive_timeout}
