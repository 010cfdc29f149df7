"""``LiveEngine``: a server follows the published index without a restart."""

from __future__ import annotations

import pytest
from _serve_fixtures import ARCHIVE, build_archive, write_archive
from conftest import FakeEmbedder

from indexer import Indexer
from indexer.errors import IndexCorruptError
from indexer.store import generations
from indexer.store.layout import CURRENT
from search import SearchEngine
from search.live import LiveEngine, NoIndexError


def opener(index_dir):
    return SearchEngine.open(index_dir, model=FakeEmbedder())


def republish(seeds, index, name="Sport/neu.txt", text="Die Segelregatta auf dem Bodensee.\n"):
    write_archive(seeds, {name: text})
    Indexer(seeds, index, model=FakeEmbedder()).update()


@pytest.fixture
def live(tmp_path):
    seeds, index = build_archive(tmp_path)
    engine = LiveEngine(index, opener=opener, interval=0.05)
    engine.check()
    yield engine, seeds, index
    engine.stop()


def test_a_new_generation_is_swapped_in_and_answers(live):
    engine, seeds, index = live
    before = engine.engine.manifest.generation
    assert not engine.run(lambda e: e.search("Segelregatta Bodensee", k=3, mode="bm25"))
    republish(seeds, index)
    assert engine.check() is True and engine.check() is False
    assert engine.engine.manifest.generation == before + 1
    hits = engine.run(lambda e: e.search("Segelregatta Bodensee", k=3, mode="bm25"))
    assert hits[0].doc == "Sport/neu.txt"


def test_a_leased_engine_stays_open_until_its_answer_is_done(live):
    engine, seeds, index = live
    closed = []
    engine._on_close = closed.append
    with engine.lease() as old:
        republish(seeds, index)
        assert engine.check()
        assert engine.engine is not old and closed == []
        assert old.search("Hitze", k=1)  # still answers from its own generation
    assert closed == [old]


def test_following_thread_notices_a_publish(live):
    engine, seeds, index = live
    engine.start()
    gen = engine.engine.manifest.generation
    republish(seeds, index)
    assert engine.wait_for(lambda e: e.manifest.generation == gen + 1, timeout=10)


def test_a_broken_publish_keeps_the_old_engine(live):
    engine, seeds, index = live
    served = engine.engine
    (index / CURRENT).write_text("gen-99999999\n", encoding="utf-8")
    assert engine.check() is False
    assert engine.engine is served and "gen-99999999" in engine.last_error
    assert engine.run(lambda e: e.search("Hitze", k=1))


def test_an_answer_whose_generation_vanished_is_retried_on_the_new_one(live):
    engine, seeds, index = live
    first = engine.engine
    calls = []

    def answer(e):
        calls.append(e)
        if e is first:
            republish(seeds, index)  # the next generation is published meanwhile ...
            raise IndexCorruptError("generation files removed")  # ... and ours is gone
        return e.manifest.generation

    assert engine.run(answer) == first.manifest.generation + 1
    assert calls[0] is first and calls[1] is engine.engine


def test_a_real_error_is_not_retried(live):
    engine, _seeds, _index = live

    def answer(e):
        raise IndexCorruptError("damaged")

    with pytest.raises(IndexCorruptError, match="damaged"):
        engine.run(answer)


def test_no_index_yet(tmp_path):
    index = tmp_path / "index"
    engine = LiveEngine(index, opener=opener, interval=0.05)
    assert engine.check() is False and engine.engine is None
    with pytest.raises(NoIndexError, match="seedsearch index"):
        engine.run(len)
    seeds = write_archive(tmp_path / "seeds", dict(list(ARCHIVE.items())[:2]))
    Indexer(seeds, index, model=FakeEmbedder()).update()
    assert engine.check() and engine.run(len) > 0
    assert engine.engine.generation_dir == generations.current_generation(index)
    engine.stop()


def test_interval_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="interval"):
        LiveEngine(tmp_path, interval=0)
