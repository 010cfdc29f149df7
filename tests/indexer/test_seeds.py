"""Reading seed articles: paragraphs, bylines, titles, .jsonl corpora, encodings, ids."""

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


def test_scan_ignores_other_suffixes_and_hidden_files(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Text.\n", "utf-8")
    (seeds / "bild.png").write_bytes(b"\x89PNG")
    (seeds / ".versteckt.txt").write_text("Geheim.\n", "utf-8")
    files, warnings = scan(seeds)
    assert [f.path for f in files] == ["a.txt"]
    assert warnings == []


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
