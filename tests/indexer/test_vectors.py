"""Vector index options (flat/HNSW, float32/float16/sq8) and resumable embedding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import GERMAN_ARTICLES, FakeEmbedder, stored_passages
from typer.testing import CliRunner

from indexer import Indexer, IndexSettings, store
from indexer.embedcache import cache_dir
from indexer.errors import IndexCorruptError, SeedsearchError
from indexer.store import files, generations, vectors
from indexer.store.manifest import read_manifest
from search import SearchEngine
from search.cli import app

QUERIES = ["Wer liefert Waffen?", "Hitze in Bayern", "Fußball Sieg Dortmund", "Wasser trinken"]


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def top_ids(index, queries: np.ndarray, k: int = 10) -> list[list[int]]:
    _, ids = index.search(queries, k)
    return ids.tolist()


def rankings(index_dir: Path, mode: str = "vector") -> dict[str, list[str]]:
    with SearchEngine.open(index_dir, model=FakeEmbedder()) as engine:
        return {q: [h.id for h in engine.search(q, k=10, mode=mode)] for q in QUERIES}


def vector_scores(index_dir: Path, mode: str = "vector") -> dict[str, list[float]]:
    with SearchEngine.open(index_dir, model=FakeEmbedder()) as engine:
        return {q: [h.score for h in engine.search(q, k=10, mode=mode)] for q in QUERIES}


def build(seeds: Path, index_dir: Path, **options) -> FakeEmbedder:
    emb = FakeEmbedder()
    Indexer(seeds, index_dir, model=emb, settings=IndexSettings(**options)).update()
    return emb


# ------------------------------------------------------------ store level


def test_hnsw_top10_equals_flat_on_random_unit_vectors() -> None:
    rows, queries = unit_rows(400, 48, 1), unit_rows(50, 48, 2)
    ids = np.arange(1000, 1400, dtype=np.int64)
    flat = vectors.build_vector_index(48, "flat", "float32", rows, ids)
    hnsw = vectors.build_vector_index(48, "hnsw", "float32", rows, ids)
    assert top_ids(hnsw, queries) == top_ids(flat, queries)
    assert vectors.vector_index_layout(hnsw) == ("hnsw", "float32")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("vtype", ["float16", "sq8"])
def test_compact_vectors_keep_the_ranking(kind: str, vtype: str) -> None:
    rows, queries = unit_rows(400, 48, 3), unit_rows(50, 48, 4)
    ids = np.arange(400, dtype=np.int64)
    exact = top_ids(vectors.build_vector_index(48, "flat", "float32", rows, ids), queries)
    compact = vectors.build_vector_index(48, kind, vtype, rows, ids)
    assert vectors.vector_index_layout(compact) == (kind, vtype)
    got = top_ids(compact, queries)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, got, strict=True)])
    assert overlap >= (0.99 if vtype == "float16" else 0.95)


def test_sq8_quantizer_is_carried_over_so_codes_do_not_drift() -> None:
    rows = unit_rows(300, 32, 5)
    ids = np.arange(300, dtype=np.int64)
    first = vectors.build_vector_index(32, "hnsw", "sq8", rows, ids)
    decoded = vectors.reconstruct(first, ids.tolist())
    again = vectors.build_vector_index(32, "hnsw", "sq8", decoded, ids, like=first)
    assert np.array_equal(vectors.reconstruct(again, ids.tolist()), decoded)


def test_ann_auto_switches_at_the_threshold() -> None:
    assert vectors.vector_index_kind("auto", 99_999) == "flat"
    assert vectors.vector_index_kind("auto", 100_000) == "hnsw"
    assert vectors.vector_index_kind("flat", 10**7) == "flat"
    assert vectors.vector_index_kind("hnsw", 3) == "hnsw"
    with pytest.raises(SeedsearchError):
        IndexSettings(ann="ivf")
    with pytest.raises(SeedsearchError):
        IndexSettings(vectors="int4")


# ---------------------------------------------------------- indexer level


@pytest.mark.parametrize(
    ("ann", "vectors"),
    [("hnsw", "float32"), ("flat", "float16"), ("hnsw", "float16"), ("flat", "sq8")],
)
def test_index_options_answer_like_exact_search(seeds_dir, tmp_path, ann, vectors) -> None:
    build(seeds_dir, tmp_path / "exact", ann="flat")
    build(seeds_dir, tmp_path / "opt", ann=ann, vectors=vectors)
    manifest = read_manifest(generations.current_generation(tmp_path / "opt"))
    assert manifest.settings["ann"] == ann and manifest.settings["vectors"] == vectors
    assert manifest.vector_index.startswith(f"{'hnsw32' if ann == 'hnsw' else 'flat'}/{vectors}")
    if vectors == "float32":  # HNSW on a small index is exact: the same ids
        assert rankings(tmp_path / "opt") == rankings(tmp_path / "exact")
        assert rankings(tmp_path / "opt", "hybrid") == rankings(tmp_path / "exact", "hybrid")
    # compact vectors: the same scores rank by rank within the rounding error (exact
    # ties of the fake embedder may then order differently)
    atol = 0.03 if vectors == "sq8" else 2e-3
    for mode in ("vector", "hybrid"):
        a, b = vector_scores(tmp_path / "opt", mode), vector_scores(tmp_path / "exact", mode)
        assert all(np.allclose(a[q], b[q], atol=atol) for q in QUERIES), mode


def test_auto_uses_hnsw_above_the_threshold(seeds_dir, tmp_path) -> None:
    build(seeds_dir, tmp_path / "ix", ann="auto", ann_threshold=3)
    manifest = read_manifest(generations.current_generation(tmp_path / "ix"))
    assert manifest.vector_index.startswith("hnsw32/float32")
    assert manifest.settings["ann"] == "auto" and manifest.settings["ann_threshold"] == 3


@pytest.mark.parametrize("vectors", ["float32", "sq8"])
def test_incremental_update_with_hnsw_equals_a_fresh_build(seeds_dir, tmp_path, vectors) -> None:
    index_dir = tmp_path / "ix"
    build(seeds_dir, index_dir, ann="hnsw", vectors=vectors)
    # add an article, then change one and remove one: all in place, the removed
    # passages' vectors stay in the graph as dead ids that searches skip
    (seeds_dir / "neu.txt").write_text(
        "Die Regierung liefert Waffen an die Ukraine.\n", encoding="utf-8"
    )
    emb = build(seeds_dir, index_dir, ann="hnsw", vectors=vectors)
    assert emb.calls == 1
    (seeds_dir / "wetter.md").write_text(
        GERMAN_ARTICLES["wetter.md"].replace("Ärzte raten", "Ärztinnen raten"), encoding="utf-8"
    )
    (seeds_dir / "fussball.txt").unlink()
    emb = build(seeds_dir, index_dir, ann="hnsw", vectors=vectors)
    assert emb.calls == 1  # only the new paragraph
    build(seeds_dir, tmp_path / "fresh", ann="hnsw", vectors=vectors)
    got, fresh = rankings(index_dir), rankings(tmp_path / "fresh")
    if vectors == "float32":
        assert got == fresh
    else:  # quantizer trained on other data (and the fake embedder has exact ties):
        # the same scores rank by rank, within the 8-bit quantization error
        a, b = vector_scores(index_dir), vector_scores(tmp_path / "fresh")
        assert all(np.allclose(a[q], b[q], atol=0.03) for q in QUERIES)
    status = CliRunner().invoke(app, ["status", "--index", str(index_dir)])
    assert "hnsw32/" in status.stdout and "4 dead (removed passages, skipped)" in status.stdout
    manifest = read_manifest(generations.current_generation(index_dir))
    # a changed article's passages are re-added under new ids (unchanged texts reuse
    # their vectors): wetter's two and fussball's two are dead
    assert manifest.dead_vectors == 4
    with SearchEngine.open(index_dir, model=FakeEmbedder()) as engine:
        live = {p.id for p in stored_passages(index_dir)}
        assert not any(pid.startswith("fussball.txt") for pid in live)
        assert engine._vectors.ntotal == len(engine) + 4
        # every live passage can still be found, none of the dead ones
        hits = engine.search("Fußball Sieg Dortmund Bayern", k=len(engine), mode="vector")
        assert len(hits) == len(engine)
        assert {h.id for h in hits} == live


def test_hnsw_is_rebuilt_when_too_much_of_it_is_dead(seeds_dir, tmp_path) -> None:
    index_dir = tmp_path / "ix"
    build(seeds_dir, index_dir, ann="hnsw")
    (seeds_dir / "nordkorea.txt").unlink()  # most passages: far above the dead share
    build(seeds_dir, index_dir, ann="hnsw")
    manifest = read_manifest(generations.current_generation(index_dir))
    assert manifest.dead_vectors == 0
    with SearchEngine.open(index_dir, model=FakeEmbedder()) as engine:
        assert engine._vectors.ntotal == len(engine) == manifest.passages
    build(seeds_dir, tmp_path / "fresh", ann="hnsw")
    assert rankings(index_dir) == rankings(tmp_path / "fresh")


def test_dead_vector_count_is_checked_on_open(seeds_dir, tmp_path) -> None:
    index_dir = tmp_path / "ix"
    build(seeds_dir, index_dir, ann="hnsw")
    (seeds_dir / "fussball.txt").unlink()
    build(seeds_dir, index_dir, ann="hnsw")
    gen = generations.current_generation(index_dir)
    manifest = read_manifest(gen)
    assert manifest.dead_vectors == 2
    (gen / store.MANIFEST).write_text(replace(manifest, dead_vectors=0).to_json(), "utf-8")
    with pytest.raises(IndexCorruptError, match="2 vectors without a passage"):
        SearchEngine.open(index_dir, model=FakeEmbedder())


def test_changing_vector_options_needs_a_full_rebuild(seeds_dir, tmp_path) -> None:
    build(seeds_dir, tmp_path / "ix")
    (seeds_dir / "neu.txt").write_text("Neue Nachricht aus Wien.\n", encoding="utf-8")
    with pytest.raises(SeedsearchError, match="--full"):
        build(seeds_dir, tmp_path / "ix", vectors="sq8")
    emb = FakeEmbedder()
    indexer = Indexer(seeds_dir, tmp_path / "ix", model=emb, settings=IndexSettings(vectors="sq8"))
    indexer.update(full=True)
    manifest = read_manifest(generations.current_generation(tmp_path / "ix"))
    assert manifest.vector_index == "flat/sq8"


def test_old_manifest_without_vector_settings_still_updates(seeds_dir, tmp_path) -> None:
    index_dir = tmp_path / "ix"
    build(seeds_dir, index_dir)
    gen = generations.current_generation(index_dir)
    manifest = read_manifest(gen)
    for key in ("ann", "vectors", "ann_threshold"):
        del manifest.settings[key]
    files.write_atomic(gen / store.MANIFEST, manifest.to_json())
    (seeds_dir / "neu.txt").write_text("Neue Nachricht aus Wien.\n", encoding="utf-8")
    emb = build(seeds_dir, index_dir)
    assert emb.calls == 1


# ------------------------------------------------------------------ resume


class FailingEmbedder(FakeEmbedder):
    """Raises in the call after ``ok`` successful embed_passages calls."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if self.ok <= 0:
            raise RuntimeError("killed while embedding")
        self.ok -= 1
        return super().embed_passages(texts)


def many_articles(seeds: Path, n: int = 12) -> None:
    for i in range(n):
        (seeds / f"artikel-{i:02d}.txt").write_text(
            f"Meldung {i}: Der Stadtrat von Graz beschließt Maßnahme Nummer {i}.\n\n"
            f"Die Opposition kritisiert den Plan {i} als zu teuer.\n",
            encoding="utf-8",
        )


def test_interrupted_embedding_resumes_with_the_rest(seeds_dir, tmp_path) -> None:
    many_articles(seeds_dir)
    index_dir = tmp_path / "ix"
    failing = FailingEmbedder(ok=3)
    indexer = Indexer(seeds_dir, index_dir, model=failing)
    indexer.embed_chunk = 4
    with pytest.raises(RuntimeError, match="killed"):
        indexer.update()
    done = failing.calls
    assert done == 12 and cache_dir(index_dir, failing.spec).is_dir()
    assert not (index_dir / store.CURRENT).exists()  # nothing was published

    emb = FakeEmbedder()
    resumed = Indexer(seeds_dir, index_dir, model=emb)
    report = resumed.update()
    assert emb.calls == report.embedded == report.passages - done
    assert not cache_dir(index_dir, emb.spec).exists()  # consumed on publish

    build(seeds_dir, tmp_path / "fresh")
    assert rankings(index_dir) == rankings(tmp_path / "fresh")


def test_damaged_cache_part_is_only_re_embedded(seeds_dir, tmp_path) -> None:
    many_articles(seeds_dir, 4)
    index_dir = tmp_path / "ix"
    indexer = Indexer(seeds_dir, index_dir, model=FailingEmbedder(ok=2))
    indexer.embed_chunk = 3
    with pytest.raises(RuntimeError):
        indexer.update()
    parts = sorted(cache_dir(index_dir, FakeEmbedder.spec).glob("part-*.npz"))
    assert len(parts) == 2
    parts[0].write_bytes(b"garbage")
    emb = FakeEmbedder()
    report = Indexer(seeds_dir, index_dir, model=emb).update()
    assert emb.calls == report.passages - 3


# --------------------------------------------------------------------- cli


def test_cli_index_options_are_recorded_and_kept(seeds_dir, tmp_path, monkeypatch) -> None:

    monkeypatch.setattr("indexer.core.load_embedder", lambda model=None: FakeEmbedder())
    index_dir = tmp_path / "ix"
    runner = CliRunner()
    args = ["index", "--seeds", str(seeds_dir), "--index", str(index_dir), "--json"]
    result = runner.invoke(app, [*args, "--ann", "hnsw", "--vectors", "float16"])
    assert result.exit_code == 0, result.output
    (seeds_dir / "neu.txt").write_text("Neue Nachricht aus Wien.\n", encoding="utf-8")
    result = runner.invoke(app, args)  # no options: keeps what the index was built with
    assert result.exit_code == 0, result.output
    manifest = read_manifest(generations.current_generation(index_dir))
    assert manifest.settings["ann"] == "hnsw" and manifest.settings["vectors"] == "float16"
    assert manifest.vector_index.startswith("hnsw32/float16")
    result = runner.invoke(app, [*args, "--vectors", "int4"])
    assert result.exit_code == 2 and "int4" in result.output


def test_an_update_brings_an_older_hnsw_index_to_the_current_settings(seeds_dir, tmp_path):
    import faiss

    index_dir = tmp_path / "ix"
    build(seeds_dir, index_dir, ann="hnsw")
    gen = generations.current_generation(index_dir)
    old = vectors.read_vectors(gen / store.VECTORS)
    faiss.downcast_index(old.index).hnsw.efSearch = 128  # as written by an older version
    vectors.write_vectors(old, gen / store.VECTORS)
    manifest = read_manifest(gen)
    manifest.checksums[store.VECTORS] = files.file_checksum(gen / store.VECTORS)
    (gen / store.MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    (seeds_dir / "neu.txt").write_text("Neue Nachricht aus Wien.\n", encoding="utf-8")
    build(seeds_dir, index_dir, ann="hnsw")  # in place: only the new passage is added
    manifest = read_manifest(generations.current_generation(index_dir))
    assert manifest.vector_index == f"hnsw32/float32(efSearch={vectors.HNSW_EF_SEARCH})"
