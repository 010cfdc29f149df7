"""The archive through the engine: metadata on hits, filters inside both retrievers,
paging, exact copies, per-article limits, phrases and the article view (fake embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SEED_ARTICLE, FakeEmbedder

from indexer import Indexer
from indexer.errors import IndexCorruptError, NotFoundError, QueryError
from indexer.settings import IndexSettings
from search import Filters, SearchEngine

ARTICLES = {
    "Politik/kim-putin.md": (
        "---\ndate: 2024-06-20T09:30:00+02:00\nsource: Der Standard\n"
        "url: https://example.org/kim-putin\n---\n"
        "# Putin und Kim unterzeichnen Partnerschaft\n\n"
        "Russlands Präsident Putin und Nordkoreas Machthaber Kim haben eine strategische "
        "Partnerschaft unterzeichnet.\n\n"
        "Westliche Länder werfen Nordkorea vor, Waffen an Moskau zu liefern.\n\n"
        "(red / apa)\n"
    ),
    "Wirtschaft/rheinmetall.md": (
        "---\ndate: 2024-05-02\nsource: ORF\n---\n"
        "# Rüstungskonzern meldet Rekordumsatz\n\n"
        "Der Rüstungskonzern liefert mehr Munition und Waffen an die Ukraine als je zuvor.\n\n"
        "Die Aktie stieg am Donnerstag um fünf Prozent.\n\n"
        "(dpa, AFP)\n"
    ),
    "Wirtschaft/kopie.md": (  # an agency copy: one paragraph is the same text
        "---\ndate: 2023-11-30\nsource: Kurier\n---\n"
        "# Moskau und Pjöngjang\n\n"
        "Westliche Länder werfen Nordkorea vor, Waffen an Moskau zu liefern!\n\n"
        "Die Partnerschaft gilt als Antwort auf die Sanktionen.\n\n"
        "(ag / AFP)\n"
    ),
    "Sport/fussball.txt": (
        "Der FC Bayern München gewinnt das Spitzenspiel gegen Borussia Dortmund.\n"
        "Die Fußballfans feierten den Sieg bis spät in die Nacht auf der Straße.\n"
    ),
    "nordkorea.txt": SEED_ARTICLE.read_text(encoding="utf-8"),
}


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    seeds = write(root / "seeds", ARTICLES)
    Indexer(seeds, root / "index", model=FakeEmbedder()).update()
    return root / "index"


@pytest.fixture(scope="module")
def engine(archive):
    with SearchEngine.open(archive, model=FakeEmbedder()) as e:
        yield e


def docs(result) -> list[str]:
    return [h.doc for h in result]


# ----------------------------------------------------------------- metadata


def test_hits_carry_the_article_metadata(engine):
    hit = next(h for h in engine.search("Rüstungskonzern Rekordumsatz", k=3, mode="bm25"))
    assert hit.doc == "Wirtschaft/rheinmetall.md"
    assert (hit.date, hit.source, hit.url) == ("2024-05-02", "ORF", None)
    assert (hit.author, hit.agency, hit.folder) == (None, "dpa, AFP", "Wirtschaft")
    d = hit.to_dict()
    for key in ("date", "source", "url", "author", "agency", "folder", "duplicates"):
        assert key in d
    assert d["highlights"] and all(len(span) == 2 for span in d["highlights"])


def test_unknown_metadata_is_none(engine):
    hit = engine.search("Spitzenspiel Dortmund", k=1, mode="bm25")[0]
    assert hit.doc == "Sport/fussball.txt"
    assert (hit.date, hit.source, hit.url, hit.author, hit.agency) == (None,) * 5
    assert hit.folder == "Sport"


def test_result_to_dict_is_the_json_object(engine):
    result = engine.search("Waffen", k=2, offset=1)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) >= {"query", "total", "offset", "hits", "notices"}
    assert data["query"] == "Waffen" and data["offset"] == 1 and data["total"] >= 3
    assert [h["rank"] for h in data["hits"]] == [2, 3]


# ------------------------------------------------------------------ filters


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(since="2024-01-01"), {"Politik/kim-putin.md", "Wirtschaft/rheinmetall.md"}),
        (Filters(until="2024-05-02"), {"Wirtschaft/rheinmetall.md", "Wirtschaft/kopie.md"}),
        (Filters(since="2024-06-20", until="2024-06-20"), {"Politik/kim-putin.md"}),
        (Filters(sources=["orf"]), {"Wirtschaft/rheinmetall.md"}),
        (Filters(sources=["ORF", "Kurier"]), {"Wirtschaft/rheinmetall.md", "Wirtschaft/kopie.md"}),
        (
            Filters(agencies=["afp"]),
            {"Wirtschaft/rheinmetall.md", "Wirtschaft/kopie.md", "nordkorea.txt"},
        ),
        (Filters(agencies=["APA"]), {"Politik/kim-putin.md"}),
        (Filters(folders=["Wirtschaft"]), {"Wirtschaft/rheinmetall.md", "Wirtschaft/kopie.md"}),
        (Filters(folders=["P*"]), {"Politik/kim-putin.md"}),
        (Filters(folders=["Wirtschaft"], agencies=["dpa"]), {"Wirtschaft/rheinmetall.md"}),
        (Filters(since="2024-01-01", agencies=["afp"]), {"Wirtschaft/rheinmetall.md"}),
        (Filters(sources=["Bild"]), set()),
    ],
)
def test_each_filter_alone_and_combined(engine, filters, expected):
    for mode in ("hybrid", "bm25", "vector"):
        result = engine.search("Waffen Partnerschaft Spiel", k=50, mode=mode, filters=filters)
        if mode == "bm25":
            assert set(docs(result)) <= expected
        else:  # every passage of a matching article is a vector candidate
            assert set(docs(result)) == expected, mode


def test_undated_articles_never_match_a_date_filter(engine):
    result = engine.search("Nordkorea", k=50, filters=Filters(since="1900-01-01"))
    assert "nordkorea.txt" not in docs(result) and "Sport/fussball.txt" not in docs(result)
    assert all(h.date for h in result)


def test_filters_must_be_a_filters_object(engine):
    with pytest.raises(QueryError, match="Filters"):
        engine.search("Waffen", filters={"since": "2024-01-01"})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """300 articles that all match 'Waffenlieferung Nordkorea' strongly, and 3 rare
    ones (1 %, source 'Selten') that match weakly: after the candidate cut (100 per
    retriever) a filter applied afterwards would find none of them."""
    root = tmp_path_factory.mktemp("big")
    files = {}
    for i in range(300):
        files[f"viel/{i:03d}.md"] = (
            f"---\nsource: Häufig\n---\n# Meldung {i}\n\n"
            f"Waffenlieferung Nordkorea Waffenlieferung Nordkorea Bericht Nummer {i}.\n"
        )
    for i in range(3):
        files[f"selten/{i}.md"] = (
            f"---\nsource: Selten\n---\n# Selten {i}\n\n"
            f"Ein langer Text über Landwirtschaft, Getreide, Ernte und Wetter, der nur "
            f"nebenbei Nordkorea erwähnt (Fall {i}).\n\n"
            f"Zweiter Absatz über Traktoren und Dünger im Fall {i}.\n"
        )
    seeds = write(root / "seeds", files)
    settings = IndexSettings(ann="hnsw")  # the graph: a selective filter must stay exact
    Indexer(seeds, root / "index", model=FakeEmbedder(), settings=settings).update()
    with SearchEngine.open(root / "index", model=FakeEmbedder()) as e:
        yield e


@pytest.mark.parametrize("mode", ["hybrid", "vector"])
def test_a_filter_matching_1_percent_still_returns_k_hits(big, mode):
    only = Filters(sources=["Selten"])
    plain = big.search("Waffenlieferung Nordkorea", k=100, mode=mode)
    assert not any(h.source == "Selten" for h in plain)  # cut without the filter
    result = big.search("Waffenlieferung Nordkorea", k=5, mode=mode, filters=only)
    assert len(result) == 5 and result.total == 6
    assert {h.source for h in result} == {"Selten"}


def test_a_bm25_filter_acts_before_the_cut(big):
    only = Filters(sources=["Selten"])
    result = big.search("Waffenlieferung Nordkorea", k=5, mode="bm25", filters=only)
    assert [h.source for h in result] == ["Selten"] * 3  # the 3 passages naming Nordkorea


# ------------------------------------------------------------------- paging


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_page_two_continues_page_one(big, mode):
    whole = big.search("Waffenlieferung Nordkorea Bericht", k=30, mode=mode)
    pages = [
        big.search("Waffenlieferung Nordkorea Bericht", k=10, mode=mode, offset=o)
        for o in (0, 10, 20)
    ]
    assert [h.id for p in pages for h in p] == [h.id for h in whole]
    assert [h.rank for p in pages for h in p] == list(range(1, 31))
    assert len({p.total for p in pages}) == 1 and pages[0].total >= 30


def test_a_page_past_the_end_is_empty_and_says_the_total(engine):
    result = engine.search("Spitzenspiel", k=5, mode="bm25", offset=50)
    assert len(result) == 0 and result.total == 1 and result.offset == 50


@pytest.mark.parametrize("offset", [-1, 1.5, "2", True, 10_001])
def test_a_bad_offset_is_a_query_error(engine, offset):
    with pytest.raises(QueryError, match="offset="):
        engine.search("Waffen", offset=offset)


# -------------------------------------------------------- copies, per article


def test_exact_copies_collapse_into_one_hit_listing_the_others(engine):
    result = engine.search("Waffen an Moskau liefern", k=10, mode="bm25")
    ids = [h.id for h in result]
    copies = {"Politik/kim-putin.md#2", "Wirtschaft/kopie.md#1"}
    assert len(copies & set(ids)) == 1
    hit = next(h for h in result if h.id in copies)
    assert hit.duplicates == tuple(sorted(copies - {hit.id}))
    off = engine.search("Waffen an Moskau liefern", k=10, mode="bm25", collapse=False)
    assert copies <= {h.id for h in off} and all(h.duplicates == () for h in off)
    assert off.total == result.total + 1


def test_per_article_limits_hits_from_one_article(engine):
    free = engine.search("Nordkorea Russland Putin", k=10, mode="bm25")
    assert max(docs(free).count(d) for d in docs(free)) > 1
    one = engine.search("Nordkorea Russland Putin", k=10, mode="bm25", per_article=1)
    assert len(docs(one)) == len(set(docs(one))) > 1
    assert docs(one) == list(dict.fromkeys(docs(free)))  # best passage of each article


def test_sort_by_date_is_newest_first_among_the_matches(engine):
    result = engine.search("Waffen", k=10, mode="bm25", sort="date")
    dated = [h.date for h in result if h.date]
    assert dated == sorted(dated, reverse=True) and len(dated) >= 2
    assert [h.date for h in result][: len(dated)] == dated  # undated after the dated
    relevance = engine.search("Waffen", k=10, mode="bm25")
    assert {h.id for h in result} == {h.id for h in relevance}


# ------------------------------------------------------------------ phrases


def test_a_phrase_matches_after_the_same_analysis(engine):
    result = engine.search('"Waffen an Moskau"', k=10, collapse=False)
    assert {h.id for h in result} == {
        "Politik/kim-putin.md#2",
        "Wirtschaft/kopie.md#1",
        "nordkorea.txt#6",
    }


def test_a_phrase_needs_the_order(engine):
    assert len(engine.search('"Moskau Waffen"', k=10)) == 0
    assert len(engine.search("Moskau Waffen", k=10, mode="bm25")) > 0


def test_phrases_mix_with_free_words(engine):
    result = engine.search('Putin "strategische Partnerschaft"', k=10)
    assert result[0].id == "Politik/kim-putin.md#1"
    assert all("strategische Partnerschaft" in h.text for h in result)
    assert "Wirtschaft/kopie.md#2" not in {h.id for h in result}  # Partnerschaft alone


def test_a_compound_is_one_word_of_a_phrase(tmp_path):
    seeds = write(
        tmp_path / "s",
        {
            "a.txt": "Die Waffenlieferungen an Moskau gehen weiter.\n",
            "b.txt": "Lieferungen an Moskau: Waffen kommen später.\n",
        },
    )
    Indexer(seeds, tmp_path / "ix", model=FakeEmbedder()).update()
    with SearchEngine.open(tmp_path / "ix", model=FakeEmbedder()) as e:
        assert [h.doc for h in e.search('"Waffenlieferungen an Moskau"', k=5)] == ["a.txt"]
        # a phrase matches whole words (their stems), not the parts of a compound
        assert [h.doc for h in e.search('"Lieferungen an Moskau"', k=5)] == ["b.txt"]
        assert [h.doc for h in e.search('"Waffenlieferung an Moskau"', k=5)] == ["a.txt"]
        assert [h.doc for h in e.search('"Moskau Waffen"', k=5)] == ["b.txt"]


def test_an_unbalanced_quote_is_plain_text(engine):
    plain = engine.search("Waffen an Moskau", k=5)
    assert [h.id for h in engine.search('Waffen "an Moskau', k=5)] == [h.id for h in plain]


# --------------------------------------------------------------------- view


def test_article_by_passage_id_marks_the_passage(engine):
    article = engine.article("Politik/kim-putin.md#2")
    assert article.title == "Putin und Kim unterzeichnen Partnerschaft"
    assert article.date == "2024-06-20T09:30:00+02:00" and article.source == "Der Standard"
    assert (article.author, article.agency, article.folder) == ("red", "apa", "Politik")
    assert article.marked == "Politik/kim-putin.md#2"
    assert [p.id for p in article.passages] == ["Politik/kim-putin.md#1", "Politik/kim-putin.md#2"]
    assert "(red / apa)" not in " ".join(p.text for p in article.passages)
    assert json.loads(json.dumps(article.to_dict()))["passages"][1]["id"] == article.marked


def test_article_by_article_id_marks_nothing(engine):
    article = engine.article("nordkorea.txt")
    assert article.marked is None and len(article.passages) > 5


def test_article_by_a_path_that_includes_the_seeds_folder(engine):
    assert engine.article("seeds/Politik/kim-putin.md").doc == "Politik/kim-putin.md"
    assert engine.article("/home/x/seeds/Sport/fussball.txt").doc == "Sport/fussball.txt"


def test_an_unknown_article_is_not_found(engine):
    with pytest.raises(NotFoundError, match="no article or passage 'nix.txt'"):
        engine.article("nix.txt")
    with pytest.raises(QueryError):
        engine.article("")


def test_facet_values_split_agency_lists(engine):
    assert engine.facet_values("source") == ["Der Standard", "Kurier", "ORF"]
    assert {"AFP", "apa", "dpa"} <= set(engine.facet_values("agency"))
    with pytest.raises(QueryError, match="source, agency or folder"):
        engine.facet_values("title")


# ------------------------------------------------------------------- format


def test_an_index_of_format_2_asks_for_a_full_rebuild(archive, tmp_path):
    import shutil

    from indexer.store import MANIFEST, generations

    copy = tmp_path / "old"
    shutil.copytree(archive, copy)
    gen = generations.current_generation(copy)
    raw = json.loads((gen / MANIFEST).read_text())
    raw["format_version"] = 2
    (gen / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(IndexCorruptError, match="index --full"):
        SearchEngine.open(copy, model=FakeEmbedder())


def test_copies_outside_the_filter_are_not_listed(engine):
    only = Filters(since="2024-01-01")
    result = engine.search("Waffen an Moskau liefern", k=10, mode="bm25", filters=only)
    hit = next(h for h in result if h.id == "Politik/kim-putin.md#2")
    assert hit.duplicates == ()  # its copy (Wirtschaft/kopie.md, 2023) is filtered out


def test_an_update_of_a_format_2_index_needs_full_and_full_keeps_its_settings(tmp_path):
    from indexer.store import MANIFEST, generations

    seeds = write(tmp_path / "seeds", {"a.txt": "Waffen an Moskau.\n"})
    index = tmp_path / "ix"
    Indexer(seeds, index, model=FakeEmbedder(), settings=IndexSettings(vectors="float16")).update()
    gen = generations.current_generation(index)
    raw = json.loads((gen / MANIFEST).read_text())
    raw["format_version"] = 2
    (gen / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(IndexCorruptError, match="index --full"):
        Indexer(seeds, index, model=FakeEmbedder()).update()
    report = Indexer(seeds, index, model=FakeEmbedder()).update(full=True)
    assert report.passages == 1
    with SearchEngine.open(index, model=FakeEmbedder()) as e:
        assert e.manifest.format_version == 3
        assert e.manifest.settings["vectors"] == "float16"  # kept by the rebuild
        assert [h.id for h in e.search('"Waffen an Moskau"')] == ["a.txt#1"]


@pytest.mark.parametrize("where", ["flat", "hnsw"])
def test_faiss_id_selector_and_exact_scoring_agree(where, engine, big, monkeypatch):
    """A filter reaches FAISS as an ID selector (large allowed sets) or is scored exactly
    on the allowed vectors (small ones, or most of an HNSW graph skipped): same hits."""
    import search.engine as engine_module

    e = engine if where == "flat" else big
    only = Filters(folders=["Wirtschaft"]) if where == "flat" else Filters(sources=["Häufig"])
    query = "Waffen Nordkorea Partnerschaft"
    monkeypatch.setattr(engine_module, "EXACT_FILTER_LIMIT", 10**9)
    monkeypatch.setattr(engine_module, "EXACT_FILTER_SHARE", 2.0)
    exact = e.search(query, k=10, mode="vector", filters=only, collapse=False)
    monkeypatch.setattr(engine_module, "EXACT_FILTER_LIMIT", 0)
    selector = e.search(query, k=10, mode="vector", filters=only, collapse=False)
    assert len(exact) == 10 or where == "flat"
    assert [h.id for h in selector] == [h.id for h in exact]
    assert [h.vector for h in selector] == pytest.approx([h.vector for h in exact], abs=1e-5)


def test_a_filter_or_phrase_that_allows_nothing_says_why(engine):
    result = engine.search("Waffen", filters=Filters(sources=["Bild"]))
    assert len(result) == 0
    assert result.notices == ("no article has source 'Bild' (known: Der Standard, Kurier, ORF)",)
    both = engine.search("Waffen", filters=Filters(sources=["ORF"], folders=["Sport"]))
    assert both.notices == ("no article matches these filters together",)
    phrase = engine.search('"Moskau Waffen"')
    assert phrase.notices == ('no passage contains "Moskau Waffen" with these words in this order',)


def test_the_index_model_sets_the_default_alpha(archive, monkeypatch):
    import search.engine as engine_module
    from search import SearchSettings
    from search.engine import default_settings

    assert default_settings("use-m3").alpha == 0.6
    assert default_settings("e5-small").alpha == SearchSettings.alpha
    assert default_settings("use-m3", alpha=0.2, depth=50) == SearchSettings(alpha=0.2, depth=50)
    monkeypatch.setitem(engine_module.MODEL_ALPHA, "fake-hash-64", 0.7)
    with SearchEngine.open(archive, model=FakeEmbedder()) as e:
        assert e.settings.alpha == 0.7
        default = e.search("Waffen Partnerschaft", k=5)
        assert [h.id for h in default] == [
            h.id for h in e.search("Waffen Partnerschaft", alpha=0.7)
        ]
    given = SearchSettings(alpha=0.3)
    with SearchEngine.open(archive, model=FakeEmbedder(), settings=given) as e:
        assert e.settings.alpha == 0.3  # settings given by the caller win
