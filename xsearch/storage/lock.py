"""One writer per index, across threads and processes: an fcntl lock on a file beside the index folder.

Build, update, compact and reaugment all take it; a second writer waits (up to a timeout, then a clear error
naming the holder) instead of racing. The lock file sits beside the folder so that a first build can take it
before the folder exists.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from ..errors import WriterBusyError

DEFAULT_TIMEOUT_S = float(os.environ.get("XSEARCH_LOCK_TIMEOUT_S", "600"))
_thread_locks: dict[Path, threading.Lock] = {}
_guard = threading.Lock()


def lock_path(index: Path) -> Path:
    return index.with_name(f".{index.name}.lock")


@contextlib.contextmanager
def writer_lock(index: str | Path, timeout_s: float | None = None) -> Iterator[None]:
    import fcntl

    index = Path(index).resolve()
    timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    with _guard:
        local = _thread_locks.setdefault(index, threading.Lock())
    if not local.acquire(timeout=max(timeout_s, 0.0)):
        raise WriterBusyError(f"{index}: another writer in this process holds the index for over {timeout_s:.0f}s")
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path(index), "a+") as f:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        f.seek(0)
                        holder = f.read().strip() or "unknown"
                        raise WriterBusyError(f"{index}: another writer ({holder}) has held the index for over "
                                              f"{timeout_s:.0f}s; try again when it is done") from None
                    time.sleep(0.05)
            try:
                f.seek(0)
                f.truncate()
                f.write(f"pid {os.getpid()}")
                f.flush()
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        local.release()
