"""Pure archive logic: filters, phrases, grouping, date order and highlights."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from indexer.analysis import analyze, duplicate_key
from indexer.errors import QueryError
from search.archive import (
    Candidate,
    Filters,
    SortOrder,
    collapse,
    highlight_spans,
    parse_query,
    resolve_values,
    sort_groups,
)

# ------------------------------------------------------------------ filters


def test_filters_accept_iso_text_dates_and_datetimes():
    f = Filters(since="2024-06-01", until=date(2024, 6, 30))
    assert (f.since, f.until) == ("2024-06-01", "2024-06-30")
    assert Filters(since=datetime(2024, 6, 1, 12, 30)).since == "2024-06-01"
    assert Filters(since="2024-06-01T08:00:00+02:00").since == "2024-06-01"


@pytest.mark.parametrize("bad", ["2024-13-01", "gestern", "17.06.2024", 20240617])
def test_a_bad_date_names_the_value_and_the_format(bad):
    with pytest.raises(QueryError, match=r"since=.*YYYY-MM-DD"):
        Filters(since=bad)


def test_since_after_until_is_an_error():
    with pytest.raises(QueryError, match="swap"):
        Filters(since="2024-07-01", until="2024-06-01")


def test_filter_values_become_tuples_and_one_string_is_one_value():
    f = Filters(sources="Der Standard", agencies=["dpa", "AFP", "dpa"], folders=("Sport*",))
    assert f.sources == ("Der Standard",)
    assert f.agencies == ("dpa", "AFP")  # repeated values once
    assert f.folders == ("Sport*",)
    assert not Filters().active and f.active


@pytest.mark.parametrize("bad", [[""], ["  "], [3], 5])
def test_empty_or_non_text_filter_values_are_errors(bad):
    with pytest.raises(QueryError, match="agencies="):
        Filters(agencies=bad)


def test_filters_are_frozen_and_hashable():
    f = Filters(sources=["ORF"])
    with pytest.raises(AttributeError):
        f.sources = ("x",)  # type: ignore[misc]
    assert {f: 1}[Filters(sources=("ORF",))] == 1


KNOWN = {
    "source": ["Der Standard", "ORF", "orf.at"],
    "agency": ["apa", "dpa, AFP", "AFP", "Reuters"],
    "folder": ["Sport", "Sport/Fußball", "Wirtschaft", "Sportwagen"],
}


def test_sources_match_without_case_and_exactly():
    values = resolve_values(Filters(sources=["orf"]), KNOWN.__getitem__)
    assert values == {"source": ["ORF"]}


def test_an_agency_matches_inside_an_agency_list():
    values = resolve_values(Filters(agencies=["afp"]), KNOWN.__getitem__)
    assert values == {"agency": ["dpa, AFP", "AFP"]}


def test_folder_patterns_are_globs_and_include_subfolders():
    assert resolve_values(Filters(folders=["sport"]), KNOWN.__getitem__)["folder"] == [
        "Sport",
        "Sport/Fußball",
    ]
    assert resolve_values(Filters(folders=["Sport*"]), KNOWN.__getitem__)["folder"] == [
        "Sport",
        "Sport/Fußball",
        "Sportwagen",
    ]


def test_a_filter_that_matches_nothing_allows_nothing():
    assert resolve_values(Filters(sources=["Bild"]), KNOWN.__getitem__) == {"source": []}


# ------------------------------------------------------------------ phrases


def test_quoted_words_are_phrases_and_the_rest_is_free_text():
    q = parse_query('Putin "strategische Partnerschaft" Kim')
    assert q.phrases == ("strategische Partnerschaft",)
    assert q.text == "Putin strategische Partnerschaft Kim"


def test_german_quotes_are_phrases_too():
    assert parse_query("„Waffen an Moskau“").phrases == ("Waffen an Moskau",)
    assert parse_query("»Waffen an Moskau«").phrases == ("Waffen an Moskau",)


@pytest.mark.parametrize("query", ['Waffen "an Moskau', '""', 'Waffen " "', 'a "" b'])
def test_unbalanced_or_empty_quotes_are_plain_text(query):
    q = parse_query(query)
    assert q.phrases == ()


# ------------------------------------------------------------------ grouping


def cands(*rows):
    return [Candidate(pid, pid.split("#")[0], 1.0 / i, key) for i, (pid, key) in enumerate(rows, 1)]


def test_exact_copies_fold_into_the_best_ranked_one():
    ranked = cands(("a#1", "x"), ("b#1", "x"), ("a#2", "y"), ("c#1", "x"))
    groups = collapse(ranked)
    assert [g.candidate.id for g in groups] == ["a#1", "a#2"]
    assert groups[0].duplicates == ("b#1", "c#1")


def test_collapse_off_keeps_every_copy():
    ranked = cands(("a#1", "x"), ("b#1", "x"))
    assert [g.candidate.id for g in collapse(ranked, collapse_duplicates=False)] == ["a#1", "b#1"]


def test_per_article_keeps_the_best_hits_of_each_article():
    ranked = cands(("a#1", "1"), ("a#2", "2"), ("a#3", "3"), ("b#1", "4"), ("a#4", "5"))
    assert [g.candidate.id for g in collapse(ranked, per_article=1)] == ["a#1", "b#1"]
    assert [g.candidate.id for g in collapse(ranked, per_article=2)] == ["a#1", "a#2", "b#1"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_per_article_must_be_a_positive_whole_number(bad):
    with pytest.raises(QueryError, match="per_article="):
        collapse(cands(("a#1", "x")), per_article=bad)


def test_date_order_is_newest_first_undated_last_ties_by_rank():
    rows = [
        Candidate("a#1", "a", 0.9, None, "2024-01-01"),
        Candidate("b#1", "b", 0.8, None, None),
        Candidate("c#1", "c", 0.7, None, "2024-06-01T10:00:00Z"),
        Candidate("d#1", "d", 0.6, None, "2024-01-01"),
    ]
    groups = collapse(rows, collapse_duplicates=False)
    by_date = [g.candidate.id for g in sort_groups(groups, SortOrder.DATE)]
    assert by_date == ["c#1", "a#1", "d#1", "b#1"]
    assert sort_groups(groups, SortOrder.RELEVANCE) == groups


def test_sort_order_names_the_valid_values():
    assert SortOrder.from_str(" Date ") is SortOrder.DATE
    with pytest.raises(QueryError, match="relevance, date"):
        SortOrder.from_str("newest")


# ---------------------------------------------------------------- highlights


def test_highlights_are_spans_of_words_sharing_an_analysed_term():
    text = "Nordkorea soll Waffenlieferungen an Moskau geplant haben. Müller äußert sich."
    spans = highlight_spans(text, analyze("Waffen Mueller"))
    assert [text[a:b] for a, b in spans] == ["Waffenlieferungen", "Müller"]


def test_no_terms_no_highlights():
    assert highlight_spans("Der die das.", analyze("der die das")) == ()


# --------------------------------------------------------------- duplicates


def test_duplicate_key_ignores_case_punctuation_and_spacing_not_words():
    a = duplicate_key("Nordkorea liefert Waffen – sagt Seoul.")
    assert a == duplicate_key("nordkorea  liefert Waffen, sagt  Seoul")
    assert a != duplicate_key("Nordkorea liefert keine Waffen, sagt Seoul.")
    # casefold: a Swiss copy (ss for ß) of an agency text is the same text
    assert duplicate_key("Die Straße ist gesperrt.") == duplicate_key("Die Strasse ist gesperrt")
