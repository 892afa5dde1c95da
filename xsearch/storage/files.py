"""File-system steps of a commit: make new files durable, write small files atomically, snapshot by hard links."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def fsync_file(path: str | Path) -> None:
    """fsync a file, or a folder (its entries: a rename or a new file is durable once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_file


def fsync_tree(folder: str | Path) -> None:
    """fsync every file below `folder`, then every directory (children before parents)."""
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_file(os.path.join(root, name))
        fsync_dir(root)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a part: temp file,
    fsync, rename, fsync of the folder."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def link_tree(src: str | Path, dst: str | Path, skip: tuple[str, ...] = ("write.lock",)) -> None:
    """A copy of the flat folder `src` made of hard links (no data written): Lucene never changes a file it
    wrote, so a writer may work in the copy while readers keep the original."""
    dst = Path(dst)
    dst.mkdir(parents=True)
    for entry in os.scandir(src):
        if entry.is_file() and entry.name not in skip:
            os.link(entry.path, dst / entry.name)


def remove(path: str | Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def tree_bytes(folder: str | Path) -> int:
    """Bytes under `folder`, each inode once (snapshots share files through hard links)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            st = os.stat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
