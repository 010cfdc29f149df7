"""File primitives: checksums, fsync, atomic small files, hard-link copies, sizes.

A failed fsync is a failed write: it raises, so a publish that could not be made
durable is not reported as done.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from indexer.errors import IndexCorruptError
from indexer.store.layout import FIX


def file_checksum(path: Path) -> list:
    """[size, blake2b-128 hex]: cheap enough to verify on every open."""
    h = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(chunk)
            h.update(chunk)
    return [size, h.hexdigest()]


def is_lock_file(name: str) -> bool:
    """Whoosh's write lock: neither copied to a new generation nor checksummed."""
    return name.endswith(".lock") or "WRITELOCK" in name


def folder_checksums(path: Path, prefix: str) -> dict[str, list]:
    """Checksums of the files of a folder (lock files left out), keyed ``prefix/name``."""
    return {
        f"{prefix}/{item.name}": file_checksum(item)
        for item in sorted(path.iterdir())
        if item.is_file() and not is_lock_file(item.name)
    }


def verify_checksums(folder: Path, checksums: dict, prefix: str = "", skip=()) -> None:
    """IndexCorruptError unless every file named in ``checksums`` (those starting with
    ``prefix``, except ``skip``) has its recorded size and hash."""
    for name, expected in checksums.items():
        if not name.startswith(prefix) or name in skip:
            continue
        path = folder / name
        try:
            actual = file_checksum(path)
        except FileNotFoundError:
            raise IndexCorruptError(f"{path} is missing; {FIX}") from None
        except OSError as exc:
            raise IndexCorruptError(f"cannot read {path} ({exc.strerror}); {FIX}") from exc
        if not isinstance(expected, list) or actual != expected:
            raise IndexCorruptError(f"{path} does not match its checksum (damaged); {FIX}")


def fsync_path(path: Path) -> None:
    """fsync a file or folder. File systems that cannot fsync a folder (EINVAL) are
    accepted; any other error (EIO, ENOSPC) raises."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if not (path.is_dir() and exc.errno in (22, 95)):  # EINVAL, EOPNOTSUPP
            raise
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and folder below ``path`` (the folder itself last)."""
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def write_atomic(path: Path, data: str) -> None:
    """Write a small file so that readers see the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def link_tree(src: Path, dst: Path) -> None:
    """Copy a folder by hard links (cheap). Only for files that are never rewritten in
    place (Whoosh writes new segment and TOC files), so the source stays intact."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if is_lock_file(item.name):
            continue
        try:
            os.link(item, dst / item.name)
        except OSError:
            shutil.copy2(item, dst / item.name)


def disk_size(path: Path) -> int:
    """Bytes of all files below ``path`` (files that vanish meanwhile count 0)."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                continue
    return total
