"""Embeddings kept on disk between benchmark runs, so tuning embeds each corpus once.

On 2 shared cores e5-small embeds about 20 passages/s: one GermanQuAD pass (passages
with and without their titles, 2,204 questions) costs minutes, and tuning runs are
repeated. ``DiskCachingEmbedder`` is ``search.evaluate.CachingEmbedder`` whose memory
is loaded from and saved to one ``.npz`` per model, keyed by the embedded text's hash
(``indexer.core.text_hash``). The file name carries the spec and the model id (for
e5-small the checksum of the exact ONNX graph), so vectors of another graph are never
reused. Only benchmarks use it; results are identical to embedding afresh.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from indexer.core import text_hash
from indexer.embedder import Embedder, load_embedder
from search.evaluate import CachingEmbedder

#: Default folder; ``SEEDSEARCH_BENCH_CACHE`` moves it.
DEFAULT_DIR = Path.home() / ".cache" / "seedsearch-bench"


def cache_path(embedder: Embedder, folder: Path) -> Path:
    """``<folder>/<spec>-<model id>.npz`` with unsafe characters replaced."""
    model_id = str(getattr(embedder, "model_id", "") or "")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{embedder.spec}-{model_id}".strip("-"))
    return folder / f"{name}.npz"


class DiskCachingEmbedder(CachingEmbedder):
    """A ``CachingEmbedder`` that starts from, and :meth:`save`\\ s to, a file."""

    def __init__(self, inner: Embedder, folder: Path | None = None) -> None:
        super().__init__(inner)
        self.model_id = getattr(inner, "model_id", "")
        folder = Path(folder or os.environ.get("SEEDSEARCH_BENCH_CACHE") or DEFAULT_DIR)
        self.path = cache_path(inner, folder)
        self._stored: dict[str, dict[str, np.ndarray]] = {"p": {}, "q": {}}
        self.loaded = 0
        if self.path.is_file():
            with np.load(self.path) as data:
                for kind in ("p", "q"):
                    keys, vecs = data[f"{kind}_keys"], data[f"{kind}_vecs"]
                    if vecs.ndim == 2 and vecs.shape[1] == self.dim:
                        self._stored[kind] = dict(zip(keys.tolist(), vecs, strict=True))
            self.loaded = sum(map(len, self._stored.values()))

    def embed_passages(self, texts):
        stored = self._stored["p"]
        for t in texts:
            if t not in self._passages and (v := stored.get(text_hash(t))) is not None:
                self._passages[t] = v
        return super().embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._queries and (v := self._stored["q"].get(text_hash(text))) is not None:
            self._queries[text] = v
        return super().embed_query(text)

    def save(self) -> Path:
        """Write every vector seen so far (atomically: a stopped run leaves the old file)."""
        arrays = {}
        for kind, memory in (("p", self._passages), ("q", self._queries)):
            merged = dict(self._stored[kind])
            merged.update((text_hash(t), v) for t, v in memory.items())
            arrays[f"{kind}_keys"] = np.array(list(merged), dtype="U24")
            arrays[f"{kind}_vecs"] = (
                np.vstack(list(merged.values())).astype(np.float32)
                if merged
                else np.zeros((0, self.dim), dtype=np.float32)
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        os.close(fd)
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path)
        return self.path


def cached_embedder(spec: str | None = None) -> DiskCachingEmbedder:
    """The product's embedder for ``spec`` (default model when None), disk-cached."""
    return DiskCachingEmbedder(load_embedder(spec))
