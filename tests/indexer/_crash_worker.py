"""Run one index update and SIGKILL this process at a named point (for crash tests).

Usage: python _crash_worker.py SEEDS INDEX POINT
POINT is one of CRASH_POINTS, or "none" to finish normally.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import FakeEmbedder  # noqa: E402

from indexer import Indexer, store  # noqa: E402
from indexer import core as core_module  # noqa: E402
from indexer.store import docstore, generations, vectors  # noqa: E402

CRASH_POINTS = (
    "embedding",
    "whoosh_commit",
    "write_vectors",
    "write_docs",
    "manifest",
    "rename",
    "current",
    "garbage",
)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str) -> None:
    if point == "embedding":
        original = FakeEmbedder.embed_passages

        def embed(self, texts):
            if len(texts) > 0:
                die()
            return original(self, texts)

        FakeEmbedder.embed_passages = embed
    elif point == "whoosh_commit":
        from whoosh.writing import SegmentWriter

        def commit(self, *a, **k):
            die()

        SegmentWriter.commit = commit
    elif point == "write_vectors":
        vectors.write_vectors = lambda index, path: die()
    elif point == "write_docs":
        original_add = docstore.DocStoreWriter.add_passages

        def add_passages(self, rows):
            original_add(self, list(rows)[:1])  # half-written file, then death
            self._db.execute("COMMIT")
            die()

        docstore.DocStoreWriter.add_passages = add_passages
    elif point in ("manifest", "current"):
        original_wa = generations.write_atomic

        def write_atomic(path, data):
            name = store.MANIFEST if point == "manifest" else store.CURRENT
            if Path(path).name == name:
                tmp = Path(path).with_name(f".{Path(path).name}.tmp-{os.getpid()}")
                tmp.write_text(data[: len(data) // 2])
                die()
            return original_wa(path, data)

        generations.write_atomic = write_atomic
    elif point == "rename":
        original_rename = os.rename

        def rename(src, dst):
            if "gen-" in str(dst):
                die()
            return original_rename(src, dst)

        generations.os.rename = rename
    elif point == "garbage":
        calls = {"n": 0}
        original_gc = generations.collect_garbage

        def collect(index_dir):
            calls["n"] += 1
            if calls["n"] == 2:  # the one after publishing
                die()
            return original_gc(index_dir)

        generations.collect_garbage = collect
        core_module.generations.collect_garbage = collect
    elif point != "none":
        raise SystemExit(f"unknown crash point {point}")


if __name__ == "__main__":
    seeds, index, point = sys.argv[1:4]
    install(point)
    Indexer(seeds, index, model=FakeEmbedder()).update()
