"""Bad seed files: the indexer warns with the file name, skips them, indexes the rest."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from conftest import FakeEmbedder, stored_passages

from indexer import Indexer
from indexer import seeds as seeds_module
from search import SearchEngine

GOOD = "Die Hitzewelle erreicht Bayern. Der Wetterdienst warnt vor Temperaturen über 35 Grad.\n"


def build(seeds: Path, index: Path, embedder: FakeEmbedder | None = None):
    return Indexer(seeds, index, model=embedder or FakeEmbedder()).update()


def found_docs(index: Path, query: str, k: int = 50) -> set[str]:
    with SearchEngine.open(index, model=FakeEmbedder()) as engine:
        # marker words are looked up exactly: "Kennwortbad" is two edits from
        # "Kennwortnfd", which typo tolerance would (rightly) find
        return {h.doc for h in engine.search(query, k=k, mode="bm25", collapse=False, typos=False)}


def warned(report, name: str) -> list[str]:
    return [w for w in report.warnings if name in w]


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    d = tmp_path / "seeds"
    d.mkdir()
    (d / "good.txt").write_text(GOOD, encoding="utf-8")
    return d


def test_undecodable_binary_nul_and_empty_files(seeds, tmp_path):
    (seeds / "latin1.txt").write_bytes("Grüße aus München vom Oktoberfest.\n".encode("cp1252"))
    (seeds / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (seeds / "nul.md").write_bytes(b"Text mit\x00Nullbyte Hitzewelle\n")
    (seeds / "empty.txt").write_bytes(b"")
    (seeds / "blank.txt").write_bytes(b" \n\t\n  \n")
    (seeds / "utf16.txt").write_text("Hitzewelle in Bayern", encoding="utf-16")
    (seeds / "only-heading.md").write_text("# Nur ein Titel\n", encoding="utf-8")
    report = build(seeds, tmp_path / "ix")
    assert "not valid UTF-8" in warned(report, "latin1.txt")[0]
    assert "binary" in warned(report, "binary.txt")[0]
    assert "binary" in warned(report, "nul.md")[0]
    assert "binary" in warned(report, "utf16.txt")[0]
    assert "empty" in warned(report, "empty.txt")[0]
    assert "empty" in warned(report, "blank.txt")[0]
    assert "no paragraphs" in warned(report, "only-heading.md")[0]
    assert sorted(report.added) == ["good.txt", "latin1.txt"]
    assert found_docs(tmp_path / "ix", "Hitzewelle") == {"good.txt"}
    assert found_docs(tmp_path / "ix", "Grüße München") == {"latin1.txt"}


def test_control_characters_are_removed_from_text(seeds, tmp_path):
    (seeds / "ctl.txt").write_text("Ampel\x1b[31m rot\x07 und Glocke\x0c.\n", encoding="utf-8")
    build(seeds, tmp_path / "ix")
    with SearchEngine.open(tmp_path / "ix", model=FakeEmbedder()) as engine:
        texts = [h.text for h in engine.search("Ampel", mode="bm25")]
    assert texts and all(unicodedata.category(c) != "Cc" for t in texts for c in t)


def test_single_long_line_is_split_into_passages(seeds, tmp_path):
    words = ["Bundesregierung", "beschließt", "neue", "Regeln", "für", "Energie", "und", "Klima"]
    line = " ".join(words[i % len(words)] for i in range(60_000))  # ~0.5 MB, one line
    (seeds / "oneline.txt").write_text(line + " Schlusswortmarke\n", encoding="utf-8")
    report = build(seeds, tmp_path / "ix")
    assert report.passages > 250
    with SearchEngine.open(tmp_path / "ix", model=FakeEmbedder()) as engine:
        hits = engine.search("Schlusswortmarke", mode="bm25")
        assert hits[0].doc == "oneline.txt" and "Schlusswortmarke" in hits[0].text
    assert all(len(p.text.split()) <= 200 for p in stored_passages(tmp_path / "ix"))


def test_one_giant_word_does_not_hang_or_crash(seeds, tmp_path):
    # A pasted blob of letters: once a RecursionError / quadratic decompounding.
    (seeds / "blob.txt").write_text("kinder" * 50_000 + "\n\nNormaler Absatz.\n", "utf-8")
    report = build(seeds, tmp_path / "ix")
    assert "blob.txt" in report.added
    assert found_docs(tmp_path / "ix", "Absatz") == {"blob.txt"}


def test_many_tiny_files(seeds, tmp_path):
    for i in range(2000):
        (seeds / f"t{i:04d}.txt").write_text(f"Meldung nummer{i} aus Berlin.\n", "utf-8")
    report = build(seeds, tmp_path / "ix")
    assert report.documents == 2001 and not report.warnings
    assert found_docs(tmp_path / "ix", "nummer1234") == {"t1234.txt"}


def test_odd_file_names(seeds, tmp_path):
    names = ["mit leer zeichen.txt", "Größenwahn Übermut.txt", "zeilen\numbruch.txt", "-dash.md"]
    for i, name in enumerate(names):
        (seeds / name).write_text(f"Artikel Kennwort{i} hier.\n", encoding="utf-8")
    nfd_name = unicodedata.normalize("NFD", "Änderung.txt")
    (seeds / nfd_name).write_text("Artikel Kennwortnfd hier.\n", encoding="utf-8")
    bad = os.fsencode(seeds) + b"/kaputt\xff\xfe.txt"
    with open(bad, "wb") as f:
        f.write(b"Artikel Kennwortbad hier.\n")
    report = build(seeds, tmp_path / "ix")
    assert any("not valid UTF-8" in w and "kaputt" in w for w in report.warnings)
    for i, name in enumerate(names):
        assert found_docs(tmp_path / "ix", f"Kennwort{i}") == {name}
    assert found_docs(tmp_path / "ix", "Kennwortnfd") == {nfd_name}
    assert found_docs(tmp_path / "ix", "Kennwortbad") == set()
    # the update after it is a no-op, and the manifest is valid UTF-8 JSON
    again = build(seeds, tmp_path / "ix")
    assert again.added == again.changed == again.removed == []


def test_nfc_and_nfd_spellings_match_each_other(seeds, tmp_path):
    nfc = unicodedata.normalize("NFC", "Der Bürgermeister von Köln")
    nfd = unicodedata.normalize("NFD", "Die Bürgermeisterin in Düsseldorf")
    assert nfc != unicodedata.normalize("NFD", nfc)
    (seeds / "nfc.txt").write_text(nfc + "\n", encoding="utf-8")
    (seeds / "nfd.txt").write_text(nfd + "\n", encoding="utf-8")
    records = [{"id": "j", "text": unicodedata.normalize("NFD", "Bürgermeister Jülich")}]
    (seeds / "nfd.jsonl").write_text("\n".join(json.dumps(r) for r in records), "utf-8")
    build(seeds, tmp_path / "ix")
    expected = {"nfc.txt", "nfd.txt", "nfd.jsonl:j"}
    for form in ("NFC", "NFD"):
        assert found_docs(tmp_path / "ix", unicodedata.normalize(form, "Bürgermeister")) == expected
    assert all(unicodedata.is_normalized("NFC", p.text) for p in stored_passages(tmp_path / "ix"))


def test_very_deep_folders(seeds, tmp_path):
    # Deeper than Python's recursion limit (os.walk in 3.11 recurses). The tree is
    # removed here: shutil.rmtree recurses too, and pytest's clean-up would fail on it.
    depth = 1100
    cwd = os.getcwd()
    try:
        os.chdir(seeds)
        for _ in range(depth):
            os.mkdir("d")
            os.chdir("d")
        Path("tief.txt").write_text("Ganz tief unten liegt der Tiefseeartikel.\n", "utf-8")
        os.chdir(cwd)
        report = build(seeds, tmp_path / "ix")
        deep = "d/" * depth + "tief.txt"
        assert deep in report.added
        assert found_docs(tmp_path / "ix", "Tiefseeartikel") == {deep}
    finally:
        os.chdir(seeds)
        levels = 0
        while os.path.isdir("d"):
            os.chdir("d")
            levels += 1
        for name in os.listdir("."):
            os.unlink(name)
        for _ in range(levels):
            os.chdir("..")
            os.rmdir("d")
        os.chdir(cwd)


def test_symlinks_inside_followed_outside_not(seeds, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("Geheimdokument Passwort.\n", "utf-8")
    (seeds / "sub").mkdir()
    (seeds / "sub" / "real.txt").write_text("Innenartikel Verweis.\n", "utf-8")
    (seeds / "link-inside.txt").symlink_to(seeds / "sub" / "real.txt")
    (seeds / "link-outside.txt").symlink_to(outside / "secret.txt")
    (seeds / "dir-outside").symlink_to(outside, target_is_directory=True)
    (seeds / "loop").symlink_to(seeds, target_is_directory=True)
    (seeds / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (seeds / "etc.txt").symlink_to("/etc/hostname")
    report = build(seeds, tmp_path / "ix")
    assert sorted(report.added) == ["good.txt", "link-inside.txt", "sub/real.txt"]
    assert found_docs(tmp_path / "ix", "Geheimdokument Passwort") == set()
    assert found_docs(tmp_path / "ix", "Innenartikel") == {"link-inside.txt", "sub/real.txt"}


def test_fifo_is_skipped_not_read(seeds, tmp_path):
    os.mkfifo(seeds / "pipe.txt")  # reading it would block forever
    report = build(seeds, tmp_path / "ix")
    assert "not a regular file" in warned(report, "pipe.txt")[0]
    assert report.added == ["good.txt"]


def test_bad_jsonl_lines(seeds, tmp_path):
    lines = [
        json.dumps({"id": "ok1", "text": "Gültiger Datensatz Alpha.", "title": "Alpha"}),
        "{not json",
        json.dumps({"id": "notext", "title": "ohne Text"}),
        json.dumps({"id": "numtext", "text": 42}),
        json.dumps(["eine", "liste"]),
        json.dumps({"id": "ok1", "text": "Doppelte Kennung Beta."}),
        json.dumps({"id": "empty", "text": "   "}),
        "[" * 50_000,
        '{"id": %s, "text": "riesige Zahl"}' % ("9" * 5000),
        json.dumps({"id": "surr", "text": "Kaputt \ud800 Gamma\u001b[2J", "title": "Zeile\nzwei"}),
        json.dumps({"id": {"nested": 1}, "text": "Seltsame Kennung Delta."}),
        "",
        json.dumps({"text": "Ohne Kennung Epsilon."}),
    ]
    (seeds / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = build(seeds, tmp_path / "ix")
    w = [x for x in report.warnings if x.startswith("corpus.jsonl:")]
    lines_warned = sorted(int(x.split(":")[1]) for x in w)
    assert lines_warned == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "duplicate id 'ok1'" in next(x for x in w if x.startswith("corpus.jsonl:6:"))
    docs = found_docs(tmp_path / "ix", "Alpha Gamma Delta Epsilon Beta")
    assert docs == {
        "corpus.jsonl:ok1",
        "corpus.jsonl:surr",
        "corpus.jsonl:{'nested': 1}",
        "corpus.jsonl:13",
    }
    with SearchEngine.open(tmp_path / "ix", model=FakeEmbedder()) as engine:
        hit = engine.search("Gamma", mode="bm25")[0]
    assert hit.title == "Zeile zwei"
    assert "\ud800" not in hit.text and "\x1b" not in hit.text


def test_duplicate_article_ids_across_files(seeds, tmp_path):
    (seeds / "x.jsonl").write_text(json.dumps({"id": "1.txt", "text": "Erste Quelle."}), "utf-8")
    (seeds / "x.jsonl:1.txt").write_text("Zweite Quelle.\n", encoding="utf-8")
    report = build(seeds, tmp_path / "ix")
    dup = [w for w in report.warnings if "duplicate article" in w]
    assert len(dup) == 1 and "x.jsonl:1.txt" in dup[0]
    assert report.documents == 2


def test_file_disappears_between_listing_and_reading(seeds, tmp_path, monkeypatch):
    (seeds / "gone.txt").write_text("Verschwundener Artikel.\n", "utf-8")
    (seeds / "changes.txt").write_text("Alte Fassung Orange.\n", "utf-8")
    listing = seeds_module.list_seed_files

    def list_then_mutate(root, on_warning=None, **kwargs):
        names = listing(root, on_warning, **kwargs)
        (seeds / "gone.txt").unlink()
        (seeds / "changes.txt").write_text("Neue Fassung Zitrone.\n", "utf-8")
        return names

    monkeypatch.setattr(seeds_module, "list_seed_files", list_then_mutate)
    report = build(seeds, tmp_path / "ix")
    assert "cannot read" in warned(report, "gone.txt")[0]
    assert sorted(report.added) == ["changes.txt", "good.txt"]
    assert found_docs(tmp_path / "ix", "Zitrone") == {"changes.txt"}
    monkeypatch.undo()
    again = build(seeds, tmp_path / "ix")  # the index now matches the folder
    assert again.added == again.changed == again.removed == []


def test_file_changed_during_embedding_is_picked_up_next_time(seeds, tmp_path):
    (seeds / "live.txt").write_text("Erste Fassung Apfel.\n", "utf-8")

    class MutatingEmbedder(FakeEmbedder):
        def embed_passages(self, texts):
            (seeds / "live.txt").write_text("Zweite Fassung Birne.\n", "utf-8")
            return super().embed_passages(texts)

    emb = MutatingEmbedder()
    build(seeds, tmp_path / "ix", emb)
    assert found_docs(tmp_path / "ix", "Apfel") == {"live.txt"}
    report = Indexer(seeds, tmp_path / "ix", model=emb).update()
    assert report.changed == ["live.txt"]
    assert found_docs(tmp_path / "ix", "Birne") == {"live.txt"}
    assert found_docs(tmp_path / "ix", "Apfel") == set()
