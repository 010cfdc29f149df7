"""Resumable embedding: finished chunks of vectors survive an interrupted run.

While an update embeds, every finished chunk (a few batches) is written atomically
to ``<index_dir>/.embed-cache-<embedder>/part-NNNNNN.npz`` as text hashes and
vectors. A later run of the same embedder takes its vectors from there instead of
embedding those texts again. A successful publish deletes the folder; the cache is
keyed by the hash of the embedded text, so stale entries can never be used for
another text.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PREFIX = ".embed-cache-"


def cache_dir(index_dir: Path, spec: str) -> Path:
    """The cache folder of one embedder in an index folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("._") or "model"
    return Path(index_dir) / f"{PREFIX}{safe[:80]}"


class EmbedCache:
    """Vectors of finished chunks by text hash, persisted chunk by chunk."""

    def __init__(self, index_dir: Path, spec: str, dim: int | None) -> None:
        self.path = cache_dir(index_dir, spec)
        self.dim = dim
        self.vectors: dict[str, np.ndarray] = {}
        self._parts = 0
        self._load()

    def _load(self) -> None:
        if not self.path.is_dir():
            return
        for part in sorted(self.path.glob("part-*.npz")):
            self._parts += 1
            try:
                with np.load(part, allow_pickle=False) as data:
                    hashes, vectors = data["hashes"], data["vectors"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged part only costs its re-embedding
            if vectors.ndim != 2 or len(hashes) != len(vectors):
                continue
            if self.dim is not None and vectors.shape[1] != self.dim:
                continue
            for h, v in zip(hashes.tolist(), vectors, strict=True):
                self.vectors[str(h)] = v.astype(np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def get(self, text_hash: str) -> np.ndarray | None:
        return self.vectors.get(text_hash)

    def put(self, hashes: Iterable[str], vectors: np.ndarray) -> None:
        """Remember a finished chunk and write it atomically as its own part file."""
        hashes = list(hashes)
        if not hashes:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        for h, v in zip(hashes, vectors, strict=True):
            self.vectors[h] = v
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.path / f"part-{self._parts:06d}.npz"
        tmp = self.path / f".part-{self._parts:06d}.tmp-{os.getpid()}.npz"
        with open(tmp, "wb") as f:
            np.savez(f, hashes=np.array(hashes, dtype=str), vectors=vectors)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self._parts += 1

    def delete(self) -> None:
        """Drop the cache (after a successful publish)."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.path)
