"""Incremental updates: only what changed is redone, and the result equals a fresh build."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _crash_worker import CRASH_POINTS
from conftest import GERMAN_ARTICLES, FakeEmbedder, stored_passages
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from indexer import Indexer, IndexSettings
from indexer.errors import LockedError
from indexer.store import generations, lock
from indexer.store.manifest import read_manifest
from search import SearchEngine, index_status

QUERIES = [
    "Wer liefert Waffen?",
    "Hitze in Bayern",
    "Fußball Sieg Dortmund",
    "Putin besucht Nordkorea",
    "Wasser trinken",
]


def snapshot(index_dir: Path, embedder: FakeEmbedder) -> dict:
    """Everything a user can observe: passages, and each mode's ranking with scores."""
    with SearchEngine.open(index_dir, model=embedder) as engine:
        results = {}
        for q in QUERIES:
            for mode in ("bm25", "vector", "hybrid"):
                hits = engine.search(q, k=10, mode=mode)
                results[(q, mode)] = [(h.id, round(h.score, 4)) for h in hits]
    passages = sorted((p.id, p.text) for p in stored_passages(index_dir))
    return {"passages": passages, "results": results}


def fresh_snapshot(seeds: Path, tmp_path: Path, settings: IndexSettings | None = None) -> dict:
    fresh = tmp_path / f"fresh-{time.monotonic_ns()}"
    emb = FakeEmbedder()
    Indexer(seeds, fresh, model=emb, settings=settings).update(full=True)
    snap = snapshot(fresh, emb)
    shutil.rmtree(fresh)
    return snap


def test_first_build_reports_everything_added(seeds_dir, tmp_path, fake_embedder):
    report = Indexer(seeds_dir, tmp_path / "ix", model=fake_embedder).update()
    assert report.added == ["fussball.txt", "nordkorea.txt", "wetter.md"]
    assert report.changed == report.removed == []
    assert report.unchanged == 0
    assert report.documents == 3
    assert report.embedded == report.passages == fake_embedder.calls


def test_no_change_does_nothing(seeds_dir, built_index, fake_embedder):
    gen_before = generations.current_generation(built_index)
    report = Indexer(seeds_dir, built_index, model=fake_embedder).update()
    assert (report.added, report.changed, report.removed, report.embedded) == ([], [], [], 0)
    assert report.unchanged == 3
    assert generations.current_generation(built_index) == gen_before


def test_changed_paragraph_is_the_only_one_embedded(seeds_dir, built_index, tmp_path):
    text = (seeds_dir / "nordkorea.txt").read_text(encoding="utf-8")
    edited = text.replace("Putin bemüht sich derzeit", "Kim bemüht sich derzeit")
    assert edited != text
    (seeds_dir / "nordkorea.txt").write_text(edited, encoding="utf-8")
    emb = FakeEmbedder()
    report = Indexer(seeds_dir, built_index, model=emb).update()
    assert report.changed == ["nordkorea.txt"]
    assert report.unchanged == 2
    assert report.embedded == 1 == emb.calls
    assert snapshot(built_index, emb) == fresh_snapshot(seeds_dir, tmp_path)


def test_add_remove_and_rename(seeds_dir, built_index, tmp_path):
    emb = FakeEmbedder()
    (seeds_dir / "neu.txt").write_text("Die Bahn streikt am Montag.\n", encoding="utf-8")
    (seeds_dir / "fussball.txt").unlink()
    (seeds_dir / "wetter.md").rename(seeds_dir / "klima.md")
    report = Indexer(seeds_dir, built_index, model=emb).update()
    assert report.added == ["klima.md", "neu.txt"]
    assert report.removed == ["fussball.txt", "wetter.md"]
    assert report.embedded == 1  # the renamed article's passages keep their vectors
    snap = snapshot(built_index, emb)
    assert all(not pid.startswith(("fussball.txt", "wetter.md")) for pid, _ in snap["passages"])
    assert snap == fresh_snapshot(seeds_dir, tmp_path)


def test_full_rebuild_embeds_everything(seeds_dir, built_index):
    emb = FakeEmbedder()
    report = Indexer(seeds_dir, built_index, model=emb).update(full=True)
    assert report.embedded == report.passages == emb.calls
    assert sorted(report.added) == sorted(GERMAN_ARTICLES)


def test_open_reader_keeps_working_during_updates(seeds_dir, built_index, fake_embedder):
    engine = SearchEngine.open(built_index, model=fake_embedder)
    before = [h.id for h in engine.search("Wer liefert Waffen?", k=3)]
    for i in range(5):  # more updates than generations kept
        (seeds_dir / f"n{i}.txt").write_text(f"Meldung {i} über Waffen.\n", encoding="utf-8")
        Indexer(seeds_dir, built_index, model=fake_embedder).update()
    assert [h.id for h in engine.search("Wer liefert Waffen?", k=3)] == before
    fresh = engine.refresh()
    assert fresh is not engine
    assert len(fresh) == len(engine) + 5
    engine.close()
    fresh.close()


def test_status_reports_staleness(seeds_dir, built_index):
    st0 = index_status(built_index, seeds_dir)
    assert not st0.stale and st0.documents == 3
    (seeds_dir / "neu.txt").write_text("Neu.\n", encoding="utf-8")
    (seeds_dir / "fussball.txt").write_text("Geändert.\n", encoding="utf-8")
    (seeds_dir / "wetter.md").unlink()
    st1 = index_status(built_index, seeds_dir)
    assert st1.stale
    assert (st1.stale_added, st1.stale_changed, st1.stale_removed) == (
        ["neu.txt"],
        ["fussball.txt"],
        ["wetter.md"],
    )


def test_second_writer_gets_a_clear_message(seeds_dir, built_index, fake_embedder):
    with (
        lock.writer_lock(built_index),
        pytest.raises(LockedError, match=r"another seedsearch index \(pid \d+\)"),
    ):
        Indexer(seeds_dir, built_index, model=fake_embedder, lock_wait=0.2).update()


def test_lock_of_a_killed_writer_is_recovered(seeds_dir, built_index, fake_embedder):
    code = (
        "import sys, time; from pathlib import Path; from indexer.store import lock\n"
        "with lock.writer_lock(Path(sys.argv[1])):\n"
        "    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(built_index)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError):
            Indexer(seeds_dir, built_index, model=fake_embedder, lock_wait=0.1).update()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (seeds_dir / "neu.txt").write_text("Nach dem Absturz.\n", encoding="utf-8")
    report = Indexer(seeds_dir, built_index, model=fake_embedder, lock_wait=0.1).update()
    assert report.added == ["neu.txt"]


# ----------------------------------------------------------------- crash safety

WORKER = Path(__file__).with_name("_crash_worker.py")


def _run_worker(seeds: Path, index: Path, point: str) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, str(WORKER), str(seeds), str(index), point],
        env=env,
        capture_output=True,
        timeout=60,
    ).returncode


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_update_leaves_last_index_and_next_run_finishes(seeds_dir, tmp_path, point):
    index = tmp_path / "ix"
    assert _run_worker(seeds_dir, index, "none") == 0
    emb = FakeEmbedder()
    before = snapshot(index, emb)
    (seeds_dir / "fussball.txt").write_text("Der Trainer tritt zurück.\n", encoding="utf-8")
    (seeds_dir / "neu.txt").write_text("Waffenruhe in Sicht.\n", encoding="utf-8")
    rc = _run_worker(seeds_dir, index, point)
    assert rc == -signal.SIGKILL
    # Readers see a complete index: the old one, or (killed after the swap) the new one.
    after_kill = snapshot(index, emb)
    expected_new = fresh_snapshot(seeds_dir, tmp_path)
    assert after_kill in (before, expected_new)
    # The next run finishes the job and cleans up what the dead writer left.
    Indexer(seeds_dir, index, model=emb).update()
    assert snapshot(index, emb) == expected_new
    assert not [p for p in index.iterdir() if ".tmp" in p.name]


# ------------------------------------------------------------ property test

PARAGRAPHS = [
    "Die Regierung plant neue Waffenlieferungen an die Ukraine.",
    "Nordkorea liefert Munition an Russland.",
    "In München steigen die Mieten weiter stark an.",
    "Der Deutsche Wetterdienst warnt vor Hitze und Gewittern.",
    "Die Fußballnationalmannschaft gewinnt gegen Österreich.",
    "Die Straße bleibt wegen Bauarbeiten gesperrt.",
    "Bäcker klagen über hohe Energiepreise.",
    "Kim Jong-Un empfängt Putin in Pjöngjang.",
]

operation = st.one_of(
    st.tuples(
        st.just("write"), st.integers(0, 4), st.lists(st.integers(0, 7), min_size=1, max_size=4)
    ),
    st.tuples(st.just("delete"), st.integers(0, 4), st.just([])),
    st.tuples(
        st.just("rename"), st.integers(0, 4), st.lists(st.integers(0, 4), min_size=1, max_size=1)
    ),
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=4))
@pytest.mark.parametrize("ann", ["flat", "hnsw"])  # hnsw: dead vectors and rebuilds
def test_any_edit_sequence_equals_a_fresh_build(tmp_path_factory, ann, steps):
    base = tmp_path_factory.mktemp("prop")
    seeds, index = base / "seeds", base / "ix"
    seeds.mkdir()
    (seeds / "a0.txt").write_text(PARAGRAPHS[0] + "\n" + PARAGRAPHS[1] + "\n", encoding="utf-8")
    emb = FakeEmbedder()
    options = IndexSettings(ann=ann)
    Indexer(seeds, index, model=emb, settings=options).update()
    for batch in steps:
        for op, n, arg in batch:
            path = seeds / f"a{n}.txt"
            if op == "write":
                path.write_text("\n".join(PARAGRAPHS[i] for i in arg) + "\n", encoding="utf-8")
            elif op == "delete" and path.exists():
                path.unlink()
            elif op == "rename" and path.exists():
                path.rename(seeds / f"a{arg[0]}.txt")
        Indexer(seeds, index, model=emb, settings=options).update()
        dead = read_manifest(generations.current_generation(index)).dead_vectors
        event(f"{ann}: dead vectors {'kept' if dead else 'none'}")
    if not any(seeds.iterdir()):
        assert not SearchEngine.open(index, model=emb).search("Waffen", k=3)
        return
    assert snapshot(index, emb) == fresh_snapshot(seeds, base, options)
