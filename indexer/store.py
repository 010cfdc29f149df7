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
    vector_index: str = ""  # what vectors.faiss holds, e.g. "flat/float32", "hnsw32/sq8"
    dead_vectors: int = 0  # vectors of removed passages still in an HNSW graph

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
            manifest = cls(**data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise IndexCorruptError(f"index manifest {where} is damaged ({exc}); {FIX}") from exc
        for name, kind in _MANIFEST_TYPES.items():  # valid JSON, but wrong shape
            value = getattr(manifest, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise IndexCorruptError(
                    f"index manifest {where} is damaged ({name} is {value!r}); {FIX}"
                )
        return manifest


_MANIFEST_TYPES = {
    **dict.fromkeys(("format_version", "dim", "generation", "documents"), int),
    **dict.fromkeys(("passages", "next_vid", "dead_vectors"), int),
    **dict.fromkeys(("analyzer", "embedder", "built_at", "vector_index"), str),
    **dict.fromkeys(("settings", "files", "articles", "checksums"), dict),
}


def file_checksum(path: Path) -> list:
    """[size, blake2b-128 hex]: cheap enough to verify on every open."""
    h = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(chunk)
            h.update(chunk)
    return [size, h.hexdigest()]


def folder_checksums(path: Path, prefix: str) -> dict[str, list]:
    """Checksums of the files of a folder (lock files left out), keyed ``prefix/name``."""
    return {
        f"{prefix}/{item.name}": file_checksum(item)
        for item in sorted(path.iterdir())
        if item.is_file() and not _is_lock_file(item.name)
    }


def _is_lock_file(name: str) -> bool:
    """Whoosh's write lock: neither copied to a new generation nor checksummed."""
    return name.endswith(".lock") or "WRITELOCK" in name


def verify_checksums(gen_dir: Path, checksums: dict, prefix: str = "", skip=()) -> None:
    """IndexCorruptError unless every file named in ``checksums`` (those starting with
    ``prefix``, except ``skip``) has its recorded size and hash."""
    for name, expected in checksums.items():
        if not name.startswith(prefix) or name in skip:
            continue
        path = gen_dir / name
        try:
            actual = file_checksum(path)
        except FileNotFoundError:
            raise IndexCorruptError(f"{path} is missing; {FIX}") from None
        except OSError as exc:
            raise IndexCorruptError(f"cannot read {path} ({exc.strerror}); {FIX}") from exc
        if not isinstance(expected, list) or actual != expected:
            raise IndexCorruptError(f"{path} does not match its checksum (damaged); {FIX}")


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
    try:
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
    if expected is not None:
        verify_checksums(gen_dir, {STATS: expected}, STATS)
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
        if _is_lock_file(item.name):
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


#: ``IndexSettings.ann``: auto = flat below ``ann_threshold`` passages, HNSW above.
ANN_CHOICES = ("auto", "flat", "hnsw")
#: ``IndexSettings.vectors``: how each vector is stored (4, 2 or 1 byte per dimension).
VECTOR_TYPES = ("float32", "float16", "sq8")
ANN_THRESHOLD = 100_000
#: HNSW graph degree and build/search breadth. Measured on 24k USE vectors of
#: gnad-test replicated 10x (every text 10 times: zero-distance copies crowd the
#: neighbour lists, the hard case for a graph): efConstruction 80 / efSearch 128
#: gave recall@10 0.86 against exact search; efConstruction 200 with efSearch 512
#: 0.97, with efSearch 1024 1.00 at 2.6 ms per query, still below a flat scan
#: (3.9 ms at 24k, linear in size; benchmarks/speed.py). FAISS stores efSearch in
#: the index file, and a search uses at least k anyway.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 1024
#: FAISS cannot remove vectors from an HNSW graph. An update that removes passages
#: leaves their vectors in the graph as dead ids, which searches skip (an ID
#: selector) but still walk through, and rebuilds the graph from the live vectors
#: only when more than this share of it would be dead. A rebuild costs about as
#: much as building from scratch (seconds per 10k vectors), an edit in place
#: costs the new passages only.
HNSW_MAX_DEAD_SHARE = 0.25


def vector_index_kind(ann: str, passages: int, threshold: int = ANN_THRESHOLD) -> str:
    """``"flat"`` (exact) or ``"hnsw"`` for an ``ann`` choice and a collection size."""
    if ann == "hnsw" or (ann == "auto" and passages >= threshold):
        return "hnsw"
    return "flat"


def _qtype(vectors: str):
    import faiss

    return {
        "float16": faiss.ScalarQuantizer.QT_fp16,
        "sq8": faiss.ScalarQuantizer.QT_8bit,
    }[vectors]


def new_vector_index(dim: int, kind: str = "flat", vectors: str = "float32"):
    """An empty inner-product index under stable ids (IndexIDMap2).

    ``kind``: "flat" (exact; ids can be removed) or "hnsw" (approximate; ids cannot
    be removed: removed passages stay as dead ids, see HNSW_MAX_DEAD_SHARE).
    ``vectors``: float32, float16 or sq8 (8-bit scalar quantizer, must be trained
    before adding).
    """
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    if vectors not in VECTOR_TYPES:
        raise ValueError(f"vectors={vectors!r}: use one of {', '.join(VECTOR_TYPES)}")
    if kind == "flat":
        inner = (
            faiss.IndexFlatIP(dim)
            if vectors == "float32"
            else faiss.IndexScalarQuantizer(dim, _qtype(vectors), ip)
        )
    elif kind == "hnsw":
        if vectors == "float32":
            inner = faiss.IndexHNSWFlat(dim, HNSW_M, ip)
        else:
            inner = faiss.IndexHNSWSQ(dim, _qtype(vectors), HNSW_M, ip)
    else:
        raise ValueError(f"kind={kind!r}: use flat or hnsw")
    index = faiss.IndexIDMap2(inner)
    apply_hnsw_settings(index)
    return index


def _inner(index):
    """The index inside the IndexIDMap2 wrapper, as its concrete FAISS class."""
    import faiss

    return faiss.downcast_index(index.index if hasattr(index, "id_map") else index)


def apply_hnsw_settings(index) -> None:
    """Set the current efConstruction/efSearch on an HNSW index (no-op for flat)."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH


def _scalar_quantizer(index):
    """The IndexScalarQuantizer inside an (IDMap-wrapped, maybe HNSW) index, or None."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner = faiss.downcast_index(inner.storage)
    return inner if isinstance(inner, faiss.IndexScalarQuantizer) else None


def vector_index_layout(index) -> tuple[str, str]:
    """(kind, vectors) of an index made by :func:`new_vector_index`."""
    import faiss

    kind = "hnsw" if isinstance(_inner(index), faiss.IndexHNSW) else "flat"
    sq = _scalar_quantizer(index)
    if sq is None:
        return kind, "float32"
    return kind, "float16" if sq.sq.qtype == faiss.ScalarQuantizer.QT_fp16 else "sq8"


def describe_vector_index(index) -> str:
    """Short name for the manifest, e.g. ``flat/float32`` or ``hnsw32/sq8``."""

    kind, vectors = vector_index_layout(index)
    if kind == "hnsw":
        inner = _inner(index)
        m = inner.hnsw.nb_neighbors(1)
        return f"hnsw{m}/{vectors}(efSearch={inner.hnsw.efSearch})"
    return f"{kind}/{vectors}"


def fits_quantizer(index, rows: np.ndarray) -> bool:
    """Whether an 8-bit quantizer's trained range holds ``rows`` (else they would be
    clamped, and the index must be retrained). Always true for other vector types."""
    sq = _scalar_quantizer(index) if index is not None else None
    if sq is None or not len(rows) or not sq.is_trained or sq.sq.trained.size() == 0:
        return True
    import faiss

    trained = faiss.vector_to_array(sq.sq.trained).reshape(2, -1)
    step = trained[1] / 255 + 1e-6  # decoded codes lie up to half a step outside
    vmin, vmax = trained[0] - step, trained[0] + trained[1] + step
    return bool(np.all(rows >= vmin) and np.all(rows <= vmax))


def build_vector_index(
    dim: int, kind: str, vectors: str, rows: np.ndarray, ids: np.ndarray, like=None
):
    """A new index holding ``rows`` under ``ids``.

    An 8-bit quantizer is trained on ``rows``, or copied from ``like`` (the previous
    generation's index) when that has the same vector type: re-encoding vectors that
    were decoded with the same quantizer gives the same codes, so updates do not
    drift. When ``rows`` fall outside the old range (they would be clamped), the
    quantizer is trained anew. With no rows, an sq8 index stays untrained.
    """

    index = new_vector_index(dim, kind, vectors)
    if not index.is_trained:
        old = _scalar_quantizer(like) if like is not None else None
        new = _scalar_quantizer(index)
        if (
            old is not None
            and old.is_trained
            and old.sq.qtype == new.sq.qtype
            and fits_quantizer(like, rows)
        ):
            new.sq.trained = old.sq.trained
            new.is_trained = True
            if kind == "hnsw":
                _inner(index).is_trained = True
            index.is_trained = True
        elif len(rows):
            index.train(np.ascontiguousarray(rows, dtype=np.float32))
    if len(rows):
        index.add_with_ids(
            np.ascontiguousarray(rows, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )
    return index


def write_vectors(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_vectors(path: Path, expected: list | None = None):
    """Read the FAISS file after checking size and checksum against the manifest:
    FAISS itself may crash on a damaged file instead of raising."""
    import faiss

    if not path.exists():
        raise IndexCorruptError(f"{path} is missing; {FIX}")
    if expected is not None:
        verify_checksums(path.parent, {path.name: list(expected)}, path.name)
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path} is damaged ({exc}); {FIX}") from exc


def vector_ids(index) -> np.ndarray:
    """Every id stored in an index made by :func:`new_vector_index`, dead ones too."""
    import faiss

    if not hasattr(index, "id_map"):
        raise IndexCorruptError(f"the vector index has no id map ({type(index).__name__}); {FIX}")
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def search_params(index, dead: np.ndarray):
    """FAISS search parameters that leave out the ``dead`` ids; None if there are none.
    An HNSW index keeps its own efSearch (FAISS would use the parameter's default)."""
    if not len(dead):
        return None
    import faiss

    batch = faiss.IDSelectorBatch(np.asarray(dead, dtype=np.int64))
    sel = faiss.IDSelectorNot(batch)
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=inner.hnsw.efSearch)
    else:
        params = faiss.SearchParameters(sel=sel)
    params.keep_alive = (batch, sel)  # SWIG objects do not own what they point to
    return params


def reconstruct(index, vids: list[int]) -> np.ndarray:
    """Vectors stored under the given ids (decoded: lossy for float16/sq8)."""
    if not len(vids):
        return np.zeros((0, index.d), dtype=np.float32)
    return np.asarray(
        index.reconstruct_batch(np.asarray(vids, dtype=np.int64)), dtype=np.float32
    ).reshape(len(vids), index.d)


def disk_size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, name))
    return total
