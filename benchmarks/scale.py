"""100x on one machine: a synthetic 244k-passage archive, HNSW + sq8, measured.

The archive is built from the 1,028 articles of ../shared/bench/gnad-test: copy 0 is
the articles as they are, copies 1-99 recombine them (each sentence is swapped, with
probability 0.3, for a sentence of another article, so every passage text is distinct
and the ANN graph is not flattered by exact copies). It is indexed by the product
command ``seedsearch index --full --ann hnsw --vectors sq8``.

Embedding 244k passages with e5-small on 2 cores would take hours, so the build uses a
*derived* embedder (``benchmarks.scale:derived_embedder``): every distinct sentence of
the 1x texts is embedded once, for real, with e5-small ("passage: " prompt); a
passage's vector is the word-count weighted mean of its sentences' real vectors,
normalised. Queries are embedded for real by e5-small ("query: " prompt). So
the index sizes, the HNSW graph, open, RSS and latency are those of a real 244k
index; the passage vectors are realistic but not what e5-small would give for
the whole passage (retrieval quality is not measured here, see quality.md).

Phases (each in its own process, so that each peak RSS is its own):
table (embed the sentences), seeds (write the archive), build (the CLI), open
(SearchEngine.open in fresh processes), search (hybrid latency, RSS, recall@10 of
the HNSW+sq8 index against exact search). Writes benchmarks/results/scale.md.

    .venv/bin/python benchmarks/scale.py [--work /tmp/seedsearch-scale] [--copies 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PY = sys.executable
SPEC = "benchmarks.scale:derived_embedder"
#: where the derived embedder finds its sentence table (set by this script)
TABLE_ENV = "SEEDSEARCH_SCALE_TABLE"
SWAP_SHARE = 0.3
MAX_TRIES = 30


# ------------------------------------------------------------------ helpers


def sentence_key(text: str) -> str:
    """A sentence as the table knows it: trimmed, without its end dots (so that
    "Titel." and "Titel.." in an embedded "title. text" are the same)."""
    return text.strip().strip(".").strip()


def sentences(text: str) -> list[str]:
    """The sentences of a text, cut where the product's passage splitter cuts."""
    from indexer.seeds import _sentence_spans

    return [text[a:b].strip() for a, b in _sentence_spans(text)]


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def gnad_rows(bench: Path) -> list[tuple[str, str]]:
    from benchmarks.speed import load_gnad

    return load_gnad(bench / "articles.csv")


def pct(values, p: float) -> float:
    return float(np.percentile(values, p)) if len(values) else float("nan")


# ------------------------------------------------------------ the embedder


class DerivedEmbedder:
    """Passage vectors derived from real sentence vectors; queries embedded for real.

    A passage's vector is the word-count weighted mean of the table vectors of its
    sentences, L2-normalised (as every embedder's rows must be: the indexer stores
    them as given). A sentence missing from the table is
    embedded for real by e5-small and counted in ``fallbacks`` (the benchmark's
    archive is built so that there are none).
    """

    def __init__(self, table: Path) -> None:
        with np.load(table, allow_pickle=False) as data:
            keys = str(data["keys"]).split("\n")
            self._vectors = np.asarray(data["vectors"], dtype=np.float32)
            base_id = str(data["model_id"])
        self._row = {k: i for i, k in enumerate(keys)}
        self.dim = int(self._vectors.shape[1])
        self.spec = SPEC
        digest = hashlib.blake2b(self._vectors.tobytes(), digest_size=8).hexdigest()
        #: recorded in the manifest: queries of another table or graph are refused
        self.model_id = f"derived:{digest}+{base_id}"
        self.fallbacks = 0
        self._e5 = None

    @property
    def e5(self):
        if self._e5 is None:
            from indexer.e5.embedder import E5Embedder

            self._e5 = E5Embedder()
        return self._e5

    def _sentence_vector(self, sentence: str) -> np.ndarray:
        key = sentence_key(sentence)
        row = self._row.get(key)
        if row is None:
            self.fallbacks += 1
            vec = self.e5.embed_passages([sentence])[0]
            self._row[key] = len(self._vectors)
            self._vectors = np.vstack([self._vectors, vec[None, :]])
            return vec
        return self._vectors[row]

    def embed_passages(self, texts) -> np.ndarray:
        from indexer.embedder import normalize_rows

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for s in sentences(text) or [text]:
                out[i] += len(s.split()) * self._sentence_vector(s)
        return normalize_rows(out)  # the indexer stores what the embedder returns

    def embed_query(self, text: str) -> np.ndarray:
        return self.e5.embed_query(text)


def derived_embedder() -> DerivedEmbedder:
    """Factory for ``--model benchmarks.scale:derived_embedder``; the sentence table is
    read from $SEEDSEARCH_SCALE_TABLE."""
    path = os.environ.get(TABLE_ENV)
    if not path or not Path(path).is_file():
        from indexer.errors import SeedsearchError

        raise SeedsearchError(
            f"the derived embedder needs its sentence table: set {TABLE_ENV} "
            "(benchmarks/scale.py writes it)"
        )
    return DerivedEmbedder(Path(path))


# ------------------------------------------------------------------ phases


def phase_table(bench: str, out: str) -> dict:
    """Embed every distinct sentence of the 1x texts with e5-small, for real."""
    from indexer.e5.embedder import E5Embedder

    keys: dict[str, str] = {}
    for _, text in gnad_rows(Path(bench)):
        from indexer.seeds import _clean_text

        for s in sentences(_clean_text(text)):
            keys.setdefault(sentence_key(s), s)
    model = E5Embedder()
    texts = list(keys.values())
    t = time.perf_counter()
    vecs = np.zeros((len(texts), model.dim), dtype=np.float32)
    step = 256
    for start in range(0, len(texts), step):
        vecs[start : start + step] = model.embed_passages(texts[start : start + step])
        print(f"  table {start + step}/{len(texts)}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t
    tmp = Path(out).with_suffix(".tmp.npz")
    # keys as one text (one per line): an array of fixed-width strings would be 140 MB
    np.savez(tmp, keys=np.array("\n".join(keys)), vectors=vecs, model_id=model.model_id)
    os.replace(tmp, out)
    return {"sentences": len(texts), "seconds": seconds, "model_id": model.model_id}


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _can_follow(s: str) -> bool:
    """A donor sentence the splitter will cut out again wherever it is put: it ends a
    sentence and starts like one."""
    return s[-1:] in ".!?" and (s[:1].isupper() or s[:1] in "„\"'(")


def phase_seeds(bench: str, table: str, seeds: str, copies: str, queries_out: str) -> dict:
    """Write the archive: one .jsonl seed per copy; copy 0 is gnad-test as it is.

    A copy's article keeps each sentence with probability 0.7 and otherwise takes a
    sentence of another article. An article is drawn again (up to MAX_TRIES) until
    every passage the product cuts from it is new and every sentence of it is in the
    table (so the derived embedder never falls back to the real model).
    """
    from benchmarks.speed import make_queries, title_of
    from indexer.seeds import _clean_text, parse_jsonl, split_passages

    with np.load(table, allow_pickle=False) as data:
        known = set(str(data["keys"]).split("\n"))
    rows = gnad_rows(Path(bench))
    arts = [(label, sentences(_clean_text(text))) for label, text in rows]
    donors = [[s for s in sents if _can_follow(s)] for _, sents in arts]
    donor_arts = [i for i, d in enumerate(donors) if d]
    out = Path(seeds)
    out.mkdir(parents=True, exist_ok=True)
    seen: set[bytes] = set()
    stats = {"articles": 0, "passages": 0, "dup_passages_1x": 0, "redrawn": 0, "given_up": 0}
    swapped = kept = 0
    for c in range(int(copies)):
        lines = []
        for i, (label, sents) in enumerate(arts):
            for attempt in range(MAX_TRIES):
                rng = random.Random(f"{c}/{i}/{attempt}")
                if c == 0:
                    chosen = list(sents)
                else:
                    chosen = []
                    for s in sents:
                        if rng.random() < SWAP_SHARE:
                            j = rng.choice(donor_arts)
                            while j == i:
                                j = rng.choice(donor_arts)
                            chosen.append(rng.choice(donors[j]))
                        else:
                            chosen.append(s)
                text = " ".join(chosen)
                rec = {"id": f"c{c:03d}-{i:05d}", "title": title_of(label, text), "text": text}
                line = json.dumps(rec, ensure_ascii=False)
                parsed, _ = parse_jsonl(line, f"gnad-{c:03d}.jsonl")
                passages = split_passages(parsed[0])
                digests = [
                    hashlib.blake2b(p.text.encode(), digest_size=16).digest() for p in passages
                ]
                fresh = len(set(digests)) == len(digests) and not seen.intersection(digests)
                ok = all(sentence_key(s) in known for p in passages for s in sentences(p.text))
                if ok and (fresh or c == 0):
                    break
                stats["redrawn"] += 1
            else:
                stats["given_up"] += 1
                continue
            if c == 0:
                stats["dup_passages_1x"] += len(digests) - len(set(digests) - seen)
            else:
                swapped += sum(a != b for a, b in zip(chosen, sents, strict=True))
                kept += len(sents)
            seen.update(digests)
            lines.append(line)
            stats["passages"] += len(passages)
        stats["articles"] += len(lines)
        (out / f"gnad-{c:03d}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    queries = make_queries(rows, 250)
    Path(queries_out).write_text(json.dumps(queries, ensure_ascii=False), "utf-8")
    stats["distinct_passage_texts"] = len(seen)
    stats["swapped_share"] = swapped / max(kept, 1)
    stats["queries"] = len(queries)
    stats["seed_bytes"] = sum(p.stat().st_size for p in out.iterdir())
    return stats


def phase_build(seeds: str, index: str, table: str) -> dict:
    """``seedsearch index --full --ann hnsw --vectors sq8`` with the derived embedder, in
    a child process: wall time and the child's peak RSS."""
    cmd = [
        PY,
        "-m",
        "search.cli",
        "index",
        "--seeds",
        seeds,
        "--index",
        index,
        "--full",
        "--ann",
        "hnsw",
        "--vectors",
        "sq8",
        "--model",
        SPEC,
        "--json",
    ]
    t = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, TABLE_ENV: table}
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"build failed ({proc.returncode}): {proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "command": " ".join(cmd[1:]),
        "seconds": seconds,
        "peak_rss_mb": peak,
        "passages": report["passages"],
        "documents": report["documents"],
        "embedded": report["embedded"],
        "load": load(),
    }


def phase_layout(index: str) -> dict:
    """Sizes on disk, the vector layout, distinct texts, Whoosh segments."""
    import sqlite3

    from indexer.store import DOCS, VECTORS, WHOOSH, generations, keyword
    from indexer.store.files import disk_size
    from indexer.store.manifest import read_manifest

    gen = generations.current_generation(Path(index))
    m = read_manifest(gen)
    db = sqlite3.connect(f"file:{gen / DOCS}?mode=ro", uri=True)
    distinct = db.execute("SELECT count(DISTINCT th), count(*) FROM passages").fetchone()
    db.close()
    ix = keyword.open_index(gen / WHOOSH)
    segments = len(ix._read_toc().segments)
    ix.close()
    return {
        "size_bytes": disk_size(gen),
        "vectors_bytes": (gen / VECTORS).stat().st_size,
        "docs_bytes": (gen / DOCS).stat().st_size,
        "whoosh_bytes": disk_size(gen / WHOOSH),
        "files": len(m.checksums),
        "vector_index": m.vector_index,
        "passages": m.passages,
        "distinct_embedded_texts": distinct[0],
        "whoosh_segments": segments,
    }


def phase_open(index: str, mode: str) -> dict:
    """One open in this fresh process (imports done before the clock starts).

    ``mode``: ``open`` (SearchEngine.open), ``check`` (search.check.check_index:
    every file hashed), ``nostamps`` (open with the stamps removed first: every file
    hashed, then the stamps are written again, as after copying an index)."""
    from indexer.store import generations, stamps
    from search import SearchEngine
    from search.check import check_index

    if mode == "nostamps":
        (generations.current_generation(Path(index)) / stamps.STAMPS).unlink(missing_ok=True)
    import faiss  # noqa: F401
    import whoosh.index  # noqa: F401

    t = time.perf_counter()
    if mode == "check":
        check_index(index)
    else:
        SearchEngine.open(index, model=SPEC).close()
    return {"seconds": time.perf_counter() - t, "rss_mb": maxrss_mb(), "load": load()}


def phase_openparts(index: str) -> dict:
    """Where an open's time goes: the steps of SearchEngine.open, timed one by one
    (imports done before)."""
    import faiss  # noqa: F401
    import whoosh.index  # noqa: F401
    import whoosh.reading  # noqa: F401

    from indexer.bm25stats import CollectionStats
    from indexer.store import DOCS, VECTORS, WHOOSH, generations, keyword, manifest, stamps
    from indexer.store import vectors as vec
    from indexer.store.docstore import DocStore
    from search.bm25 import BM25Params, WhooshBM25
    from search.engine import not_in

    parts: dict[str, float] = {}

    def timed(name, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        parts[name] = time.perf_counter() - t
        return out

    index_dir = Path(index)
    gen = timed("current", generations.current_generation, index_dir)
    m = timed("manifest", manifest.read_checked, gen, index_dir)
    timed("sizes_and_stamps", stamps.verify_quick, gen, m.checksums)
    docs = timed("docstore", DocStore, gen / DOCS)
    faiss_index = timed("faiss_read", vec.read_vectors, gen / VECTORS)
    ix = timed("whoosh_open", keyword.open_index, gen / WHOOSH)
    stats = CollectionStats.from_json(m.bm25)
    bm25 = timed("bm25_arrays", WhooshBM25, ix, stats, BM25Params(), docs.ids)
    live = timed("keyword_ids", lambda: np.sort(bm25.live_vids()))
    ids = timed("vector_ids", vec.vector_ids, faiss_index)
    timed("id_comparison", lambda: (not_in(ids, live), not_in(live, np.sort(ids))))
    timed("docstore_id_summary", docs.vid_summary)
    timed("docstore_every_id (check only)", docs.vids)
    check_only = parts["docstore_every_id (check only)"]
    return {"parts": parts, "total": sum(parts.values()) - check_only}


def recall_at(got: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top k found, over queries (rows)."""
    return float(
        np.mean([len(set(g[:k]) & set(e[:k])) / k for g, e in zip(got, exact, strict=True)])
    )


def phase_search(index: str, queries_file: str, rounds: str) -> dict:
    """Hybrid latency (p50/p95/p99 per round), components, RSS, recall@10 of the
    HNSW+sq8 index against exact search over (a) the same sq8 codes decoded and (b)
    the float32 vectors the embedder gave."""
    import faiss

    from indexer.embedder import normalize_rows
    from indexer.store import vectors as vec
    from search import SearchEngine
    from search.engine import QUERY_FAISS_THREADS, faiss_threads

    queries = json.loads(Path(queries_file).read_text("utf-8"))
    t = time.perf_counter()
    engine = SearchEngine.open(index, model=SPEC)
    open_s = time.perf_counter() - t
    rss_open = maxrss_mb()
    for q in queries[:20]:
        engine.search(q, k=10)
    out: dict = {"open_s": open_s, "rss_open_mb": rss_open, "queries": len(queries)}
    rounds_out = []
    for _ in range(int(rounds)):
        times = []
        for q in queries:
            t = time.perf_counter()
            engine.search(q, k=10)
            times.append((time.perf_counter() - t) * 1000)
        rounds_out.append({"p50": pct(times, 50), "p95": pct(times, 95), "p99": pct(times, 99)})
    out["hybrid"] = rounds_out
    out["rss_search_mb"] = maxrss_mb()
    comp: dict[str, list[float]] = {"embed_query": [], "hnsw": [], "bm25": []}
    qv = []
    for q in queries:
        t = time.perf_counter()
        qv.append(engine.embedder.embed_query(q))
        comp["embed_query"].append((time.perf_counter() - t) * 1000)
    qv = normalize_rows(np.stack(qv))
    got = np.zeros((len(queries), 10), dtype=np.int64)
    with faiss_threads(QUERY_FAISS_THREADS):
        for i, v in enumerate(qv):
            t = time.perf_counter()
            _, ids = engine._vectors.search(v[None, :], 10, params=engine._vector_params)
            comp["hnsw"].append((time.perf_counter() - t) * 1000)
            got[i] = ids[0]
    for q in queries:
        t = time.perf_counter()
        engine.bm25(q, 100)
        comp["bm25"].append((time.perf_counter() - t) * 1000)
    out["components"] = {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in comp.items()}
    out["rss_after_components_mb"] = maxrss_mb()
    # exact search: (a) over the stored (decoded sq8) vectors, (b) over float32
    vids = vec.vector_ids(engine._vectors)
    decoded = vec.reconstruct(engine._vectors, vids.tolist())
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(decoded.shape[1]))
    flat.add_with_ids(decoded, vids)
    _, exact_sq8 = flat.search(qv, 10)
    del flat, decoded
    stored = engine.docs.passages_by_vid(vids.tolist())
    model = engine.embedder
    rows = normalize_rows(model.embed_passages([stored[int(v)].text for v in vids]))
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(rows.shape[1]))
    flat.add_with_ids(rows, vids)
    _, exact_f32 = flat.search(qv, 10)
    out["recall10_vs_exact_sq8"] = recall_at(got, exact_sq8)
    out["recall10_vs_exact_float32"] = recall_at(got, exact_f32)
    out["derived_fallbacks"] = getattr(model, "fallbacks", None)
    out["vector_index"] = engine.manifest.vector_index
    engine.close()
    out["load"] = load()
    return out


def sub(work: Path, phase: str, *args: str) -> dict:
    """Run one phase in a fresh interpreter; its JSON result."""
    cmd = [PY, __file__, "--phase", phase, *args]
    t = time.perf_counter()
    env = {**os.environ, TABLE_ENV: str(work / "sentences.npz")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"phase {phase} failed ({proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {phase} {' '.join(args)[-60:]}: {time.perf_counter() - t:.0f} s", flush=True)
    return result


def fmt_rounds(rounds: list[dict], key: str) -> str:
    return " / ".join(f"{r[key]:.1f}" for r in rounds)


def report(r: dict, args, started: str) -> str:
    """benchmarks/results/scale.md from the phases' results."""
    seeds, build, lay, search = r["seeds"], r["build"], r["layout"], r["search"]
    opens = [o["seconds"] for o in r["open"]]
    mb = 1 / (1024 * 1024)
    hyb = search["hybrid"]
    p50 = max(h["p50"] for h in hyb)
    ratio = max(h["p99"] / h["p50"] for h in hyb)
    rss = max(search["rss_search_mb"], max(o["rss_mb"] for o in r["open"]))
    recall = search["recall10_vs_exact_float32"]
    lines = [
        f"# 100x on one machine ({date.today().isoformat()})",
        "",
        f"Command: `.venv/bin/python benchmarks/scale.py --copies {args.copies} "
        f"--open-runs {args.open_runs} --rounds {args.rounds}` on 2 CPU cores shared with "
        f"other jobs (load average 1/5/15 min at start {started}, at the end "
        f"{r.get('ended') or load()}). "
        "Every phase runs in a fresh process; the page cache is warm (the files were "
        "just written or read), as for a server that restarts.",
        "",
        "## The archive",
        "",
        f"- {seeds['articles']:,} articles, {build['passages']:,} passages "
        f"({lay['distinct_embedded_texts']:,} distinct passage texts) in {args.copies} "
        f".jsonl seeds ({seeds['seed_bytes'] * mb:.0f} MB), built from the 1,028 gnad-test "
        "articles: copy 0 is gnad-test as it is; in copies 1-99 each sentence of an "
        f"article is swapped for a sentence of another article with probability "
        f"{SWAP_SHARE} (measured: {seeds['swapped_share']:.3f}); an article is drawn "
        f"again until all its passages are new ({seeds['redrawn']} redraws, "
        f"{seeds['given_up']} given up). No two passages have the same text, so neither "
        "the vector reuse of the indexer nor near-identical copies flatter the build or "
        "the graph (the 100 variants of an article are still near one another, as "
        "follow-up reports of one story are).",
        f"- **What is real and what is derived.** Real: every seed file, parse, passage "
        f"split, German analysis, the Whoosh keyword index, the document store, the "
        f"FAISS HNSW32+sq8 graph over {lay['passages']:,} vectors, query embedding "
        f"(e5-small, 'query: ' prompt) and every timing below. Derived: the passage "
        f"vectors. The {r['table']['sentences']:,} distinct sentences of the 1x texts "
        f"were embedded for real with e5-small ({r['table']['seconds']:.0f} s); a "
        "passage's vector is the word-count weighted mean of its sentences' vectors, "
        "normalised (`benchmarks.scale:derived_embedder`, which the index records as "
        f"its model; {search['derived_fallbacks']} sentences missing from the table). "
        "Such vectors are not what e5-small gives for the whole passage, so retrieval "
        "quality is not measured here (quality.md measures it on real vectors); the "
        "graph's recall is measured against exact search over the same vectors.",
        "",
        "## Figures",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| build: `seedsearch index --full --ann hnsw --vectors sq8` | "
        f"{build['seconds']:.0f} s ({build['passages'] / build['seconds']:.0f} passages/s; "
        f"peak RSS {build['peak_rss_mb']:.0f} MB; embedding derived, nearly free) |",
        f"| index size on disk | {lay['size_bytes'] * mb:.0f} MB (vectors.faiss "
        f"{lay['vectors_bytes'] * mb:.0f} MB, docs.sqlite {lay['docs_bytes'] * mb:.0f} MB, "
        f"whoosh/ {lay['whoosh_bytes'] * mb:.0f} MB in {lay['whoosh_segments']} "
        f"segments; {lay['files']} checksummed files) |",
        f"| vector index | {lay['vector_index']} |",
        f"| `SearchEngine.open` (fresh process, {len(opens)} runs) | "
        + " / ".join(f"{x:.2f}" for x in opens)
        + " s |",
        "| where one open's time goes (s) | "
        + ", ".join(f"{k} {v:.3f}" for k, v in r["openparts"]["parts"].items())
        + " |",
        "| open after the index was copied (no stamps: every file hashed once) | "
        + " / ".join(f"{o['seconds']:.2f}" for o in r["open_nostamps"])
        + " s |",
        "| `seedsearch check` (every file hashed, ids compared) | "
        + " / ".join(f"{o['seconds']:.2f}" for o in r["check"])
        + " s |",
        f"| warm hybrid p50 ({search['queries']} queries, k=10, depth 100; per round) | "
        f"{fmt_rounds(hyb, 'p50')} ms |",
        f"| warm hybrid p95 | {fmt_rounds(hyb, 'p95')} ms |",
        f"| warm hybrid p99 | {fmt_rounds(hyb, 'p99')} ms |",
        f"| components p50 / p99: query embedding | "
        f"{search['components']['embed_query']['p50']:.1f} / "
        f"{search['components']['embed_query']['p99']:.1f} ms |",
        f"| HNSW search (k=10, efSearch from the index, 1 thread) | "
        f"{search['components']['hnsw']['p50']:.1f} / "
        f"{search['components']['hnsw']['p99']:.1f} ms |",
        f"| BM25 (depth 100) | {search['components']['bm25']['p50']:.1f} / "
        f"{search['components']['bm25']['p99']:.1f} ms |",
        f"| RSS after open | {search['rss_open_mb']:.0f} MB |",
        f"| peak RSS while searching | {search['rss_search_mb']:.0f} MB |",
        f"| recall@10, HNSW+sq8 vs exact search over the float32 vectors | {recall:.4f} |",
        f"| recall@10, HNSW+sq8 vs exact search over the same sq8 codes | "
        f"{search['recall10_vs_exact_sq8']:.4f} |",
        "",
        "## Targets (issue 14)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, value, ok in (
        ("open a 100x index <= 1 s", f"{max(opens):.2f} s (slowest run)", max(opens) <= 1),
        ("hybrid p50 <= 30 ms", f"{p50:.1f} ms (slowest round)", p50 <= 30),
        ("hybrid p99 <= 3x p50", f"{ratio:.1f}x (worst round)", ratio <= 3),
        (
            "recall@10 >= 0.98, the HNSW graph (vs exact search over the same sq8 vectors)",
            f"{search['recall10_vs_exact_sq8']:.4f}",
            search["recall10_vs_exact_sq8"] >= 0.98,
        ),
        (
            "recall@10 >= 0.98, graph and sq8 together (vs exact float32)",
            f"{recall:.4f}",
            recall >= 0.98,
        ),
        ("RSS <= 1.5 GB", f"{rss:.0f} MB", rss <= 1536),
    ):
        lines.append(f"| {name} | {value} | {'yes' if ok else 'NO'} |")
    comp = search["components"]
    lines += [
        "",
        "## Notes",
        "",
        f"- **Where a hybrid query goes**: BM25 {comp['bm25']['p50']:.1f} ms, query "
        f"embedding {comp['embed_query']['p50']:.1f} ms, HNSW {comp['hnsw']['p50']:.1f} ms "
        "(p50, measured apart). BM25 grows linearly with the collection: it reads every "
        "posting of every query term from Whoosh's pickled, zlib-compressed blocks of 128 "
        "postings, decoded in Python (three quarters of the BM25 time in the 10x profile, "
        "profile-hybrid-10x.txt), so it is most of a hybrid query and what puts the 30 ms "
        "target at risk on a loaded machine; the fix is a postings layout numpy reads "
        "without decoding (contiguous doc number and frequency arrays per term, "
        "memory-mapped), not done here. Other jobs loaded the 2 cores during the runs "
        "(load averages in the first line).",
        "- **sq8 costs recall with e5-small**: e5 vectors are anisotropic (mean cosine to "
        "their centroid 0.90 for the real sentence vectors, 0.99 for means of 10 of them), "
        "so the ranking rests on small differences that 8-bit codes blur. Measured apart "
        "on the 23,103 real e5 sentence vectors and the 250 queries, flat sq8 against flat "
        "float32 gives recall@10 0.984 (float16: 0.999); on the derived 100x vectors graph "
        "and codes together give the figure above. Where recall against float32 matters, "
        "`--vectors float16` doubles the vector file (about 300 bytes more per passage).",
        "- **Open** reads no index file in full: sizes and stamps (stat) of the 4 "
        "checksummed files, the SQLite header, the FAISS file (the one big read), "
        "Whoosh's TOC and the BM25 length/id columns; the document store's ids are "
        "compared by count, sum, minimum and maximum (one SQLite aggregate). "
        "`seedsearch check` hashes every file and compares every id.",
        f"- **Build**: the keyword step dominates (Whoosh's 256 MB posting pool spills "
        f"sorted runs to disk at this size, 2.7 GB of temporary runs merged into a "
        f"{lay['whoosh_bytes'] / (1024 * 1024):.0f} MB segment); peak RSS "
        f"{build['peak_rss_mb']:.0f} MB, because the build holds all passages, terms and "
        "vectors until the publish (see cluster.md).",
    ]
    return "\n".join(lines) + "\n"


def default_bench() -> Path:
    """gnad-test next to the checkout (../shared), else /work/shared."""
    near = ROOT.parent / "shared" / "bench" / "gnad-test"
    return near if near.is_dir() else Path("/work/shared/bench/gnad-test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--bench", type=Path, default=default_bench())
    ap.add_argument("--work", type=Path, default=Path("/tmp/seedsearch-scale"))
    ap.add_argument("--copies", type=int, default=100, help="size of the archive (100 = 100x)")
    ap.add_argument("--open-runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the query set")
    ap.add_argument("--rebuild", action="store_true", help="build again even if built")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.md")
    ap.add_argument(
        "--report-only", action="store_true", help="write scale.md from the last results"
    )
    a = ap.parse_args()
    if a.report_only:
        r = json.loads((a.work / f"results-{a.copies}.json").read_text())
        a.out.write_text(report(r, a, r.get("started", "?")), "utf-8")
        return
    if a.phase:
        result = globals()[f"phase_{a.phase}"](*a.args)
        print(json.dumps(result))
        return
    started = load()
    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    table, seeds = work / "sentences.npz", work / f"seeds-{a.copies}"
    index, queries = work / f"index-{a.copies}", work / "queries.json"
    state = work / f"results-{a.copies}.json"
    r: dict = json.loads(state.read_text()) if state.exists() and not a.rebuild else {}

    def step(name: str, *args: str) -> dict:
        if name not in r:
            r[name] = sub(work, *args)
            state.write_text(json.dumps(r, indent=1))
        return r[name]

    step("table", "table", str(a.bench), str(table))
    step("seeds", "seeds", str(a.bench), str(table), str(seeds), str(a.copies), str(queries))
    step("build", "build", str(seeds), str(index), str(table))
    step("layout", "layout", str(index))
    r["open"] = [sub(work, "open", str(index), "open") for _ in range(a.open_runs)]
    r["open_nostamps"] = [sub(work, "open", str(index), "nostamps") for _ in range(2)]
    r["check"] = [sub(work, "open", str(index), "check") for _ in range(2)]
    r["openparts"] = sub(work, "openparts", str(index))
    r["search"] = sub(work, "search", str(index), str(queries), str(a.rounds))
    r["started"], r["ended"] = started, load()
    state.write_text(json.dumps(r, indent=1))
    text = report(r, a, started)
    a.out.write_text(text, "utf-8")
    print(text)


if __name__ == "__main__":
    main()
