"""Tune the search and index settings by measurement, with a held-out half.

The questions of a set are split in two fixed halves by hash of the query id
(``search.evaluate.holdout_half``): choose on the tuning half (0), confirm on the
held-out half (1). Prints every grid point measured.

All figures come from the product code: indexes are built by ``indexer.Indexer``
(via ``search.evaluate.IndexedBenchmark``), BM25 and vector candidates by
``SearchEngine.bm25`` / ``SearchEngine.vector`` with the given ``SearchSettings``,
and hybrid rankings by ``search.fusion.fuse``, exactly as ``SearchEngine.search``
combines them. Candidate lists are fetched once at full depth and cut to each
depth of the grid (a cut of the top-N is the top-n for n < N).

``--study``: every set at once and both directions: each setting is chosen on one
half of every set (mean MRR@10 over the sets) and reported on the other half, then
the halves swap; BM25 k1/b/title boost, the embedded title, min-max / RRF / DBSF
fusion at alphas 0.1-0.9 and depths 100 / all, and two-level adaptive alphas on four
per-query signals; ``--compare`` sets given configurations against the defaults,
question by question (mean delta, standard error, better / worse). Embeddings are
cached on disk (``benchmarks/vector_cache.py``). Results: benchmarks/results/tune.md.

    .venv/bin/python benchmarks/tune.py [--set DIR] [--quick]
    .venv/bin/python benchmarks/tune.py --set DIR --analysis --variants current no-split
    .venv/bin/python benchmarks/tune.py --study [SET ...] [--quick] [--model SPEC]
        [--compare K1,B,TB,EMBED_TITLE,METHOD,DEPTH,ALPHA ...]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer.core import IndexSettings  # noqa: E402
from indexer.embedder import load_embedder  # noqa: E402
from search.engine import SearchSettings, clean_query  # noqa: E402
from search.evaluate import (  # noqa: E402
    Benchmark,
    CachingEmbedder,
    IndexedBenchmark,
    corpus_id,
    holdout_half,
    load_benchmark,
)
from search.fusion import RRF_K, FusionMethod, fuse, minmax_normalize  # noqa: E402
from search.metrics import evaluate_run, judged_queries, reciprocal_rank  # noqa: E402

Lists = dict[str, list[tuple[str, float]]]
FULL = 1000  # candidates fetched per retriever (more than any corpus here has passages)
K = 100  # hits per query, as in search.evaluate


@dataclass(frozen=True)
class Point:
    """MRR@10 (and R@1) of one configuration on both halves."""

    label: str
    tune: float
    held: float
    r1_tune: float
    r1_held: float

    def line(self) -> str:
        return (
            f"{self.label:<70} tune {self.tune:.4f}  held-out {self.held:.4f}  "
            f"(R@1 {self.r1_tune:.3f} / {self.r1_held:.3f})"
        )


def doc_run(lists: Lists) -> dict[str, tuple[str, ...]]:
    """Passage rankings -> corpus-id rankings (first passage of a document counts)."""
    return {
        q: tuple(dict.fromkeys(corpus_id(pid.split("#", 1)[0]) for pid, _ in ranked[:K]))
        for q, ranked in lists.items()
    }


def score(label: str, lists: Lists, bench: Benchmark, halves: Sequence[list[str]]) -> Point:
    run = doc_run(lists)
    t, h = (evaluate_run(run, bench.qrels, half) for half in halves)
    return Point(label, t.mrr_at_10, h.mrr_at_10, t.recall_at_1, h.recall_at_1)


def paired_delta(
    base: dict[str, tuple[str, ...]], run: dict[str, tuple[str, ...]], bench: Benchmark, half
) -> str:
    """MRR@10 change of ``run`` against ``base`` on one half: the mean per-question
    difference, its standard error (the noise of a set this size) and how many
    questions got better / worse."""
    wanted = set(half)
    ids = [q for q in judged_queries(bench.qrels) if q in wanted]
    if not ids:
        return "n/a"
    diffs = [
        reciprocal_rank(run.get(q, ()), bench.qrels[q])
        - reciprocal_rank(base.get(q, ()), bench.qrels[q])
        for q in ids
    ]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    better = sum(d > 0 for d in diffs)
    worse = sum(d < 0 for d in diffs)
    return f"{mean:+.4f} (SE {(var / n) ** 0.5:.4f}, {better} better / {worse} worse)"


def candidates(ib: IndexedBenchmark, settings: SearchSettings, kind: str) -> Lists:
    engine = ib.engine(settings)
    get = engine.bm25 if kind == "bm25" else engine.vector
    return {q.id: get(clean_query(q.text), FULL) for q in ib.bench.queries}


def fused(bm25: Lists, vec: Lists, method: FusionMethod, alpha: float, depth: int) -> Lists:
    return {q: fuse(method, bm25[q][:depth], vec[q][:depth], alpha) for q in bm25}


def _whole_and_parts(whole: float, parts: float):
    """A concept weighting: the word's own stem weighs ``whole``, its compound parts
    share ``parts``; a word without parts weighs 1."""

    def weights(concept: Sequence[str]) -> list[tuple[str, float]]:
        if len(concept) == 1:
            return [(concept[0], 1.0)]
        rest = concept[1:]
        return [(concept[0], whole), *((t, parts / len(rest)) for t in rest)]

    return weights


#: Query-side weightings of a concept (a word: its stem, then its compound parts).
CONCEPT_WEIGHTS = {
    "w-flat": lambda concept: [(t, 1.0) for t in concept],
    "w-share": lambda concept: [(t, 1.0 / len(concept)) for t in concept],
    "w-whole1-parts1.5": _whole_and_parts(1.0, 1.5),
    "w-whole1-parts1": _whole_and_parts(1.0, 1.0),
    "w-whole1-parts0.75": _whole_and_parts(1.0, 0.75),
    "w-whole0.5-parts1": _whole_and_parts(0.5, 1.0),
    "w-whole1-parts0.5": _whole_and_parts(1.0, 0.5),
    "w-whole1-parts0.25": _whole_and_parts(1.0, 0.25),
    "w-half-half": _whole_and_parts(0.5, 0.5),
    "w-whole-only": _whole_and_parts(1.0, 0.0),
}


def _search_max(self, concepts, depth: int) -> list[tuple[str, float]]:
    """``WhooshBM25.search`` where a concept scores its best term (body plus
    title_boost times title), not the sum of its terms."""
    import numpy as np

    from search.bm25 import bm25_scores, top_by_score

    p, n = self.params, len(self._live)
    if not concepts or depth < 1 or not n:
        return []
    scores, matched = np.zeros(n), np.zeros(n, dtype=bool)
    for concept in concepts:
        best = np.zeros(n)
        for term in concept:
            part = np.zeros(n)
            for field, w in (("body", 1.0), ("title", p.title_boost)):
                docs, tf = self.postings(field, term) if w > 0 else ((), ())
                if not len(docs):
                    continue
                avgfl = self.stats.avg_length(field) or 1.0
                idf = self.stats.idf(field, term)
                part[docs] += w * bm25_scores(tf, self._lengths[field][docs], idf, avgfl, p.k1, p.b)
                matched[docs] = True
            np.maximum(best, part, out=best)
        scores += best
    docs = np.flatnonzero(matched)
    return [
        (self.passage_id(d), s) for d, s in top_by_score(docs, scores[docs], depth, self.passage_id)
    ]


VARIANTS = (
    *("current", "split-known", "no-split", "min-part-5", "no-ge-prefix", "known+ge"),
    "no-aeoeue",
    *CONCEPT_WEIGHTS,
    "w-max",
)


@contextlib.contextmanager
def analysis_variant(name: str) -> Iterator[None]:
    """Temporarily change the decompounding of ``indexer.analysis`` (index and query side).

    ``current``: the product as it is (since analyzer ``lexsplit-2``: a word that is
    itself a dictionary word, or has a dictionary stem, is not split).
    ``split-known``: the ``lexsplit-1`` rule, dictionary words are split too
    (``spielten`` -> ``spie + lten``). ``no-split``: no compound parts.
    ``min-part-5``: parts of >= 5 letters. ``no-ge-prefix``: no modifier of <= 5
    letters ending in "ge" (participle prefixes: ``abge-``, ``zuge-``, ``unge-``).
    ``known+ge``: ``current`` plus ``no-ge-prefix``. The last three change the
    current rule (so ``no-ge-prefix`` equals ``known+ge`` since ``lexsplit-2``).
    ``no-aeoeue``: the analyzer before ``aeoeue-4``, ``ae``/``oe``/``ue`` left as written.

    ``w-*``: the analysis as it is, and the query's concepts (one per word: its stem,
    then its compound parts) weighted by ``CONCEPT_WEIGHTS[name]`` in BM25, e.g.
    ``w-flat``: each term 1 (a compound of two parts counts three times), ``w-share``:
    the terms share 1; ``w-max``: a concept scores its best-scoring term.
    """
    import indexer.analysis as A
    import search.bm25 as B

    saved_bm25 = {k: getattr(B, k) for k in ("concept_weights",)}
    saved_search = B.WhooshBM25.search

    patched = ("split_compound", "_MIN_PART", "_best_split", "_TRANSLIT_E_RE", "STOPWORDS")
    saved = {k: getattr(A, k) for k in patched}
    orig_split, orig_best = A.split_compound, A._best_split

    def no_ge(word: str):
        best = orig_best(word)
        if best and best[1].endswith("ge") and len(best[1]) <= 5:
            return None
        return best

    def known(word: str) -> tuple[str, ...]:
        words, stems = A._lexicon()
        return () if word in words or A.stem(word) in stems else orig_split(word)

    def split_all(word: str) -> tuple[str, ...]:  # lexsplit-1
        parts: list[str] = []
        while (best := A._best_split(word)) is not None:
            is_known, modifier, head = best
            parts.append(modifier)
            if is_known:
                return (*parts, head)
            word = head
        return (*parts, word) if parts else ()

    if name == "no-split":
        A.split_compound = lambda word: ()
    elif name == "min-part-5":
        A._MIN_PART = 5
    elif name == "split-known":
        A.split_compound = split_all
    elif name == "no-ge-prefix":
        A._best_split = no_ge
    elif name == "known+ge":
        A._best_split = no_ge
        A.split_compound = known
    elif name == "no-aeoeue":
        A._TRANSLIT_E_RE = re.compile(r"(?!)")  # matches nothing
        A.STOPWORDS = frozenset(A.fold(w) for w in A._STOPWORDS_RAW.split())
    elif name in CONCEPT_WEIGHTS:
        B.concept_weights = CONCEPT_WEIGHTS[name]
    elif name == "w-max":
        B.WhooshBM25.search = _search_max
    elif name != "current":
        raise ValueError(name)

    def clear() -> None:
        for f in (orig_split, A.analyze_word, A._respelt):
            f.cache_clear()

    clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(A, k, v)
        for k, v in saved_bm25.items():
            setattr(B, k, v)
        B.WhooshBM25.search = saved_search
        clear()


def analysis_grid(
    bench: Benchmark, embedder, halves, settings: list[SearchSettings], variants: Sequence[str]
) -> None:
    """BM25 and hybrid (as ``SearchEngine.search``) for each analysis variant; every
    variant after the first is also compared with the first, question by question."""
    print("\n== analysis variants (bm25 mode, and hybrid)")
    base_runs: dict[str, dict[str, tuple[str, ...]]] = {}

    def report(label: str, key: str, lists: Lists) -> None:
        print(score(label, lists, bench, halves).line())
        run = doc_run(lists)
        if key in base_runs:
            deltas = [paired_delta(base_runs[key], run, bench, half) for half in halves]
            print(f"{'':<17}vs {variants[0]}: tune {deltas[0]}  held-out {deltas[1]}")
        else:
            base_runs[key] = run

    for name in variants:
        with analysis_variant(name), IndexedBenchmark(bench, embedder, IndexSettings()) as ib:
            vec = candidates(ib, settings[0], "vector")
            for i, s in enumerate(settings):
                bm25 = candidates(ib, s, "bm25")
                tag = f"k1={s.bm25_k1} b={s.bm25_b} tb={s.title_boost}"
                report(f"{name:<15} bm25   {tag}", f"bm25-{i}", bm25)
                lists = fused(bm25, vec, s.fusion, s.alpha, s.depth)
                tag += f" {s.fusion.value} alpha={s.alpha} depth={s.depth}"
                report(f"{name:<15} hybrid {tag}", f"hybrid-{i}", lists)
            sys.stdout.flush()


# ------------------------------------------------------------------ the study
#
# Every set under the bench root at once, both directions: settings are chosen on
# one half of every set's questions (mean MRR@10 over the sets, each set weighing
# the same) and reported on the other half, then the halves swap. A rule with more
# knobs always wins where it was chosen; only the other half says whether it helps.

ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
METHODS = ("minmax", "rrf", "dbsf")
DEPTHS = (100, FULL)


def dbsf_normalize(ranked: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Distribution-based score fusion's scaling (Qdrant): mean +- 3 standard
    deviations of the list mapped to [0, 1], clipped; equal scores all get 1."""
    if not ranked:
        return {}
    s = np.array([x for _, x in ranked])
    mu, sd = float(s.mean()), float(s.std())
    if sd <= 1e-12:
        return {pid: 1.0 for pid, _ in ranked}
    lo = mu - 3 * sd
    return {pid: min(max((x - lo) / (6 * sd), 0.0), 1.0) for pid, x in ranked}


def fuse_any(method: str, bm25, vec, alpha: float) -> list[tuple[str, float]]:
    """The product's methods, and dbsf (measured here only)."""
    if method != "dbsf":
        return fuse(FusionMethod(method), bm25, vec, alpha)
    b, v = dbsf_normalize(bm25), dbsf_normalize(vec)
    out = {p: alpha * b.get(p, 0.0) + (1 - alpha) * v.get(p, 0.0) for p in b.keys() | v.keys()}
    return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


def _normalized(method: str, ranked) -> dict[str, float]:
    if method == "minmax":
        return minmax_normalize(ranked)
    if method == "dbsf":
        return dbsf_normalize(ranked)
    return {pid: 1.0 / (RRF_K + r) for r, (pid, _) in enumerate(ranked, start=1)}


def rr_alphas(sd: SetData, bm25: Lists, vec: Lists, method: str, depth: int) -> np.ndarray:
    """Reciprocal rank (@10, documents) of every question at every alpha of ``ALPHAS``:
    (alphas x questions). The same ranking as ``fuse_any`` (ties by passage id), all
    alphas at once."""
    alphas = np.array(ALPHAS)[:, None]
    out = np.zeros((len(ALPHAS), len(sd.qids)))
    for j, q in enumerate(sd.qids):
        b = _normalized(method, bm25[q][:depth])
        v = _normalized(method, vec[q][:depth])
        pids = sorted(b.keys() | v.keys())
        if not pids:
            continue
        bs = np.array([b.get(p, 0.0) for p in pids])
        vs = np.array([v.get(p, 0.0) for p in pids])
        fused = alphas * bs + (1 - alphas) * vs
        orders = np.argsort(-fused, axis=1, kind="stable")
        docs = [corpus_id(p.split("#", 1)[0]) for p in pids]
        relevant = {d for d, g in sd.bench.qrels[q].items() if g > 0}
        for i, order in enumerate(orders):
            seen: set[str] = set()
            for idx in order:
                d = docs[idx]
                if d in seen:
                    continue
                seen.add(d)
                if d in relevant:
                    out[i, j] = 1.0 / len(seen)
                    break
                if len(seen) == 10:
                    break
    return out


@dataclass
class SetData:
    """One set: its questions (judged, in a fixed order), halves and candidate lists."""

    bench: Benchmark
    qids: list[str]
    half: np.ndarray  # numpy bool array: True = half 1
    bm25: dict[tuple, Lists]
    vec: dict[bool, Lists]
    words: np.ndarray  # concepts per question


def rr_array(sd: SetData, lists: Lists) -> np.ndarray:
    run = doc_run(lists)
    return np.array([reciprocal_rank(run.get(q, ()), sd.bench.qrels[q]) for q in sd.qids])


def load_set(set_dir: Path, embedder, bm25_grid: list[tuple]) -> SetData:
    from indexer.analysis import analyze_query

    files = [set_dir / f for f in ("corpus.jsonl", "queries.jsonl", "qrels.tsv")]
    bench = load_benchmark(*files, name=set_dir.name)
    judged = set(judged_queries(bench.qrels))
    qids = [q.id for q in bench.queries if q.id in judged]
    text = {q.id: q.text for q in bench.queries}
    vec: dict[bool, Lists] = {}
    bm25: dict[tuple, Lists] = {}
    for embed_title in (False, True):
        with IndexedBenchmark(bench, embedder, IndexSettings(embed_title=embed_title)) as ib:
            vec[embed_title] = candidates(ib, SearchSettings(), "vector")
            if not embed_title:
                for k1, b, tb in bm25_grid:
                    s = SearchSettings(bm25_k1=k1, bm25_b=b, title_boost=tb)
                    bm25[(k1, b, tb)] = candidates(ib, s, "bm25")
        if hasattr(embedder, "save"):
            embedder.save()
    words = np.array([len(analyze_query(clean_query(text[q]))) for q in qids])
    half = np.array([holdout_half(q) == 1 for q in qids])
    print(f"{bench.name}: {len(qids)} questions ({int(half.sum())} in half 1)", flush=True)
    return SetData(bench, qids, half, bm25, vec, words)


def signals(sd: SetData, key: tuple, embed_title: bool) -> dict[str, np.ndarray]:
    """Per-question evidence an adaptive alpha may use (known before fusing)."""
    out: dict[str, list[float]] = {"words": [], "bm25_gap": [], "vec_gap": [], "agree": []}
    for i, q in enumerate(sd.qids):
        b, v = sd.bm25[key][q], sd.vec[embed_title][q]
        out["words"].append(float(sd.words[i]))
        out["bm25_gap"].append(1 - b[1][1] / b[0][1] if len(b) > 1 and b[0][1] > 0 else 1.0)
        out["vec_gap"].append(v[0][1] - v[1][1] if len(v) > 1 else 1.0)
        out["agree"].append(float(bool(b) and bool(v) and b[0][0] == v[0][0]))
    return {k: np.array(x) for k, x in out.items()}


def mrr(rr, mask) -> float:
    return float(rr[mask].mean()) if mask.any() else 0.0


def paired(base, run, mask) -> str:
    d = (run - base)[mask]
    n = len(d)
    se = float(d.std(ddof=1) / n**0.5) if n > 1 else 0.0
    return f"{d.mean():+.4f} (SE {se:.4f}, {int((d > 0).sum())}+/{int((d < 0).sum())}-)"


def parse_config(spec: str) -> tuple:
    """``K1,B,TB,EMBED_TITLE,METHOD,DEPTH,ALPHA`` -> ((k1, b, tb), et, method, depth, alpha)."""
    try:
        k1, b, tb, et, method, depth, alpha = spec.split(",")
        return (
            (float(k1), float(b), float(tb)),
            et.strip().lower() in ("1", "true", "yes"),
            FusionMethod.from_str(method).value if method != "dbsf" else "dbsf",
            int(depth),
            round(float(alpha), 1),
        )
    except ValueError as exc:
        raise SystemExit(
            f"--compare {spec!r}: use K1,B,TB,EMBED_TITLE,METHOD,DEPTH,ALPHA ({exc})"
        ) from None


def study(
    set_dirs: list[Path], quick: bool, compare: Sequence[str] = (), model: str | None = None
) -> None:
    """Choose on one half of every set, report on the other; both directions.
    ``compare``: configurations (``parse_config``) set against the defaults."""
    from vector_cache import cached_embedder

    embedder = cached_embedder(model)
    print(f"embedder {embedder.spec} {embedder.model_id}; cache {embedder.path}")
    base = SearchSettings()
    base_key = (base.bm25_k1, base.bm25_b, base.title_boost)
    if quick:
        grid = [base_key]
    else:
        grid = list(itertools.product((0.6, 0.9, 1.2), (0.5, 0.75), (0.0, 0.5, 1.0)))
        grid = list(dict.fromkeys([base_key, *grid]))
    others = [parse_config(c) for c in compare]
    grid = list(dict.fromkeys([*grid, *(c[0] for c in others)]))
    sets = [load_set(d, embedder, grid) for d in set_dirs]
    names = [sd.bench.name for sd in sets]

    def table(label: str, rrs: list) -> str:
        cells = [
            f"{mrr(r, ~sd.half):.4f}/{mrr(r, sd.half):.4f}" for r, sd in zip(rrs, sets, strict=True)
        ]
        return f"{label:<58} " + "  ".join(cells)

    def pick(rows: dict, h: int):
        """Best label on half h: mean over sets of MRR@10 on that half."""
        return max(
            rows,
            key=lambda k: np.mean(
                [mrr(r, sd.half == bool(h)) for r, sd in zip(rows[k], sets, strict=True)]
            ),
        )

    head = f"{'(MRR@10 half 0 / half 1)':<58} " + "  ".join(f"{n:>15}" for n in names)

    # 1. BM25 mode
    print("\n== bm25 mode: k1, b, title boost\n" + head)
    bm25_rows = {key: [rr_array(sd, sd.bm25[key]) for sd in sets] for key in grid}
    for key, rrs in bm25_rows.items():
        print(table(f"bm25 k1={key[0]} b={key[1]} tb={key[2]}", rrs))
    chosen = [pick(bm25_rows, h) for h in (0, 1)]
    for h, key in enumerate(chosen):
        print(
            f"chosen on half {h}: {key}; on half {1 - h}: "
            + ", ".join(
                f"{n} {mrr(r, sets[i].half == bool(1 - h)):.4f} vs default "
                f"{mrr(bm25_rows[base_key][i], sets[i].half == bool(1 - h)):.4f}"
                for i, (n, r) in enumerate(zip(names, bm25_rows[key], strict=True))
            )
        )
    keys = list(dict.fromkeys([base_key, *chosen, *(c[0] for c in others)]))

    # 2. vector mode
    print("\n== vector mode: embed_title\n" + head)
    for et in (False, True):
        print(table(f"vector embed_title={et}", [rr_array(sd, sd.vec[et]) for sd in sets]))

    # 3. fixed-alpha fusion: rr[cfg][alpha] per set
    print("\n== hybrid, fixed alpha\n" + head, flush=True)
    t0 = time.perf_counter()
    table_rr: dict[tuple, list] = {}  # (key, et, method, depth) -> per set (alphas x questions)
    for key, et, method, depth in itertools.product(keys, (False, True), METHODS, DEPTHS):
        per_set = []
        for sd in sets:
            b, v = sd.bm25[key], sd.vec[et]
            per_set.append(rr_alphas(sd, sd.bm25[key], sd.vec[et], method, depth))
        table_rr[(key, et, method, depth)] = per_set
    print(f"({time.perf_counter() - t0:.0f} s for {len(table_rr) * len(ALPHAS)} fusions)")
    fixed = {
        (*cfg, a): [m[i] for m in per_set]
        for cfg, per_set in table_rr.items()
        for i, a in enumerate(ALPHAS)
    }
    default = (base_key, False, base.fusion.value, base.depth, base.alpha)
    for i, sd in enumerate(sets):  # the all-alphas shortcut ranks as the product does
        b, v = sd.bm25[base_key], sd.vec[False]
        exact = rr_array(sd, fused(b, v, base.fusion, base.alpha, base.depth))
        assert np.allclose(exact, fixed[default][i]), (sd.bench.name, exact.mean())
    for label, rrs in fixed.items():
        if label[4] in (0.0, 1.0):
            continue
        k, et, method, depth, a = label
        print(table(f"k1={k[0]} b={k[1]} tb={k[2]} et={int(et)} {method} d={depth} a={a}", rrs))
    best_fixed = [pick({k: v for k, v in fixed.items() if 0 < k[4] < 1}, h) for h in (0, 1)]
    print("\ncurrent default: " + table(str(default), fixed[default]))
    for h, lab in enumerate(best_fixed):
        o = 1 - h
        print(f"best fixed on half {h}: {lab}")
        for i, n in enumerate(names):
            m = sets[i].half == bool(o)
            delta = paired(fixed[default][i], fixed[lab][i], m)
            print(
                f"   {n} half {o}: {mrr(fixed[lab][i], m):.4f} vs default "
                f"{mrr(fixed[default][i], m):.4f}  delta {delta}"
            )

    for other in others:
        print(f"\ncompared: {other} against the default {default}")
        for i, n in enumerate(names):
            new, old, half = fixed[other][i], fixed[default][i], sets[i].half
            for label, m in (("half 0", ~half), ("half 1", half), ("all", half | ~half)):
                print(
                    f"   {n} {label}: {mrr(new, m):.4f} vs {mrr(old, m):.4f}  "
                    f"delta {paired(old, new, m)}"
                )

    # 4. adaptive alpha: alpha = lo below a threshold of a signal, hi at or above it.
    # Thresholds: quantiles of the signal over the choosing half of all sets pooled
    # (absolute values, the same for every set). RR comes from the fixed-alpha table.
    print("\n== hybrid, adaptive alpha (two levels on one signal)", flush=True)
    for cfg_label in {lab[:4] for lab in best_fixed} | {default[:4]}:
        key, et, method, depth = cfg_label
        sig = [signals(sd, key, et) for sd in sets]
        per_set = table_rr[cfg_label]
        for h in (0, 1):
            o = 1 - h
            masks_h = [sd.half == bool(h) for sd in sets]
            masks_o = [sd.half == bool(o) for sd in sets]
            fixed_best = max(
                range(len(ALPHAS)),
                key=lambda i: np.mean(
                    [mrr(m[i], mk) for m, mk in zip(per_set, masks_h, strict=True)]
                ),
            )
            print(
                f"-- {cfg_label}, chosen on half {h}: best fixed alpha {ALPHAS[fixed_best]}: "
                + ", ".join(
                    f"{n} {mrr(m[fixed_best], mk):.4f}"
                    for n, m, mk in zip(names, per_set, masks_o, strict=True)
                )
            )
            for name in sig[0]:
                pooled = np.concatenate([s[name][mk] for s, mk in zip(sig, masks_h, strict=True)])
                thresholds = sorted(set(np.quantile(pooled, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist()))
                best = None
                for t in thresholds:
                    for lo, hi in itertools.product(range(1, 10), range(1, 10)):
                        choose = [np.where(s[name] < t, lo, hi) for s in sig]
                        rr = [m[c, np.arange(len(c))] for m, c in zip(per_set, choose, strict=True)]
                        val = np.mean([mrr(r, mk) for r, mk in zip(rr, masks_h, strict=True)])
                        if best is None or val > best[0]:
                            best = (val, t, lo, hi, rr)
                val, t, lo, hi, rr = best
                print(
                    f"   {name:<9} < {t:.4g}: alpha {ALPHAS[lo]} else {ALPHAS[hi]}; "
                    f"half {h} {val:.4f}; half {o}: "
                    + ", ".join(
                        f"{n} {mrr(r, mk):.4f} ({paired(m[fixed_best], r, mk)})"
                        for n, r, m, mk in zip(names, rr, per_set, masks_o, strict=True)
                    )
                )
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, default=ROOT.parent / "shared" / "bench" / "xquad-de")
    ap.add_argument("--quick", action="store_true", help="A smaller BM25 grid.")
    ap.add_argument(
        "--analysis",
        metavar="K1,B,TB,FUSION,ALPHA,DEPTH",
        nargs="*",
        help="Only the analysis grid, at these settings (default: the product's).",
    )
    ap.add_argument(
        "--umlauts-as-ae",
        action="store_true",
        help="Write the questions' umlauts as ae/oe/ue and ß as ss (a keyboard without them).",
    )
    ap.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        metavar="NAME",
        help=f"With --analysis; the first is the reference: {', '.join(VARIANTS)}.",
    )
    ap.add_argument(
        "--study",
        nargs="*",
        type=Path,
        metavar="SET",
        help="Every set (default: all under ../shared/bench) at once, both directions: "
        "BM25, embedded title, fusion method/alpha/depth, adaptive alpha.",
    )
    ap.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="K1,B,TB,ET,METHOD,DEPTH,ALPHA",
        help="With --study: these configurations against the defaults, question by question.",
    )
    ap.add_argument("--model", default=None, help="With --study: this embedder spec.")
    args = ap.parse_args()
    if args.study is not None:
        root = ROOT.parent / "shared" / "bench"
        dirs = args.study or sorted(
            d for d in root.iterdir() if (d / "qrels.tsv").is_file() and not d.name.startswith(".")
        )
        t0 = time.perf_counter()
        study(dirs, args.quick, args.compare, args.model)
        print(f"({time.perf_counter() - t0:.0f} s)")
        return
    files = [args.set / f for f in ("corpus.jsonl", "queries.jsonl", "qrels.tsv")]
    bench = load_benchmark(*files, name=args.set.name)
    if args.umlauts_as_ae:
        spell = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
        spell[ord("ß")] = "ss"
        queries = tuple(replace(q, text=q.text.translate(spell)) for q in bench.queries)
        bench = replace(bench, queries=queries)
    halves = [[q.id for q in bench.queries if holdout_half(q.id) == h] for h in (0, 1)]
    print(f"{bench.name}: tuning half {len(halves[0])}, held-out half {len(halves[1])} questions")
    embedder = CachingEmbedder(load_embedder(None))
    base = SearchSettings()
    t0 = time.perf_counter()
    if args.analysis is not None:
        settings = [base]
        for spec in args.analysis:
            k1, b, tb, method, alpha, depth = spec.split(",")
            settings.append(
                SearchSettings(
                    depth=int(depth),
                    fusion=FusionMethod.from_str(method),
                    alpha=float(alpha),
                    bm25_k1=float(k1),
                    bm25_b=float(b),
                    title_boost=float(tb),
                )
            )
        analysis_grid(bench, embedder, halves, settings, args.variants)
        print(f"({time.perf_counter() - t0:.0f} s)")
        return

    # 1. BM25 parameters (title boost, k1, b) and the title field: bm25 mode alone.
    if args.quick:
        k1s, bs, boosts = (1.2,), (0.75,), (0.0, base.title_boost)
    else:
        k1s, bs, boosts = (0.6, 0.9, 1.2, 1.6), (0.5, 0.75, 0.9), (0.0, 0.25, 0.5, 1.0, 2.0)
    points: list[Point] = []
    bm25_lists: dict[tuple, Lists] = {}
    print("\n== BM25 mode: k1, b, title boost (IndexSettings.title_field=True)")
    with IndexedBenchmark(bench, embedder, IndexSettings(embed_title=False)) as ib:
        for k1, b, boost in itertools.product(k1s, bs, boosts):
            s = replace(base, bm25_k1=k1, bm25_b=b, title_boost=boost)
            lists = candidates(ib, s, "bm25")
            bm25_lists[(k1, b, boost)] = lists
            p = score(f"bm25 k1={k1} b={b} title_boost={boost}", lists, bench, halves)
            points.append(p)
            print(p.line(), flush=True)
        vec_plain = candidates(ib, base, "vector")
    best_bm25 = max(points, key=lambda p: p.tune)
    best_key = next(k for k, v in zip(bm25_lists, points, strict=True) if v is best_bm25)
    print(f"best on tuning half: {best_bm25.line()}")

    # 2. Embedded title: vector mode alone.
    print("\n== vector mode: IndexSettings.embed_title")
    with IndexedBenchmark(bench, embedder, IndexSettings(embed_title=True)) as ib:
        vec_title = candidates(ib, base, "vector")
    vecs = {False: vec_plain, True: vec_title}
    for flag, lists in vecs.items():
        print(score(f"vector embed_title={flag}", lists, bench, halves).line())

    # 3. Fusion: method, alpha, depth, for the default and the best BM25 settings.
    print("\n== hybrid: fusion, alpha, depth, embed_title, BM25 settings")
    bm25_keys = dict.fromkeys([(base.bm25_k1, base.bm25_b, base.title_boost), best_key])
    hybrid: list[Point] = []
    for key, embed_title, method, alpha, depth in itertools.product(
        bm25_keys,
        (False, True),
        (FusionMethod.MINMAX, FusionMethod.RRF),
        (0.3, 0.4, 0.5, 0.6, 0.7),
        (100, FULL),
    ):
        if key not in bm25_lists:
            continue
        lists = fused(bm25_lists[key], vecs[embed_title], method, alpha, depth)
        label = (
            f"k1={key[0]} b={key[1]} tb={key[2]} embed_title={embed_title} "
            f"{method.value} alpha={alpha} depth={depth}"
        )
        p = score(label, lists, bench, halves)
        hybrid.append(p)
        print(p.line(), flush=True)
    best = max(hybrid, key=lambda p: p.tune)
    print(f"\nbest hybrid on tuning half: {best.line()}")
    print(f"best bm25 on tuning half:   {best_bm25.line()}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
