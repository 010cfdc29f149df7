"""Cheap integrity checks for opening an index; full checksums for ``seedsearch check``.

Hashing every file on every open cost about 1 s per 500 MB (blake2b, one core): at
100x (244k passages) more than the whole 1 s open budget. A published generation is
never written again, so its files' identity can be recorded once and compared at
open without reading them: the writer records ``[size, mtime_ns, inode]`` of every
checksummed file in ``stamps.json`` just before publishing. At open:

* a file that is missing, or whose size is not the manifest's, is an error (a
  truncated, half-copied or replaced file);
* a file whose stat matches its stamp is taken as written (no read);
* any other file (stamp missing or different: the index was copied, restored, or a
  file was written in place) is hashed in full and must match its checksum. After
  such a full check the stamps are rewritten where the folder is writable, so the
  next open is cheap again.

What a stat cannot see (bits rotting on disk without a write) is found by
:func:`verify_all` (``seedsearch check``), which hashes every file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import IndexCorruptError
from indexer.store.files import file_checksum, write_atomic
from indexer.store.layout import FIX

#: The stamp file of a generation (not itself checksummed: it only saves work).
STAMPS = "stamps.json"


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; {FIX}") from None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {path} ({exc.strerror}); {FIX}") from exc


def stamp_of(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def write_stamps(gen_dir: Path, checksums: dict) -> bool:
    """Record the stat of every file named in ``checksums``; False (and nothing
    written) where the folder is read-only."""
    stamps = {name: stamp_of(_stat(gen_dir / name)) for name in sorted(checksums)}
    try:
        write_atomic(gen_dir / STAMPS, json.dumps(stamps, sort_keys=True))
    except OSError:
        return False
    return True


def read_stamps(gen_dir: Path) -> dict:
    """The recorded stamps ({} when missing or unreadable: then files are hashed)."""
    try:
        data = json.loads((gen_dir / STAMPS).read_text("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_hash(path: Path, expected) -> None:
    try:
        actual = file_checksum(path)
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {path} ({exc.strerror}); {FIX}") from exc
    if actual != list(expected):
        raise IndexCorruptError(f"{path} does not match its checksum (damaged); {FIX}")


def _expected(path: Path, expected) -> tuple[int, str]:
    if not (isinstance(expected, list) and len(expected) == 2 and isinstance(expected[0], int)):
        raise IndexCorruptError(f"{path} has no valid checksum in the manifest; {FIX}")
    return expected[0], expected[1]


@dataclass(frozen=True)
class OpenCheck:
    """What :func:`verify_quick` did: files taken by their stamp and files hashed."""

    stamped: int
    hashed: int
    hashed_bytes: int


def verify_quick(gen_dir: Path, checksums: dict) -> OpenCheck:
    """IndexCorruptError unless every file of ``checksums`` exists with its recorded
    size and, where its stamp does not match, its recorded hash (see module doc)."""
    stamps = read_stamps(gen_dir)
    stamped = hashed = hashed_bytes = 0
    for name, expected in checksums.items():
        path = gen_dir / name
        size, _ = _expected(path, expected)
        st = _stat(path)
        if st.st_size != size:
            raise IndexCorruptError(
                f"{path} has {st.st_size} bytes, the manifest says {size} (damaged); {FIX}"
            )
        if stamps.get(name) == stamp_of(st):
            stamped += 1
            continue
        _check_hash(path, expected)
        hashed += 1
        hashed_bytes += size
    if hashed:
        write_stamps(gen_dir, checksums)
    return OpenCheck(stamped, hashed, hashed_bytes)


def verify_all(gen_dir: Path, checksums: dict) -> int:
    """Hash every file of ``checksums`` (IndexCorruptError on the first mismatch) and
    refresh the stamps; the number of bytes read."""
    total = 0
    for name, expected in checksums.items():
        path = gen_dir / name
        size, _ = _expected(path, expected)
        _stat(path)
        _check_hash(path, expected)
        total += size
    write_stamps(gen_dir, checksums)
    return total
