"""Process plumbing: sd_notify, the watchdog, HUP/TERM/INT, detaching with python-daemon.

Nothing here knows the scheduler: `server.serve()` hands in what to report and what to
do on a signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from schedd.clock import Clock, WallClock
from schedd.errors import ScheddError

log = logging.getLogger("schedd.daemon")

STATUS_EVERY = 5.0
WALL = WallClock()
"""Seconds between STATUS= refreshes (sent only when the text changed)."""
READY_TIMEOUT = 120.0
"""How long `serve --daemon` waits for the detached daemon to be ready before giving up."""


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """sd_notify(3): datagrams to the service manager's socket; a no-op without one.

    With `ready_fd` (the pipe of `serve --daemon`), the first READY=1 is also written
    there, so the process that detached us learns that we are up, and the pipe closed.
    """

    def __init__(self, address: str | None = None, *, ready_fd: int | None = None) -> None:
        self.address = address or None
        self._ready_fd = ready_fd
        self._sock: socket.socket | None = None
        self._dropped = False
        if self.address:
            # A leading "@" names a socket in the abstract namespace.
            self._target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never stall the event loop on a service manager that does not read.
            self._sock.setblocking(False)

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None, *,
                     ready_fd: int | None = None) -> Notifier:
        """The notifier $NOTIFY_SOCKET asks for; the variable is removed so commands do not see it."""
        environ = os.environ if environ is None else environ
        return cls(environ.pop("NOTIFY_SOCKET", None), ready_fd=ready_fd)

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines in one datagram; False when there is nobody to tell."""
        if self._ready_fd is not None and "READY=1" in assignments:
            fd, self._ready_fd = self._ready_fd, None
            _tell(fd, f"READY {os.getpid()}")
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(assignments).encode(), self._target)
        except OSError as exc:
            if not self._dropped:
                self._dropped = True
                log.warning("action=notify_failed socket=%s error=%r", self.address, str(exc))
            return False
        self._dropped = False
        return True

    def failed(self, reason: str) -> None:
        """Tell the process waiting in `daemonize()` why start-up failed (systemd sees the exit)."""
        if self._ready_fd is not None:
            fd, self._ready_fd = self._ready_fd, None
            _tell(fd, f"ERROR {reason}")

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd tell this reload from an older one (systemd.service(5)).
        return self.send("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: MutableMapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or None when not asked.

    The variables are removed from the environment, as sd_watchdog_enabled(3) does with
    unset_environment, so a command run by schedd does not think it is watched.
    """
    environ = os.environ if environ is None else environ
    usec, pid = environ.pop("WATCHDOG_USEC", None), environ.pop("WATCHDOG_PID", None)
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec or 0)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


async def keep_alive(notifier: Notifier, interval: float, healthy: Callable[[], bool], *,
                     clock: Clock = WALL) -> None:
    """WATCHDOG=1 every `interval` from the event loop, while `healthy()` says the engine turns.

    A blocked event loop sends nothing; a running loop whose engine stalled sends nothing
    either. Past WatchdogSec systemd kills the daemon and restarts it.
    """
    withheld = False
    while True:
        if healthy():
            notifier.watchdog()
            withheld = False
        elif not withheld:
            withheld = True
            log.error("action=watchdog_withheld reason=engine_loop_stalled")
        await clock.sleep(interval)


async def report_status(notifier: Notifier, describe: Callable[[], str], every: float = STATUS_EVERY, *,
                        clock: Clock = WALL) -> None:
    """STATUS=describe() every `every` seconds, when it changed."""
    shown = None
    while True:
        await clock.sleep(every)
        text = describe()
        if text != shown:
            notifier.status(text)
            shown = text


class Signals:
    """TERM and INT set `stop`; HUP calls `on_reload` (queued, one reload at a time)."""

    def __init__(self, on_reload: Callable[[], object]) -> None:
        self.stop = asyncio.Event()
        self.stopped_by: str | None = None
        self._on_reload = on_reload
        self._reload_wanted = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._request_stop, sig)
        self._loop.add_signal_handler(signal.SIGHUP, self._reload_wanted.set)

    def _request_stop(self, sig: int) -> None:
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(sig).name
        self.stop.set()

    async def reloads(self) -> None:
        """Run `on_reload` for each SIGHUP (several arriving during a reload make one more)."""
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            self._on_reload()

    def remove(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._loop.remove_signal_handler(sig)


# -- detaching (hosts without systemd) ------------------------------------------------


@dataclass
class Detached:
    """In the daemon: the open python-daemon context, and the pipe to signal readiness on."""

    context: Any  # daemon.DaemonContext, closed (pidfile removed) at exit
    ready_fd: int


def pidfile_owner(path: str) -> int | None:
    """The live process a pidfile names, or None (no file, garbage, or a dead process)."""
    try:
        with open(path, encoding="ascii") as file:
            pid = int(file.readline().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def daemonize(pidfile: str, *, ready_timeout: float = READY_TIMEOUT,
              preserve: list[int] | None = None) -> Detached | int:
    """Detach into the background; call before any event loop or thread exists.

    Returns an exit status in the calling process, once the daemon said READY (0) or
    died or stayed silent (1); returns `Detached` in the daemon, whose pidfile is written.
    The descriptors in `preserve` (the database lock) stay open in the daemon.
    """
    import daemon
    import daemon.pidfile

    pidfile = os.path.abspath(pidfile)
    owner = pidfile_owner(pidfile)
    if owner is not None:
        raise ScheddError(f"already running as pid {owner} ({pidfile})")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pidfile)  # stale: its process is gone
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child:
        os.close(write_fd)
        try:
            return _await_ready(read_fd, ready_timeout)
        finally:
            os.close(read_fd)
            os.waitpid(child, 0)
    os.close(read_fd)
    context = daemon.DaemonContext(
        detach_process=True,
        working_directory="/",
        umask=0o077,
        pidfile=daemon.pidfile.TimeoutPIDLockFile(pidfile, acquire_timeout=0),
        files_preserve=[write_fd, *(preserve or [])],
        # The event loop installs its own TERM/INT/HUP handlers once it runs.
        signal_map={signal.SIGTSTP: None, signal.SIGTTIN: None, signal.SIGTTOU: None,
                    signal.SIGHUP: signal.SIG_IGN, signal.SIGTERM: "terminate"},
    )
    try:
        context.open()
    except BaseException as exc:  # noqa: BLE001 - reported to the waiting process, then gone
        _tell(write_fd, f"ERROR cannot detach: {exc}")
        os._exit(1)
    return Detached(context, write_fd)


def _tell(fd: int, line: str) -> None:
    """One line to the process waiting in `daemonize()`, then the pipe is closed."""
    with contextlib.suppress(OSError):
        os.write(fd, (line + "\n").encode())
    os.close(fd)


def _await_ready(fd: int, timeout: float) -> int:
    """0 when the daemon wrote READY; 1 (saying why on stderr) when it failed or was silent."""
    deadline = time.monotonic() + timeout
    received = b""
    while b"\n" not in received:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            print(f"schedd: the daemon was not ready after {timeout:g} s; see its log", file=sys.stderr)
            return 1
        chunk = os.read(fd, 512)
        if not chunk:
            break
        received += chunk
    line = received.decode(errors="replace").strip()
    if line.startswith("READY"):
        return 0
    reason = line.removeprefix("ERROR ") or "it exited before it was ready; see its log"
    print(f"schedd: {reason}", file=sys.stderr)
    return 1
