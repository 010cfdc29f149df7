"""Typo tolerance in the SearchEngine (fake embedder): corrected words find their
paragraph, exact matches rank before typo matches, the vector side embeds the
confident correction, and it can be switched off per query and by setting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, write_german_seeds

from indexer import Indexer
from indexer.errors import IndexCorruptError, QueryError
from indexer.store import MANIFEST, generations
from indexer.store.words import WORDS
from search import SearchEngine, SearchSettings
from search.typos import Correction, TypoSettings


class RecordingEmbedder(FakeEmbedder):
    """The fake embedder, remembering the query texts it embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def embed_query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        return super().embed_query(text)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("typos")
    seeds = write_german_seeds(root / "seeds")
    Indexer(seeds, root / "index", model=FakeEmbedder()).update()
    return root / "index"


@pytest.fixture(scope="module")
def engine(index_dir):
    with SearchEngine.open(index_dir, model=RecordingEmbedder()) as e:
        yield e


def test_a_mistyped_word_finds_its_paragraph_and_is_reported(engine):
    result = engine.search("Wafen liefern", k=3)
    # "Westliche Länder ... werfen Nordkorea vor, Waffen an Moskau zu liefern"
    assert result[0].id == "nordkorea.txt#6"
    assert result.corrections == (Correction("Wafen", "Waffen"),)
    assert result.to_dict()["corrections"] == [{"from": "Wafen", "to": "Waffen"}]
    plain = engine.search("Wafen liefern", k=3, typos=False)
    assert plain[0].id != "nordkorea.txt#6" and plain.corrections == ()


def test_bm25_finds_a_word_only_through_its_correction(engine):
    assert len(engine.search("Wafen", mode="bm25", typos=False)) == 0
    hits = engine.search("Wafen", mode="bm25")
    assert hits and all("Waffen" in h.text for h in hits)


def test_the_vector_side_embeds_the_confident_correction(engine):
    embedder = engine.embedder
    embedder.queries.clear()
    engine.search("Wafen liefern", mode="vector")
    engine.search("Wafen liefern", mode="vector", typos=False)
    assert embedder.queries == ["Waffen liefern", "Wafen liefern"]


def test_a_correct_question_searches_exactly_as_without_typo_tolerance(engine):
    for q in ("Wer liefert Waffen?", "Hitze in Bayern", "Fußballfans feiern"):
        on, off = engine.search(q, k=5), engine.search(q, k=5, typos=False)
        assert [(h.id, h.score) for h in on] == [(h.id, h.score) for h in off]
        assert on.corrections == ()


def test_quoted_words_are_searched_as_typed(engine):
    result = engine.search('"Wafen" liefern', mode="bm25")
    assert result.corrections == ()
    same = engine.search('"Wafen" liefern', mode="bm25", typos=False)
    assert [(h.id, h.score) for h in result] == [(h.id, h.score) for h in same]


def test_the_setting_turns_it_off(index_dir):
    off = SearchSettings(typo_tolerance=TypoSettings(enabled=False))
    with SearchEngine.open(index_dir, model=FakeEmbedder(), settings=off) as e:
        assert e.search("Wafen liefern").corrections == ()
    longer = SearchSettings(typo_tolerance=TypoSettings(min_length_one=6))  # Wafen: 5 letters
    with SearchEngine.open(index_dir, model=FakeEmbedder(), settings=longer) as e:
        assert e.search("Wafen liefern").corrections == ()


def test_bad_typo_arguments_are_query_errors(engine):
    with pytest.raises(QueryError, match="typos='no'"):
        engine.search("Waffen", typos="no")
    with pytest.raises(QueryError, match="typo_tolerance"):
        SearchSettings(typo_tolerance=False)


def test_an_exact_match_ranks_before_a_typo_match(tmp_path):
    """ "Haupstadt" (a typo in the corpus itself) is known but rare; "Hauptstadt", one
    edit away, is far more frequent: both are searched, and the passage with the word
    as typed ranks first."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i in range(4):
        (seeds / f"stadt{i}.txt").write_text(f"Die Hauptstadt liegt am Fluss Nummer {i}.\n")
    (seeds / "satz.txt").write_text("Die Haupstadt steht allein.\n")
    Indexer(seeds, tmp_path / "index", model=FakeEmbedder()).update()
    settings = SearchSettings(typo_tolerance=TypoSettings(rare_ratio=3))
    with SearchEngine.open(tmp_path / "index", model=FakeEmbedder(), settings=settings) as e:
        hits = e.search("Haupstadt", mode="bm25")
        assert hits[0].id == "satz.txt#1"
        assert {h.id for h in hits[1:]} == {f"stadt{i}.txt#1" for i in range(4)}
        assert hits[0].bm25 > hits[1].bm25
        assert hits.corrections == ()  # a known word is never reported as corrected


def test_an_index_without_word_statistics_searches_without_typo_tolerance(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    Indexer(seeds, tmp_path / "index", model=FakeEmbedder()).update()
    gen = generations.current_generation(tmp_path / "index")
    (gen / WORDS).unlink()  # as written by a seedsearch before typo tolerance
    raw = json.loads((gen / MANIFEST).read_text())
    del raw["checksums"][WORDS]
    (gen / MANIFEST).write_text(json.dumps(raw))
    with SearchEngine.open(tmp_path / "index", model=FakeEmbedder()) as e:
        assert e.search("Wafen liefern").corrections == ()
    (seeds / "neu.txt").write_text("Neue Waffen für die Armee.\n")
    Indexer(seeds, tmp_path / "index", model=FakeEmbedder()).update()  # counts them once
    with SearchEngine.open(tmp_path / "index", model=FakeEmbedder()) as e:
        assert e.search("Wafen liefern").corrections == (Correction("Wafen", "Waffen"),)


def test_damaged_word_statistics_are_refused(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    Indexer(seeds, tmp_path / "index", model=FakeEmbedder()).update()
    path = generations.current_generation(tmp_path / "index") / WORDS
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="words.npz"):
        SearchEngine.open(tmp_path / "index", model=FakeEmbedder())
