"""BM25 over Whoosh's postings, scored with numpy and the index's live statistics.

Whoosh stores the keyword index (postings with term frequencies, byte-quantised
field lengths, deletions); this module reads the postings of the query terms in
whole blocks and scores them as arrays. Whoosh's own searcher scores one posting at
a time in Python, which took 92 % of a hybrid query at 24k passages
(benchmarks/results/speed.md); the arrays give the same scores much faster.

Two choices make an updated index score exactly like a fresh build:

* idf and average field length come from :class:`indexer.bm25stats.CollectionStats`
  (live passages only), not from Whoosh's segment totals, which still count deleted
  documents until a merge (and keep the old length totals after one);
* a passage's score is summed over the query terms in one fixed order, and ties are
  broken by passage id, so neither segment layout nor internal document numbers
  change a ranking.

The per-term formula is Whoosh's ``bm25()`` (tf from the postings, field length as
Whoosh stores it) with Robertson-Sparck Jones idf. A query is a list of concepts, one
per word (``indexer.analysis.analyze_query``): a word's stem weighs 1 and its compound
parts share a weight of 1 (:func:`concept_weights`); a word that occurs ``n`` times
counts ``n`` times, and a title match is weighted by ``title_boost``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.bm25stats import CollectionStats, idf

#: Fields searched: the passage text, and the article title (weighted by ``title_boost``).
FIELDS = ("body", "title")


@dataclass(frozen=True)
class BM25Params:
    """``k1``: term-frequency saturation; ``b``: length normalisation (0..1);
    ``title_boost``: weight of a title match relative to a passage match."""

    k1: float = 0.6
    b: float = 0.5
    title_boost: float = 0.5


# ------------------------------------------------------------ pure functions


def concept_weights(concept: Sequence[str]) -> list[tuple[str, float]]:
    """(term, weight) of one query concept, a word: its stem weighs 1 and its compound
    parts share a weight of 1 (``Nordkoreaner`` -> nordkorea 1, nord 0.5, korea 0.5).

    Each term weighing 1 made a two-part compound count three times and outweigh the
    rest of the question. Measured in benchmarks/tune.py (variants ``w-*``): better
    than all terms 1, than all terms sharing 1 and than the best term per concept.
    """
    if len(concept) <= 1:
        return [(t, 1.0) for t in concept]
    parts = 1.0 / (len(concept) - 1)
    return [(concept[0], 1.0), *((t, parts) for t in concept[1:])]


def term_weights(
    concepts: Sequence[Sequence[str]],
    title_boost: float,
    factors: Sequence[float] | None = None,
) -> list[tuple[str, str, float]]:
    """(field, term, weight) clauses of a query, in a fixed order: body before
    title, terms by first occurrence; weights of a term in several concepts add
    (a word repeated n times weighs n). ``factors``: one per concept, multiplying
    its weights (a typo candidate weighs less than a word as typed; search.typos)."""
    weights: dict[str, float] = {}
    for i, concept in enumerate(concepts):
        if isinstance(concept, str):
            raise TypeError(f"a query concept is a tuple of terms, not the string {concept!r}")
        f = 1.0 if factors is None else factors[i]
        for t, w in concept_weights(concept):
            weights[t] = weights.get(t, 0.0) + w * f
    out = [("body", t, w) for t, w in weights.items()]
    if title_boost > 0:
        out += [("title", t, title_boost * w) for t, w in weights.items()]
    return out


def bm25_scores(
    tf: np.ndarray, length: np.ndarray, idf: float, avgfl: float, k1: float, b: float
) -> np.ndarray:
    """Whoosh's ``bm25()`` on arrays (same operations in the same order)."""
    return idf * ((tf * (k1 + 1)) / (tf + k1 * ((1 - b) + b * length / avgfl)))


def top_by_score(
    docs: np.ndarray,
    scores: np.ndarray,
    depth: int,
    keys_of: Callable[[list[int]], Mapping[int, str]],
) -> list[tuple[int, float]]:
    """The ``depth`` best (doc, score), highest first, ties by ``keys_of(docs)[doc]``.

    Every document tied with the last one kept is considered before the cut, so
    the result does not depend on the order of ``docs``. ``keys_of`` maps a batch of
    docs to their tie-break keys (passage ids) and is called once.
    """
    if depth < 1 or not len(docs):
        return []
    if len(docs) > depth:
        kth = np.partition(scores, len(scores) - depth)[len(scores) - depth]
        keep = scores >= kth
        docs, scores = docs[keep], scores[keep]
    pairs = [(int(d), float(s)) for d, s in zip(docs.tolist(), scores.tolist(), strict=True)]
    keys = keys_of([d for d, _ in pairs])
    pairs.sort(key=lambda p: (-p[1], keys[p[0]]))
    return pairs[:depth]


# ------------------------------------------------------------- Whoosh reader


def _length_table() -> np.ndarray:
    from whoosh.util.numeric import byte_to_length

    return np.array([byte_to_length(i) for i in range(256)], dtype=np.float64)


def _column_bytes(column, n: int, width: int) -> bytes | None:
    """The raw bytes of a fixed-width Whoosh column of ``n`` documents (short columns
    are padded with zeros, Whoosh's default), or None if the layout is not the one
    tested (whoosh3 3.54: ``TESTED_WHOOSH``)."""
    try:
        if getattr(column, "_fixedlen", None) != width:
            return None
        count = min(column._count, n)
        data = column._dbfile.get(column._basepos, count * width)
    except (AttributeError, TypeError):
        return None
    return bytes(data) + b"\x00" * (width * (n - count))


def _segment_lengths(seg, field: str, table: np.ndarray) -> tuple[np.ndarray, bool]:
    """A segment's field lengths as Whoosh stores them (one byte each), decoded, and
    whether the fast path (one read of the length column) was taken."""
    n = seg.doc_count_all()
    try:
        from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield

        col = seg._perdoc._cached_reader(_lenfield(field), LENGTHS_COLUMN)
    except (AttributeError, ImportError, TypeError):
        col = False
    if col is None:  # no document has this field
        return table[np.zeros(n, dtype=np.uint8)], True
    raw = _column_bytes(col, n, 1) if col is not False else None
    if raw is not None:
        return table[np.frombuffer(raw, dtype=np.uint8)], True
    slow = [seg.doc_field_length(d, field, 0) or 0 for d in range(n)]
    return np.array(slow, np.float64), False


def _segment_vids(seg) -> tuple[np.ndarray, bool]:
    """Vector ids of a segment's documents (the ``vid`` column), and whether the fast
    path (one read of the column) was taken."""
    n = seg.doc_count_all()
    if n == 0:  # also Whoosh's EmptyReader of an index without segments
        return np.zeros(0, np.int64), True
    column = seg.column_reader("vid", translate=False)
    raw = _column_bytes(column, n, 8)
    if raw is not None:
        return np.frombuffer(raw, dtype=">i8").astype(np.int64), True
    return np.fromiter((int(column[d]) for d in range(n)), dtype=np.int64, count=n), False


def _read_postings(matcher) -> tuple[np.ndarray, np.ndarray, bool]:
    """(docnums, term frequencies) of one segment's postings for one term, and whether
    they were read by the tested paths (whole blocks, or an inlined short list)."""
    from whoosh.matching import ListMatcher
    from whoosh.matching.wrappers import WrappingMatcher

    while isinstance(matcher, WrappingMatcher):  # deletions are masked by the caller
        matcher = matcher.child
    ids: list = []
    weights: list = []
    if hasattr(matcher, "_read_data") and hasattr(matcher, "_next_block"):
        while matcher.is_active():  # whole blocks (Whoosh's W3LeafMatcher)
            if matcher._data is None:
                matcher._read_data()
            n = matcher._blocklength
            raw_ids, raw_weights = matcher._data[0], matcher._data[1]
            # ids are delta-encoded (Whoosh's delta_decode is a running sum)
            d = np.asarray(raw_ids, dtype=np.int64)
            ids.append(d if matcher._byteids else np.cumsum(d))
            if raw_weights is None:
                weights.append(np.ones(n, dtype=np.float64))
            elif isinstance(raw_weights, float):
                weights.append(np.full(n, raw_weights, dtype=np.float64))
            else:
                weights.append(np.asarray(raw_weights, dtype=np.float64))
            matcher._next_block()
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float64), True
        return np.concatenate(ids), np.concatenate(weights), True
    while matcher.is_active():  # inlined or other matchers: one posting at a time
        ids.append(matcher.id())
        weights.append(matcher.weight())
        matcher.next()
    tested = isinstance(matcher, ListMatcher)  # Whoosh inlines very short lists
    return np.asarray(ids, dtype=np.int64), np.asarray(weights, dtype=np.float64), tested


class WhooshBM25:
    """BM25 search over an open Whoosh index (one reader, reused for every query).

    ``stats``: live passage count and field lengths (the manifest's); document
    frequencies are counted from the live postings of each query term, so both are
    exact after any sequence of updates. ``ids_of`` maps vector ids to passage ids
    (the document store): ties are broken by passage id.
    ``fast_path`` says whether every read took the array path (tests require it).
    """

    def __init__(
        self,
        index,
        stats: CollectionStats,
        params: BM25Params,
        ids_of: Callable[[list[int]], Mapping[int, str]],
    ) -> None:
        self.params = params
        self.stats = stats
        self._ids_of = ids_of
        self._reader = index.reader()
        self._lock = threading.Lock()  # Whoosh's postings file is read with seek+read
        table = _length_table()
        self._leaves = []  # (segment reader, first global docnum)
        lengths: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
        live: list[np.ndarray] = []
        vids: list[np.ndarray] = []
        self.fast_path = True
        for seg, offset in self._reader.leaf_readers():
            self._leaves.append((seg, offset))
            mask = np.ones(seg.doc_count_all(), dtype=bool)
            if seg.has_deletions():
                mask[list(seg.deleted_docs_set)] = False
            live.append(mask)
            for f in FIELDS:
                values, fast = _segment_lengths(seg, f, table)
                lengths[f].append(values)
                self.fast_path &= fast
            values, fast = _segment_vids(seg)
            vids.append(values)
            self.fast_path &= fast
        cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
        self._live = cat(live, bool)
        self._lengths = {f: cat(v, np.float64) for f, v in lengths.items()}
        #: vector id of every Whoosh document (global docnum), deleted ones too
        self.vids = cat(vids, np.int64)

    @property
    def doc_count(self) -> int:
        return int(self._live.sum())

    def live_vids(self) -> np.ndarray:
        """Vector ids of the live (not deleted) documents."""
        return self.vids[self._live]

    def close(self) -> None:
        self._reader.close()

    def has_term(self, term: str) -> bool:
        """Whether any passage or title holds ``term`` (deleted passages may count)."""
        with self._lock:
            return any((f, term) in seg for seg, _ in self._leaves for f in FIELDS)

    def __contains__(self, term: object) -> bool:
        """``term in bm25``: the index's terms as a container (search.typos)."""
        return isinstance(term, str) and self.has_term(term)

    def postings(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Global docnums of live passages holding ``term`` in ``field``, with tf."""
        from whoosh.reading import TermNotFound

        ids, tfs = [], []
        with self._lock:
            for seg, offset in self._leaves:
                try:
                    m = seg.postings(field, term)
                except TermNotFound:
                    continue
                d, w, fast = _read_postings(m)
                self.fast_path &= fast
                ids.append(d + offset)
                tfs.append(w)
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        d, w = np.concatenate(ids), np.concatenate(tfs)
        keep = self._live[d]
        return d[keep], w[keep]

    def phrase_vids(self, words: Sequence[str]) -> np.ndarray:
        """Vector ids (ascending) of the live passages whose text holds ``words`` (one
        analysed term per word, e.g. each word's stem) at consecutive positions; one
        word: passages holding it. Stopwords were dropped before positions were given,
        on both sides, so ``Waffen an Moskau`` is the phrase ``waff moskau``."""
        from whoosh.query import Phrase, Term
        from whoosh.searching import Searcher

        if not words:
            return np.zeros(0, np.int64)
        field = "phrase"  # the stems at their positions (indexer.store.keyword.schema)
        q = Term(field, words[0]) if len(words) == 1 else Phrase(field, list(words))
        with self._lock:
            searcher = Searcher(self._reader, closereader=False)
            docnums = np.fromiter(q.docs(searcher), dtype=np.int64)
        if not len(docnums):
            return np.zeros(0, np.int64)
        docnums = docnums[self._live[docnums]]
        return np.unique(self.vids[docnums])

    def search(
        self,
        concepts: Sequence[Sequence[str]],
        depth: int,
        mask: np.ndarray | None = None,
        factors: Sequence[float] | None = None,
    ) -> list[tuple[str, float]]:
        """Top ``depth`` (passage id, score) for an analysed query
        (``indexer.analysis.analyze_query``: one tuple of terms per word).

        ``mask``: a boolean array over Whoosh docnums; only documents where it is True
        are ranked (a filter acts before the cut). Statistics stay the collection's.
        ``factors``: one weight factor per concept (see :func:`term_weights`).
        """
        p = self.params
        if not concepts or depth < 1 or not len(self._live):
            return []
        scores = np.zeros(len(self._live), dtype=np.float64)
        matched = np.zeros(len(self._live), dtype=bool)
        for field, term, weight in term_weights(concepts, p.title_boost, factors):
            docs, tf = self.postings(field, term)
            if not len(docs):
                continue
            avgfl = self.stats.avg_length(field) or 1.0
            term_idf = idf(self.stats.docs, len(docs))
            part = bm25_scores(tf, self._lengths[field][docs], term_idf, avgfl, p.k1, p.b)
            scores[docs] += part * weight
            matched[docs] = True
        if mask is not None:
            matched &= mask
        docs = np.flatnonzero(matched)

        def keys_of(batch: list[int]) -> dict[int, str]:
            by_vid = self._ids_of(self.vids[batch].tolist())
            return {d: by_vid[int(self.vids[d])] for d in batch}

        best = top_by_score(docs, scores[docs], depth, keys_of)
        if not best:
            return []
        keys = keys_of([d for d, _ in best])
        return [(keys[d], s) for d, s in best]
