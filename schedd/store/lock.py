"""One daemon per database: an exclusive `flock` on `<database>.lock`, held for the process's life.

`schedd serve` takes the lock before it opens, migrates, recovers or binds anything, and
`schedd db restore` takes it for the length of the restore; a second taker is refused at
once with the holder's pid and start time. The kernel drops the lock when its process
ends however it ends (kill -9 included), so a crash never leaves one behind. The file is
never removed: removing a lock file races with the next process that opens it.

The path is resolved with `realpath` first, so a relative path, an absolute path and a
symlink to the same database all meet at the same lock file. The descriptor is not
inherited by commands schedd runs, so an orphaned command cannot keep a dead daemon's lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from datetime import timezone

from schedd.errors import ScheddError
from schedd.timefmt import iso

LOCK_SUFFIX = ".lock"
MODE = 0o600
_HOLDER_MAX = 256


class DatabaseInUse(ScheddError):
    """Another process owns the database."""


def lock_path(db_path: str) -> str:
    """The lock file of a database: beside the file the path resolves to."""
    return os.path.realpath(db_path) + LOCK_SUFFIX


def holder(db_path: str) -> tuple[int, str] | None:
    """(pid, since) written by the process that took the lock last, if the file says so."""
    try:
        with open(lock_path(db_path), "rb") as file:
            text = file.read(_HOLDER_MAX).decode("ascii", "replace")
    except OSError:
        return None
    pid, _, since = text.strip().partition("\n")
    return (int(pid), since.strip() or "an unknown time") if pid.isdecimal() else None


class DatabaseLock:
    """The exclusive lock on one database, held until `release()` or the process ends."""

    def __init__(self, db_path: str, fd: int | None) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path) if fd is not None else ""
        self.fd: int | None = fd
        self.needed = fd is not None

    @classmethod
    def none(cls) -> DatabaseLock:
        """No lock: the store is a server several instances share (the firing lease keeps fires single)."""
        return cls("", None)

    @classmethod
    def acquire(cls, db_path: str) -> DatabaseLock:
        """Take the lock now, or raise DatabaseInUse naming its holder (never waits)."""
        path = lock_path(db_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, MODE)
        except OSError as exc:
            raise ScheddError(f"cannot lock database {db_path}: {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(_in_use(db_path)) from None
        except OSError as exc:
            os.close(fd)
            raise ScheddError(f"cannot lock database {db_path}: {path}: {exc.strerror}") from exc
        lock = cls(db_path, fd)
        lock.claim()
        return lock

    def claim(self) -> None:
        """Write this process's pid and the time into the file (again after a fork)."""
        if not self.needed:
            return
        if self.fd is None:
            raise ScheddError(f"the lock on {self.db_path} was released")
        since = iso(time.time(), timezone.utc, seconds=True)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n{since}\n".encode("ascii"), 0)

    def release(self) -> None:
        """Close this process's descriptor; the lock ends when no process holds one.

        No LOCK_UN: after `serve --daemon` forks, the parent's close must not unlock the
        daemon, which shares the same open file.
        """
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _in_use(db_path: str) -> str:
    found = holder(db_path)
    if found is None:
        return f"database {db_path} is in use by another schedd process"
    pid, since = found
    return f"database {db_path} is in use by schedd pid {pid} (since {since})"
