"""Index settings: remembered by the index, reused by every writer, changed only by
an explicit full rebuild, with a message that names the setting and the command."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import FakeEmbedder
from typer.testing import CliRunner

from indexer import Indexer, IndexSettings
from indexer.errors import EmbedderMismatchError, SeedsearchError, SettingsMismatchError
from indexer.settings import resolve_settings
from indexer.store import generations
from indexer.store.manifest import read_manifest
from search.cli import app


def built_settings(index: Path) -> dict:
    return read_manifest(generations.current_generation(index)).settings


@pytest.fixture
def fake_models(monkeypatch):
    """Every spec loads the fake embedder (the CLI and watch load models by spec)."""
    from indexer import core
    from search import engine

    monkeypatch.setattr(core, "load_embedder", lambda model=None: FakeEmbedder())
    monkeypatch.setattr(engine, "load_embedder", lambda model=None: FakeEmbedder())


# ------------------------------------------------------------ the pure rule


def test_new_index_takes_defaults_and_requests():
    got = resolve_settings(None, {"vectors": "float16"}, False, Path("ix"))
    assert got == IndexSettings(vectors="float16")


def test_update_reuses_built_settings_when_nothing_is_asked():
    built = IndexSettings(vectors="sq8", ann="hnsw", model="m")
    assert resolve_settings(built, {}, False, Path("ix")) == built


def test_asking_for_the_built_value_is_fine():
    built = IndexSettings(vectors="sq8")
    assert resolve_settings(built, {"vectors": "SQ8 "}, False, Path("ix")) == built


def test_a_different_value_names_setting_values_and_command():
    built = IndexSettings(vectors="float16")
    with pytest.raises(SettingsMismatchError) as info:
        resolve_settings(built, {"vectors": "sq8"}, False, Path("idx"), Path("seeds"))
    assert str(info.value) == (
        "index at idx was built with vectors='float16', not 'sq8': keep the built value by "
        "leaving out --vectors, or rebuild it with the new value: seedsearch index --full "
        "--vectors sq8 --index idx"
    )


def test_a_different_model_is_an_embedder_mismatch():
    with pytest.raises(EmbedderMismatchError, match="--full --model e5-small"):
        resolve_settings(IndexSettings(model="use-m3"), {"model": "e5-small"}, False, Path("ix"))


def test_settings_without_a_flag_give_the_python_command():
    with pytest.raises(SettingsMismatchError, match=r"max_passage_words=50\)\.update\(full=True\)"):
        resolve_settings(IndexSettings(), {"max_passage_words": 50}, False, Path("ix"), Path("s"))


def test_full_rebuild_keeps_built_settings_and_applies_requests():
    built = IndexSettings(vectors="float16", ann="hnsw")
    got = resolve_settings(built, {"ann": "flat"}, True, Path("ix"))
    assert (got.vectors, got.ann) == ("float16", "flat")


def test_bad_values_and_unknown_settings_are_clear_errors():
    with pytest.raises(SeedsearchError, match="vectors='int4' is unknown: use float32"):
        resolve_settings(None, {"vectors": "int4"}, False, Path("ix"))
    with pytest.raises(SeedsearchError, match="unknown index setting colour"):
        resolve_settings(None, {"colour": "red"}, False, Path("ix"))


# ------------------------------------------------- every writer uses the rule


def test_indexer_update_keeps_float16_built_index(seeds_dir, tmp_path):
    index = tmp_path / "ix"
    Indexer(seeds_dir, index, model=FakeEmbedder(), settings={"vectors": "float16"}).update()
    (seeds_dir / "neu.txt").write_text("Neue Meldung aus Graz.\n", "utf-8")
    report = Indexer(seeds_dir, index, model=FakeEmbedder()).update()  # nothing asked
    assert report.added == ["neu.txt"]
    assert built_settings(index)["vectors"] == "float16"
    with pytest.raises(SettingsMismatchError, match="vectors='float16', not 'float32'"):
        Indexer(seeds_dir, index, model=FakeEmbedder(), settings={"vectors": "float32"}).update()


def test_cli_index_full_keeps_settings_unless_told(seeds_dir, tmp_path, fake_models):
    runner = CliRunner()
    index = str(tmp_path / "ix")
    args = ["index", "--seeds", str(seeds_dir), "--index", index]
    assert runner.invoke(app, [*args, "--vectors", "float16", "--ann", "hnsw"]).exit_code == 0
    assert runner.invoke(app, [*args, "--full"]).exit_code == 0
    assert (built_settings(Path(index))["vectors"], built_settings(Path(index))["ann"]) == (
        "float16",
        "hnsw",
    )
    result = runner.invoke(app, [*args, "--vectors", "sq8"])
    assert result.exit_code == 2
    assert "vectors='float16', not 'sq8'" in result.stderr
    assert f"seedsearch index --full --vectors sq8 --seeds {seeds_dir} --index {index}" in (
        result.stderr
    )
    assert runner.invoke(app, [*args, "--full", "--vectors", "sq8"]).exit_code == 0
    assert built_settings(Path(index))["vectors"] == "sq8"


def test_watch_updates_an_index_built_with_other_vectors(seeds_dir, tmp_path, fake_models):
    from indexer.watch import watch

    index = tmp_path / "ix"
    Indexer(seeds_dir, index, model=FakeEmbedder(), settings={"vectors": "float16"}).update()
    updates, errors = [], []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(Indexer(seeds_dir, index), updates.append, errors.append, 50, stop),
    )
    thread.start()
    try:
        time.sleep(0.5)
        (seeds_dir / "neu.txt").write_text("Neue Meldung aus Linz.\n", "utf-8")
        deadline = time.monotonic() + 10
        while not updates and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert errors == []
    assert updates and updates[0].added == ["neu.txt"]
    assert built_settings(index)["vectors"] == "float16"


def test_watch_stops_with_the_error_when_the_index_cannot_be_updated(seeds_dir, tmp_path):
    from indexer.watch import watch

    index = tmp_path / "ix"
    Indexer(seeds_dir, index, model=FakeEmbedder()).update()
    other = Indexer(seeds_dir, index, model=FakeEmbedder(), settings={"vectors": "sq8"})
    with pytest.raises(SettingsMismatchError):
        watch(other, lambda r: None, lambda m: None, 50, threading.Event())


def test_model_argument_and_settings_model_must_agree(seeds_dir, tmp_path):
    with pytest.raises(SeedsearchError, match="disagree"):
        Indexer(seeds_dir, tmp_path / "ix", model=FakeEmbedder(), settings={"model": "x"})


class GraphA(FakeEmbedder):
    model_id = "graph:aaaa"


class GraphB(FakeEmbedder):
    model_id = "graph:bbbb"


def test_new_vectors_from_another_graph_of_the_same_model_are_refused(seeds_dir, tmp_path):
    from search import SearchEngine

    index = tmp_path / "ix"
    Indexer(seeds_dir, index, model=GraphA()).update()
    assert read_manifest(generations.current_generation(index)).embedder_id == "graph:aaaa"
    Indexer(seeds_dir, index, model=GraphB()).update()  # nothing to embed: fine
    (seeds_dir / "neu.txt").write_text("Neue Meldung aus Bregenz.\n", "utf-8")
    with pytest.raises(EmbedderMismatchError, match="graph:aaaa.*graph:bbbb.*--full"):
        Indexer(seeds_dir, index, model=GraphB()).update()
    with SearchEngine.open(index, model=GraphB()) as engine:
        assert engine.search("Bayern", mode="bm25")  # keywords need no vectors
        with pytest.raises(EmbedderMismatchError, match="not be comparable"):
            engine.search("Bayern", mode="vector")
    Indexer(seeds_dir, index, model=GraphB()).update(full=True)
    assert read_manifest(generations.current_generation(index)).embedder_id == "graph:bbbb"


@pytest.mark.slow
def test_default_model_is_e5_small_and_its_graph_is_recorded(seeds_dir, tmp_path):
    index = tmp_path / "ix"
    Indexer(seeds_dir, index).update()
    built = read_manifest(generations.current_generation(index))
    assert (built.embedder, built.dim) == ("e5-small", 384)
    assert built.embedder_id.startswith("graph:") and len(built.embedder_id) > 20
