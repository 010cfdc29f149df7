"""Reading seed articles: paragraphs, bylines, titles, .jsonl corpora, encodings, ids,
and the warning for files that are not articles. Metadata: test_metadata.py; index
folders inside the seeds: test_index_folders.py."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from conftest import SEED_ARTICLE

from indexer.seeds import (
    MAX_PASSAGE_WORDS,
    Article,
    parse_jsonl,
    parse_text,
    read_seed_file,
    scan_seeds,
    skipped_files_warning,
    split_long,
    split_paragraphs,
    split_passages,
)


def scan(seeds: Path) -> tuple[list, list[str]]:
    warnings: list[str] = []
    files = list(scan_seeds(seeds, warnings.append))
    return files, warnings


def articles_of(seeds: Path) -> dict[str, Article]:
    files, _ = scan(seeds)
    return {a.doc: a for f in files for a in f.articles}


# ------------------------------------------------------------- paragraphs


def test_one_paragraph_per_line():
    text = "Erster Absatz eins.\nZweiter Absatz zwei.\nDritter Absatz drei.\n"
    assert split_paragraphs(text) == [
        "Erster Absatz eins.",
        "Zweiter Absatz zwei.",
        "Dritter Absatz drei.",
    ]


def test_blank_line_separated_paragraphs_keep_their_line_breaks():
    text = "Erste Zeile\nnoch der erste Absatz.\n\nZweiter Absatz.\n \t\nDritter Absatz.\n"
    assert split_paragraphs(text) == [
        "Erste Zeile\nnoch der erste Absatz.",
        "Zweiter Absatz.",
        "Dritter Absatz.",
    ]


def test_real_seed_article_has_one_paragraph_per_line():
    article = parse_text(SEED_ARTICLE.read_text("utf-8"), "nordkorea.txt")
    assert article is not None
    assert len(article.paragraphs) == 12
    assert article.paragraphs[0].startswith("Der russische Präsident Wladimir Putin")
    assert "Waffenlieferungen" in article.paragraphs[1]
    assert "Waffen an Moskau zu liefern" in article.paragraphs[5]


# ----------------------------------------------------------------- byline


def test_byline_becomes_author_and_agency_not_a_paragraph():
    article = parse_text("Erster Absatz.\nZweiter Absatz.\n(dr / afp)\n", "x.txt")
    assert article.paragraphs == ("Erster Absatz.", "Zweiter Absatz.")
    assert (article.author, article.agency) == ("dr", "afp")


def test_byline_without_author_is_the_agency():
    article = parse_text("Erster Absatz.\n\nZweiter Absatz.\n\n(dpa)\n", "x.txt")
    assert article.paragraphs == ("Erster Absatz.", "Zweiter Absatz.")
    assert (article.author, article.agency) == (None, "dpa")


def test_parenthesised_sentence_in_the_middle_is_kept():
    article = parse_text("Erster Absatz.\n(dr / afp)\nLetzter Absatz.\n", "x.txt")
    assert "(dr / afp)" in article.paragraphs
    assert article.author is None and article.agency is None


def test_byline_on_the_last_line_of_the_last_block():
    text = "Erster Absatz über die Straße.\n\nDer Kauf ist abgeschlossen.\n(red / apa)\n"
    article = parse_text(text, "x.txt")
    assert article.paragraphs == ("Erster Absatz über die Straße.", "Der Kauf ist abgeschlossen.")
    assert (article.author, article.agency) == ("red", "apa")


def test_byline_line_leaves_the_rest_of_its_block_as_one_paragraph():
    text = "Erster Absatz.\n\nDer Kauf ist abgeschlossen,\nsagt der Käufer.\n(dr / afp)\n"
    article = parse_text(text, "z.txt")
    assert article.paragraphs == ("Erster Absatz.", "Der Kauf ist abgeschlossen,\nsagt der Käufer.")
    assert (article.author, article.agency) == ("dr", "afp")
    assert [p.id for p in split_passages(article)] == ["z.txt#1", "z.txt#2"]


def test_a_byline_alone_is_not_removed_from_an_otherwise_empty_article():
    assert parse_text("(dpa)\n", "x.txt").paragraphs == ("(dpa)",)


def test_parenthesised_last_line_that_is_no_byline_stays_text():
    for line in ("(Ende)", "(Mehr dazu morgen)", "(Foto: dpa)", "(siehe Seite 3)", "(lacht)"):
        article = parse_text(f"Erster Absatz.\n\nLetzter Absatz.\n{line}\n", "x.txt")
        assert article.paragraphs[-1] == f"Letzter Absatz.\n{line}", line
        assert article.author is None and article.agency is None


def test_real_seed_article_byline(seeds_dir):
    art = articles_of(seeds_dir)["nordkorea.txt"]
    assert (art.author, art.agency) == ("dr", "afp")
    assert all("(dr / afp)" not in p for p in art.paragraphs)
    assert art.title == "nordkorea"  # no heading: the file name is the title


# --------------------------------------------------------------- markdown


def test_markdown_heading_becomes_the_title(seeds_dir):
    art = articles_of(seeds_dir)["wetter.md"]
    assert art.title == "Hitzewelle in Süddeutschland"
    assert art.paragraphs[0].startswith("Die Temperaturen steigen")
    assert all(not p.startswith("#") for p in art.paragraphs)
    assert (art.author, art.agency) == ("ab", "dpa")


def test_hash_line_in_a_txt_file_is_text_not_a_title():
    article = parse_text("# Kein Titel\n\nErster Absatz.\n", "notiz.txt")
    assert article.title == "notiz"
    assert article.paragraphs[0] == "# Kein Titel"


def test_heading_on_the_first_line_of_a_block_is_the_title():
    text = (
        "# Tarantino kauft Kino\nQuentin Tarantino übernimmt das Kino in Los Angeles.\n\n"
        "Der Kauf ist abgeschlossen, heißt es.\n(red / apa)\n"
    )
    article = parse_text(text, "Kultur/kino.md", markdown=True)
    assert article.title == "Tarantino kauft Kino"
    assert article.paragraphs == (
        "Quentin Tarantino übernimmt das Kino in Los Angeles.",
        "Der Kauf ist abgeschlossen, heißt es.",
    )
    assert (article.author, article.agency) == ("red", "apa")
    assert [p.text for p in split_passages(article)][0].startswith("Quentin")


def test_sub_heading_on_the_first_line_of_a_block_is_its_own_paragraph():
    # as a sub-heading on a line of its own: its text without the #, not part of the
    # passage that follows
    block = "# Titel\n\n## Hintergrund\nDas Kino in Köln ist über 100 Jahre alt.\n"
    alone = "# Titel\n\n## Hintergrund\n\nDas Kino in Köln ist über 100 Jahre alt.\n"
    expected = ("Hintergrund", "Das Kino in Köln ist über 100 Jahre alt.")
    assert parse_text(block, "a.md", markdown=True).paragraphs == expected
    assert parse_text(alone, "a.md", markdown=True).paragraphs == expected


def test_single_line_headings_and_one_paragraph_per_line_files_are_unchanged():
    text = "# Große Hitze\nDie Temperaturen steigen.\n## Folgen\nÄrzte warnen.\n(ab / dpa)\n"
    article = parse_text(text, "wetter.md", markdown=True)
    assert article.title == "Große Hitze"
    assert article.paragraphs == ("Die Temperaturen steigen.", "Folgen", "Ärzte warnen.")
    assert (article.author, article.agency) == ("ab", "dpa")


def test_hash_line_first_in_a_txt_block_stays_text():
    article = parse_text("# Kein Titel\nErster Absatz.\n\nZweiter Absatz.\n", "notiz.txt")
    assert article.title == "notiz"
    assert article.paragraphs[0] == "# Kein Titel\nErster Absatz."


# ------------------------------------------------------------------ jsonl


def jsonl(*records) -> str:
    return "\n".join(
        r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records
    )


def test_jsonl_records_become_articles_with_metadata():
    text = jsonl(
        {
            "id": "a1",
            "title": "Putin in Pjöngjang",
            "text": "Erster Absatz.\n\nZweiter Absatz.\n\n(dr / afp)",
            "date": "2024-06-17",
            "url": "https://example.org/a1",
            "source": "AFP",
        },
        {"id": "a2", "text": "Nur Text, ohne Titel."},
    )
    articles, warnings = parse_jsonl(text, "korpus.jsonl")
    assert warnings == []
    a1, a2 = articles
    assert a1.doc == "korpus.jsonl:a1"
    assert a1.title == "Putin in Pjöngjang"
    assert a1.paragraphs == ("Erster Absatz.", "Zweiter Absatz.")
    assert (a1.author, a1.agency) == ("dr", "afp")
    assert (a1.date, a1.url, a1.source) == ("2024-06-17", "https://example.org/a1", "AFP")
    assert a2.doc == "korpus.jsonl:a2"
    assert a2.title == "a2"  # no title: the id
    assert (a2.date, a2.url, a2.source) == (None, None, None)


def test_jsonl_bad_lines_give_warnings_naming_file_and_line():
    text = jsonl(
        {"id": "ok", "text": "Gültiger Text."},
        "{kein json",
        {"id": "ohne-text", "title": "T"},
        '["eine", "liste"]',
        {"id": "leer", "text": "   \n  "},
        "",
        {"id": "zahl", "text": 42},
        {"id": "ok2", "text": "Noch ein gültiger Text."},
    )
    articles, warnings = parse_jsonl(text, "sub/korpus.jsonl")
    assert [a.doc for a in articles] == ["sub/korpus.jsonl:ok", "sub/korpus.jsonl:ok2"]
    assert len(warnings) == 5
    for line_no, w in zip((2, 3, 4, 5, 7), warnings, strict=True):
        assert w.startswith(f"sub/korpus.jsonl:{line_no}: ")
        assert "skipped" in w
    assert "not valid JSON" in warnings[0]
    assert "text" in warnings[1]


def test_jsonl_duplicate_ids_keep_the_first_and_warn():
    text = jsonl(
        {"id": "x", "text": "Der erste Text."},
        {"id": "x", "text": "Der zweite Text."},
    )
    articles, warnings = parse_jsonl(text, "k.jsonl")
    assert [a.paragraphs for a in articles] == [("Der erste Text.",)]
    assert len(warnings) == 1
    assert warnings[0].startswith("k.jsonl:2: ") and "duplicate id 'x'" in warnings[0]


def test_jsonl_without_id_uses_the_line_number():
    articles, _ = parse_jsonl(jsonl({"text": "Ein Text."}, {"text": "Noch einer."}), "k.jsonl")
    assert [a.doc for a in articles] == ["k.jsonl:1", "k.jsonl:2"]


def test_jsonl_warnings_reach_scan_seeds(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "k.jsonl").write_text(jsonl({"id": "a", "text": "Text."}, "{oops"), "utf-8")
    files, warnings = scan(seeds)
    assert [a.doc for a in files[0].articles] == ["k.jsonl:a"]
    assert len(warnings) == 1 and warnings[0].startswith("k.jsonl:2: ")


# ------------------------------------------------------------- long paragraphs


def long_paragraph(sentences: int = 60) -> str:
    return " ".join(
        f"Satz Nummer {i} berichtet über die Lage in der Ukraine und in Russland."
        for i in range(sentences)
    )


def test_long_paragraph_is_split_at_sentence_boundaries():
    paragraph = long_paragraph()
    assert len(paragraph.split()) > MAX_PASSAGE_WORDS
    parts = split_long(paragraph)
    assert len(parts) >= 2
    for part in parts:
        assert part in paragraph  # a substring: nothing rewritten
        assert len(part.split()) <= MAX_PASSAGE_WORDS
        assert part.startswith("Satz Nummer")
        assert part.endswith(".")
    # Nothing lost: the parts cover every word, in order.
    assert " ".join(parts).split() == paragraph.split()


def test_short_paragraph_is_not_split():
    text = "Ein kurzer Absatz. Mit zwei Sätzen."
    assert split_long(text) == [text]


def test_sentence_longer_than_the_limit_is_cut_at_words():
    paragraph = " ".join(["Wort"] * 450)  # no sentence end at all
    parts = split_long(paragraph)
    assert [len(p.split()) for p in parts] == [200, 200, 50]
    assert all(p in paragraph for p in parts)


def test_split_passages_ids_and_parts():
    article = Article(
        doc="ordner/lang.txt",
        title="Lang",
        paragraphs=("Kurzer erster Absatz.", long_paragraph(), "Kurzer letzter Absatz."),
    )
    passages = split_passages(article)
    ids = [p.id for p in passages]
    assert ids[0] == "ordner/lang.txt#1"
    assert ids[-1] == "ordner/lang.txt#3"
    middle = [p for p in passages if p.paragraph == 2]
    assert len(middle) >= 2
    assert [p.id for p in middle] == [f"ordner/lang.txt#2.{i}" for i in range(1, len(middle) + 1)]
    assert [p.part for p in middle] == list(range(1, len(middle) + 1))
    assert all(p.text in article.paragraphs[1] for p in middle)
    assert passages[0].part == 0 and passages[0].paragraph == 1
    assert all(p.title == "Lang" and p.doc == "ordner/lang.txt" for p in passages)


def test_abbreviation_does_not_end_a_sentence():
    sentence = "Laut Dr. Müller und Prof. Schmidt kommt es z. B. so."
    paragraph = " ".join([sentence] * 30)  # 330 words
    parts = split_long(paragraph)
    assert len(parts) >= 2
    assert all(p.startswith("Laut Dr.") for p in parts)


# ------------------------------------------------------------------- ids


def test_ids_are_relative_path_and_paragraph_number(tmp_path):
    seeds = tmp_path / "seeds"
    (seeds / "2024" / "juni").mkdir(parents=True)
    (seeds / "2024" / "juni" / "a.txt").write_text("Eins.\nZwei.\n", "utf-8")
    (seeds / "b.md").write_text("# B\n\nEins.\n", "utf-8")
    ids = [p.id for a in articles_of(seeds).values() for p in split_passages(a)]
    assert sorted(ids) == ["2024/juni/a.txt#1", "2024/juni/a.txt#2", "b.md#1"]


def test_ids_are_stable_across_reads(seeds_dir):
    first = [p.id for a in articles_of(seeds_dir).values() for p in split_passages(a)]
    second = [p.id for a in articles_of(seeds_dir).values() for p in split_passages(a)]
    assert first == second
    assert "nordkorea.txt#2" in first and "nordkorea.txt#12" in first
    assert "nordkorea.txt#13" not in first  # the byline is no passage


def test_scan_reads_seed_suffixes_only_and_ignores_hidden_files_silently(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Text.\n", "utf-8")
    (seeds / "bild.png").write_bytes(b"\x89PNG")
    (seeds / ".versteckt.txt").write_text("Geheim.\n", "utf-8")
    (seeds / ".DS_Store").write_bytes(b"\x00\x01")
    (seeds / ".git").mkdir()
    (seeds / ".git" / "notiz.pdf").write_bytes(b"%PDF")
    files, warnings = scan(seeds)
    assert [f.path for f in files] == ["a.txt"]
    assert warnings == [
        "skipped 1 file that is not an article (.png 1: bild.png); "
        "seedsearch reads .txt, .md and .jsonl"
    ]


# ------------------------------------------------------- files that are not articles


def test_unsupported_files_give_one_warning_with_types_counts_and_names(tmp_path):
    seeds = tmp_path / "seeds"
    (seeds / "Wirtschaft").mkdir(parents=True)
    (seeds / "report.pdf").write_bytes(b"%PDF-1.4")
    (seeds / "note.docx").write_bytes(b"PK")
    (seeds / "README").write_text("Lies mich.\n", "utf-8")
    files, warnings = scan(seeds)
    assert files == []
    assert warnings == [
        "skipped 3 files that are not articles (.docx 1, .pdf 1, no extension 1: "
        "note.docx, README, report.pdf); seedsearch reads .txt, .md and .jsonl"
    ]


def test_unsupported_files_warning_shows_the_first_three_names_and_counts_the_rest():
    rels = ["Wirtschaft/Bilanz_Größe.pdf", "b.PDF", "c.pdf", "d.docx", "e.pdf", "f.tar.gz"]
    warning = skipped_files_warning(rels)
    assert warning == (
        "skipped 6 files that are not articles (.pdf 4, .docx 1, .gz 1: "
        "b.PDF, c.pdf, d.docx and 3 more); seedsearch reads .txt, .md and .jsonl"
    )
    assert skipped_files_warning([]) is None


def test_unsupported_files_in_subfolders_are_named_by_relative_path(tmp_path):
    seeds = tmp_path / "seeds"
    (seeds / "Kultur").mkdir(parents=True)
    (seeds / "Kultur" / "kino.md").write_text("# Kino\n\nDer Saal ist groß.\n", "utf-8")
    (seeds / "Kultur" / "plakat.jpg").write_bytes(b"\xff\xd8")
    files, warnings = scan(seeds)
    assert [f.path for f in files] == ["Kultur/kino.md"]
    assert len(warnings) == 1 and "(.jpg 1: Kultur/plakat.jpg)" in warnings[0]


# --------------------------------------------------------------- encodings


def test_utf8_with_bom(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffÄrzte warnen vor Hitze.\n".encode())
    seed = read_seed_file(tmp_path, "bom.txt")
    assert seed.warnings == ()
    assert seed.articles[0].paragraphs == ("Ärzte warnen vor Hitze.",)


def test_cp1252_falls_back_with_a_warning_naming_the_file(tmp_path):
    (tmp_path / "alt.txt").write_bytes("Die Straße nach München – „Größe“.\n".encode("cp1252"))
    seed = read_seed_file(tmp_path, "alt.txt")
    assert seed.articles[0].paragraphs == ("Die Straße nach München – „Größe“.",)
    assert len(seed.warnings) == 1
    assert seed.warnings[0].startswith("alt.txt: ") and "cp1252" in seed.warnings[0]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b"  \n\n\t\n", "empty"), (b"PK\x03\x04\x00\x00binary", "binary")],
)
def test_empty_and_binary_files_are_skipped_with_a_warning(tmp_path, content, reason):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "gut.txt").write_text("Ein guter Text.\n", "utf-8")
    (seeds / "schlecht.txt").write_bytes(content)
    files, warnings = scan(seeds)
    by_path = {f.path: f for f in files}
    assert by_path["schlecht.txt"].articles == ()
    assert by_path["gut.txt"].articles[0].paragraphs == ("Ein guter Text.",)
    assert len(warnings) == 1
    assert warnings[0].startswith("schlecht.txt: ") and reason in warnings[0]


def test_text_is_nfc_normalised(tmp_path):
    nfd = unicodedata.normalize("NFD", "Größe und Ärzte in Köln.")
    assert nfd != unicodedata.normalize("NFC", nfd)
    (tmp_path / "nfd.txt").write_text(nfd + "\n", "utf-8")
    (tmp_path / "nfd.jsonl").write_text(json.dumps({"id": "n", "text": nfd}) + "\n", "utf-8")
    for rel in ("nfd.txt", "nfd.jsonl"):
        (article,) = read_seed_file(tmp_path, rel).articles
        assert article.paragraphs == ("Größe und Ärzte in Köln.",)
        assert unicodedata.is_normalized("NFC", article.paragraphs[0])


def test_windows_line_endings(tmp_path):
    (tmp_path / "crlf.txt").write_bytes(b"Eins.\r\nZwei.\r\n\r\n")
    (article,) = read_seed_file(tmp_path, "crlf.txt").articles
    assert article.paragraphs == ("Eins.", "Zwei.")


def test_content_hash_changes_with_content_only(tmp_path):
    (tmp_path / "a.txt").write_text("Eins.\n", "utf-8")
    (tmp_path / "b.txt").write_text("Eins.\n", "utf-8")
    h1 = read_seed_file(tmp_path, "a.txt").articles[0].content_hash
    assert h1 == read_seed_file(tmp_path, "b.txt").articles[0].content_hash
    (tmp_path / "a.txt").write_text("Eins!\n", "utf-8")
    assert read_seed_file(tmp_path, "a.txt").articles[0].content_hash != h1
