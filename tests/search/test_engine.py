"""SearchEngine over an index built with the fake embedder: ranking, modes, errors."""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

import pytest
from conftest import FakeEmbedder, write_german_seeds

from indexer import Indexer
from indexer.errors import EmbedderMismatchError, IndexMissingError, QueryError, SeedsearchError
from search import SearchEngine, SearchSettings, index_status
from search.engine import Hit, SearchResult


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """One index of the conftest seeds for the whole module (read-only use)."""
    root = tmp_path_factory.mktemp("engine")
    seeds = write_german_seeds(root / "seeds")
    Indexer(seeds, root / "index", model=FakeEmbedder()).update()
    return root / "index"


@pytest.fixture(scope="module")
def engine(index_dir):
    with SearchEngine.open(index_dir, model=FakeEmbedder()) as e:
        yield e


def ids(hits: list[Hit]) -> list[str]:
    return [h.id for h in hits]


# ------------------------------------------------------------- round trip


def test_open_round_trip_reports_what_was_indexed(engine):
    assert len(engine) == 16  # 12 + 2 + 2 passages, bylines and the title excluded
    assert engine.manifest.documents == 3
    assert engine.manifest.embedder == FakeEmbedder.spec
    assert engine.manifest.dim == FakeEmbedder.dim


def test_built_index_fixture_opens(built_index, fake_embedder):
    with SearchEngine.open(built_index, model=fake_embedder) as e:
        assert ids(e.search("Hitze in Bayern", k=1)) == ["wetter.md#1"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Hitze in Bayern", "wetter.md#1"),
        ("Wasser trinken", "wetter.md#2"),
        ("Spitzenspiel gegen Dortmund", "fussball.txt#1"),
        ("Fußballfans feiern den Sieg", "fussball.txt#2"),
        ("Kim Jong-Un Vater", "nordkorea.txt#5"),
        ("Putin besucht Nordkorea", "nordkorea.txt#4"),
    ],
)
def test_the_right_paragraph_ranks_first(engine, query, expected):
    assert engine.search(query, k=3)[0].id == expected


def test_wer_liefert_waffen_finds_both_weapons_paragraphs(engine):
    top3 = ids(engine.search("Wer liefert Waffen?", k=3))
    assert "nordkorea.txt#2" in top3  # "... mit Waffenlieferungen zu unterstützen"
    assert "nordkorea.txt#6" in top3  # "... Waffen an Moskau zu liefern"


def test_spelling_variants_find_the_same_passage(engine):
    # "Straße" in the article; queries in ß and ss spelling find it by BM25.
    for q in ("Straße", "Strasse", "STRASSE"):
        assert engine.search(q, k=1, mode="bm25")[0].id == "fussball.txt#2"
    # "Württemberg" in the article, typed with a combining diaeresis (NFD).
    nfd = unicodedata.normalize("NFD", "Württemberg")
    assert nfd != "Württemberg"
    assert ids(engine.search(nfd, k=5, mode="bm25")) == ["wetter.md#1"]


def test_hits_carry_passage_data(engine):
    hit = engine.search("Hitzewelle Süddeutschland", k=1)[0]
    assert hit.doc == "wetter.md"
    assert hit.title == "Hitzewelle in Süddeutschland"  # the Markdown title is searchable
    assert hit.paragraph == 1 and hit.part == 0
    assert hit.text.startswith("Die Temperaturen steigen")
    assert set(hit.to_dict()) >= {"rank", "id", "doc", "paragraph", "text", "score", "bm25"}


# ---------------------------------------------------------------- evidence


def test_every_hybrid_hit_carries_both_scores_and_ranks_or_none(engine):
    hits = engine.search("Wer liefert Waffen?", k=16)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    some_bm25_only_missing = False
    for h in hits:
        assert (h.bm25 is None) == (h.bm25_rank is None)
        assert (h.vector is None) == (h.vector_rank is None)
        assert h.bm25 is not None or h.vector is not None
        if h.bm25 is None:
            some_bm25_only_missing = True
        if h.vector is not None:
            assert -1.0 - 1e-6 <= h.vector <= 1.0 + 1e-6
    assert some_bm25_only_missing  # vector-only hits exist and say so
    bm25_ranked = sorted((h for h in hits if h.bm25 is not None), key=lambda h: h.bm25_rank)
    assert [h.bm25 for h in bm25_ranked] == sorted((h.bm25 for h in bm25_ranked), reverse=True)


def test_bm25_and_vector_scores_match_the_single_mode_results(engine):
    q = "Wer liefert Waffen?"
    bm25 = {h.id: (h.score, h.rank) for h in engine.search(q, k=16, mode="bm25")}
    vec = {h.id: (h.score, h.rank) for h in engine.search(q, k=16, mode="vector")}
    for h in engine.search(q, k=16):
        if h.id in bm25:
            assert (h.bm25, h.bm25_rank) == bm25[h.id]
        if h.id in vec:
            assert (h.vector, h.vector_rank) == vec[h.id]


# ------------------------------------------------------------------- modes


def test_bm25_mode_returns_only_keyword_matches(engine):
    hits = engine.search("Wasser trinken", k=10, mode="bm25")
    assert ids(hits) == ["wetter.md#2"]
    assert hits[0].vector is None and hits[0].vector_rank is None
    assert hits[0].score == hits[0].bm25 and hits[0].bm25_rank == 1


def test_vector_mode_returns_k_hits_without_bm25(engine):
    hits = engine.search("Wasser trinken", k=5, mode="vector")
    assert len(hits) == 5
    assert all(h.bm25 is None and h.bm25_rank is None for h in hits)
    assert [h.vector_rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(h.score == h.vector for h in hits)


def test_hybrid_mode_merges_both(engine):
    hits = engine.search("Wasser trinken", k=5, mode="hybrid")
    assert len(hits) == 5
    assert hits[0].bm25 is not None and hits[0].vector is not None
    assert any(h.bm25 is None for h in hits)
    assert all(0.0 <= h.score <= 1.0 + 1e-9 for h in hits)  # min-max scores


def test_mode_accepts_enum_and_any_case(engine):
    assert ids(engine.search("Hitze", k=2, mode="BM25")) == ids(
        engine.search("Hitze", k=2, mode="bm25")
    )


def test_alpha_one_equals_bm25_order_and_alpha_zero_vector_order(engine):
    q = "Putin besucht Nordkorea"
    bm25 = ids(engine.search(q, k=3, mode="bm25"))
    vec = ids(engine.search(q, k=3, mode="vector"))
    assert bm25 != vec
    assert ids(engine.search(q, k=3, alpha=1.0)) == bm25
    assert ids(engine.search(q, k=3, alpha=0.0)) == vec


def test_rrf_fusion_per_query(engine):
    hits = engine.search("Wer liefert Waffen?", k=3, fusion="rrf")
    top, a = hits[0], SearchSettings().alpha  # the default alpha weighs RRF too
    expected = 2 * a / (60 + top.bm25_rank) + 2 * (1 - a) / (60 + top.vector_rank)
    assert top.score == pytest.approx(expected, abs=1e-6)


def test_k_limits_the_hits(engine):
    assert len(engine.search("Putin", k=1)) == 1
    assert len(engine.search("Putin", k=1000)) == 16  # at most all passages


def test_search_is_deterministic(engine):
    first = [h.to_dict() for h in engine.search("Russland Ukraine Krieg", k=10)]
    for _ in range(2):
        assert [h.to_dict() for h in engine.search("Russland Ukraine Krieg", k=10)] == first


# --------------------------------------------------------- hostile queries


@pytest.mark.parametrize(
    "query",
    [
        "title:x",
        "*",
        '"unbalanced',
        "AND OR NOT",
        "(",
        ")",
        "Waffen AND (liefern",
        "body:Waffen^3 ~2",
        "[a TO z]",
        "{}",
        "Waffen*",
        "?",
        "\\",
        "'",
    ],
)
def test_query_syntax_characters_never_raise(engine, query):
    for mode in ("hybrid", "bm25", "vector"):
        result = engine.search(query, k=3, mode=mode)
        assert isinstance(result, SearchResult) and all(isinstance(h, Hit) for h in result)
    assert len(engine.search(query, k=3, mode="vector")) == 3


def test_syntax_characters_are_plain_words(engine):
    # No field or operator syntax: "title:Waffen" searches the word Waffen.
    assert set(ids(engine.search("title:Waffen", k=2, mode="bm25"))) == set(
        ids(engine.search("Waffen", k=2, mode="bm25"))
    )
    assert ids(engine.search("Waffen AND (liefern", k=3, mode="bm25")) == ids(
        engine.search("Waffen liefern", k=3, mode="bm25")
    )


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_query_is_a_query_error(engine, query):
    with pytest.raises(QueryError, match="empty query"):
        engine.search(query)


def test_only_stopwords_still_returns_vector_hits_in_hybrid_mode(engine):
    q = "Wer ist das und wie?"
    bm25 = engine.search(q, k=3, mode="bm25")
    assert not bm25 and bm25.notices == (
        f"{q!r} has only stopwords (words too common to search for): no keyword matches; "
        "try --mode hybrid",
    )
    hits = engine.search(q, k=3, mode="hybrid")
    assert len(hits) == 3
    assert all(h.bm25 is None and h.vector is not None for h in hits)
    assert hits.notices == (
        f"{q!r} has only stopwords (words too common to search for): ranked by meaning only",
    )
    assert engine.search(q, k=3, mode="vector").notices == ()
    assert engine.search("Hitze in Bayern", k=3).notices == ()
    assert "has no words to search for" in engine.search("?!", k=1).notices[0]


# ------------------------------------------------------------ bad options


@pytest.mark.parametrize("k", [0, -1, -100])
def test_k_below_one_is_a_query_error(engine, k):
    with pytest.raises(QueryError, match="at least 1"):
        engine.search("Waffen", k=k)


@pytest.mark.parametrize("k", [1.5, "3", True])
def test_k_must_be_a_whole_number(engine, k):
    with pytest.raises(QueryError):
        engine.search("Waffen", k=k)


@pytest.mark.parametrize("alpha", [-0.01, 1.01, 2, math.nan, math.inf])
def test_alpha_outside_0_1_is_a_query_error(engine, alpha):
    with pytest.raises(QueryError, match="0 to 1"):
        engine.search("Waffen", alpha=alpha)


def test_alpha_bounds_are_allowed(engine):
    assert engine.search("Waffen", k=1, alpha=0)
    assert engine.search("Waffen", k=1, alpha=1)


def test_unknown_mode_and_fusion_are_query_errors(engine):
    with pytest.raises(QueryError, match="hybrid, bm25, vector"):
        engine.search("Waffen", mode="semantic")
    with pytest.raises(QueryError, match="minmax, rrf"):
        engine.search("Waffen", fusion="borda")


def test_query_error_is_a_seedsearch_error():
    assert issubclass(QueryError, SeedsearchError)


def test_bad_settings_are_rejected():
    with pytest.raises(QueryError):
        SearchSettings(alpha=1.5)
    with pytest.raises(QueryError):
        SearchSettings(depth=0)


# ---------------------------------------------------------------- opening


class OtherEmbedder(FakeEmbedder):
    spec = "other-model"


def test_opening_with_another_embedder_is_a_mismatch(index_dir):
    with pytest.raises(EmbedderMismatchError) as info:
        SearchEngine.open(index_dir, model=OtherEmbedder())
    message = str(info.value)
    assert "fake-hash-64" in message and "other-model" in message


def test_opening_with_another_model_spec_is_a_mismatch(index_dir):
    # A string spec is compared before any model is loaded.
    with pytest.raises(EmbedderMismatchError, match="use-m3"):
        SearchEngine.open(index_dir, model="use-m3")


def test_missing_index(tmp_path):
    with pytest.raises(IndexMissingError) as info:
        SearchEngine.open(tmp_path / "nowhere", model=FakeEmbedder())
    assert "seedsearch index" in str(info.value)  # says how to fix it
    with pytest.raises(IndexMissingError):
        SearchEngine.open(tmp_path, model=FakeEmbedder())  # a folder, but no index in it


def test_index_status_reports_staleness(tmp_path, seeds_dir, fake_embedder):
    index = tmp_path / "ix"
    Indexer(seeds_dir, index, model=fake_embedder).update()
    st = index_status(index, seeds_dir)
    assert (st.documents, st.passages, st.embedder, st.dim) == (3, 16, "fake-hash-64", 64)
    assert not st.stale
    (seeds_dir / "neu.txt").write_text("Ein neuer Artikel.\n", "utf-8")
    (seeds_dir / "wetter.md").unlink()
    st = index_status(index, seeds_dir)
    assert st.stale
    assert (st.stale_added, st.stale_removed, st.stale_changed) == (["neu.txt"], ["wetter.md"], [])


def test_search_leaves_the_callers_faiss_threads_alone(engine):
    """Queries search one vector in one FAISS thread, then restore the caller's setting."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        engine.search("Wer liefert Waffen?", k=3)
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


# ------------------------------------------------- compounds in the query

NORTH_KOREA_ARTICLES = {
    "devisen.md": (
        "# Devisen für das Regime\n\nRund 100.000 Nordkoreaner arbeiten im Ausland, vor allem "
        "auf Baustellen in Russland und China; den größten Teil ihres Lohns behält der Staat. "
        "Sie leben in Lagern und dürfen kaum Kontakt zur Bevölkerung haben. Menschenrechtler "
        "sprechen von Zwangsarbeit, die Regierung bestreitet das. Die Einnahmen sollen das "
        "Atomprogramm mitfinanzieren.\n"
    ),
    "raketen.md": (
        "# Raketentest\n\nNordkorea testet wieder Raketen. Nordkorea droht dem Süden, "
        "Nordkorea provoziert.\n"
    ),
    "gipfel.md": "# Gipfel in Pjöngjang\n\nPutin reist nach Nordkorea; Kim empfängt ihn.\n",
    "hitze.md": "# Hitzewelle\n\nDie Hitze in Süddeutschland hält an.\n",
    "fussball.md": "# Fußball\n\nDer FC Bayern gewinnt in Dortmund.\n",
    "homeoffice.md": "# Homeoffice\n\nImmer mehr Menschen arbeiten von zu Hause.\n",
    "reisen.md": "# Reisen\n\nReisen ins Ausland werden teurer.\n",
    "bahn.md": "# Bahn\n\nDie Bahn erhöht die Preise im Dezember.\n",
}


def test_a_compound_in_the_question_does_not_outweigh_its_other_words(tmp_path):
    """ "Nordkoreaner" is nordkorea + nord + korea; counted three times, a short
    paragraph that only repeats "Nordkorea" outranked the answer."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, text in NORTH_KOREA_ARTICLES.items():
        (seeds / name).write_text(text, encoding="utf-8")
    Indexer(seeds, tmp_path / "index", model=FakeEmbedder()).update()
    with SearchEngine.open(tmp_path / "index", model=FakeEmbedder()) as e:
        ranked = [pid for pid, _ in e.bm25("Wie viele Nordkoreaner arbeiten im Ausland?", 3)]
    assert ranked[:2] == ["devisen.md#1", "raketen.md#1"]
