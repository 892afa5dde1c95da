"""Atomic exchange of two folders: a first build replacing a folder that holds an old-format index.

One atomic rename (renameat2 RENAME_EXCHANGE on Linux; elsewhere two renames). Everything else is written as
generations inside the index folder (xsearch.storage.writer), never by exchanging folders.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import time
from pathlib import Path


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


def fsync_dir(folder: Path) -> None:
    from .storage.files import fsync_dir as _fsync_dir

    _fsync_dir(folder)
