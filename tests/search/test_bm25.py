"""BM25 over Whoosh postings: the numpy scorer equals Whoosh's own per-posting
scorer, across segments and deletions, and breaks ties by passage id."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh.query import Or, Term
from whoosh.scoring import BM25F, BM25FScorer, bm25

from indexer.analysis import analyze, analyze_query, analyze_words
from indexer.bm25stats import CollectionStats, idf
from indexer.store import keyword
from search.bm25 import BM25Params, WhooshBM25, bm25_scores, term_weights, top_by_score

PASSAGES = {
    "a-1": ("Waffenlieferungen an die Ukraine", "Deutschland liefert Waffen an die Ukraine."),
    "a-2": ("Waffenlieferungen an die Ukraine", "Die Regierung prüft weitere Lieferungen."),
    "b-1": ("Nordkorea", "Nordkorea soll Waffen an Moskau liefern, sagen Geheimdienste."),
    "b-2": ("Nordkorea", "Kim Jong Un trifft Putin in Wladiwostok."),
    "c-1": ("Hitzewelle", "Die Temperaturen steigen auf über 35 Grad in Süddeutschland."),
    "c-2": ("Hitzewelle", "Ärzte raten, viel Wasser zu trinken; die Hitze bleibt groß."),
    "d-1": ("Fußball", "Der FC Bayern gewinnt gegen Dortmund; die Fußballfans feiern."),
    "d-2": ("Fußball", "Waffen? Nein: Fußball verbindet, sagt der Trainer. Waffen nie."),
    "e-1": ("Einmalig", "Ein Quastenflosser wurde vor Madagaskar gefunden."),
}
QUERIES = [
    "Wer liefert Waffen?",
    "Waffen Waffen Ukraine",
    "Hitze in Süddeutschland",
    "Fußballfans Bayern",
    "Quastenflosser",  # one posting: Whoosh inlines it in the term info
    "Nordkorea Putin Waffen Lieferungen",
    "unbekanntes Wort",
]


def fields_of(pid: str, passages: dict = PASSAGES) -> dict[str, list[str]]:
    title, body = passages[pid]
    return {"body": analyze(body), "title": analyze(title)}


class Built:
    """A Whoosh index with one segment per batch (no merging) and some deletions, the
    live totals the Indexer would record for it, and the passage <-> vid mapping."""

    def __init__(
        self, path, batches, deleted, passages: dict = PASSAGES, as_words: bool = False
    ) -> None:
        self.ix = keyword.create(path)
        self.stats = CollectionStats()
        self.vid = {pid: 1000 + i for i, pid in enumerate(sorted(passages))}
        self.pid = {v: p for p, v in self.vid.items()}
        self.live: set[str] = set()
        for batch in batches:
            w = self.ix.writer()
            for pid in batch:
                f = fields_of(pid, passages)
                body, title = " ".join(f["body"]), " ".join(f["title"])
                if as_words:  # what the Indexer writes: a word's terms at one position
                    title_text, body_text = passages[pid]
                    body = " ".join(analyze_words(body_text))
                    title = " ".join(analyze_words(title_text))
                extra = {"phrase": keyword.phrase_words(body.split())} if as_words else {}
                w.add_document(doc=pid, vid=self.vid[pid], body=body, title=title, **extra)
                self.stats.add_lengths([{k: len(v) for k, v in f.items()}])
                self.live.add(pid)
            w.commit(merge=False)
        if deleted:
            w = self.ix.writer()
            for pid in deleted:
                w.delete_by_term("doc", pid)
                f = fields_of(pid, passages)
                self.stats.add_lengths([{k: len(v) for k, v in f.items()}], sign=-1)
                self.live.discard(pid)
            w.commit(merge=False)
        # document frequencies over the live passages, counted independently
        self.df: dict[tuple[str, str], int] = {}
        for pid in self.live:
            for field, terms in fields_of(pid, passages).items():
                for t in set(terms):
                    self.df[(field, t)] = self.df.get((field, t), 0) + 1

    def ids_of(self, vids) -> dict[int, str]:
        return {v: self.pid[v] for v in vids}

    def engine(self, params: BM25Params = BM25Params()) -> WhooshBM25:  # noqa: B008
        return WhooshBM25(self.ix, self.stats, params, self.ids_of)

    def idf(self, field: str, term: str) -> float:
        return idf(self.stats.docs, self.df.get((field, term), 0))


class _RefScorer(BM25FScorer):
    def __init__(self, searcher, fieldname, text, built, B, K1):  # noqa: N803
        text = text.decode() if isinstance(text, bytes) else text  # Whoosh passes bytes
        self.idf = built.idf(fieldname, text)
        self.avgfl = built.stats.avg_length(fieldname) or 1.0
        self.B, self.K1, self.qf = B, K1, 1
        self.setup(searcher, fieldname, text)


class ReferenceBM25F(BM25F):
    """Whoosh's own per-posting BM25F with the live statistics: the reference."""

    def __init__(self, built: Built, B: float, K1: float) -> None:  # noqa: N803
        super().__init__(B=B, K1=K1)
        self.built = built

    def scorer(self, searcher, fieldname, text, qf=1):
        return _RefScorer(searcher, fieldname, text, self.built, self.B, self.K1)


def reference(built: Built, query: str, params: BM25Params) -> dict[str, float]:
    clauses = [
        Term(f, t, boost=w) for f, t, w in term_weights(analyze_query(query), params.title_boost)
    ]
    if not clauses:
        return {}
    with built.ix.searcher(weighting=ReferenceBM25F(built, B=params.b, K1=params.k1)) as s:
        vids = s.reader().column_reader("vid")
        return {built.pid[vids[h.docnum]]: h.score for h in s.search(Or(clauses), limit=None)}


LAYOUTS = {
    "one segment": ([list(PASSAGES)], []),
    "three segments": ([["a-1", "b-1", "c-1"], ["a-2", "b-2", "c-2"], ["d-1", "d-2", "e-1"]], []),
    "segments and deletions": (
        [["a-1", "b-1", "c-1", "d-2"], ["a-2", "b-2", "c-2"], ["d-1", "e-1"]],
        ["a-1", "c-2"],
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("params", [BM25Params(), BM25Params(k1=1.5, b=0.75, title_boost=0.0)])
def test_scores_equal_whoosh_reference(tmp_path, layout, params):
    batches, deleted = LAYOUTS[layout]
    built = Built(tmp_path / "w", batches, deleted)
    with built.ix.reader() as r:  # the layout really is what the test name says
        assert len(r.leaf_readers()) == len(batches) and r.has_deletions() == bool(deleted)
    engine = built.engine(params)
    assert engine.doc_count == len(PASSAGES) - len(deleted)
    for q in QUERIES:
        ref = reference(built, q, params)
        got = engine.search(analyze_query(q), depth=100)
        assert {pid for pid, _ in got} == set(ref), q
        for pid, score in got:
            assert score == pytest.approx(ref[pid], rel=1e-12), (q, pid)
        assert got == sorted(got, key=lambda r: (-r[1], r[0]))
    assert engine.fast_path  # every read took the array path (see TESTED_WHOOSH)
    engine.close()


def test_slow_path_is_reported(tmp_path, monkeypatch):
    """If a Whoosh upgrade changes the column layout, the fallback still scores
    right, but ``fast_path`` says so (and the test above fails)."""
    import search.bm25 as module

    built = Built(tmp_path / "w", [list(PASSAGES)], ["a-1"])
    fast = built.engine()
    fast_hits = fast.search(analyze_query("Waffen Ukraine"), 10)
    monkeypatch.setattr(module, "_column_bytes", lambda *a: None)
    slow = built.engine()
    assert slow.search(analyze_query("Waffen Ukraine"), 10) == fast_hits
    assert fast.fast_path and not slow.fast_path
    fast.close()
    slow.close()


def test_deleted_passages_are_never_returned(tmp_path):
    engine = Built(tmp_path / "w", [list(PASSAGES)], ["e-1", "a-1"]).engine()
    assert engine.search(analyze_query("Quastenflosser Madagaskar"), 10) == []
    ids = [pid for pid, _ in engine.search(analyze_query("Waffen liefert Ukraine"), 10)]
    assert sorted(ids) == ["a-2", "b-1", "d-2"]  # a-1 matched all three words
    engine.close()


def test_layout_does_not_change_scores_or_ranking(tmp_path):
    """One segment vs three segments of the same live passages: identical output."""
    live = [p for p in PASSAGES if p not in ("a-1", "c-2")]
    e1 = Built(tmp_path / "one", [live], []).engine()
    e3 = Built(tmp_path / "three", *LAYOUTS["segments and deletions"]).engine()
    for q in QUERIES:
        assert e1.search(analyze_query(q), 5) == e3.search(analyze_query(q), 5), q
    e1.close()
    e3.close()


def test_repeated_query_terms_weigh_more():
    assert term_weights([("waff",), ("ukrain",), ("waff",)], 0.5) == [
        ("body", "waff", 2.0),
        ("body", "ukrain", 1.0),
        ("title", "waff", 1.0),
        ("title", "ukrain", 0.5),
    ]
    assert term_weights([("waff",)], 0.0) == [("body", "waff", 1.0)]


def test_a_compound_and_its_parts_weigh_as_one_word_plus_one_shared_part_weight():
    # Nordkoreaner -> (nordkorea, nord, korea): stem 1, the parts share 1.
    assert term_weights(analyze_query("Nordkoreaner arbeiten"), 0.0) == [
        ("body", "nordkorea", 1.0),
        ("body", "nord", 0.5),
        ("body", "korea", 0.5),
        ("body", "arbei", 1.0),
    ]
    # Three parts share the same 1; a term in two concepts adds up.
    three = term_weights([("a", "b", "c", "d"), ("b",)], 0.5)
    assert three == [
        *[("body", t, w) for t, w in (("a", 1.0), ("b", 1 / 3 + 1.0), ("c", 1 / 3), ("d", 1 / 3))],
        *[
            ("title", t, w / 2)
            for t, w in (("a", 1.0), ("b", 1 / 3 + 1.0), ("c", 1 / 3), ("d", 1 / 3))
        ],
    ]


def test_a_query_must_be_concepts_not_bare_terms():
    with pytest.raises(TypeError, match="tuple of terms"):
        term_weights(["waff"], 0.5)


def test_bm25_scores_equal_whoosh_formula():
    tf = np.array([1.0, 2.0, 5.0, 1.0])
    length = np.array([3.0, 10.0, 52.0, 1.0])
    got = bm25_scores(tf, length, 1.7, 12.5, 0.9, 0.5)
    want = [bm25(1.7, t, fl, 12.5, 0.5, 0.9) for t, fl in zip(tf, length, strict=True)]
    assert got.tolist() == want  # same operations in the same order: bit-identical


def test_top_by_score_breaks_ties_at_the_cut_by_key():
    docs = np.array([7, 3, 9, 1, 5])
    scores = np.array([1.0, 2.0, 1.0, 1.0, 0.5])
    names = {7: "c", 3: "x", 9: "a", 1: "b", 5: "d"}

    def key(batch):
        return {d: names[d] for d in batch}

    assert top_by_score(docs, scores, 2, key) == [(3, 2.0), (9, 1.0)]
    assert top_by_score(docs, scores, 4, key) == [(3, 2.0), (9, 1.0), (1, 1.0), (7, 1.0)]
    assert top_by_score(docs[:0], scores[:0], 3, key) == []
    assert top_by_score(docs, scores, 0, key) == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=0, max_size=40),
    st.integers(1, 45),
    st.randoms(use_true_random=False),
)
def test_top_by_score_equals_a_full_sort_in_any_input_order(levels, depth, rnd):
    docs = list(range(len(levels)))
    rnd.shuffle(docs)
    scores = np.array([float(levels[d]) for d in docs])
    calls = []

    def keys(batch):
        calls.append(len(batch))
        return {d: f"p{d:03d}" for d in batch}

    want = sorted(((d, float(levels[d])) for d in docs), key=lambda p: (-p[1], f"p{p[0]:03d}"))
    assert top_by_score(np.array(docs, dtype=np.int64), scores, depth, keys) == want[:depth]
    assert len(calls) <= 1  # the keys are looked up in one batch


def test_long_posting_lists_across_blocks_equal_reference(tmp_path):
    """Terms in hundreds of passages span many postings blocks (Whoosh writes 128
    postings per block) and two segments with deletions."""
    words = ["Waffen", "Lieferung", "Regierung", "Hitze", "Straße", "Fußball", "Gespräch"]
    extra = {}
    for i in range(700):
        picked = [words[j] for j in range(len(words)) if (i * (j + 3)) % (j + 2) == 0]
        body = " ".join(picked * (1 + i % 3)) + f" Meldung{i % 37}"
        extra[f"x-{i:04d}"] = (f"Thema {words[i % len(words)]}", body)
    ids = sorted(extra)
    built = Built(tmp_path / "w", [ids[:400], ids[400:]], ids[::9], extra)
    engine = built.engine()
    assert len(engine.postings("body", analyze("Waffen")[0])[0]) > 300
    for q in ("Waffen Lieferung", "Hitze auf der Straße", "Fußball Gespräch Meldung5"):
        ref = reference(built, q, BM25Params())
        got = engine.search(analyze_query(q), depth=1000)
        assert {pid for pid, _ in got} == set(ref), q
        assert all(s == pytest.approx(ref[pid], rel=1e-12) for pid, s in got), q
        assert not set(ids[::9]) & {pid for pid, _ in got}
    engine.close()


def test_word_positions_leave_every_score_unchanged(tmp_path):
    """The Indexer stores a compound's terms at one position (for phrases); term
    frequencies and field lengths stay those of the flat term list, so every unquoted
    query ranks and scores exactly as before positions."""
    batches, deleted = [["a-1", "b-1", "c-1", "d-1"], ["a-2", "b-2", "c-2", "d-2", "e-1"]], ["c-2"]
    flat = Built(tmp_path / "flat", batches, deleted)
    words = Built(tmp_path / "words", batches, deleted, as_words=True)
    for q in QUERIES:
        concepts = analyze_query(q)
        assert words.engine().search(concepts, 10) == flat.engine().search(concepts, 10), q
    assert words.engine().search(analyze_query("Waffen"), 10)  # not vacuous


def test_phrase_vids_follow_word_positions(tmp_path):
    words = Built(tmp_path / "w", [sorted(PASSAGES)], ["a-2"], as_words=True)
    bm = words.engine()
    found = lambda *w: {words.pid[int(v)] for v in bm.phrase_vids(list(w))}  # noqa: E731
    assert found("waff", "moskau") == {"b-1"}  # "Waffen an Moskau": 'an' is a stopword
    assert found("moskau", "waff") == set()
    assert found("waffenlieferung", "ukrain") == set()  # only in titles, not bodies
    assert found("lieferung", "ukrain") == set()  # a compound's part is no phrase word
    assert found("lieferung") == set()  # a-2 is deleted
