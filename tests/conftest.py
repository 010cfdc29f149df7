"""Shared fixtures: a deterministic fake embedder and tiny German seed folders."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from indexer.analysis import analyze
from indexer.embedder import normalize_rows

SEED_ARTICLE = Path(__file__).resolve().parents[1] / "seeds" / "000_dc8d3dd46a079804.txt"


class FakeEmbedder:
    """Deterministic bag-of-stems embedder: texts sharing German stems are close.

    Fast (no model), so unit tests can build and update indexes in milliseconds.
    ``calls`` counts embedded passages, to prove what was (not) re-embedded.
    """

    spec = "fake-hash-64"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for term in analyze(text) or [text.strip().lower() or "∅"]:
            h = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return v

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        return normalize_rows(
            np.vstack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim))
        )

    def embed_query(self, text: str) -> np.ndarray:
        return normalize_rows(self._vec(text))[0]


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


GERMAN_ARTICLES = {
    "nordkorea.txt": SEED_ARTICLE.read_text(encoding="utf-8"),
    "wetter.md": (
        "# Hitzewelle in Süddeutschland\n\n"
        "Die Temperaturen steigen am Wochenende auf über 35 Grad. Der Deutsche Wetterdienst "
        "warnt vor großer Hitze in Bayern und Baden-Württemberg.\n\n"
        "Ärzte raten, viel Wasser zu trinken und die Mittagssonne zu meiden.\n\n"
        "(ab / dpa)\n"
    ),
    "fussball.txt": (
        "Der FC Bayern München gewinnt das Spitzenspiel gegen Borussia Dortmund mit 3:1.\n"
        "Die Fußballfans feierten den Sieg bis spät in die Nacht auf der Straße.\n"
    ),
}


def write_german_seeds(folder: Path) -> Path:
    """Create ``folder`` holding the three GERMAN_ARTICLES as seed files."""
    folder.mkdir(parents=True)
    for name, text in GERMAN_ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def answers(index_dir: Path, queries: Sequence[str], k: int) -> dict:
    """What a user sees, per (query, mode): the ranked (id, score) of every mode,
    with the fake embedder."""
    from search import SearchEngine

    with SearchEngine.open(index_dir, model=FakeEmbedder()) as engine:
        return {
            (q, m): [(h.id, h.score) for h in engine.search(q, k=k, mode=m)]
            for q in queries
            for m in ("bm25", "vector", "hybrid")
        }


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    """A seeds folder with three small German articles (umlauts, ß, a Markdown title)."""
    return write_german_seeds(tmp_path / "seeds")


@pytest.fixture
def built_index(tmp_path: Path, seeds_dir: Path, fake_embedder: FakeEmbedder) -> Path:
    """An index of ``seeds_dir`` built with the fake embedder."""
    from indexer import Indexer

    index_dir = tmp_path / "index"
    Indexer(seeds_dir, index_dir, model=fake_embedder).update()
    return index_dir


def stored_passages(index_dir: Path) -> list:
    """Every passage of the published index, in reading order (from its document store)."""
    from indexer.store import DOCS, generations
    from indexer.store.docstore import DocStore

    docs = DocStore(generations.current_generation(index_dir) / DOCS)
    try:
        return docs.all_passages()
    finally:
        docs.close()
