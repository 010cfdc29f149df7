"""Article metadata: front matter, bylines, .jsonl fields, dates, folder, precedence."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from indexer.errors import SeedsearchError
from indexer.seeds import (
    Article,
    Byline,
    date_day,
    date_key,
    normalize_date,
    parse_byline,
    parse_jsonl,
    parse_text,
    read_seed_file,
    scan_seeds,
    split_front_matter,
)

FRONT = (
    "---\n"
    "title: Größere Züge für Süddeutschland\n"
    "date: 2024-06-17\n"
    "source: Süddeutsche Zeitung\n"
    "url: https://example.org/züge\n"
    "author: Jürgen Weiß\n"
    "agency: dpa\n"
    "tags: [bahn, verkehr]\n"
    "---\n"
    "Die Bahn bestellt längere Züge für die Strecke nach München.\n\n"
    "Der Fahrgastverband begrüßt die Entscheidung.\n"
)


def parse(text: str, doc: str = "a.md") -> tuple[Article | None, list[str]]:
    warnings: list[str] = []
    article = parse_text(text, doc, markdown=doc.endswith(".md"), on_warning=warnings.append)
    return article, warnings


# ------------------------------------------------------------ front matter


@pytest.mark.parametrize("doc", ["Verkehr/zug.md", "Verkehr/zug.txt"])
def test_front_matter_in_md_and_txt(doc):
    article, warnings = parse(FRONT, doc)
    assert warnings == []
    assert article.title == "Größere Züge für Süddeutschland"
    assert article.date == "2024-06-17"
    assert article.source == "Süddeutsche Zeitung"
    assert article.url == "https://example.org/züge"
    assert article.author == "Jürgen Weiß"
    assert (article.agency, article.agencies) == ("dpa", ("dpa",))
    assert article.folder == "Verkehr"
    assert article.paragraphs == (
        "Die Bahn bestellt längere Züge für die Strecke nach München.",
        "Der Fahrgastverband begrüßt die Entscheidung.",
    )


def test_front_matter_keys_are_case_insensitive_and_lists_are_joined():
    text = (
        "---\nTitle: Straßenbau\nAuthor: [Anna Groß, Ömer Yılmaz]\n"
        "Agency: [dpa, AFP]\n---\nDie Straße wird gesperrt.\n"
    )
    article, warnings = parse(text, "s.txt")
    assert warnings == []
    assert article.title == "Straßenbau"
    assert article.author == "Anna Groß, Ömer Yılmaz"
    assert (article.agencies, article.agency) == (("dpa", "AFP"), "dpa, AFP")


def test_front_matter_ends_with_three_dots_too_and_leaves_a_substring():
    text = "---\ntitle: Föhn in Tirol\n...\nDer Föhn bläst stark.\n"
    block, rest = split_front_matter(text)
    assert block == "title: Föhn in Tirol\n"
    assert text.endswith(rest)
    article, _ = parse(text, "f.md")
    assert article.title == "Föhn in Tirol" and article.paragraphs == ("Der Föhn bläst stark.",)


def test_markdown_heading_repeating_the_front_matter_title_is_not_a_passage():
    same = "---\ntitle: Hitze in Bayern\n---\n# Hitze in Bayern\n\nEs wird heiß.\n"
    other = "---\ntitle: Hitze in Bayern\n---\n# Große Hitze\n\nEs wird heiß.\n"
    assert parse(same)[0].paragraphs == ("Es wird heiß.",)
    article = parse(other)[0]
    assert article.title == "Hitze in Bayern"  # the front matter wins
    assert article.paragraphs == ("Große Hitze", "Es wird heiß.")  # nothing lost


def test_bad_yaml_is_one_warning_and_the_block_is_not_indexed_as_text():
    text = "---\ntitle: [kaputt\ndate: 2024-06-17\n---\nDer Text über Äpfel bleibt.\n"
    article, warnings = parse(text, "kaputt.md")
    assert len(warnings) == 1
    assert warnings[0].startswith("kaputt.md: front matter is not valid YAML (")
    assert "line 3" in warnings[0] and "fields are ignored" in warnings[0]
    assert article.paragraphs == ("Der Text über Äpfel bleibt.",)
    assert article.title == "kaputt" and article.date is None


@pytest.mark.parametrize(
    "text",
    [
        "---\nDie Kanzlerin sagte: Nein.\n---\nDanach kam nichts.\n",  # a sentence
        "---\nNur eine Zeile zwischen Linien\n---\nDanach kam nichts.\n",  # a string
        "---\nkein Ende der Linie\n\nDanach kam nichts.\n",  # no closing line
    ],
)
def test_dashes_around_text_are_no_front_matter(text):
    article, warnings = parse(text, "linien.txt")
    assert warnings == []
    assert "---" in article.paragraphs[0]  # kept as text, as before
    assert article.title == "linien"


def test_empty_front_matter_is_dropped():
    article, warnings = parse("---\n---\nNur Text mit ß.\n", "e.md")
    assert warnings == [] and article.paragraphs == ("Nur Text mit ß.",)


def test_yaml_does_not_turn_values_into_other_types():
    # PyYAML would read 2024-06-17 as a date and 08:30 as a number of minutes
    text = "---\ntitle: 1984\ndate: 2024-06-17 08:30\n---\nText über Orwell.\n"
    article, warnings = parse(text, "o.md")
    assert warnings == []
    assert (article.title, article.date) == ("1984", "2024-06-17T08:30:00")


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("2024-06-17", "2024-06-17"),
        (" 2024-06-17 ", "2024-06-17"),
        ("2024-06-17T08:30", "2024-06-17T08:30:00"),
        ("2024-06-17 08:30:15", "2024-06-17T08:30:15"),
        ("2024-06-17T08:30:15.250Z", "2024-06-17T08:30:15+00:00"),
        ("2024-06-17T08:30+02:00", "2024-06-17T08:30:00+02:00"),
        ("2024-06-17T08:30:00+0530", "2024-06-17T08:30:00+05:30"),
        ("2024-06-17T08:30:00-05", "2024-06-17T08:30:00-05:00"),
    ],
)
def test_valid_dates_are_normalised(given, canonical):
    assert normalize_date(given) == canonical


@pytest.mark.parametrize(
    "bad",
    ["31.12.2024", "2024-02-30", "2024-6-7", "2024-06-17T25:00", "2024-06-17T08:30+25:00", "heute"],
)
def test_invalid_dates_are_rejected(bad):
    assert normalize_date(bad) is None


def test_bad_date_is_a_warning_naming_file_and_value_and_the_article_stays():
    article, warnings = parse("---\ndate: 31.12.2024\n---\nSilvester in Köln.\n", "a.md")
    assert warnings == [
        "a.md: date '31.12.2024' is not an ISO 8601 date "
        "(YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]), article indexed without a date"
    ]
    assert article.date is None and article.paragraphs == ("Silvester in Köln.",)


def test_date_keys_sort_chronologically_and_days_are_as_written():
    dates = [
        "2024-06-17T01:00:00+02:00",  # 2024-06-16 23:00 UTC
        "2024-06-17",
        "2024-06-16T23:30:00Z",
        "2024-06-17T09:00:00",
    ]
    keys = [date_key(normalize_date(d)) for d in dates]
    assert keys == [
        "2024-06-16T23:00:00Z",
        "2024-06-17",
        "2024-06-16T23:30:00Z",
        "2024-06-17T09:00:00Z",
    ]
    order = [d for _, d in sorted(zip(keys, dates, strict=True))]
    assert order == [dates[0], dates[2], dates[1], dates[3]]
    assert date_day("2024-06-17T01:00:00+02:00") == "2024-06-17"
    assert date_key(None) is None and date_day(None) is None
    article = Article("a.txt", "a", ("Text.",), date="2024-06-17T01:00:00+02:00")
    assert (article.day, article.date_key) == ("2024-06-17", "2024-06-16T23:00:00Z")


def test_article_rejects_a_date_that_is_not_canonical():
    with pytest.raises(SeedsearchError, match="31.12.2024"):
        Article("a.txt", "a", ("Text.",), date="31.12.2024")
    with pytest.raises(SeedsearchError, match="not a canonical ISO 8601 date"):
        Article("a.txt", "a", ("Text.",), date="2024-06-17T08:30")  # normalise it first
    with pytest.raises(SeedsearchError, match="2024, 6, 17"):
        Article("a.txt", "a", ("Text.",), date=datetime.date(2024, 6, 17))


def test_article_agency_and_agencies_fill_each_other():
    assert Article("a", "a", ("x",), agencies=("dpa", "AFP")).agency == "dpa, AFP"
    assert Article("a", "a", ("x",), agency="dpa/AFP").agencies == ("dpa", "AFP")
    assert Article("a", "a", ("x",)).agencies == ()


# ----------------------------------------------------------------- bylines


@pytest.mark.parametrize(
    ("line", "author", "agencies"),
    [
        ("(dr / afp)", "dr", ("afp",)),
        ("(red / apa)", "red", ("apa",)),
        ("(red/dpa)", "red", ("dpa",)),
        ("(dpa)", None, ("dpa",)),
        ("(APA)", None, ("APA",)),
        ("(dpa, AFP)", None, ("dpa", "AFP")),
        ("(dpa/AFP)", None, ("dpa", "AFP")),
        ("(APA/dpa/Reuters)", None, ("APA", "dpa", "Reuters")),
        ("(dpa-AFX)", None, ("dpa-AFX",)),
        ("(Jürgen Weiß / dpa)", "Jürgen Weiß", ("dpa",)),
        ("(APA, red)", "red", ("APA",)),
        ("(ab / xy)", "ab", ("xy",)),  # unknown agency: two short codes around a slash
    ],
)
def test_byline_forms(line, author, agencies):
    assert parse_byline(line) == Byline(author, agencies)


@pytest.mark.parametrize(
    "line",
    [
        "(Ende)",
        "(lacht)",
        "(Mehr dazu morgen)",
        "(Foto: dpa)",
        "(siehe Seite 3)",
        "(APA, 17.6.2024)",
        "(Fortsetzung folgt / Teil zwei)",
        "(nim, krud, mika, jub, mro)",
        "(dpa, )",
        "dpa",
    ],
)
def test_short_parenthesised_sentences_are_no_bylines(line):
    assert parse_byline(line) is None


def test_agency_list_byline_in_an_article_keeps_case_as_written():
    article, _ = parse("Erster Absatz.\n\nZweiter Absatz über Öl.\n(dpa, AFP)\n", "x.txt")
    assert (article.author, article.agencies, article.agency) == (None, ("dpa", "AFP"), "dpa, AFP")
    assert article.paragraphs == ("Erster Absatz.", "Zweiter Absatz über Öl.")


def test_front_matter_wins_over_the_byline_field_by_field():
    text = "---\nauthor: Jürgen Weiß\n---\nErster Absatz.\n\nZweiter Absatz.\n(dr / afp)\n"
    article, _ = parse(text, "x.md")
    assert article.author == "Jürgen Weiß"  # front matter
    assert article.agencies == ("afp",)  # from the byline: the front matter has none
    assert article.paragraphs == ("Erster Absatz.", "Zweiter Absatz.")  # byline removed


# ------------------------------------------------------------------ jsonl


def test_jsonl_metadata_fields_win_over_the_byline():
    rec = {
        "id": "z1",
        "title": "Zölle auf Stahl",
        "text": "Die EU erhebt Zölle.\n\nDie Industrie ist empört.\n\n(dr / afp)",
        "date": "2024-06-17T10:15:00+02:00",
        "url": "https://example.org/zölle",
        "source": "Die Zeit",
        "author": "Lena Groß",
        "agency": ["Reuters", "dpa"],
    }
    articles, warnings = parse_jsonl(json.dumps(rec, ensure_ascii=False), "Wirtschaft/k.jsonl")
    assert warnings == []
    (a,) = articles
    assert a.folder == "Wirtschaft"
    assert (a.title, a.date) == ("Zölle auf Stahl", "2024-06-17T10:15:00+02:00")
    assert (a.url, a.source) == ("https://example.org/zölle", "Die Zeit")
    assert (a.author, a.agencies, a.agency) == ("Lena Groß", ("Reuters", "dpa"), "Reuters, dpa")
    assert a.paragraphs == ("Die EU erhebt Zölle.", "Die Industrie ist empört.")


def test_jsonl_without_fields_takes_author_and_agency_from_the_byline():
    rec = {"id": "b", "text": "Eins.\n\nZwei.\n(red / apa)", "agency": "dpa/AFP"}
    (a,), _ = parse_jsonl(json.dumps(rec), "k.jsonl")
    assert (a.author, a.agencies, a.folder) == ("red", ("dpa", "AFP"), None)


def test_jsonl_bad_date_names_file_line_and_value():
    lines = [
        json.dumps({"id": "ok", "text": "Gut.", "date": "2024-06-17"}),
        json.dumps({"id": "de", "text": "Schlecht.", "date": "17. Juni 2024"}),
        json.dumps({"id": "num", "text": "Zahl.", "date": 20240617}),
    ]
    articles, warnings = parse_jsonl("\n".join(lines), "k.jsonl")
    assert [a.date for a in articles] == ["2024-06-17", None, None]
    assert len(warnings) == 2
    assert warnings[0].startswith("k.jsonl:2: date '17. Juni 2024' is not an ISO 8601 date")
    assert warnings[1].startswith("k.jsonl:3: date '20240617' is not an ISO 8601 date")
    assert all(w.endswith("article indexed without a date") for w in warnings)


# ------------------------------------------------------------ folder, hash


def test_folder_is_the_path_relative_to_the_seeds_folder(tmp_path):
    seeds = tmp_path / "seeds"
    (seeds / "Wirtschaft" / "Börse").mkdir(parents=True)
    (seeds / "oben.txt").write_text("Oben.\n", "utf-8")
    (seeds / "Wirtschaft" / "a.md").write_text("# Zinsen\n\nDie Zinsen fallen.\n", "utf-8")
    (seeds / "Wirtschaft" / "Börse" / "b.txt").write_text("Der DAX steigt.\n", "utf-8")
    (seeds / "Wirtschaft" / "k.jsonl").write_text(json.dumps({"text": "Öl."}), "utf-8")
    folders = {a.doc: a.folder for f in scan_seeds(seeds) for a in f.articles}
    assert folders == {
        "oben.txt": None,
        "Wirtschaft/a.md": "Wirtschaft",
        "Wirtschaft/Börse/b.txt": "Wirtschaft/Börse",
        "Wirtschaft/k.jsonl:1": "Wirtschaft",
    }


def test_content_hash_changes_when_only_the_metadata_changes(tmp_path: Path):
    body = "Die Straße ist gesperrt.\n"
    versions = [
        body,
        "---\ndate: 2024-06-17\n---\n" + body,
        "---\ndate: 2024-06-18\n---\n" + body,
        "---\ndate: 2024-06-18\nsource: taz\n---\n" + body,
        "---\ndate: 2024-06-18\nsource: taz\n---\n" + body + "(dpa)\n",
    ]
    hashes = []
    for text in versions:
        (tmp_path / "a.txt").write_text(text, "utf-8")
        hashes.append(read_seed_file(tmp_path, "a.txt").articles[0].content_hash)
    assert len(set(hashes)) == len(versions)
    rec = {"id": "x", "text": "Text.", "source": "taz"}
    h1 = parse_jsonl(json.dumps(rec), "k.jsonl")[0][0].content_hash
    h2 = parse_jsonl(json.dumps({**rec, "source": "FAZ"}), "k.jsonl")[0][0].content_hash
    assert h1 != h2
