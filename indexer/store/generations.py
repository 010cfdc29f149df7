"""Generation folders and the CURRENT pointer: build aside, publish atomically.

A writer builds ``gen-N.tmp-PID`` aside, writes the manifest last, renames the
folder to ``gen-N`` and then atomically replaces ``CURRENT``. A reader resolves
``CURRENT`` once and opens only that generation, so it sees the old index or the
new one, never a mix. A killed writer leaves at most a ``.tmp`` folder, removed by
the next writer. The generations before the current one (KEEP_OLD_GENERATIONS) are
kept so that readers that opened them keep working.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from indexer.errors import IndexCorruptError, IndexMissingError
from indexer.store.files import fsync_path, fsync_tree, write_atomic
from indexer.store.layout import CURRENT, FIX, KEEP_OLD_GENERATIONS, MANIFEST, looks_like_index
from indexer.store.stamps import write_stamps


def is_index_folder(path: Path) -> bool:
    """:func:`~indexer.store.layout.looks_like_index` for a folder on disk (False if it
    cannot be read)."""
    try:
        with os.scandir(path) as it:
            entries = {e.name: _entry_is_dir(e) for e in it}
    except OSError:
        return False
    return looks_like_index(Path(path).name, entries)


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symlink, like os.walk
    except OSError:
        return False


def current_generation(index_dir: Path) -> Path:
    """The published generation folder, or IndexMissingError / IndexCorruptError."""
    index_dir = Path(index_dir)
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexMissingError(
            f"{index_dir} is a file, not an index folder: pass the folder that "
            "`seedsearch index --index DIR` built"
        )
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text("utf-8").strip()
    except FileNotFoundError:
        if index_dir.is_dir() and (index_dir / MANIFEST).exists():
            raise IndexCorruptError(
                f"{index_dir} has an index of an unknown layout; {FIX}"
            ) from None
        visible = index_dir.is_dir() and any(
            not child.name.startswith(".") for child in index_dir.iterdir()
        )  # a first build that failed leaves only hidden files (lock, resume cache)
        if visible and not is_index_folder(index_dir):
            raise IndexMissingError(
                f"{index_dir} is not an index folder (no {CURRENT} file): build an index "
                f"with: seedsearch index --index DIR, or pass the folder it built"
            ) from None
        raise IndexMissingError(
            f"no index at {index_dir}: build one with: seedsearch index --index {index_dir}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not text"
        raise IndexCorruptError(f"cannot read {pointer}: {why}; {FIX}") from exc
    number = name[4:]
    if (
        not (name.startswith("gen-") and number.isascii() and number.isdigit())
        or not (index_dir / name).is_dir()
    ):
        raise IndexCorruptError(f"{pointer} names a missing generation {name!r}; {FIX}")
    return index_dir / name


def generation_number(gen_dir: Path) -> int:
    return int(gen_dir.name.split("-")[1].split(".")[0])


def highest_generation(index_dir: Path) -> int:
    """The highest generation number present (published or not), 0 if none."""
    numbers = [0]
    if index_dir.is_dir():
        for child in index_dir.iterdir():
            if child.name.startswith("gen-"):
                with contextlib.suppress(ValueError, IndexError):
                    numbers.append(generation_number(child))
    return max(numbers)


def new_generation_dir(index_dir: Path, number: int) -> Path:
    """An empty folder to build generation ``number`` in (``gen-N.tmp-PID``)."""
    tmp = index_dir / f"gen-{number:08d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(index_dir: Path, tmp_dir: Path, generation: int, manifest_json: str) -> Path:
    """Manifest last, fsync everything, rename the folder, then swap CURRENT atomically.
    The files' stamps are recorded first, so that opening checks them without reading
    them (:mod:`indexer.store.stamps`)."""
    write_stamps(tmp_dir, json.loads(manifest_json).get("checksums", {}))
    write_atomic(tmp_dir / MANIFEST, manifest_json)
    fsync_tree(tmp_dir)
    final = index_dir / f"gen-{generation:08d}"
    if final.exists():  # left by a writer killed between rename and CURRENT swap
        shutil.rmtree(final)
    os.rename(tmp_dir, final)
    try:
        fsync_path(index_dir)
        write_atomic(index_dir / CURRENT, final.name + "\n")
    except BaseException:  # not published (disk full?): give the space back
        shutil.rmtree(final, ignore_errors=True)
        raise
    return final


def collect_garbage(index_dir: Path) -> None:
    """Remove unfinished builds and generations older than the kept ones."""
    try:
        current = current_generation(index_dir)
    except (IndexMissingError, IndexCorruptError):
        current = None
    gens, tmps = [], []
    for child in index_dir.iterdir():
        if child.name.startswith(".") and ".tmp-" in child.name and child.is_file():
            child.unlink(missing_ok=True)  # a half-written CURRENT of a killed writer
            continue
        if not child.name.startswith("gen-") or not child.is_dir():
            continue
        (tmps if ".tmp" in child.name else gens).append(child)
    for tmp in tmps:
        shutil.rmtree(tmp, ignore_errors=True)
    if current is None:
        return
    cur_no = generation_number(current)
    older = sorted((g for g in gens if generation_number(g) < cur_no), key=generation_number)
    for g in older[:-KEEP_OLD_GENERATIONS] if KEEP_OLD_GENERATIONS else older:
        shutil.rmtree(g, ignore_errors=True)
    for g in gens:  # generations newer than CURRENT were never published
        if generation_number(g) > cur_no:
            shutil.rmtree(g, ignore_errors=True)
