"""Measured retrieval quality: a benchmark set through the product code path.

A set is three files: ``corpus.jsonl`` (``id``, ``title``, ``text``),
``queries.jsonl`` (``id``, ``text``) and ``qrels.tsv`` (``qid<TAB>pid<TAB>grade``,
no header). :func:`evaluate` writes the corpus as a ``.jsonl`` seed file, builds a
temporary index with :class:`indexer.Indexer`, sends every query through
:meth:`SearchEngine.search` in each mode, maps passages back to corpus ids (the
best-ranked passage of a document counts) and scores the runs with
:mod:`search.metrics`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.core import progress_bar
from indexer.embedder import Embedder, load_embedder
from indexer.errors import SeedsearchError
from search.fusion import SearchMode
from search.metrics import Metrics, evaluate_run

#: Name of the seed file the corpus is written to; passage docs are ``corpus.jsonl:<id>``.
SEED_NAME = "corpus.jsonl"
#: Hits asked for per query: enough for Recall@100.
RUN_DEPTH = 100
ALL_MODES = (SearchMode.HYBRID, SearchMode.BM25, SearchMode.VECTOR)


@dataclass(frozen=True)
class CorpusDoc:
    """One document of a benchmark corpus."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Query:
    """One benchmark question."""

    id: str
    text: str


@dataclass(frozen=True)
class Benchmark:
    """A loaded set: corpus, queries and graded relevance judgements."""

    name: str
    corpus: tuple[CorpusDoc, ...]
    queries: tuple[Query, ...]
    qrels: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class ModeResult:
    """Metrics of one search mode, with the run they were computed from."""

    mode: str
    metrics: Metrics
    run: Mapping[str, tuple[str, ...]]
    #: the score of each id in ``run`` (same order), for TREC run files
    scores: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalResult:
    """Results of all evaluated modes on one benchmark."""

    benchmark: str
    documents: int
    passages: int
    results: tuple[ModeResult, ...]
    index_seconds: float
    search_seconds: float
    warnings: tuple[str, ...] = ()

    def metrics(self, mode: str | SearchMode) -> Metrics:
        """Metrics of one mode; KeyError if it was not evaluated."""
        name = SearchMode.from_str(mode).value
        for r in self.results:
            if r.mode == name:
                return r.metrics
        raise KeyError(name)

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        """``{mode: {metric: value}}`` (the JSON of ``seedsearch eval --json``)."""
        return {r.mode: r.metrics.to_dict() for r in self.results}


# ------------------------------------------------------------------- loading


def _read_lines(path: Path) -> list[str]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SeedsearchError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedsearchError(
            f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    return text.replace("\r\n", "\n").split("\n")


def _json_records(path: Path, fields: Sequence[str]) -> Iterable[tuple[int, dict]]:
    """(line number, record) of a JSON-lines file whose records have string ``fields``."""
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SeedsearchError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise SeedsearchError(f"{path}:{line_no}: expected a JSON object")
        if isinstance(rec.get("id"), int | float) and not isinstance(rec.get("id"), bool):
            rec["id"] = str(rec["id"])
        for name in fields:
            if not isinstance(rec.get(name), str):
                raise SeedsearchError(f"{path}:{line_no}: no {name!r} string")
        rec["id"] = rec["id"].strip()
        if not rec["id"]:
            raise SeedsearchError(f"{path}:{line_no}: empty 'id'")
        yield line_no, rec


def _unique_texts(path: Path) -> Iterator[tuple[int, dict]]:
    """Records with a unique ``id`` and a non-empty ``text``, else an error naming the line."""
    seen: set[str] = set()
    for line_no, rec in _json_records(path, ("id", "text")):
        if rec["id"] in seen:
            raise SeedsearchError(f"{path}:{line_no}: duplicate id {rec['id']!r}")
        if not rec["text"].strip():
            raise SeedsearchError(f"{path}:{line_no}: empty 'text' for id {rec['id']!r}")
        seen.add(rec["id"])
        yield line_no, rec


def load_corpus(path: str | Path) -> list[CorpusDoc]:
    """Documents of a ``corpus.jsonl`` (``title`` optional, ``text`` not empty)."""
    path = Path(path)
    docs: list[CorpusDoc] = []
    for line_no, rec in _unique_texts(path):
        title = rec.get("title")
        if title is not None and not isinstance(title, str):
            raise SeedsearchError(f"{path}:{line_no}: 'title' must be a string")
        docs.append(CorpusDoc(rec["id"], title or "", rec["text"]))
    if not docs:
        raise SeedsearchError(f"{path}: no documents")
    return docs


def load_queries(path: str | Path) -> list[Query]:
    """Questions of a ``queries.jsonl`` (``id``, non-empty ``text``)."""
    path = Path(path)
    queries: list[Query] = []
    for _, rec in _unique_texts(path):
        queries.append(Query(rec["id"], rec["text"]))
    if not queries:
        raise SeedsearchError(f"{path}: no queries")
    return queries


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``{qid: {pid: grade}}`` from ``qid<TAB>pid<TAB>grade`` lines (no header)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            raise SeedsearchError(
                f"{path}:{line_no}: expected 3 tab-separated fields "
                f"(query id, passage id, grade), got {len(parts)}"
            )
        qid, pid, grade_text = (p.strip() for p in parts)
        if not qid or not pid:
            raise SeedsearchError(f"{path}:{line_no}: empty query or passage id")
        try:
            grade = int(grade_text)
        except ValueError:
            raise SeedsearchError(
                f"{path}:{line_no}: grade {grade_text!r} is not a whole number"
            ) from None
        qrels.setdefault(qid, {})[pid] = grade
    if not qrels:
        raise SeedsearchError(f"{path}: no judgements")
    return qrels


def load_benchmark(
    corpus: str | Path, queries: str | Path, qrels: str | Path, name: str | None = None
) -> Benchmark:
    """Load and cross-check a set: every judged query and passage must exist."""
    docs = load_corpus(corpus)
    qs = load_queries(queries)
    judged = load_qrels(qrels)
    doc_ids = {d.id for d in docs}
    query_ids = {q.id for q in qs}
    for qid, rels in judged.items():
        if qid not in query_ids:
            raise SeedsearchError(f"{qrels}: query id {qid!r} is not in {queries}")
        for pid in rels:
            if pid not in doc_ids:
                raise SeedsearchError(f"{qrels}: passage id {pid!r} is not in {corpus}")
    return Benchmark(
        name=name or Path(corpus).resolve().parent.name,
        corpus=tuple(docs),
        queries=tuple(q for q in qs if q.id in judged),
        qrels=judged,
    )


def holdout_half(query_id: str) -> int:
    """0 (tuning half) or 1 (held-out half): a fixed split by hash of the query id."""
    return hashlib.sha256(query_id.encode("utf-8")).digest()[0] & 1


# ---------------------------------------------------------------- embedding


class CachingEmbedder:
    """An embedder that remembers vectors by text (same spec, same vectors).

    Evaluations embed each query once per mode and tuning rebuilds indexes of the
    same passages; the cache makes repeats free without changing any result.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.dim = inner.dim
        self._passages: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}

    @property
    def on_batch(self) -> Callable[[int], None] | None:
        return getattr(self.inner, "on_batch", None)

    @on_batch.setter
    def on_batch(self, value: Callable[[int], None] | None) -> None:
        if hasattr(self.inner, "on_batch"):
            self.inner.on_batch = value

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._passages))
        if todo:
            for t, v in zip(todo, self.inner.embed_passages(todo), strict=True):
                self._passages[t] = np.asarray(v, dtype=np.float32)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._passages[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._queries:
            self._queries[text] = np.asarray(self.inner.embed_query(text), dtype=np.float32)
        return self._queries[text]


# --------------------------------------------------------------- evaluation


def write_seed(corpus: Iterable[CorpusDoc], seeds_dir: Path) -> Path:
    """Write the corpus as one ``.jsonl`` seed file; returns its path."""
    path = Path(seeds_dir) / SEED_NAME
    with open(path, "w", encoding="utf-8") as f:
        for d in corpus:
            rec = {"id": d.id, "title": d.title, "text": d.text}
            if not d.title:
                del rec["title"]  # the loader then uses the id as the title
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def corpus_id(doc: str) -> str:
    """Corpus id of a passage's doc (``corpus.jsonl:<id>`` -> ``<id>``; the record id
    of any ``.jsonl`` seed file, the article id of other files)."""
    prefix = SEED_NAME + ":"
    if doc.startswith(prefix):
        return doc[len(prefix) :]
    head, sep, rest = doc.partition(".jsonl:")
    return rest if sep else doc


def ranked_docs(hits) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Corpus ids of a ranking and their scores: a document counts at its best-ranked
    passage."""
    best: dict[str, float] = {}
    for h in hits:
        best.setdefault(corpus_id(h.doc), h.score)
    return tuple(best), tuple(best.values())


def run_queries(engine, queries: Sequence[Query], mode, k: int = RUN_DEPTH, on_query=None):
    """``({qid: corpus ids}, {qid: scores})`` for every query in one mode. Exact copies
    stay separate documents (``collapse=False``): the judgements name each one."""
    run: dict[str, tuple[str, ...]] = {}
    scores: dict[str, tuple[float, ...]] = {}
    for q in queries:
        hits = engine.search(q.text, k=k, mode=mode, collapse=False)
        run[q.id], scores[q.id] = ranked_docs(hits)
        if on_query:
            on_query()
    return run, scores


def trec_run_lines(results: Sequence[ModeResult], tag: str = "seedsearch") -> list[str]:
    """TREC run lines ``qid Q0 docid rank score tag-mode`` (trec_eval's input)."""
    lines = []
    for r in results:
        for qid, ids in r.run.items():
            scores = r.scores.get(qid, ())
            for rank, pid in enumerate(ids, start=1):
                score = scores[rank - 1] if rank <= len(scores) else 1.0 / rank
                lines.append(f"{qid} Q0 {pid} {rank} {score:.6f} {tag}-{r.mode}")
    return lines


def per_query_rows(
    results: Sequence[ModeResult], qrels: Mapping[str, Mapping[str, int]]
) -> list[tuple[str, str, int | None, float]]:
    """``(mode, qid, rank of the first relevant hit or None, reciprocal rank)`` for
    every judged query: which questions fail, and how badly."""
    rows = []
    for r in results:
        for qid in sorted(qrels):
            relevant = {pid for pid, grade in qrels[qid].items() if grade > 0}
            ids = r.run.get(qid, ())
            rank = next((i for i, pid in enumerate(ids, start=1) if pid in relevant), None)
            rows.append((r.mode, qid, rank, 0.0 if rank is None else 1.0 / rank))
    return rows


class IndexedBenchmark:
    """A benchmark with a temporary index built by the product ``Indexer``.

    Use as a context manager; :meth:`run` answers every query in one mode with
    any ``SearchSettings`` (the index is built once).
    """

    def __init__(
        self,
        bench: Benchmark,
        model: str | Embedder | None = None,
        index_settings=None,
        progress: bool = False,
    ) -> None:
        from indexer import Indexer

        t0 = time.perf_counter()
        embedder = model if isinstance(model, CachingEmbedder) else None
        if embedder is None:
            embedder = CachingEmbedder(load_embedder(model))
        self.bench = bench
        self.embedder = embedder
        self._tmp = tempfile.TemporaryDirectory(prefix="seedsearch-eval-")
        root = Path(self._tmp.name)
        seeds = root / "seeds"
        seeds.mkdir()
        write_seed(bench.corpus, seeds)
        warnings: list[str] = []
        try:
            report = Indexer(
                seeds,
                root / "index",
                model=embedder,
                settings=index_settings,
                progress=progress,
                on_warning=warnings.append,
            ).update(full=True)
        except BaseException:
            self._tmp.cleanup()
            raise
        self.index_dir = root / "index"
        self.documents = report.documents
        self.passages = report.passages
        self.warnings = tuple(warnings)
        self.index_seconds = time.perf_counter() - t0
        self._engines: dict = {}

    def engine(self, settings=None):
        """A SearchEngine on the temporary index (one per distinct settings)."""
        from search.engine import SearchEngine, SearchSettings

        settings = settings or SearchSettings()
        if settings not in self._engines:
            self._engines[settings] = SearchEngine.open(self.index_dir, self.embedder, settings)
        return self._engines[settings]

    def run(
        self,
        mode: str | SearchMode,
        settings=None,
        queries: Sequence[Query] | None = None,
        on_query: Callable[[], None] | None = None,
        k: int = RUN_DEPTH,
    ) -> dict[str, tuple[str, ...]]:
        """``{qid: (corpus ids, best first)}`` for every query in one mode."""
        return self.run_scored(mode, settings, queries, on_query, k)[0]

    def run_scored(self, mode, settings=None, queries=None, on_query=None, k: int = RUN_DEPTH):
        """:meth:`run` with the score of each id: ``(run, scores)``."""
        engine = self.engine(settings)
        qs = self.bench.queries if queries is None else queries
        return run_queries(engine, qs, mode, k, on_query)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
        self._tmp.cleanup()

    def __enter__(self) -> IndexedBenchmark:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def evaluate(
    bench: Benchmark,
    modes: Sequence[str | SearchMode] = ALL_MODES,
    model: str | Embedder | None = None,
    index_settings=None,
    search_settings=None,
    progress: bool = False,
) -> EvalResult:
    """Index ``bench`` in a temporary folder and measure each mode.

    ``progress``: show a rich progress bar (only when stderr is a terminal).
    """
    names = [SearchMode.from_str(m) for m in modes]
    show = progress and sys.stderr.isatty()
    with IndexedBenchmark(bench, model, index_settings, progress=show) as ib:
        t0 = time.perf_counter()
        results = []
        if show:
            bar, task = progress_bar("queries", len(bench.queries) * len(names))
            with bar:
                for m in names:
                    bar.update(task, description=f"{m.value} queries")
                    run, sc = ib.run_scored(m, search_settings, on_query=lambda: bar.advance(task))
                    results.append(ModeResult(m.value, evaluate_run(run, bench.qrels), run, sc))
        else:
            for m in names:
                run, sc = ib.run_scored(m, search_settings)
                results.append(ModeResult(m.value, evaluate_run(run, bench.qrels), run, sc))
        return EvalResult(
            benchmark=bench.name,
            documents=ib.documents,
            passages=ib.passages,
            results=tuple(results),
            index_seconds=round(ib.index_seconds, 3),
            search_seconds=round(time.perf_counter() - t0, 3),
            warnings=ib.warnings,
        )


def load_judged_queries(
    queries: str | Path, qrels: str | Path
) -> tuple[tuple[Query, ...], dict[str, dict[str, int]]]:
    """Queries and judgements without a corpus (for an existing index): every judged
    query must exist; the judged ids are article ids of the index (for a ``.jsonl``
    seed file: its record ids)."""
    qs = load_queries(queries)
    judged = load_qrels(qrels)
    query_ids = {q.id for q in qs}
    for qid in judged:
        if qid not in query_ids:
            raise SeedsearchError(f"{qrels}: query id {qid!r} is not in {queries}")
    return tuple(q for q in qs if q.id in judged), judged


def evaluate_index(
    index_dir: str | Path,
    queries: str | Path,
    qrels: str | Path,
    modes: Sequence[str | SearchMode] = ALL_MODES,
    search_settings=None,
) -> EvalResult:
    """Measure each mode on an existing index (``seedsearch eval --index``), with the
    embedder it was built with."""
    from search.engine import SearchEngine

    qs, judged = load_judged_queries(queries, qrels)
    names = [SearchMode.from_str(m) for m in modes]
    with SearchEngine.open(index_dir, settings=search_settings) as engine:
        known = {corpus_id(d) for d in engine.docs.article_hashes()}
        missing = sorted({pid for rels in judged.values() for pid in rels} - known)
        warnings = ()
        if missing:
            shown = ", ".join(repr(m) for m in missing[:3]) + (" …" if len(missing) > 3 else "")
            warnings = (
                f"{len(missing)} judged ids are not articles of {index_dir} ({shown}): "
                "they count as not found",
            )
        t0 = time.perf_counter()
        results = []
        for m in names:
            run, sc = run_queries(engine, qs, m)
            results.append(ModeResult(m.value, evaluate_run(run, judged), run, sc))
        return EvalResult(
            benchmark=Path(index_dir).name,
            documents=engine.manifest.documents,
            passages=engine.manifest.passages,
            results=tuple(results),
            index_seconds=0.0,
            search_seconds=round(time.perf_counter() - t0, 3),
            warnings=warnings,
        )
