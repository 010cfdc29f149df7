"""The ``SearchEngine``: opens a published index generation and answers queries."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import math
import threading
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.analysis import analyze, analyze_query
from indexer.bm25stats import CollectionStats
from indexer.embedder import Embedder, load_embedder
from indexer.errors import EmbedderMismatchError, IndexCorruptError, NotFoundError, QueryError
from indexer.settings import conflict_message
from indexer.store import (
    DOCS,
    FIX,
    VECTORS,
    WHOOSH,
    generations,
    keyword,
    manifest,
    stamps,
    vectors,
)
from indexer.store.docstore import ARTICLE_META, DocStore
from indexer.store.files import disk_size
from indexer.store.words import WORDS, read_vocabulary
from search.archive import (
    ArticlePassage,
    ArticleView,
    Candidate,
    Filters,
    Group,
    SortOrder,
    collapse,
    highlight_spans,
    parse_query,
    resolve_values,
    sort_groups,
)
from search.bm25 import BM25Params, WhooshBM25
from search.fusion import FusionMethod, SearchMode, fuse
from search.typos import Correction, TypoQuery, TypoSettings, plan_query

#: Longer queries are cut (with a warning): a question is short, and a pasted
#: document would make the keyword query slow.
MAX_QUERY_CHARS = 2000
#: No query returns more hits than this.
MAX_K = 1000
#: How deep a page may start (``offset``): like Elasticsearch's
#: ``index.max_result_window``, deep pages cost a candidate list that long.
MAX_OFFSET = 10_000
#: A vector search limited by a filter or phrase scores the allowed vectors exactly
#: (decoded from the index) when there are at most this many, or when an HNSW graph
#: would have to skip most of its nodes (allowed share below EXACT_FILTER_SHARE):
#: a graph search that skips most nodes finds too few of them. Above, FAISS searches
#: with an ID selector (exact for a flat index).
EXACT_FILTER_LIMIT = 50_000
EXACT_FILTER_SHARE = 0.2
#: Filter and phrase results kept per engine (the passages they allow).
ALLOWED_CACHE = 64
#: OpenMP threads for searching one query vector. FAISS's thread pool and the
#: embedder's BLAS threads spin for work after each call; on 2 cores they fought,
#: and one thread made a flat search at 24k passages 2.7 ms instead of 6-10 ms
#: (hybrid p50 11 ms instead of 22 ms; benchmarks/speed.py). One query vector is
#: too little work to split anyway. Indexing keeps all threads.
QUERY_FAISS_THREADS = 1


def not_in(values: np.ndarray, sorted_pool: np.ndarray) -> np.ndarray:
    """The ``values`` missing from the ascending ``sorted_pool``. A binary search per
    value: np.setdiff1d sorts both sides and took 1-2 s at 240k ids (numpy 2.4)."""
    if not len(sorted_pool):
        return np.asarray(values)
    at = np.minimum(np.searchsorted(sorted_pool, values), len(sorted_pool) - 1)
    return values[sorted_pool[at] != values]


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads that embed hybrid queries beside their BM25 search (made on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="seedsearch-embed"
            )
        return _POOL


class QueryTruncatedWarning(UserWarning):
    """The query was longer than MAX_QUERY_CHARS and was cut."""


@dataclass(frozen=True)
class SearchSettings:
    """How queries are answered; the defaults are the measured best for e5-small on
    xquad-de and GermanQuAD (benchmarks/tune.py --study, benchmarks/results/tune.md).

    ``depth``: candidates taken from each retriever before fusion.
    ``alpha``: the BM25 share of the fused score (0 = vectors only, 1 = BM25 only).
    ``bm25_k1``/``bm25_b``: BM25 term-frequency saturation and length normalisation.
    ``title_boost``: weight of a match in the article title relative to the passage.
    ``typo_tolerance``: how mistyped words are corrected (:class:`search.typos.TypoSettings`:
    on by default; ``enabled``, ``min_length_one``/``min_length_two`` for 1/2 edits).
    """

    depth: int = 100
    fusion: FusionMethod = FusionMethod.MINMAX
    alpha: float = 0.4
    bm25_k1: float = 0.6
    bm25_b: float = 0.5
    title_boost: float = 0.5
    typo_tolerance: TypoSettings = TypoSettings()

    def __post_init__(self) -> None:
        if not isinstance(self.typo_tolerance, TypoSettings):
            raise QueryError(
                f"typo_tolerance={self.typo_tolerance!r} is invalid: use search.typos."
                "TypoSettings(...), e.g. TypoSettings(enabled=False)"
            )
        object.__setattr__(self, "fusion", FusionMethod.from_str(self.fusion))
        check_alpha(self.alpha)
        if not isinstance(self.depth, int) or self.depth < 1:
            raise QueryError(f"depth={self.depth!r} is invalid: use a whole number >= 1")
        if self.bm25_k1 < 0 or not 0 <= self.bm25_b <= 1:
            raise QueryError(
                f"bm25_k1={self.bm25_k1}, bm25_b={self.bm25_b}: use k1 >= 0 and 0 <= b <= 1"
            )
        if self.title_boost < 0:
            raise QueryError(f"title_boost={self.title_boost} is negative: use 0 or more")


#: The BM25 share that suits a model better than ``SearchSettings.alpha`` (tuned for
#: e5-small). USE multilingual v3 ranks by meaning less well, so BM25 weighs more:
#: with alpha 0.4 its GermanQuAD hybrid MRR@10 fell to 0.917, below its BM25 mode
#: (0.928); 0.6 gives 0.945 (benchmarks/results/tune.md).
MODEL_ALPHA: dict[str, float] = {"use-m3": 0.6}


def default_settings(model_spec: str | None, **overrides) -> SearchSettings:
    """The search settings for an index built with ``model_spec``: the measured defaults,
    the model's own alpha (:data:`MODEL_ALPHA`), then ``overrides`` that are not None."""
    values = {"alpha": MODEL_ALPHA.get(model_spec or "", SearchSettings.alpha)}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SearchSettings(**values)


def check_alpha(alpha: float) -> float:
    if not isinstance(alpha, int | float) or math.isnan(alpha) or not 0.0 <= alpha <= 1.0:
        raise QueryError(f"alpha={alpha!r} is out of range: use a number from 0 to 1")
    return float(alpha)


@dataclass(frozen=True)
class Hit:
    """One ranked passage, with the evidence for its rank.

    ``bm25``/``bm25_rank`` and ``vector``/``vector_rank`` are None when that
    retriever did not return the passage among its candidates.
    """

    rank: int
    id: str
    doc: str
    paragraph: int
    part: int
    title: str
    text: str
    score: float
    bm25: float | None
    bm25_rank: int | None
    vector: float | None
    vector_rank: int | None
    date: str | None = None
    source: str | None = None
    url: str | None = None
    author: str | None = None
    agency: str | None = None
    folder: str | None = None
    #: ids of exact copies of this passage (same normalised text) in other places,
    #: folded into this hit (empty when collapsing is off)
    duplicates: tuple[str, ...] = ()
    #: the analysed query terms, for :attr:`highlights` (computed when first asked:
    #: scanning every word of a hit costs more than the rest of a BM25 query)
    query_terms: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @functools.cached_property
    def highlights(self) -> tuple[tuple[int, int], ...]:
        """Character spans ``(start, end)`` in ``text`` of the words matching the query
        (the same German analysis as the search)."""
        return highlight_spans(self.text, self.query_terms)

    def to_dict(self) -> dict:
        return {
            "rank": self.rank,
            "id": self.id,
            "doc": self.doc,
            "paragraph": self.paragraph,
            "part": self.part,
            "title": self.title,
            "text": self.text,
            "score": self.score,
            "bm25": self.bm25,
            "bm25_rank": self.bm25_rank,
            "vector": self.vector,
            "vector_rank": self.vector_rank,
            "date": self.date,
            "source": self.source,
            "url": self.url,
            "author": self.author,
            "agency": self.agency,
            "folder": self.folder,
            "duplicates": list(self.duplicates),
            "highlights": [list(span) for span in self.highlights],
        }


def clean_query(query: str) -> str:
    """NFC, control characters removed, cut to MAX_QUERY_CHARS; QueryError if empty."""
    if not isinstance(query, str):
        raise QueryError(f"query must be text, got {type(query).__name__}")
    text = unicodedata.normalize("NFC", query)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text).strip()
    if not text:
        raise QueryError("empty query: type a question or some words, e.g. 'Wer liefert Waffen?'")
    if len(text) > MAX_QUERY_CHARS:
        warnings.warn(
            f"query of {len(text)} characters cut to the first {MAX_QUERY_CHARS}",
            QueryTruncatedWarning,
            stacklevel=3,
        )
        text = text[:MAX_QUERY_CHARS]
    return text


@contextlib.contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """FAISS's OpenMP thread count for the calling thread, restored afterwards."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@dataclass(frozen=True)
class SearchResult:
    """The hits of one query, best first, with notices about how it was answered.

    Iterates, indexes and has a length like the list of its hits, so
    ``for hit in engine.search(q)`` and ``engine.search(q)[0]`` work as before.
    ``notices``: one-line remarks for the user (e.g. that a query of stopwords only
    was ranked by meaning alone); empty when there is nothing to say. ``total``: how
    many hits the query has among the candidates the engine looked at (after filters,
    phrases and grouping), so ``offset + len(hits) < total`` means there is a next
    page. ``offset``: where this page starts in that list.
    """

    hits: tuple[Hit, ...]
    notices: tuple[str, ...] = ()
    total: int = 0
    offset: int = 0
    query: str = ""
    #: words of the query that were searched as corrected (search.typos)
    corrections: tuple[Correction, ...] = ()

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "total": self.total,
            "offset": self.offset,
            "hits": [h.to_dict() for h in self.hits],
            "corrections": [c.to_dict() for c in self.corrections],
            "notices": list(self.notices),
        }

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, i):
        return self.hits[i]

    def __bool__(self) -> bool:
        return bool(self.hits)


class SearchEngine:
    """Hybrid BM25 + vector search over one index generation.

    Open with :meth:`open`. Thread-safe for concurrent ``search`` calls.
    """

    def __init__(
        self,
        index_dir: Path,
        gen_dir: Path,
        index_manifest: manifest.Manifest,
        docs: DocStore,
        whoosh_index,
        vector_index,
        embedder: Embedder | str | None,
        settings: SearchSettings,
    ) -> None:
        self.index_dir = index_dir
        self.generation_dir = gen_dir
        self.manifest = index_manifest
        self.settings = settings
        self.docs = docs
        self._ix = whoosh_index
        self._vectors = vector_index
        self._embedder_arg = embedder
        self._embedder: Embedder | None = embedder if not isinstance(embedder, str | None) else None
        self._bm25 = WhooshBM25(
            whoosh_index,
            CollectionStats.from_json(index_manifest.bm25),
            BM25Params(k1=settings.bm25_k1, b=settings.bm25_b, title_boost=settings.title_boost),
            docs.ids,
        )
        # the keyword index's live passages: read anyway for BM25, so cheap here
        live = np.sort(self._bm25.live_vids())
        ids = vectors.vector_ids(vector_index)
        self._count = len(live)
        self._allowed_cache: dict[tuple, np.ndarray] = {}
        self._allowed_lock = threading.Lock()
        # ids of removed passages still in an HNSW graph: every search skips them
        dead = not_in(ids, live)
        self._vector_params = vectors.search_params(vector_index, dead)
        self._check_consistency(live, ids, dead)
        self._vocab = read_vocabulary(gen_dir / WORDS)  # None: built without one

    def _check_consistency(
        self, live: np.ndarray, ids: np.ndarray, dead: np.ndarray, full: bool = False
    ) -> None:
        """The three stores agree: as many passages in the document store, the vector
        index and the keyword index as the manifest says, every keyword passage has a
        vector, and the document store's vector ids have the sum, minimum and maximum
        of the keyword index's. ``full`` (``seedsearch check``) compares the document
        store's ids one by one (reading every row took 0.8 s at 240k passages, so not
        at every open)."""
        stored, total, low, high = self.docs.vid_summary()
        manifest.check_counts(
            self.index_dir,
            self.manifest,
            stored=stored,
            vectors_live=len(ids) - len(dead),
            keyword_docs=len(live),
            dead=len(dead),
        )
        ends = (int(live[0]), int(live[-1])) if len(live) else (-1, -1)
        mismatch = (total, low, high) != (int(live.sum()), *ends)
        mismatch = mismatch or len(not_in(live, np.sort(ids))) > 0
        if full and not mismatch:
            mismatch = not np.array_equal(self.docs.vids(), live)
        if mismatch:
            raise IndexCorruptError(
                f"index at {self.index_dir} is inconsistent: the keyword index, the vectors "
                f"and the stored passages name different passages; {FIX}"
            )
        if self._vectors.d != self.manifest.dim:
            raise IndexCorruptError(
                f"vector dimension {self._vectors.d} != manifest {self.manifest.dim}; {FIX}"
            )

    def check_all(self) -> None:
        """The consistency checks of open plus the row-by-row comparison of the
        document store with the keyword index (IndexCorruptError if they differ)."""
        live = np.sort(self._bm25.live_vids())
        ids = vectors.vector_ids(self._vectors)
        self._check_consistency(live, ids, not_in(ids, live), full=True)

    # ----------------------------------------------------------------- open

    @classmethod
    def open(
        cls,
        index_dir: str | Path = "index_data",
        model: str | Embedder | None = None,
        settings: SearchSettings | None = None,
    ) -> SearchEngine:
        """Open the published index in ``index_dir`` after checking its manifest, the
        sizes of its files and the checksums of files not as published (see
        :mod:`indexer.store.stamps`; :func:`search.check.check_index` hashes all).

        ``model``: the embedder to use for queries; default: the one the index was
        built with. Another one is an error (vectors would not be comparable).
        """
        index_dir = Path(index_dir)
        gen = generations.current_generation(index_dir)
        built = manifest.read_checked(gen, index_dir)
        spec = model if isinstance(model, str) else getattr(model, "spec", None)
        if spec is not None and spec != built.embedder:
            raise EmbedderMismatchError(
                conflict_message(index_dir, {"model": (built.embedder, spec)}, searching=True)
            )
        for name in (DOCS, VECTORS):  # FAISS may crash on a damaged file
            if name not in built.checksums:
                raise IndexCorruptError(f"{gen / name} has no checksum; {FIX}")
        # Whoosh and SQLite may read a damaged file without noticing, FAISS may crash:
        # sizes always, hashes of files not as published (seedsearch check: all).
        stamps.verify_quick(gen, built.checksums)
        docs = DocStore(gen / DOCS)
        try:
            vector_index = vectors.read_vectors(gen / VECTORS)
            ix = keyword.open_index(gen / WHOOSH)
            try:
                return cls(
                    index_dir,
                    gen,
                    built,
                    docs,
                    ix,
                    vector_index,
                    model,
                    settings or default_settings(built.embedder),
                )
            except IndexCorruptError:
                ix.close()
                raise
            except Exception as exc:  # Whoosh raises many types for damaged files
                ix.close()
                raise IndexCorruptError(
                    f"keyword index in {gen} is damaged ({exc}); {FIX}"
                ) from exc
        except BaseException:
            docs.close()
            raise

    def refresh(self) -> SearchEngine:
        """The engine for the currently published generation (self if unchanged)."""
        if generations.current_generation(self.index_dir) == self.generation_dir:
            return self
        return SearchEngine.open(
            self.index_dir, self._embedder or self._embedder_arg, self.settings
        )

    def close(self) -> None:
        self._bm25.close()
        self._ix.close()
        self.docs.close()

    def __enter__(self) -> SearchEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self._embedder_arg or self.manifest.embedder)
        if self._embedder.dim != self.manifest.dim:  # also for an embedder passed in
            raise EmbedderMismatchError(
                f"embedder {self._embedder.spec!r} gives {self._embedder.dim}-dim vectors, "
                f"the index has {self.manifest.dim}; {FIX}"
            )
        model_id = str(getattr(self._embedder, "model_id", "") or "")
        if model_id and self.manifest.embedder_id and model_id != self.manifest.embedder_id:
            raise EmbedderMismatchError(
                f"index at {self.index_dir} was embedded with {self.manifest.embedder} "
                f"{self.manifest.embedder_id}, this seedsearch's {self._embedder.spec} is "
                f"{model_id} (vectors would not be comparable); {FIX}"
            )
        return self._embedder

    def __len__(self) -> int:
        return self._count

    @property
    def bm25_fast_path(self) -> bool:
        """Whether every BM25 read took the array path over Whoosh's files."""
        return self._bm25.fast_path

    # --------------------------------------------------------------- search

    def bm25(self, query: str, depth: int) -> list[tuple[str, float]]:
        """Top ``depth`` (passage id, BM25 score) for an already cleaned query;
        ties are ordered by passage id (see search.bm25)."""
        return self._bm25.search(analyze_query(query), depth)

    def vector(
        self,
        query: str,
        depth: int,
        allowed: np.ndarray | None = None,
        *,
        embedding: np.ndarray | None = None,
    ) -> list[tuple[str, float]]:
        """Top ``depth`` (passage id, cosine) for an already cleaned query; ``allowed``:
        the only vector ids that may be returned (a filter), None for all;
        ``embedding``: the query's vector if it was computed already."""
        if self._count == 0 or depth < 1 or (allowed is not None and not len(allowed)):
            return []
        if embedding is None:
            embedding = self.embedder.embed_query(query)
        q = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        if allowed is not None and self._exact_for(len(allowed)):
            found = self._exact_vector(q[0], depth, allowed)
        else:
            params = self._vector_params
            if allowed is not None:
                params = vectors.allow_params(self._vectors, allowed)
            limit = self._count if allowed is None else len(allowed)
            with faiss_threads(QUERY_FAISS_THREADS):
                scores, vids = self._vectors.search(q, min(depth, limit), params=params)
            found = [
                (int(vid), float(s))
                for s, vid in zip(scores[0].tolist(), vids[0].tolist(), strict=True)
                if vid != -1  # FAISS pads missing results with -1
            ]
        ids = self.docs.ids(v for v, _ in found)
        out = [(ids[v], s) for v, s in found if v in ids]
        return sorted(out, key=lambda r: (-r[1], r[0]))  # ties by id, as for BM25

    def _exact_for(self, allowed: int) -> bool:
        if allowed <= EXACT_FILTER_LIMIT and (
            vectors.is_hnsw(self._vectors) and allowed < EXACT_FILTER_SHARE * self._count
        ):
            return True
        return allowed <= min(EXACT_FILTER_LIMIT, 4096)

    def _exact_vector(self, q: np.ndarray, depth: int, allowed: np.ndarray):
        """Inner products with the allowed vectors, as the index stores them."""
        rows = vectors.reconstruct(self._vectors, allowed.tolist())
        scores = rows @ q
        if len(scores) > depth:
            top = np.argpartition(-scores, depth - 1)[:depth]
        else:
            top = np.arange(len(scores))
        return [(int(allowed[i]), float(scores[i])) for i in top]

    def _allowed(self, filters: Filters | None, phrases: tuple[str, ...]) -> np.ndarray | None:
        """The vector ids a filter and the phrases leave (ascending), None for all.
        Cached: the same filter is asked for page after page."""
        if (filters is None or not filters.active) and not phrases:
            return None
        key = (filters if filters is not None and filters.active else None, phrases)
        with self._allowed_lock:
            hit = self._allowed_cache.get(key)
        if hit is not None:
            return hit
        allowed = None
        if key[0] is not None:
            values = resolve_values(filters, self.docs.distinct)
            allowed = self.docs.filtered_vids(filters.since, filters.until, values)
        for phrase in phrases:
            words = [concept[0] for concept in analyze_query(phrase)]
            if not words:  # only stopwords in quotes: nothing to require
                continue
            found = self._bm25.phrase_vids(words)
            allowed = found if allowed is None else np.intersect1d(allowed, found)
        if allowed is None:  # phrases of stopwords only
            return None
        with self._allowed_lock:
            if len(self._allowed_cache) >= ALLOWED_CACHE:
                self._allowed_cache.pop(next(iter(self._allowed_cache)))
            self._allowed_cache[key] = allowed
        return allowed

    def _nothing_allowed(self, filters: Filters | None, phrases: tuple[str, ...]) -> str:
        """Why a filter or phrase left no passage: a value the archive does not know
        (with the values it knows), or filters and phrases that exclude each other."""
        if filters is not None and filters.active:
            values = resolve_values(filters, self.docs.distinct)
            for column, name in (
                ("source", "sources"),
                ("agency", "agencies"),
                ("folder", "folders"),
            ):
                if column in values and not values[column]:
                    known = self.facet_values(column)
                    shown = ", ".join(known[:8]) + (" …" if len(known) > 8 else "")
                    asked = ", ".join(getattr(filters, name))
                    return f"no article has {column} {asked!r} (known: {shown or 'none'})"
            if not len(self._allowed(filters, ())):
                return "no article matches these filters together"
        shown = " ".join(f'"{p}"' for p in phrases)
        return f"no passage contains {shown} with these words in this order"

    def search(
        self,
        query: str,
        k: int = 5,
        mode: str | SearchMode = SearchMode.HYBRID,
        alpha: float | None = None,
        fusion: str | FusionMethod | None = None,
        *,
        offset: int = 0,
        filters: Filters | None = None,
        sort: str | SortOrder = SortOrder.RELEVANCE,
        collapse: bool = True,
        per_article: int | None = None,
        typos: bool = True,
    ) -> SearchResult:
        """The ``k`` best passages for ``query``, starting at ``offset``.

        ``mode``: hybrid (default), bm25 or vector. ``alpha`` and ``fusion`` override
        the settings for this query. Words in double quotes must occur in that order
        (after the same analysis). ``filters`` limit both retrievers before their
        candidates are cut. ``sort``: relevance or date (newest first). ``collapse``:
        fold exact duplicates into one hit that lists them. ``per_article``: at most
        that many hits from one article. ``typos``: False searches the words exactly as
        typed (also off when the settings' ``typo_tolerance`` is; search.typos).

        Paging: both retrievers take a fixed number of candidates (``settings.depth``,
        or the next multiple of it that reaches ``offset + k``), so consecutive pages
        of one query are cut from one ranking: no repeats, no gaps.
        """
        if not isinstance(typos, bool):
            raise QueryError(f"typos={typos!r} is invalid: use True or False")
        if isinstance(k, bool) or not isinstance(k, int):
            raise QueryError(f"k must be a whole number, got {k!r}")
        if k < 1:
            raise QueryError(f"k={k} is invalid: ask for at least 1 result")
        k = min(k, MAX_K)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise QueryError(f"offset={offset!r} is invalid: use a whole number >= 0")
        if offset > MAX_OFFSET:
            raise QueryError(f"offset={offset} is too deep: pages start at most at {MAX_OFFSET}")
        if filters is not None and not isinstance(filters, Filters):
            raise QueryError(
                f"filters must be a Filters(...), got {type(filters).__name__}: "
                "from search import Filters"
            )
        mode = SearchMode.from_str(mode)
        order = SortOrder.from_str(sort)
        alpha = self.settings.alpha if alpha is None else check_alpha(alpha)
        method = self.settings.fusion if fusion is None else FusionMethod.from_str(fusion)
        text = clean_query(query)
        parsed = parse_query(text)
        notices = _query_notices(parsed.text, mode)
        # typo tolerance (search.typos): weighted candidates for BM25, the confident
        # corrections for the vector side, and the corrections to report
        plan = self.typo_plan(text, typos)
        corrections = plan.confident if mode is SearchMode.VECTOR else plan.corrections
        allowed = self._allowed(filters, parsed.phrases)
        if allowed is not None and not len(allowed):
            notices += (self._nothing_allowed(filters, parsed.phrases),)
        need = offset + k
        step = self.settings.depth
        depth = step * math.ceil(need / step)
        while True:
            bm25, vec, ranked = self._ranked(plan, mode, alpha, method, depth, allowed)
            groups = self._groups(ranked, collapse, per_article, order)
            more = len(bm25) >= depth or len(vec) >= depth  # a retriever was cut
            if len(groups) >= need or not more or depth >= MAX_OFFSET + MAX_K:
                break
            depth *= 2  # grouping left too few: look deeper
        page = groups[offset : offset + k]
        terms = frozenset(t for concept in plan.concepts for t in concept)  # corrected too
        hits = self._hits(page, bm25, vec, terms, offset, allowed)
        return SearchResult(hits, notices, len(groups), offset, text, corrections)

    def _ranked(self, plan: TypoQuery, mode, alpha, method, depth, allowed):
        mask = None
        if allowed is not None and mode is not SearchMode.VECTOR:
            mask = np.isin(self._bm25.vids, allowed)
        vector_text = parse_query(plan.vector_text).text  # the (corrected) question, no quotes
        embedding = None
        if mode is SearchMode.HYBRID and plan.concepts and self._count:
            # The query is embedded while BM25 runs: ONNX Runtime and most of BM25's numpy
            # work release the GIL, so on 2 cores a hybrid query costs about the longer of
            # the two instead of their sum (benchmarks/scale.py).
            embedding = _pool().submit(self.embedder.embed_query, vector_text)
        if mode is SearchMode.VECTOR:
            bm25 = []
        else:
            bm25 = self._bm25.search(plan.concepts, depth, mask, plan.factors)
        if mode is SearchMode.BM25:
            vec = []
        else:
            given = None if embedding is None else embedding.result()
            vec = self.vector(vector_text, depth, allowed, embedding=given)
        if mode is SearchMode.BM25:
            ranked = bm25
        elif mode is SearchMode.VECTOR:
            ranked = vec
        else:
            ranked = fuse(method, bm25, vec, alpha)
        return bm25, vec, ranked

    def typo_plan(self, text: str, typos: bool = True) -> TypoQuery:
        """How a cleaned query is searched (:func:`search.typos.plan_query`): with
        typo tolerance off, or in an index without word statistics, as typed."""
        tolerance = self.settings.typo_tolerance
        if not typos or self._vocab is None:
            tolerance = TypoSettings(enabled=False)
        return plan_query(text, self._vocab, tolerance, self._bm25)

    def _groups(self, ranked, collapse_copies: bool, per_article, order: SortOrder) -> list[Group]:
        if not collapse_copies and per_article is None and order is SortOrder.RELEVANCE:
            return [Group(Candidate(pid, "", score)) for pid, score in ranked]
        keys = self.docs.group_keys(pid for pid, _ in ranked)  # id -> (doc, duplicate key)
        dates: dict[str, str | None] = {}
        if order is SortOrder.DATE:
            from indexer.seeds import date_key

            docs = {doc for doc, _ in keys.values()}
            dates = {d: date_key(a.date) for d, a in self.docs.articles(docs).items()}
        candidates = []
        for pid, score in ranked:
            doc, nh = keys[pid]
            candidates.append(Candidate(pid, doc, score, nh, dates.get(doc)))
        groups = collapse(candidates, collapse_copies, per_article)
        return sort_groups(groups, order)

    def _hits(self, page: list[Group], bm25, vec, terms, offset: int, allowed) -> tuple[Hit, ...]:
        """Hits for a page of groups, with each retriever's evidence and metadata."""
        bm25_at = {pid: (r, s) for r, (pid, s) in enumerate(bm25, start=1)}
        vec_at = {pid: (r, s) for r, (pid, s) in enumerate(vec, start=1)}
        stored = self.docs.passages(g.candidate.id for g in page)
        articles = self.docs.articles({p.doc for p in stored.values()})
        copies = {}
        with_copies = [g.candidate.dup_key for g in page if g.duplicates]
        if with_copies:  # every copy the filters allow, also beyond the candidate cut
            copies = self.docs.ids_by_duplicate_key(with_copies, allowed)
        hits = []
        for rank, g in enumerate(page, start=offset + 1):
            pid, score = g.candidate.id, g.candidate.score
            p = stored[pid]
            a = articles.get(p.doc)
            b, v = bm25_at.get(pid), vec_at.get(pid)
            dups = g.duplicates
            if g.candidate.dup_key in copies:
                dups = tuple(i for i in copies[g.candidate.dup_key] if i != pid)
            hits.append(
                Hit(
                    rank=rank,
                    id=p.id,
                    doc=p.doc,
                    paragraph=p.paragraph,
                    part=p.part,
                    title=p.title,
                    text=p.text,
                    score=round(float(score), 6),
                    bm25=None if b is None else round(b[1], 6),
                    bm25_rank=None if b is None else b[0],
                    vector=None if v is None else round(v[1], 6),
                    vector_rank=None if v is None else v[0],
                    **_article_meta(a),
                    duplicates=dups,
                    query_terms=terms,
                )
            )
        return tuple(hits)

    # -------------------------------------------------------------- reading

    def article(self, key: str) -> ArticleView:
        """The whole article of an article id, a seed file path or a passage id (that
        passage is ``marked``); NotFoundError if the index has none."""
        if not isinstance(key, str) or not key.strip():
            raise QueryError(f"article id must be text, got {key!r}")
        key = key.strip()
        doc = self.docs.find_article(key)
        parts = Path(key).parts
        for i in range(1, len(parts)):  # a path with the seeds folder: seeds/Politik/a.md
            if doc is not None:
                break
            doc = self.docs.find_article("/".join(parts[i:]))
        if doc is None:
            raise NotFoundError(
                f"no article or passage {key!r} in {self.index_dir}: use an id from a "
                "search hit (id or doc), e.g. seedsearch search --json"
            )
        a = self.docs.articles([doc])[doc]
        passages = tuple(
            ArticlePassage(p.id, p.paragraph, p.part, p.text)
            for p in self.docs.article_passages(doc)
        )
        marked = key if any(p.id == key for p in passages) else None
        return ArticleView(
            doc=a.doc,
            title=a.title,
            file=a.file,
            **_article_meta(a),
            passages=passages,
            marked=marked,
        )

    def facet_values(self, field: str) -> list[str]:
        """The known values of ``source``, ``agency`` or ``folder`` (what a filter can
        name; agency lists such as ``dpa, AFP`` are split)."""
        if field not in ("source", "agency", "folder"):
            raise QueryError(f"field={field!r} is unknown: use source, agency or folder")
        values = self.docs.distinct(field)
        if field == "agency":
            from indexer.seeds import split_agencies

            split = {a for v in values for a in split_agencies(v)}
            return sorted(split, key=str.casefold)
        return values


def _article_meta(article) -> dict[str, str | None]:
    """An article's metadata (``ARTICLE_META``) as keyword arguments; all None for none."""
    return {name: getattr(article, name, None) for name in ARTICLE_META}


def _query_notices(text: str, mode: SearchMode) -> tuple[str, ...]:
    """What the user should know about how a cleaned query is answered: a query
    without searchable words cannot match keywords, so only meaning ranks it."""
    from indexer.analysis import tokenize

    if mode is SearchMode.VECTOR or analyze(text):
        return ()
    shown = text if len(text) <= 60 else text[:60] + "…"
    why = (
        "has only stopwords (words too common to search for)"
        if tokenize(text)
        else "has no words to search for"
    )
    if mode is SearchMode.BM25:
        return (f"{shown!r} {why}: no keyword matches; try --mode hybrid",)
    return (f"{shown!r} {why}: ranked by meaning only",)


@dataclass(frozen=True)
class IndexStatus:
    """What ``seedsearch status`` reports; ``stale_*`` compare the seeds folder
    with the last build (None when no seeds folder was given or it is missing)."""

    index: str
    generation: int
    documents: int
    passages: int
    embedder: str
    dim: int
    vector_index: str
    dead_vectors: int
    analyzer: str
    format_version: int
    built_at: str
    size_bytes: int
    settings: dict
    stale_added: list[str] | None
    stale_changed: list[str] | None
    stale_removed: list[str] | None

    @property
    def stale(self) -> bool:
        return bool(self.stale_added or self.stale_changed or self.stale_removed)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {**asdict(self), "stale": self.stale}


def index_status(index_dir: str | Path, seeds_dir: str | Path | None = None) -> IndexStatus:
    """Read the manifest (no model, no index files loaded) and compare with the seeds."""
    from indexer.seeds import file_hashes

    index_dir = Path(index_dir)
    gen = generations.current_generation(index_dir)
    m = manifest.read_checked(gen, index_dir)
    added = changed = removed = None
    if seeds_dir is not None and Path(seeds_dir).is_dir():
        docs = DocStore(gen / DOCS)
        try:
            built = docs.files()
        finally:
            docs.close()
        now = file_hashes(Path(seeds_dir), exclude=(index_dir,))
        added = sorted(f for f in now if f not in built)
        removed = sorted(f for f in built if f not in now)
        changed = sorted(f for f in now if f in built and built[f] != now[f])
    return IndexStatus(
        index=str(index_dir),
        generation=m.generation,
        documents=m.documents,
        passages=m.passages,
        embedder=m.embedder,
        dim=m.dim,
        vector_index=m.vector_index,
        dead_vectors=m.dead_vectors,
        analyzer=m.analyzer,
        format_version=m.format_version,
        built_at=m.built_at,
        size_bytes=disk_size(gen),
        settings=dict(m.settings),
        stale_added=added,
        stale_changed=changed,
        stale_removed=removed,
    )
