"""The word statistics an index keeps for typo correction (indexer.store.words):
written with every generation, listed in the manifest, updated exactly."""

from __future__ import annotations

from pathlib import Path

from conftest import FakeEmbedder, write_german_seeds

from indexer import Indexer, IndexSettings
from indexer.store import generations
from indexer.store.docstore import StoredPassage
from indexer.store.manifest import read_manifest
from indexer.store.words import WORDS, passage_words, read_stats, read_vocabulary
from indexer.vocabulary import WordStats


def words_of(index: Path) -> WordStats:
    stats = read_stats(generations.current_generation(index) / WORDS)
    assert stats is not None
    return stats


def build(seeds: Path, index: Path, **settings) -> None:
    Indexer(seeds, index, model=FakeEmbedder(), settings=settings or None).update()


def test_every_generation_has_its_words_listed_in_the_manifest(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    build(seeds, tmp_path / "index")
    gen = generations.current_generation(tmp_path / "index")
    assert WORDS in read_manifest(gen).checksums
    stats = words_of(tmp_path / "index")
    assert stats.df["waffen"] == 2  # two passages of nordkorea.txt say "Waffen"
    assert stats.display("strasse") == "Straße"  # folded word, shown as written
    assert stats.display("hitzewelle") == "Hitzewelle"  # the Markdown title counts
    vocab = read_vocabulary(gen / WORDS)
    assert vocab is not None and vocab.df("waffen") == 2 and len(vocab) == len(stats.df)


def test_updates_give_the_words_of_a_fresh_build(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    index = tmp_path / "index"
    build(seeds, index)
    (seeds / "wetter.md").write_text("# Kälte im Norden\n\nFrost und Glätte in Hamburg.\n")
    (seeds / "fussball.txt").unlink()
    (seeds / "neu.txt").write_text("Die Straße nach München ist gesperrt.\n")
    build(seeds, index)
    fresh = tmp_path / "fresh"
    build(seeds, fresh)
    updated = words_of(index)
    assert updated == words_of(fresh)
    assert "hitzewelle" not in updated.df and "fussballfans" not in updated.df
    assert updated.df["glatte"] == 1 and updated.spellings["strasse"] == {"Straße": 1}


def test_titles_count_unless_they_are_file_names(tmp_path):
    def passage(doc: str, title: str) -> StoredPassage:
        return StoredPassage(f"{doc}#1", doc, 1, 0, "Text", title, 0, "")

    assert passage_words(passage("a/wetter.md", "Hitzewelle"), True) == "Hitzewelle\nText"
    assert passage_words(passage("a/wetter.md", "Hitzewelle"), False) == "Text"
    assert passage_words(passage("nordkorea.txt", "nordkorea"), True) == "Text"
    assert passage_words(passage("news.jsonl:7", "news"), True) == "Text"


def test_without_title_field_titles_do_not_count(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    build(seeds, tmp_path / "index", title_field=False)
    assert "hitzewelle" not in words_of(tmp_path / "index").df
    assert IndexSettings().title_field  # the default counts titles


def test_word_stats_round_trip_through_arrays():
    stats = WordStats()
    stats.add_all(["Die Straße, die STRASSE.", "Ärzte in München", "Strasse"])
    again = WordStats.from_arrays(stats.to_arrays())
    assert again == stats and again.spellings["strasse"] == {
        "Straße": 1,
        "STRASSE": 1,
        "Strasse": 1,
    }
    assert WordStats.from_arrays(WordStats().to_arrays()) == WordStats()
