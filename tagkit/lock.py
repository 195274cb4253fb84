"""One writer at a time: an advisory lock file next to the database (`tagkit.db.lock`).

A command that writes in bulk (import, train, predict, eval, feedback import, taxonomy) holds the lock
for its whole run; a second one waits up to `wait` seconds and then gets `Locked`, whose message names
the holder (pid, host, command, start time, read from the lock file). The lock is an `flock` on the
file: the kernel drops it when the holding process ends in any way, `kill -9` included, so a lock is
never left stale and the file itself is never deleted. Readers never take it (SQLite's WAL mode lets
them read while one process writes).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tagkit.store import now

POLL_SECONDS = 0.1


class Locked(RuntimeError):
    """Another process holds the database's writer lock (it did not let go within the wait)."""

    def __init__(self, lock_path: Path, holder: dict[str, Any], waited: float) -> None:
        self.lock_path = lock_path
        self.holder = holder
        self.waited = waited
        super().__init__(self._message())

    def _message(self) -> str:
        who = describe_holder(self.holder)
        database = self.lock_path.with_suffix("") if self.lock_path.suffix == ".lock" else self.lock_path
        return (f"another tagkit process is writing to {database}: {who} (lock file {self.lock_path}). "
                f"Waited {self.waited:g} s; wait longer with --wait SECONDS (in Python: wait=)")


def describe_holder(holder: dict[str, Any]) -> str:
    """Who holds the lock, in words: pid, host, command and since when (as `read_holder` gives them)."""
    if not holder.get("pid"):
        return "a process that has not said who it is yet"
    return (f"pid {holder['pid']} on {holder.get('host') or 'an unknown host'}, "
            f"`{holder.get('command') or 'tagkit'}`, since {holder.get('started_at') or '?'}")


def lock_path(db: str | Path) -> Path:
    """The lock file of a database: `<database file>.lock`, next to the file itself (a symbolic link to the database
    gets the database's lock, not one of its own)."""
    db = Path(os.path.realpath(db))
    return db.with_name(db.name + ".lock")


class WriterLock:
    """The writer lock of the database at `db`; use as a context manager or call acquire/release."""

    def __init__(self, db: str | Path, command: str, wait: float = 0.0) -> None:
        self.path = lock_path(db)
        self.command = command
        self.wait = wait
        self.fd: int | None = None

    def acquire(self, on_wait: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Take the lock, waiting up to `self.wait` seconds; raises Locked when another process keeps it.

        `on_wait` is called once, with the holder (see `read_holder`), when the lock is taken and there is time
        to wait for it.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError:  # a read-only lock file locks as well (only the note of its holder is not written)
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        deadline = time.monotonic() + max(self.wait, 0.0)
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.close(fd)
                    raise Locked(self.path, read_holder(self.path), self.wait) from None
                if not waiting and on_wait is not None:
                    try:
                        on_wait(read_holder(self.path))
                    except BaseException:
                        os.close(fd)
                        raise
                waiting = True
                time.sleep(min(POLL_SECONDS, left))
        self.fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "started_at": now(),
                "argv": sys.argv[1:]}
        with contextlib.suppress(OSError):  # who holds it, for whoever waits: bookkeeping a full disk must not stop
            os.ftruncate(fd, 0)
            # (an argument not in UTF-8, a Latin-1 folder name, reaches Python as surrogates: kept as its bytes)
            os.pwrite(fd, (json.dumps(info, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape"), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            with contextlib.suppress(OSError):  # bookkeeping (see `acquire`)
                os.ftruncate(self.fd, 0)  # nobody holds it: no stale name left in the file
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any]:
    """Who holds the lock, as its holder wrote it ({} when the file is empty or half-written)."""
    for _ in range(5):
        try:
            holder = json.loads(path.read_text("utf-8"))
            if isinstance(holder, dict):
                return holder
        except (OSError, ValueError):
            pass
        time.sleep(0.02)  # read between the holder's truncate and write: try again
    return {}
