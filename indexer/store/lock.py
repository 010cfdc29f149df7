"""One writer at a time per index folder."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from indexer.errors import LockedError
from indexer.store.layout import LOCK


@contextlib.contextmanager
def writer_lock(index_dir: Path, wait: float = 10.0) -> Iterator[None]:
    """Hold the index folder's write lock, waiting up to ``wait`` seconds for it.

    flock is released by the kernel when a process dies, so a lock left by a killed
    writer never blocks the next one. The holder's pid is written into the lock file
    for the error message of a waiting writer.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                    raise LockedError(
                        f"another seedsearch index (pid {holder}) is updating {index_dir}; "
                        "try again when it has finished"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
