"""``seedsearch check``: read every byte of the published index and compare it with
the manifest's checksums, then open it (the stores must name the same passages).

Opening an index only compares the files' sizes and stamps (see
:mod:`indexer.store.stamps`), which cannot see bits that rot on disk without a
write. This check can: run it after copying an index, after a disk error, or from
time to time. A file that fails it also makes the next open hash every file (the
stamps are removed), so a server refuses the damaged index instead of answering from
it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from indexer.errors import IndexCorruptError
from indexer.store import generations, manifest, stamps


@dataclass(frozen=True)
class IndexCheck:
    """What a full check read: the generation, its files and bytes, and how long."""

    index: str
    generation: int
    files: int
    bytes: int
    passages: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def check_index(index_dir: str | Path) -> IndexCheck:
    """Hash every file of the published generation (IndexCorruptError naming the
    first damaged one), then open it with all consistency checks."""
    from search.engine import SearchEngine

    index_dir = Path(index_dir)
    t = time.perf_counter()
    gen = generations.current_generation(index_dir)
    built = manifest.read_checked(gen, index_dir)
    try:
        read = stamps.verify_all(gen, built.checksums)
    except IndexCorruptError:
        with contextlib.suppress(OSError):  # opens must not trust the stamps any more
            (gen / stamps.STAMPS).unlink(missing_ok=True)
        raise
    engine = SearchEngine.open(index_dir)
    try:
        engine.check_all()
        passages = len(engine)
    finally:
        engine.close()
    return IndexCheck(
        index=str(index_dir),
        generation=built.generation,
        files=len(built.checksums),
        bytes=read,
        passages=passages,
        seconds=time.perf_counter() - t,
    )
