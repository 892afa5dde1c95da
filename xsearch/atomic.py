"""Atomic replacement of an index folder, shared by builds and live updates.

A finished copy is exchanged with the live folder in one atomic rename (renameat2 RENAME_EXCHANGE on Linux;
elsewhere two renames, and `recover` repairs a crash between them on the next open or write).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import threading
import time
from pathlib import Path

_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def writer_lock(path: Path):
    """One writer per index folder: a thread lock for this process, an fcntl lock for other processes."""
    import fcntl

    with _thread_locks_guard:
        lock = _thread_locks.setdefault(path, threading.Lock())
    with lock:
        lock_file = path.with_name(f".{path.name}.lock")
        with open(lock_file, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


def exchange(new: Path, live: Path) -> Path:
    """Put `new` in place of `live`; returns the path that now holds the old index (to be removed)."""
    if not live.exists():
        new.rename(live)
        fsync_dir(live.parent)
        return new
    if _renameat2_exchange(new, live):
        fsync_dir(live.parent)
        return new
    old = live.with_name(f".{live.name}.old-{time.time_ns()}")
    live.rename(old)      # a crash between these two renames is repaired by recover()
    new.rename(live)
    fsync_dir(live.parent)
    return old


def recover(path: str | Path) -> None:
    """Finish an interrupted two-rename exchange and remove stale temporary copies (call with the writer lock)."""
    path = Path(path)
    olds = sorted(path.parent.glob(f".{path.name}.old-*"))
    if not path.exists() and olds:
        olds[-1].rename(path)   # the exchange stopped after moving the live index aside: put it back
        olds = olds[:-1]
    for stale in [*olds, *path.parent.glob(f".{path.name}.tmp-update-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


