"""The Indexer: seeds folder -> published index, as a user of the library sees it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, stored_passages

from indexer import Indexer, IndexSettings, SeedsearchError, store
from indexer.embedder import load_embedder, normalize_rows
from indexer.errors import EmbedderMismatchError, SettingsMismatchError
from indexer.store import generations, vectors
from indexer.store.docstore import DocStore, StoredPassage
from indexer.store.manifest import read_manifest
from search import SearchEngine


def passages_of(index_dir: Path) -> list[StoredPassage]:
    return stored_passages(index_dir)


def test_build_report_counts(seeds_dir, tmp_path, fake_embedder):
    report = Indexer(seeds_dir, tmp_path / "ix", model=fake_embedder).update()
    assert report.documents == 3
    assert report.passages == 16
    assert report.embedded == 16 == fake_embedder.calls
    assert report.added == ["fussball.txt", "nordkorea.txt", "wetter.md"]
    assert report.warnings == []
    assert report.seconds >= 0
    assert set(report.to_dict()) >= {
        "documents",
        "passages",
        "added",
        "changed",
        "removed",
        "unchanged",
        "embedded",
        "seconds",
    }


def test_stored_passages_have_stable_ids_and_text(built_index):
    passages = passages_of(built_index)
    by_id = {p.id: p for p in passages}
    assert len(by_id) == len(passages) == 16
    assert by_id["nordkorea.txt#2"].text.startswith("Bei Putins Reise")
    assert by_id["wetter.md#1"].title == "Hitzewelle in Süddeutschland"
    assert by_id["fussball.txt#2"].paragraph == 2
    assert "nordkorea.txt#13" not in by_id  # the byline "(dr / afp)"
    assert len({p.vid for p in passages}) == 16


def test_manifest_records_embedder_and_analyzer(built_index):
    m = read_manifest(generations.current_generation(built_index))
    assert m.embedder == "fake-hash-64"
    assert m.dim == 64
    assert m.documents == 3 and m.passages == 16
    assert m.settings["model"] == "fake-hash-64" and m.settings["vectors"] == "float32"
    docs = DocStore(generations.current_generation(built_index) / store.DOCS)
    assert set(docs.files()) == {"fussball.txt", "nordkorea.txt", "wetter.md"}
    docs.close()


def test_stored_vectors_are_unit_norm_and_match_the_embedder(built_index, fake_embedder):
    gen = generations.current_generation(built_index)
    index = vectors.read_vectors(gen / store.VECTORS)
    passages = passages_of(built_index)
    stored = vectors.reconstruct(index, [p.vid for p in passages])
    assert stored.shape == (16, 64)
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)
    expected = FakeEmbedder().embed_passages([p.text for p in passages])
    assert np.allclose(stored, expected, atol=1e-6)


def test_rebuilding_gives_identical_search_results(seeds_dir, tmp_path):
    def results(index: Path) -> list:
        with SearchEngine.open(index, model=FakeEmbedder()) as e:
            return [h.to_dict() for q in ("Waffen", "Hitze") for h in e.search(q, k=5)]

    Indexer(seeds_dir, tmp_path / "a", model=FakeEmbedder()).update()
    Indexer(seeds_dir, tmp_path / "b", model=FakeEmbedder()).update()
    assert results(tmp_path / "a") == results(tmp_path / "b")


def test_warnings_from_bad_files_are_reported_not_raised(seeds_dir, tmp_path, fake_embedder):
    (seeds_dir / "leer.txt").write_bytes(b"")
    (seeds_dir / "k.jsonl").write_text('{"id": "a", "text": "Text über Waffen."}\n{x\n', "utf-8")
    seen: list[str] = []
    report = Indexer(
        seeds_dir, tmp_path / "ix", model=fake_embedder, on_warning=seen.append
    ).update()
    assert report.warnings == seen
    assert any(w.startswith("leer.txt: ") and "empty" in w for w in seen)
    assert any(w.startswith("k.jsonl:2: ") for w in seen)
    assert report.documents == 4  # three articles + the one good jsonl record
    assert "k.jsonl:a#1" in {p.id for p in passages_of(tmp_path / "ix")}


def test_jsonl_articles_are_searchable(tmp_path, fake_embedder):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    records = [
        {"id": "w1", "title": "Rüstung", "text": "Die Regierung genehmigt Waffenlieferungen."},
        {"id": "h1", "title": "Wetter", "text": "Hitze in Bayern am Wochenende."},
    ]
    (seeds / "korpus.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records), "utf-8"
    )
    Indexer(seeds, tmp_path / "ix", model=fake_embedder).update()
    with SearchEngine.open(tmp_path / "ix", model=fake_embedder) as e:
        hit = e.search("Wer liefert Waffen?", k=1, mode="bm25")[0]
        assert (hit.id, hit.doc, hit.title) == ("korpus.jsonl:w1#1", "korpus.jsonl:w1", "Rüstung")
        # The title is a BM25 field too.
        assert e.search("Rüstung", k=1, mode="bm25")[0].id == "korpus.jsonl:w1#1"


def test_title_field_can_be_turned_off(tmp_path, fake_embedder):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.md").write_text("# Rüstung\n\nDie Regierung genehmigt Lieferungen.\n", "utf-8")
    Indexer(
        seeds, tmp_path / "ix", model=fake_embedder, settings=IndexSettings(title_field=False)
    ).update()
    with SearchEngine.open(tmp_path / "ix", model=fake_embedder) as e:
        assert not e.search("Rüstung", k=1, mode="bm25")
        assert e.search("Lieferungen", k=1, mode="bm25")[0].id == "a.md#1"


def test_long_paragraph_is_indexed_in_parts(tmp_path, fake_embedder):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    sentence = "Die Regierung berichtet über neue Waffenlieferungen an die Ukraine."
    (seeds / "lang.txt").write_text("Kurz.\n" + " ".join([sentence] * 40) + "\n", "utf-8")
    report = Indexer(seeds, tmp_path / "ix", model=fake_embedder).update()
    ids = [p.id for p in passages_of(tmp_path / "ix")]
    assert ids[0] == "lang.txt#1"
    assert ids[1:] == [f"lang.txt#2.{i}" for i in range(1, len(ids))]
    assert report.passages == len(ids) >= 3


def test_max_passage_words_setting(tmp_path, fake_embedder):
    with pytest.raises(SeedsearchError, match="too small"):
        IndexSettings(max_passage_words=5)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Eins zwei drei vier fünf. " * 6 + "\n", "utf-8")
    Indexer(
        seeds, tmp_path / "ix", model=fake_embedder, settings=IndexSettings(max_passage_words=10)
    ).update()
    assert [p.id for p in passages_of(tmp_path / "ix")] == ["a.txt#1.1", "a.txt#1.2", "a.txt#1.3"]


def test_missing_seeds_folder_is_a_user_error(tmp_path, fake_embedder):
    with pytest.raises(SeedsearchError, match="does not exist"):
        Indexer(tmp_path / "nope", tmp_path / "ix", model=fake_embedder).update()
    assert not (tmp_path / "ix").exists()


def test_index_path_that_is_a_file_is_a_user_error(seeds_dir, tmp_path, fake_embedder):
    (tmp_path / "ix").write_text("kein Ordner")
    with pytest.raises(SeedsearchError, match="is a file"):
        Indexer(seeds_dir, tmp_path / "ix", model=fake_embedder).update()


def test_update_with_another_embedder_is_refused(seeds_dir, built_index):
    class Other(FakeEmbedder):
        spec = "other-model"

    with pytest.raises(EmbedderMismatchError, match="--full"):
        Indexer(seeds_dir, built_index, model=Other()).update()
    # A full rebuild with the other embedder is allowed.
    report = Indexer(seeds_dir, built_index, model=Other()).update(full=True)
    assert report.passages == 16
    assert read_manifest(generations.current_generation(built_index)).embedder == "other-model"


def test_update_with_other_settings_is_refused(seeds_dir, built_index, fake_embedder):
    settings = IndexSettings(embed_title=True)
    with pytest.raises(SettingsMismatchError) as info:
        Indexer(seeds_dir, built_index, model=fake_embedder, settings=settings).update()
    message = str(info.value)
    assert "embed_title=False, not True" in message
    assert "embed_title=True).update(full=True)" in message


def test_empty_seeds_folder_gives_an_empty_searchable_index(tmp_path, fake_embedder):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    report = Indexer(seeds, tmp_path / "ix", model=fake_embedder).update()
    assert (report.documents, report.passages) == (0, 0)
    with SearchEngine.open(tmp_path / "ix", model=fake_embedder) as e:
        assert not e.search("Waffen")


def test_load_embedder_passes_embedders_through_and_rejects_junk():
    fake = FakeEmbedder()
    assert load_embedder(fake) is fake
    with pytest.raises(SeedsearchError, match="empty model spec"):
        load_embedder("  ")
    with pytest.raises(SeedsearchError, match="Embedder"):
        load_embedder(42)


def test_normalize_rows():
    v = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert v.dtype == np.float32
    assert np.allclose(v, [[0.6, 0.8], [0.0, 0.0]])
    assert normalize_rows(np.array([2.0, 0.0])).shape == (1, 2)


def test_unreadable_seeds_folder_is_an_error_and_keeps_the_index(
    seeds_dir, built_index, fake_embedder, monkeypatch
):
    import os

    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).resolve() == seeds_dir.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    before = generations.current_generation(built_index)
    monkeypatch.setattr(os, "scandir", scandir)  # chmod 000 does not stop root
    with pytest.raises(SeedsearchError, match="cannot read seeds folder"):
        Indexer(seeds_dir, built_index, model=fake_embedder).update()
    monkeypatch.undo()
    # Not an update that removes every article: the published index is untouched.
    assert generations.current_generation(built_index) == before
    assert len(passages_of(built_index)) == 16
