"""The index folder: publishing is durable or fails, old formats get a clear
message (and --full keeps their settings), the three stores agree."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from conftest import FakeEmbedder, answers

from indexer import Indexer
from indexer.errors import IndexCorruptError, IndexMissingError
from indexer.store import DOCS, MANIFEST, files, generations
from indexer.store.docstore import DocStore
from indexer.store.manifest import read_manifest
from search import SearchEngine

QUERIES = ["Hitze Bayern", "Putin Nordkorea"]


def test_failed_fsync_is_a_failed_publish(built_index, seeds_dir, monkeypatch):
    before = answers(built_index, QUERIES, 3)
    (seeds_dir / "neu.txt").write_text("Regen in Salzburg.\n", "utf-8")
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == MANIFEST:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output"):
        Indexer(seeds_dir, built_index, model=FakeEmbedder()).update()
    monkeypatch.undo()
    assert answers(built_index, QUERIES, 3) == before
    assert Indexer(seeds_dir, built_index, model=FakeEmbedder()).update().added == ["neu.txt"]


def write_format_1(index: Path) -> None:
    """Turn a built index into what seedsearch 0.1 (format 1) left behind."""
    gen = generations.current_generation(index)
    data = json.loads((gen / MANIFEST).read_text("utf-8"))
    settings = {k: v for k, v in data["settings"].items() if k != "model"}
    old = {
        "format_version": 1,
        "analyzer": data["analyzer"],
        "embedder": data["settings"]["model"],
        "dim": data["dim"],
        "settings": settings | {"vectors": "float16"},
        "passages": data["passages"],
    }
    (gen / MANIFEST).write_text(json.dumps(old), "utf-8")


def test_an_index_of_the_previous_format_is_refused_clearly(built_index, seeds_dir):
    write_format_1(built_index)
    with pytest.raises(IndexCorruptError) as info:
        SearchEngine.open(built_index, model=FakeEmbedder())
    assert "built by an older seedsearch (format 1" in str(info.value)
    assert "seedsearch index --full" in str(info.value)
    with pytest.raises(IndexCorruptError, match="older seedsearch"):
        Indexer(seeds_dir, built_index, model=FakeEmbedder()).update()
    # --full migrates it and keeps what it was built with (float16 here)
    Indexer(seeds_dir, built_index, model=FakeEmbedder()).update(full=True)
    assert read_manifest(generations.current_generation(built_index)).settings["vectors"] == (
        "float16"
    )
    assert answers(built_index, QUERIES, 3)


def test_a_file_or_a_foreign_folder_is_not_an_index(tmp_path):
    (tmp_path / "hits.tsv").write_text("a\tb\n")
    with pytest.raises(IndexMissingError, match="is a file, not an index folder"):
        SearchEngine.open(tmp_path / "hits.tsv")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("x")
    with pytest.raises(IndexMissingError, match="is not an index folder"):
        SearchEngine.open(tmp_path / "docs")
    with pytest.raises(IndexMissingError, match="no index at"):
        SearchEngine.open(tmp_path / "nothing")


def test_looks_like_index(built_index, tmp_path):
    assert generations.is_index_folder(built_index)
    assert generations.is_index_folder(generations.current_generation(built_index))
    assert not generations.is_index_folder(tmp_path)


def test_stores_that_disagree_are_refused(built_index):
    """Same counts, different passages: the keyword index and the document store
    must name the same vector ids."""
    gen = generations.current_generation(built_index)
    import sqlite3

    db = sqlite3.connect(gen / DOCS)
    db.execute("UPDATE passages SET vid = vid + 1000 WHERE vid = (SELECT max(vid) FROM passages)")
    db.commit()
    db.close()
    data = json.loads((gen / MANIFEST).read_text("utf-8"))
    data["checksums"][DOCS] = files.file_checksum(gen / DOCS)
    (gen / MANIFEST).write_text(json.dumps(data), "utf-8")
    with pytest.raises(IndexCorruptError, match="is inconsistent"):
        SearchEngine.open(built_index, model=FakeEmbedder())


def test_docstore_lookups(built_index):
    docs = DocStore(generations.current_generation(built_index) / DOCS)
    try:
        everything = docs.all_passages()
        assert len(everything) == docs.passage_count() == 16
        first = everything[0]
        assert docs.passages([first.id, "nope#1"]) == {first.id: first}
        assert docs.ids([first.vid, 10**9]) == {first.vid: first.id}
        assert [p.paragraph for p in docs.article_passages("wetter.md")] == [1, 2]
        assert docs.articles(["wetter.md"])["wetter.md"].title == "Hitzewelle in Süddeutschland"
        assert set(docs.files()) == {"fussball.txt", "nordkorea.txt", "wetter.md"}
    finally:
        docs.close()


def test_bm25_fast_path_is_taken_on_a_real_index(built_index):
    with SearchEngine.open(built_index, model=FakeEmbedder()) as engine:
        assert engine.search("Hitze in Bayern", mode="bm25")
        assert engine.bm25_fast_path
