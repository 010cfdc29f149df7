"""Everything that touches index files: generations, manifest, lock, Whoosh, FAISS.

Layout of an index folder::

    index_data/
      CURRENT            name of the published generation ("gen-00000003")
      gen-00000003/      whoosh/  vectors.faiss  passages.jsonl  manifest.json
      .lock              held (flock) by the one writer

A writer builds ``gen-N.tmp-PID`` aside, writes the manifest last, renames the
folder to ``gen-N`` and then atomically replaces ``CURRENT``. A reader resolves
``CURRENT`` once and opens only that generation, so it sees the old index or the
new one, never a mix. A killed writer leaves at most a ``.tmp`` folder, removed by
the next writer. The two generations before the current one are kept so that
readers that opened them keep working.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from indexer.bm25stats import CollectionStats
from indexer.errors import IndexCorruptError, IndexMissingError, LockedError

#: Bump when the layout of an index folder changes.
FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.faiss"
WHOOSH = "whoosh"
STATS = "bm25stats.json"
LOCK = ".lock"
KEEP_OLD_GENERATIONS = 2
FIX = "rebuild it with: seedsearch index --full"


@dataclass(frozen=True)
class StoredPassage:
    """A passage as stored in ``passages.jsonl``: text plus its vector id."""

    id: str
    doc: str
    paragraph: int
    part: int
    text: str
    title: str
    vid: int  # FAISS id (IndexIDMap2), stable across updates
    th: str  # hash of the embedded text: equal hash -> the vector is reused


@dataclass
class Manifest:
    """What an index is: checked on open, written last on publish."""

    format_version: int
    analyzer: str
    embedder: str
    dim: int
    settings: dict
    built_at: str
    generation: int
    documents: int
    passages: int
    next_vid: int
    files: dict[str, str] = field(default_factory=dict)  # seed file -> content hash
    articles: dict[str, dict] = field(default_factory=dict)  # doc -> {hash, file, ...}
    checksums: dict[str, list] = field(default_factory=dict)  # file -> [size, blake2b]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise IndexCorruptError(f"index manifest {where} is damaged ({exc}); {FIX}") from exc


def file_checksum(path: Path) -> list:
    """[size, blake2b-128 hex]: cheap enough to verify on every open."""
    h = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(chunk)
            h.update(chunk)
    return [size, h.hexdigest()]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(path: Path) -> None:
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(dirpath))


def write_atomic(path: Path, data: str) -> None:
    """Write a small file so that readers see the old or the new content."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


# ---------------------------------------------------------------- generations


def current_generation(index_dir: Path) -> Path:
    """The published generation folder, or IndexMissingError."""
    pointer = index_dir / CURRENT
    try:
        name = pointer.read_text("utf-8").strip()
    except FileNotFoundError:
        if index_dir.is_dir() and (index_dir / MANIFEST).exists():
            raise IndexCorruptError(
                f"{index_dir} has an index of an unknown layout; {FIX}"
            ) from None
        raise IndexMissingError(
            f"no index at {index_dir}: build one with: seedsearch index --index {index_dir}"
        ) from None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {pointer}: {exc.strerror}; {FIX}") from exc
    if not name.startswith("gen-") or "/" in name or not (index_dir / name).is_dir():
        raise IndexCorruptError(f"{pointer} names a missing generation {name!r}; {FIX}")
    return index_dir / name


def read_manifest(gen_dir: Path) -> Manifest:
    path = gen_dir / MANIFEST
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise IndexCorruptError(f"index manifest {path} is missing; {FIX}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"cannot read index manifest {path} ({exc}); {FIX}") from exc
    return Manifest.from_json(text, str(path))


def generation_number(gen_dir: Path) -> int:
    return int(gen_dir.name.split("-")[1].split(".")[0])


def new_generation_dir(index_dir: Path, number: int) -> Path:
    tmp = index_dir / f"gen-{number:08d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(index_dir: Path, tmp_dir: Path, manifest: Manifest) -> Path:
    """Manifest last, fsync, rename the folder, then swap CURRENT atomically."""
    write_atomic(tmp_dir / MANIFEST, manifest.to_json())
    _fsync_tree(tmp_dir)
    final = index_dir / f"gen-{manifest.generation:08d}"
    if final.exists():  # left by a writer killed between rename and CURRENT swap
        shutil.rmtree(final)
    os.rename(tmp_dir, final)
    _fsync_dir(index_dir)
    write_atomic(index_dir / CURRENT, final.name + "\n")
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


def highest_generation(index_dir: Path) -> int:
    numbers = [0]
    if index_dir.is_dir():
        for child in index_dir.iterdir():
            if child.name.startswith("gen-"):
                with contextlib.suppress(ValueError, IndexError):
                    numbers.append(generation_number(child))
    return max(numbers)


# ------------------------------------------------------------------- lock


@contextlib.contextmanager
def writer_lock(index_dir: Path, wait: float = 10.0) -> Iterator[None]:
    """One writer at a time. flock is released by the kernel when a process dies,
    so a lock left by a killed writer never blocks the next one."""
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


# --------------------------------------------------------------- passages


def write_passages(path: Path, passages: Iterable[StoredPassage]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps(asdict(p), ensure_ascii=False, separators=(",", ":")))
            f.write("\n")


def read_passages(path: Path) -> list[StoredPassage]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                out.append(StoredPassage(**json.loads(line)))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; {FIX}") from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path} is damaged ({exc}); {FIX}") from exc
    return out


# ------------------------------------------------------------------ stats


def write_stats(path: Path, stats: CollectionStats) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stats.to_json(), f, ensure_ascii=False, separators=(",", ":"))


def read_stats(gen_dir: Path, expected: list | None = None) -> CollectionStats:
    path = gen_dir / STATS
    if expected is not None and file_checksum(path) != list(expected):
        raise IndexCorruptError(f"{path} does not match its checksum (damaged); {FIX}")
    try:
        with open(path, encoding="utf-8") as f:
            return CollectionStats.from_json(json.load(f))
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; {FIX}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexCorruptError(f"{path} is damaged ({exc}); {FIX}") from exc


# ------------------------------------------------------------------ whoosh


def whoosh_schema():
    """Pre-analysed fields: the German analysis runs in indexer.analysis, Whoosh
    only splits on spaces, so index and query time cannot diverge."""
    from whoosh.analysis import SpaceSeparatedTokenizer
    from whoosh.fields import ID, TEXT, Schema

    return Schema(
        id=ID(stored=True, unique=True),
        doc=ID(),
        body=TEXT(analyzer=SpaceSeparatedTokenizer(), phrase=False),
        title=TEXT(analyzer=SpaceSeparatedTokenizer(), phrase=False),
    )


def link_tree(src: Path, dst: Path) -> None:
    """Copy a folder by hard links (cheap). Whoosh never rewrites a file in place:
    an update writes new segment and TOC files, so the old generation stays intact."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name.endswith(".lock") or "WRITELOCK" in item.name:
            continue
        try:
            os.link(item, dst / item.name)
        except OSError:
            shutil.copy2(item, dst / item.name)


def whoosh_create(path: Path):
    import whoosh.index

    path.mkdir(parents=True, exist_ok=True)
    return whoosh.index.create_in(str(path), whoosh_schema())


def whoosh_open(path: Path):
    import whoosh.index

    try:
        return whoosh.index.open_dir(str(path))
    except Exception as exc:  # whoosh raises many types for damaged files
        raise IndexCorruptError(f"the keyword index in {path} is damaged ({exc}); {FIX}") from exc


# ------------------------------------------------------------------- faiss


def new_vector_index(dim: int):
    """Exact inner-product search under stable ids (IndexIDMap2 keeps ids on remove)."""
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def write_vectors(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_vectors(path: Path, expected: list | None = None):
    """Read the FAISS file after checking size and checksum against the manifest:
    FAISS itself may crash on a damaged file instead of raising."""
    import faiss

    if not path.exists():
        raise IndexCorruptError(f"{path} is missing; {FIX}")
    if expected is not None and file_checksum(path) != list(expected):
        raise IndexCorruptError(f"{path} does not match its checksum (damaged); {FIX}")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path} is damaged ({exc}); {FIX}") from exc


def reconstruct(index, vids: list[int]) -> np.ndarray:
    """Vectors stored under the given ids."""
    return np.vstack([index.reconstruct(int(v)) for v in vids]).astype(np.float32)


def disk_size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, name))
    return total
