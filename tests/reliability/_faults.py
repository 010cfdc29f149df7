"""Shared by the reliability tests and benchmarks/reliability.py: seed versions on disk,
and a disk-full error injected at one step of an index update."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from unittest import mock

from indexer import store
from indexer.store import docstore, generations, vectors

#: Steps of an update at which a fault can be injected.
FAULTS = ["embed", "whoosh_commit", "write_vectors", "write_docs"]
FAULTS += ["manifest", "rename", "current"]


def write_version(seeds: Path, version: dict[str, str]) -> None:
    """Make ``seeds`` hold exactly the files of ``version`` (path -> text)."""
    for old in [p for p in seeds.rglob("*") if p.is_file()]:
        if old.relative_to(seeds).as_posix() not in version:
            old.unlink()
    for name, text in version.items():
        path = seeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, encoding="utf-8")


def disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "index")


def fault_patches(point: str, embedder) -> list:
    """Patches (enter them, e.g. with an ExitStack) that make ``point`` fail with ENOSPC.

    ``embedder`` is the object or class whose ``embed_passages`` fails at "embed".
    """
    if point == "embed":
        return [mock.patch.object(embedder, "embed_passages", disk_full)]
    if point == "whoosh_commit":
        from whoosh.writing import SegmentWriter

        return [mock.patch.object(SegmentWriter, "commit", disk_full)]
    if point == "write_vectors":
        return [mock.patch.object(vectors, "write_vectors", disk_full)]
    if point == "write_docs":
        return [mock.patch.object(docstore.DocStoreWriter, "commit", disk_full)]
    if point in ("manifest", "current"):
        real = generations.write_atomic
        target = store.MANIFEST if point == "manifest" else store.CURRENT

        def write_atomic(path, data):
            if Path(path).name == target:
                disk_full()
            return real(path, data)

        return [mock.patch.object(generations, "write_atomic", write_atomic)]
    if point == "rename":
        return [mock.patch.object(generations.os, "rename", disk_full)]
    raise ValueError(point)
