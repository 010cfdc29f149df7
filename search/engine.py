"""The ``SearchEngine``: opens a published index generation and answers queries."""

from __future__ import annotations

import contextlib
import math
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.analysis import analyze, analyze_query
from indexer.bm25stats import CollectionStats
from indexer.embedder import Embedder, load_embedder
from indexer.errors import EmbedderMismatchError, IndexCorruptError, QueryError
from indexer.settings import conflict_message
from indexer.store import DOCS, FIX, VECTORS, WHOOSH, generations, keyword, manifest, vectors
from indexer.store.docstore import DocStore
from indexer.store.files import disk_size, verify_checksums
from search.bm25 import BM25Params, WhooshBM25
from search.fusion import FusionMethod, SearchMode, fuse

#: Longer queries are cut (with a warning): a question is short, and a pasted
#: document would make the keyword query slow.
MAX_QUERY_CHARS = 2000
#: No query returns more hits than this.
MAX_K = 1000
#: OpenMP threads for searching one query vector. FAISS's thread pool and the
#: embedder's BLAS threads spin for work after each call; on 2 cores they fought,
#: and one thread made a flat search at 24k passages 2.7 ms instead of 6-10 ms
#: (hybrid p50 11 ms instead of 22 ms; benchmarks/speed.py). One query vector is
#: too little work to split anyway. Indexing keeps all threads.
QUERY_FAISS_THREADS = 1


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
    """

    depth: int = 100
    fusion: FusionMethod = FusionMethod.MINMAX
    alpha: float = 0.4
    bm25_k1: float = 0.6
    bm25_b: float = 0.5
    title_boost: float = 0.5

    def __post_init__(self) -> None:
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
    was ranked by meaning alone); empty when there is nothing to say.
    """

    hits: tuple[Hit, ...]
    notices: tuple[str, ...] = ()

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
        live = docs.vids()
        self._count = len(live)
        # ids of removed passages still in an HNSW graph: every search skips them
        dead = np.setdiff1d(vectors.vector_ids(vector_index), live)
        self._vector_params = vectors.search_params(vector_index, dead)
        self._check_consistency(live, dead)

    def _check_consistency(self, live: np.ndarray, dead: np.ndarray) -> None:
        """The three stores agree: the same passages (vector ids) in the document
        store, the vector index and the keyword index, as many as the manifest says."""
        ids = vectors.vector_ids(self._vectors)
        keyword_vids = np.sort(self._bm25.live_vids())
        manifest.check_counts(
            self.index_dir,
            self.manifest,
            stored=len(live),
            vectors_live=len(ids) - len(dead),
            keyword_docs=len(keyword_vids),
            dead=len(dead),
        )
        if not np.array_equal(keyword_vids, live) or len(np.setdiff1d(live, ids)):
            raise IndexCorruptError(
                f"index at {self.index_dir} is inconsistent: the keyword index, the vectors "
                f"and the stored passages name different passages; {FIX}"
            )
        if self._vectors.d != self.manifest.dim:
            raise IndexCorruptError(
                f"vector dimension {self._vectors.d} != manifest {self.manifest.dim}; {FIX}"
            )

    # ----------------------------------------------------------------- open

    @classmethod
    def open(
        cls,
        index_dir: str | Path = "index_data",
        model: str | Embedder | None = None,
        settings: SearchSettings | None = None,
    ) -> SearchEngine:
        """Open the published index in ``index_dir`` after checking its manifest and
        the checksums of its files.

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
        # Whoosh and SQLite may read a damaged file without noticing: check first.
        verify_checksums(gen, built.checksums, skip=(VECTORS,))
        docs = DocStore(gen / DOCS)
        try:
            vector_index = vectors.read_vectors(gen / VECTORS, built.checksums[VECTORS])
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
                    settings or SearchSettings(),
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

    def vector(self, query: str, depth: int) -> list[tuple[str, float]]:
        """Top ``depth`` (passage id, cosine) for an already cleaned query."""
        if self._count == 0 or depth < 1:
            return []
        q = self.embedder.embed_query(query).reshape(1, -1).astype(np.float32)
        with faiss_threads(QUERY_FAISS_THREADS):
            scores, vids = self._vectors.search(
                q, min(depth, self._count), params=self._vector_params
            )
        found = [
            (int(vid), float(s))
            for s, vid in zip(scores[0].tolist(), vids[0].tolist(), strict=True)
            if vid != -1  # FAISS pads missing results with -1
        ]
        ids = self.docs.ids(v for v, _ in found)
        out = [(ids[v], s) for v, s in found if v in ids]
        return sorted(out, key=lambda r: (-r[1], r[0]))  # ties by id, as for BM25

    def search(
        self,
        query: str,
        k: int = 5,
        mode: str | SearchMode = SearchMode.HYBRID,
        alpha: float | None = None,
        fusion: str | FusionMethod | None = None,
    ) -> SearchResult:
        """The ``k`` best passages for ``query``.

        ``mode``: hybrid (default), bm25 or vector. ``alpha`` and ``fusion``
        override the settings for this query.
        """
        if isinstance(k, bool) or not isinstance(k, int):
            raise QueryError(f"k must be a whole number, got {k!r}")
        if k < 1:
            raise QueryError(f"k={k} is invalid: ask for at least 1 result")
        k = min(k, MAX_K)
        mode = SearchMode.from_str(mode)
        alpha = self.settings.alpha if alpha is None else check_alpha(alpha)
        method = self.settings.fusion if fusion is None else FusionMethod.from_str(fusion)
        text = clean_query(query)
        depth = max(self.settings.depth, k)
        notices = _query_notices(text, mode)
        bm25 = self.bm25(text, depth) if mode is not SearchMode.VECTOR else []
        vec = self.vector(text, depth) if mode is not SearchMode.BM25 else []
        if mode is SearchMode.BM25:
            ranked = bm25
        elif mode is SearchMode.VECTOR:
            ranked = vec
        else:
            ranked = fuse(method, bm25, vec, alpha)
        return SearchResult(self._hits(ranked[:k], bm25, vec), notices)

    def _hits(self, ranked, bm25, vec) -> tuple[Hit, ...]:
        """Hits for ranked (passage id, score), with each retriever's evidence."""
        bm25_at = {pid: (r, s) for r, (pid, s) in enumerate(bm25, start=1)}
        vec_at = {pid: (r, s) for r, (pid, s) in enumerate(vec, start=1)}
        stored = self.docs.passages(pid for pid, _ in ranked)
        hits = []
        for rank, (pid, score) in enumerate(ranked, start=1):
            p = stored[pid]
            b, v = bm25_at.get(pid), vec_at.get(pid)
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
                )
            )
        return tuple(hits)


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
