"""What every SQLite file of a cube shares: an immediate write transaction under a lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from cubemem.errors import BackendUnavailableError, CubeBusyError


@contextmanager
def immediate(
    db: sqlite3.Connection, lock: threading.Lock | threading.RLock, what: str = "the cube"
) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error), one thread at a time.

    IMMEDIATE takes the write lock up front, so two processes never both read and then
    deadlock upgrading; the connection's busy timeout makes the other wait instead of failing.
    A lock still held when the timeout runs out is a :class:`CubeBusyError`.
    """
    with lock:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise CubeBusyError(
                f"{what} stayed locked by another writer for the whole busy timeout; nothing "
                "was written. Retry, raise Settings.busy_timeout_s (CUBEMEM_BUSY_TIMEOUT_S), "
                "or send writes through the scheduler (add(..., wait=False))"
            ) from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):  # a failed COMMIT may have ended the transaction
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not (
                isinstance(exc, sqlite3.IntegrityError)
            ):
                raise BackendUnavailableError(
                    f"writing to {what} failed ({exc}); nothing was written. If the disk is "
                    "full, free space and retry"
                ) from exc
            raise
