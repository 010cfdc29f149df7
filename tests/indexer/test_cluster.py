"""Builds on a Dask cluster: the same index as a local build, and the fault cases.

The slow tests start real LocalClusters of worker processes (bound to 127.0.0.1).
The embedders come from specs (``conftest:FakeEmbedder``, ``_cluster_helpers:...``),
which the spawned workers import themselves.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _cluster_helpers import CRASH_ALWAYS, CRASH_ONCE
from conftest import stored_passages, write_german_seeds
from typer.testing import CliRunner

from indexer import Indexer
from indexer import cluster as cluster_mod
from indexer.embedcache import EmbedCache
from indexer.errors import SeedsearchError
from indexer.store import VECTORS, generations, vectors
from search import SearchEngine
from search.cli import app

FAKE = "conftest:FakeEmbedder"
CRASHING = "_cluster_helpers:CrashingEmbedder"
QUERIES = [
    "Wer liefert Waffen?",
    "Hitze in Bayern",
    "Fußball Sieg Dortmund",
    "Putin besucht Nordkorea",
    "Zinsen für Sparer",
    "Streik der Lokführer",
]
MODES = ("bm25", "vector", "hybrid")


def write_seeds(folder: Path) -> Path:
    """The German fixtures plus a .jsonl whose records are not in id order (article
    order and file order differ) and two more short articles."""
    write_german_seeds(folder)
    records = [
        {"id": "z-2", "title": "Bahnstreik", "text": "Die Lokführer streiken ab Montag."},
        {
            "id": "a-1",
            "title": "Zinsen",
            "text": "Die Zentralbank senkt den Leitzins.\n\nSparer ärgern sich über Zinsen.",
        },
    ]
    (folder / "agentur.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    (folder / "kultur.txt").write_text(
        "Das Münchner Theater zeigt ein neues Stück über Größenwahn.\n", encoding="utf-8"
    )
    (folder / "verkehr.txt").write_text(
        "Auf der Autobahn staut sich der Verkehr vor Ostern.\n", encoding="utf-8"
    )
    return folder


def view(index_dir: Path) -> dict:
    """What a user can observe of an index: stored passages (with vector ids and text
    hashes), every mode's ranking with scores, and each passage's vector."""
    passages = stored_passages(index_dir)
    gen = generations.current_generation(index_dir)
    index = vectors.read_vectors(gen / VECTORS)
    rows = vectors.reconstruct(index, [p.vid for p in passages])
    with SearchEngine.open(index_dir) as engine:  # the embedder of the manifest's spec
        results = {
            (q, m): [(h.id, h.score) for h in engine.search(q, k=10, mode=m)]
            for q in QUERIES
            for m in MODES
        }
    return {
        "passages": passages,
        "results": results,
        "vectors": dict(zip([p.id for p in passages], rows, strict=True)),
    }


def assert_same_index(got: Path, expected: Path, vids: bool = True) -> None:
    """The same passages, the same BM25 scores, vectors and vector scores within
    float tolerance. ``vids=False``: compare passages by id and text only."""
    a, b = view(got), view(expected)
    if vids:
        assert a["passages"] == b["passages"]
    else:
        assert [(p.id, p.text, p.title) for p in a["passages"]] == [
            (p.id, p.text, p.title) for p in b["passages"]
        ]
    for key, hits in b["results"].items():
        assert [h for h, _ in a["results"][key]] == [h for h, _ in hits], key
        if key[1] == "bm25":
            assert a["results"][key] == hits, key
        else:
            assert [s for _, s in a["results"][key]] == pytest.approx([s for _, s in hits])
    assert a["vectors"].keys() == b["vectors"].keys()
    for pid, vec in b["vectors"].items():
        np.testing.assert_allclose(a["vectors"][pid], vec, atol=1e-6)


def same_report(a, b) -> bool:
    return {**a.to_dict(), "seconds": 0} == {**b.to_dict(), "seconds": 0}


def local_cluster(**config):
    import dask
    import distributed

    with dask.config.set(config):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    return cluster, distributed.Client(cluster)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """Two worker processes for the module; CRASH_ONCE crashes one of them once."""
    os.environ["SEEDSEARCH_TEST_CRASH_DIR"] = str(tmp_path_factory.mktemp("crash"))
    cluster, c = local_cluster()
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        del os.environ["SEEDSEARCH_TEST_CRASH_DIR"]


@pytest.fixture
def small_batches(monkeypatch):
    """One seed file per read task, so a tiny corpus still makes several batches."""
    monkeypatch.setattr(cluster_mod, "BATCH_FILES", 1)


# ------------------------------------------------------------------ fast


@pytest.mark.parametrize("bad", [0, -2, True, "", "  ", 2.5, object()])
def test_cluster_target_is_checked(tmp_path, bad):
    with pytest.raises(SeedsearchError, match="cluster="):
        Indexer(tmp_path, tmp_path / "ix", model=FAKE, cluster=bad)


def test_cluster_needs_the_model_as_a_spec(tmp_path, fake_embedder):
    with pytest.raises(SeedsearchError, match="model as a spec"):
        Indexer(tmp_path, tmp_path / "ix", model=fake_embedder, cluster=2)


def test_without_distributed_the_error_names_the_extra(seeds_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    with pytest.raises(SeedsearchError, match=r"seedsearch\[cluster\]"):
        Indexer(seeds_dir, tmp_path / "ix", model=FAKE, cluster=2).update()
    assert not (tmp_path / "ix" / "CURRENT").exists()


def test_factory_spec_makes_the_embedder_under_its_spec():
    from conftest import FakeEmbedder

    from indexer.embedder import load_embedder

    made = load_embedder(FAKE)
    assert isinstance(made, FakeEmbedder) and made.spec == FAKE
    assert made.embed_passages(["Straße in München"]).shape == (1, 64)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("kein_solches_modul_xyz:Embedder", "cannot import kein_solches_modul_xyz"),
        ("conftest:KeinEmbedder", "conftest has no KeinEmbedder"),
        ("conftest:GERMAN_ARTICLES", "is not callable"),
        ("conftest:write_german_seeds", "takes no arguments"),
        ("conftest:Path", "not an embedder"),
    ],
)
def test_bad_factory_spec_is_one_clear_error(spec, message):
    from indexer.embedder import load_embedder

    with pytest.raises(SeedsearchError, match=message):
        load_embedder(spec)


def test_index_built_with_a_factory_spec_searches_without_the_model(seeds_dir, tmp_path):
    Indexer(seeds_dir, tmp_path / "ix", model=FAKE).update()
    with SearchEngine.open(tmp_path / "ix") as engine:  # makes the embedder from the manifest
        assert engine.embedder.spec == FAKE
        (hit,) = engine.search(
            "Ärzte raten, viel Wasser zu trinken und die Mittagssonne zu meiden.", 1, "vector"
        )
        assert hit.id == "wetter.md#2" and hit.score == pytest.approx(1.0)


def test_worker_tasks_refuse_other_code_and_an_unseen_seeds_folder(seeds_dir, tmp_path):
    with pytest.raises(SeedsearchError, match="runs other seedsearch code"):
        cluster_mod.read_files(str(seeds_dir), ["wetter.md"], "0123456789abcdef")
    fingerprint = cluster_mod.code_fingerprint()
    with pytest.raises(SeedsearchError, match="cannot see the seeds folder"):
        cluster_mod.read_files(str(tmp_path / "elsewhere"), ["wetter.md"], fingerprint)
    (seed,) = cluster_mod.read_files(str(seeds_dir), ["wetter.md"], fingerprint)
    (header,) = cluster_mod.headers([seed])
    assert header.articles[0].paragraphs == () and header.articles[0].title == (
        "Hitzewelle in Süddeutschland"
    )
    assert header.articles[0].content_hash == seed.articles[0].content_hash


def test_segment_groups_split_the_new_passages_by_worker():
    from indexer.cluster import SEGMENT_MAX, SEGMENT_MIN, segment_groups

    assert segment_groups([SEGMENT_MIN - 1], 8) == []  # the coordinator writes them
    assert segment_groups([SEGMENT_MIN] * 3, 1) == [[0, 1, 2]]
    assert segment_groups([SEGMENT_MIN] * 4, 2) == [[0, 1], [2, 3]]
    # never smaller than SEGMENT_MIN: 3 segments of 2 batches for 50 workers
    assert segment_groups([SEGMENT_MIN // 2] * 6, 50) == [[0, 1], [2, 3], [4, 5]]
    big = segment_groups([SEGMENT_MAX // 4] * 40, 2)  # never larger than SEGMENT_MAX
    assert len(big) == 10 and sorted(i for g in big for i in g) == list(range(40))


# ------------------------------------------------------------------ slow


@pytest.mark.slow
def test_local_build_does_not_import_dask(seeds_dir, tmp_path):
    code = (
        "import sys; from indexer import Indexer; "
        f"Indexer({str(seeds_dir)!r}, {str(tmp_path / 'ix')!r}, model={FAKE!r}).update(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), "."])}
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"


def keyword_segments(index_dir: Path) -> int:
    from indexer.store import WHOOSH, keyword

    ix = keyword.open_index(generations.current_generation(index_dir) / WHOOSH)
    try:
        return len(ix._segments())
    finally:
        ix.close()


@pytest.mark.slow
@pytest.mark.parametrize("segment_min", [cluster_mod.SEGMENT_MIN, 4])
def test_cluster_build_is_the_local_build(
    client, tmp_path, small_batches, monkeypatch, segment_min
):
    """With the default SEGMENT_MIN the coordinator writes the keyword index of this
    tiny corpus; with 4 the two workers write a segment each."""
    monkeypatch.setattr(cluster_mod, "SEGMENT_MIN", segment_min)
    seeds = write_seeds(tmp_path / "seeds")
    local = Indexer(seeds, tmp_path / "local", model=FAKE).update()
    indexer = Indexer(seeds, tmp_path / "cl", model=FAKE, cluster=client)
    indexer.embed_chunk = 3  # several embedding tasks per batch
    report = indexer.update()
    assert same_report(report, local) and report.embedded == report.passages == 21
    assert_same_index(tmp_path / "cl", tmp_path / "local")
    assert keyword_segments(tmp_path / "cl") == (1 if segment_min > 21 else 2)
    assert not list((tmp_path / "cl").glob(".embed-cache-*"))  # published: cache dropped


@pytest.mark.slow
def test_cluster_update_is_the_local_update(client, tmp_path, small_batches, monkeypatch):
    monkeypatch.setattr(cluster_mod, "SEGMENT_MIN", 3)  # workers write the segments
    seeds = write_seeds(tmp_path / "seeds")
    cl, local = tmp_path / "cl", tmp_path / "local"
    Indexer(seeds, cl, model=FAKE, cluster=client).update()
    Indexer(seeds, local, model=FAKE).update()

    text = (seeds / "nordkorea.txt").read_text(encoding="utf-8")
    (seeds / "nordkorea.txt").write_text(
        text.replace("Putin bemüht sich derzeit", "Kim bemüht sich derzeit"), encoding="utf-8"
    )
    (seeds / "fussball.txt").unlink()
    (seeds / "neu.md").write_text(
        "# Neue Brücke\n\nDie Stadt eröffnet eine Fußgängerbrücke über den Fluss.\n",
        encoding="utf-8",
    )
    jsonl = (seeds / "agentur.jsonl").read_text(encoding="utf-8")
    (seeds / "agentur.jsonl").write_text(
        jsonl.replace("ab Montag", "ab Dienstag"), encoding="utf-8"
    )

    report = Indexer(seeds, cl, model=FAKE, cluster=client).update()
    expected = Indexer(seeds, local, model=FAKE).update()
    assert same_report(report, expected)
    assert report.changed == ["agentur.jsonl:z-2", "nordkorea.txt"]
    assert report.removed == ["fussball.txt"] and report.added == ["neu.md"]
    assert 0 < report.embedded < report.passages  # only new texts were embedded
    assert_same_index(cl, local)
    Indexer(seeds, tmp_path / "fresh", model=FAKE).update()
    assert_same_index(cl, tmp_path / "fresh", vids=False)


@pytest.mark.slow
def test_each_worker_loads_the_model_once(client, tmp_path, small_batches):
    import _cluster_helpers

    indexer = Indexer(
        write_seeds(tmp_path / "seeds"),
        tmp_path / "ix",
        model="_cluster_helpers:CountingEmbedder",
        cluster=client,
    )
    indexer.embed_chunk = 1  # one task per text: 21 tasks on 2 workers
    assert indexer.update().embedded == 21
    loads = client.run(_cluster_helpers.loads)
    assert len(loads) == 2 and max(loads.values()) == 1, loads


@pytest.mark.slow
def test_worker_killed_while_embedding_the_build_finishes(client, tmp_path, small_batches):
    seeds = write_seeds(tmp_path / "seeds")
    (seeds / "panne.txt").write_text(
        f"Ein {CRASH_ONCE} legt das Rechenzentrum der Bahn lahm.\n", encoding="utf-8"
    )
    pids = set(client.run(os.getpid).values())
    report = Indexer(seeds, tmp_path / "cl", model=CRASHING, cluster=client).update()
    assert (Path(os.environ["SEEDSEARCH_TEST_CRASH_DIR"]) / "crashed").exists()
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != pids  # one worker died and restarted
    expected = Indexer(seeds, tmp_path / "local", model=FAKE).update()
    assert {**report.to_dict(), "seconds": 0} == {**expected.to_dict(), "seconds": 0}
    assert_same_index(tmp_path / "cl", tmp_path / "local")


@pytest.mark.slow
def test_failed_build_keeps_the_index_and_finished_batches(tmp_path, small_batches):
    seeds = write_german_seeds(tmp_path / "seeds")
    index = tmp_path / "ix"
    Indexer(seeds, index, model=CRASHING).update()  # no crash texts: fine locally
    gen = generations.current_generation(index)
    before = view(index)
    for i in range(8):
        (seeds / f"meldung-{i}.txt").write_text(
            f"Meldung {i}: Die Gemeinde Überlingen plant Straße Nummer {i}.\n", encoding="utf-8"
        )
    (seeds / "zz-panne.txt").write_text(f"Ein {CRASH_ALWAYS} im Netz.\n", encoding="utf-8")

    cluster, client = local_cluster(**{"distributed.scheduler.allowed-failures": 0})
    try:
        indexer = Indexer(seeds, index, model=CRASHING, cluster=client)
        indexer.embed_chunk = 3  # one text per task: the last results wait in a buffer
        with pytest.raises(SeedsearchError) as err:
            indexer.update()
    finally:
        client.close()
        cluster.close()
    message = str(err.value)
    assert "\n" not in message and "died" in message and "run the update again" in message
    assert generations.current_generation(index) == gen
    after = view(index)  # the last published index answers as before
    assert (after["passages"], after["results"]) == (before["passages"], before["results"])
    cached = len(EmbedCache(index, CRASHING, None))
    assert 1 <= cached <= 8

    (seeds / "zz-panne.txt").unlink()
    report = Indexer(seeds, index, model=CRASHING).update()
    assert report.embedded == 8 - cached  # finished batches were not embedded again
    assert len(report.added) == 8


@pytest.mark.slow
def test_unreachable_scheduler_is_one_line_and_exit_2(built_index, seeds_dir, monkeypatch):
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT", 0.5)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = generations.current_generation(built_index)
    t = time.monotonic()
    result = CliRunner().invoke(
        app,
        ["index", "--seeds", str(seeds_dir), "--index", str(built_index)]
        + ["--cluster", f"tcp://127.0.0.1:{port}", "--model", "fake-hash-64"],
    )
    assert time.monotonic() - t < 10
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert lines[0].startswith(f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")
    assert generations.current_generation(built_index) == gen


@pytest.mark.slow
def test_scheduler_without_workers_is_one_clear_error(seeds_dir, tmp_path, monkeypatch):
    import distributed

    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT", 2.0)  # connecting must succeed
    with (
        distributed.LocalCluster(
            n_workers=0,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as empty,
        pytest.raises(SeedsearchError, match="has no workers") as err,
    ):
        Indexer(seeds_dir, tmp_path / "ix", model=FAKE, cluster=empty.scheduler_address).update()
    assert "\n" not in str(err.value) and "dask worker" in str(err.value)
    assert not (tmp_path / "ix" / "CURRENT").exists()


@pytest.mark.slow
def test_cli_workers_builds_on_local_workers_and_stops_them(tmp_path, small_batches):
    seeds = write_seeds(tmp_path / "seeds")
    before = set(multiprocessing.active_children())  # the module's cluster, if started
    result = CliRunner().invoke(
        app,
        ["index", "--seeds", str(seeds), "--index", str(tmp_path / "cl")]
        + ["--workers", "2", "--model", FAKE, "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passages"] == 21
    assert set(multiprocessing.active_children()) <= before  # its local cluster is gone
    Indexer(seeds, tmp_path / "local", model=FAKE).update()
    assert_same_index(tmp_path / "cl", tmp_path / "local")
    both = CliRunner().invoke(
        app, ["index", "--seeds", str(seeds), "--workers", "2", "--cluster", "tcp://x:1"]
    )
    assert both.exit_code == 2 and "not both" in both.stderr
