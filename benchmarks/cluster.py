"""Cluster builds: a local build vs Dask workers, and the coordinator's own ceiling.

On gnad-test (1,028 German news articles as one .txt seed each; 10x = the same texts
under new file names) this measures, each build in a fresh process:

* with the real model (USE): ``seedsearch index`` local vs ``--workers 2`` from the
  command line (cold: interpreter, imports, cluster start and model loads included),
  and in-process builds with the model loaded (local) or the workers warm (cluster);
* with a zero-cost embedder (``ZeroEmbedder``): the coordinator's own work at 1x and
  10x, with the keyword index written by the coordinator (as a local build does) and
  with the workers writing the keyword segments (the coordinator only adopts them);
* the FAISS HNSW build rate (the coordinator builds the graph of a large index),

and from the measured rates the expected build time of 20 million passages on 10 and
50 workers. Writes benchmarks/results/cluster.md (and cluster.json).

    python benchmarks/cluster.py [--runs 2] [--sizes 1,10] [--articles N] [--skip-use]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also for the workers: spawned processes inherit sys.path

ZERO = "benchmarks.cluster:ZeroEmbedder"
USE = "use-m3"
TARGET_PASSAGES = 20_000_000


class ZeroEmbedder:
    """No model: a fixed pseudo-random unit vector per text (a table lookup by CRC32),
    so that a build measures everything but the embedding."""

    spec = ZERO
    dim = 512
    _table = None

    @classmethod
    def _rows(cls) -> np.ndarray:
        if cls._table is None:
            t = np.random.default_rng(0).standard_normal((4096, cls.dim)).astype(np.float32)
            cls._table = t / np.linalg.norm(t, axis=1, keepdims=True)
        return cls._table

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        rows = self._rows()
        return rows[[zlib.crc32(t.encode("utf-8")) % len(rows) for t in texts]]

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_passages([text])[0]


# ------------------------------------------------------------------ helpers


def load_gnad(path: Path, limit: int | None) -> list[tuple[str, str]]:
    """(label, text) rows of articles.csv: ``label;'text'`` with ' as quote char."""
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(r[0], r[1]) for r in csv.reader(f, delimiter=";", quotechar="'") if len(r) >= 2]
    return rows[:limit] if limit else rows


def write_seeds(rows: list[tuple[str, str]], folder: Path, copies: int) -> None:
    """One .txt per article (a read task takes 64 files), ``copies`` times."""
    folder.mkdir(parents=True, exist_ok=True)
    for c in range(copies):
        for i, (label, text) in enumerate(rows):
            name = f"{label.lower()}-{c:02d}-{i:05d}.txt"
            (folder / name).write_text(text + "\n", encoding="utf-8")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def sub(phase: str, *args: str) -> dict:
    """Run one phase of this script in a fresh interpreter; its JSON result."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--phase", phase, *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"phase {phase} failed ({proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {phase} {' '.join(args)[-60:]}: {time.perf_counter() - t:.0f} s", flush=True)
    return result


def cli(seeds: Path, index: Path, model: str, extra: Sequence[str] = ()) -> dict:
    """Wall time of ``seedsearch index --full`` in a fresh process (from the repo root)."""
    cmd = [sys.executable, "-m", "search.cli", "index", "--seeds", str(seeds)]
    cmd += ["--index", str(index), "--model", model, "--full", "--json", *extra]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    report = json.loads(proc.stdout)
    print(f"  cli {' '.join(extra) or 'local'}: {wall:.0f} s", flush=True)
    return {"wall_s": wall, "passages": report["passages"], "load": load()}


def timed(timers: dict[str, float], name: str, fn: Callable) -> Callable:
    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            timers[name] += time.perf_counter() - t

    return wrapper


def instrument(timers: dict[str, float]) -> dict:
    """Time the build's stages (wrapping the product's functions). Cluster waits
    (gathering results from the workers) are booked per step as ``wait_*``."""
    from indexer import cluster, core
    from indexer.store import generations, keyword, vectors

    step = {"name": "other"}

    def in_step(name: str, fn: Callable) -> Callable:
        def wrapper(*a, **kw):
            step["name"] = name
            try:
                return timed(timers, name, fn)(*a, **kw)
            finally:
                step["name"] = "other"

        return wrapper

    core.Indexer._scan = in_step("scan", core.Indexer._scan)
    core.Indexer._passages = in_step("passages", core.Indexer._passages)
    keyword.update = in_step("keyword", keyword.update)
    core.Indexer._write_docs = timed(timers, "docstore", core.Indexer._write_docs)
    core.Indexer._vector_index = timed(timers, "faiss", core.Indexer._vector_index)
    vectors.write_vectors = timed(timers, "faiss", vectors.write_vectors)
    generations.publish = timed(timers, "publish", generations.publish)
    core.Indexer._embed = timed(timers, "embed", core.Indexer._embed)
    gather = cluster.ClusterBuild._gather
    sizes = {"bytes": 0}

    def gather_timed(self, futures):
        t = time.perf_counter()
        try:
            result = gather(self, futures)
        finally:
            timers[f"wait_{step['name']}"] += time.perf_counter() - t
        if step["name"] == "passages":  # what the coordinator unpickles of the passages
            t = time.perf_counter()
            blob = pickle.dumps(result, protocol=5)
            sizes["bytes"] += len(blob)
            t = time.perf_counter()
            pickle.loads(blob)
            timers["unpickle_passages"] += time.perf_counter() - t
        return result

    cluster.ClusterBuild._gather = gather_timed
    return sizes


def build_result(report, total: float, timers: dict[str, float], extra: dict) -> dict:
    parts = dict(timers)
    waits = sum(v for k, v in parts.items() if k.startswith("wait_"))
    embed = parts.get("embed", 0.0)
    if any(k.startswith("wait_") for k in parts):
        # the coordinator's own work: all but waiting for workers (the unpickling of
        # gathered passages is its work too: measured again after the build)
        own = total - waits - embed + parts.get("unpickle_passages", 0.0)
    else:
        worker_side = (
            parts.get("scan", 0) + parts.get("passages", 0) + embed
        )  # parse, split, analysis, embedding
        own = total - worker_side
    return {
        "passages": report.passages,
        "embedded": report.embedded,
        "seconds": total,
        "rate": report.passages / total,
        "coordinator_s": own,
        "coordinator_rate": report.passages / own if own > 0 else None,
        "parts": parts,
        "load": load(),
        **extra,
    }


# ------------------------------------------------------------------- phases


def phase_local(seeds: str, index: str, model: str) -> dict:
    """A local full build, model loaded before timing."""
    from indexer import Indexer

    timers: dict[str, float] = defaultdict(float)
    instrument(timers)
    indexer = Indexer(seeds, index, model=model)
    t = time.perf_counter()
    indexer.embedder  # noqa: B018 - load the model outside the timing
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    report = indexer.update(full=True)
    return build_result(report, time.perf_counter() - t, timers, {"model_load_s": load_s})


def phase_cluster(seeds: str, index: str, model: str, workers: str, segment_min: str) -> dict:
    """A cluster full build on warm local workers (started, and the model loaded on
    each by a small build, before timing)."""
    import logging

    import distributed

    from indexer import Indexer
    from indexer import cluster as cluster_mod

    cluster_mod.SEGMENT_MIN = int(segment_min)
    local = distributed.LocalCluster(
        n_workers=int(workers),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )
    client = distributed.Client(local)
    try:
        warm = Path(index).with_name(Path(index).name + "-warmup")
        warm_seeds = warm / "seeds"
        warm_seeds.mkdir(parents=True)
        for i, name in enumerate(sorted(os.listdir(seeds))[: 4 * int(workers)]):
            shutil.copy(Path(seeds) / name, warm_seeds / f"w{i}-{name}")
        cluster_mod.BATCH_FILES, batch = 1, cluster_mod.BATCH_FILES
        Indexer(warm_seeds, warm / "index", model=model, cluster=client).update()
        cluster_mod.BATCH_FILES = batch
        shutil.rmtree(warm)

        timers: dict[str, float] = defaultdict(float)
        sizes = instrument(timers)
        t = time.perf_counter()
        report = Indexer(seeds, index, model=model, cluster=client).update(full=True)
        total = time.perf_counter() - t
    finally:
        client.close()
        local.close()
    from indexer.store import WHOOSH, generations, keyword

    ix = keyword.open_index(generations.current_generation(Path(index)) / WHOOSH)
    segments = len(ix._segments())
    ix.close()
    return build_result(
        report,
        total,
        timers,
        {"workers": int(workers), "segments": segments, "passages_mb": sizes["bytes"] / 1e6},
    )


def phase_hnsw(n: str) -> dict:
    """FAISS HNSW32 (float32) build rate on n random unit vectors of 512 dims."""
    from indexer.store import vectors

    rng = np.random.default_rng(1)
    rows = rng.standard_normal((int(n), 512)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    t = time.perf_counter()
    vectors.build_vector_index(512, "hnsw", "float32", rows, np.arange(int(n)))
    s = time.perf_counter() - t
    return {"vectors": int(n), "seconds": s, "rate": int(n) / s, "load": load()}


PHASES = {"local": phase_local, "cluster": phase_cluster, "hnsw": phase_hnsw}


# ------------------------------------------------------------------- report


def both(runs: list[dict], key: str, fmt: str = "{:.1f}") -> str:
    return " / ".join(fmt.format(r[key]) for r in runs)


def best(runs: list[dict], key: str) -> float:
    return min(r[key] for r in runs)


def part(runs: list[dict], name: str) -> str:
    return " / ".join(f"{r['parts'].get(name, 0.0):.1f}" for r in runs)


def estimate(res: dict) -> list[str]:
    """Expected time of a 20M passage build on W workers from the measured rates."""
    use = res.get("use_cluster_warm")
    zero = res.get("zero")
    if not use or not zero:
        return ["(needs the USE and zero-cost runs)"]
    # per worker (one core, one thread), from the warm 2-worker USE build: the time
    # the coordinator waited for its workers (read, parse, split, analysis, embedding,
    # keyword segments) times the workers, per passage (idle tails count as work)
    u = min(use, key=lambda r: r["seconds"])
    worker_s = (u["seconds"] - u["coordinator_s"]) * u["workers"] / u["passages"]
    big = max(zero, key=lambda k: zero[k]["local"][0]["passages"])
    adopt = min(zero[big]["cluster_segments"], key=lambda r: r["seconds"])
    coord_s = adopt["coordinator_s"] / adopt["passages"]
    hnsw = max(r["rate"] for r in res["hnsw"])
    n = TARGET_PASSAGES
    lines = [
        "| workers | worker side (embed + parse + analysis + segments) | coordinator "
        "(gather, docstore, adopt, flat FAISS, publish) | HNSW graph on the coordinator | "
        "total (flat) | total (HNSW) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for w in (10, 50):
        side = n * worker_s / w
        coord = n * coord_s
        graph = n / hnsw
        lines.append(
            f"| {w} | {side / 3600:.1f} h | {coord / 3600:.1f} h | {graph / 3600:.1f} h | "
            f"{(side + coord) / 3600:.1f} h | {(side + coord + graph) / 3600:.1f} h |"
        )
    lines += [
        "",
        f"Rates used: worker side {1 / worker_s:.1f} passages/s per worker (USE, 1 thread, "
        f"from the best warm 2-worker build: {u['passages']} passages in "
        f"{u['seconds'] - u['coordinator_s']:.1f} s of worker-bound steps on 2 workers), "
        f"coordinator {1 / coord_s:.0f} passages/s "
        f"(its own work in the {big} zero-cost cluster build with worker segments), "
        f"HNSW32 graph {hnsw:.0f} vectors/s on this machine's 2 cores.",
        "",
        "Assumptions: workers of one core each, like these (a worker with more threads "
        "embeds faster, the rate scales with its cores); the worker-bound steps scale "
        "linearly (a batch is independent of the others; measured here on 2 workers "
        "only); the coordinator's own work grows linearly and runs after the workers' "
        "(the current design does not overlap them, so the times add up). Not in the "
        "figures: moving the data (the coordinator receives about 2.1 KB of passages and "
        "terms, 2 KB of float32 vector and 0.5-0.8 KB of keyword segment per passage, "
        "about 90 GB at 20M: 15 min at 1 Gbit/s); the scheduler's overhead (about 400,000 tasks "
        "for 20M passages in one-article files: minutes). The HNSW rate is on random "
        "vectors, a hard case; speed.md measured 24k USE vectors in 5.9 s (4,100/s), which "
        "would make the graph 1.4 h. HNSW insertion also slows with the size of the graph "
        "(log N).",
        "",
        "What these times do not show: the coordinator holds every new passage, its terms "
        "and its vector in memory until the publish (well over 100 GB at 20M passages: "
        "41 GB of vectors, again in the resume cache, plus the Python objects of passages "
        "and terms), and a 20M build leaves 400 keyword segments (at most 50,000 passages "
        "each) that no update merges at once. Both need work before a build of that size: "
        "a coordinator that streams batches into its writers, and a segment merge.",
    ]
    return lines


def report(res: dict, args, started: str, ended: str) -> str:
    out = [
        f"# Cluster builds ({date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/cluster.py --runs {args.runs} --sizes {args.sizes}` "
        f"on {os.cpu_count()} CPU cores shared with other jobs (load average 1/5/15 min "
        f"at start {started}, at the end {ended}). Corpus: gnad-test, one .txt seed per "
        "article; 10x = the same texts under new file names. Every build is a full build "
        "in a fresh process; figures of the runs are separated by ' / '. The cluster is a "
        "Dask LocalCluster of worker processes with one thread each, on the same 2 cores.",
        "",
    ]
    if "use_local" in res:
        loc, cl = res["use_local"], res["use_cluster_warm"]
        cli_l, cli_c = res["use_cli_local"], res["use_cli_workers"]
        out += [
            "## Real model (USE), 1x",
            "",
            "| build | seconds | passages/s |",
            "|---|---:|---:|",
            f"| `seedsearch index --full` (local, cold process) | {both(cli_l, 'wall_s')} | "
            + " / ".join(f"{r['passages'] / r['wall_s']:.0f}" for r in cli_l)
            + " |",
            f"| `seedsearch index --full --workers 2` (cold process, cluster start and model "
            f"loads included) | {both(cli_c, 'wall_s')} | "
            + " / ".join(f"{r['passages'] / r['wall_s']:.0f}" for r in cli_c)
            + " |",
            f"| local, model loaded | {both(loc, 'seconds')} | {both(loc, 'rate', '{:.0f}')} |",
            f"| 2 warm workers | {both(cl, 'seconds')} | {both(cl, 'rate', '{:.0f}')} |",
            "",
            "Stages (seconds; the cluster rows are the coordinator's waits for its workers):",
            "",
            "| stage | local | 2 workers |",
            "|---|---:|---:|",
            f"| scan (read + parse) | {part(loc, 'scan')} | {part(cl, 'wait_scan')} |",
            f"| passages (split + analysis) | {part(loc, 'passages')} | "
            f"{part(cl, 'wait_passages')} |",
            f"| embedding | {part(loc, 'embed')} | {part(cl, 'embed')} |",
            f"| keyword index | {part(loc, 'keyword')} | {part(cl, 'keyword')} |",
            f"| docstore | {part(loc, 'docstore')} | {part(cl, 'docstore')} |",
            f"| FAISS | {part(loc, 'faiss')} | {part(cl, 'faiss')} |",
            "",
        ]
    for size, z in res.get("zero", {}).items():
        rows = [
            ("local", z["local"]),
            ("2 workers, coordinator writes the keyword index", z["cluster_coordinator"]),
            ("2 workers, workers write keyword segments", z["cluster_segments"]),
        ]
        n = z["local"][0]["passages"]
        out += [
            f"## Coordinator ceiling, zero-cost embedder, {size} ({n} passages)",
            "",
            "| build | seconds | passages/s | coordinator's own s | coordinator ceiling "
            "passages/s | keyword s | docstore s | FAISS s | segments |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, runs in rows:
            out.append(
                f"| {name} | {both(runs, 'seconds')} | {both(runs, 'rate', '{:.0f}')} | "
                f"{both(runs, 'coordinator_s')} | {both(runs, 'coordinator_rate', '{:.0f}')} | "
                f"{part(runs, 'keyword')} | {part(runs, 'docstore')} | {part(runs, 'faiss')} | "
                + " / ".join(str(r.get("segments", 1)) for r in runs)
                + " |"
            )
        seg = z["cluster_segments"]
        out += [
            "",
            f"Passages and terms gathered by the coordinator: "
            f"{seg[0]['passages_mb']:.0f} MB pickled, unpickled in "
            f"{part(seg, 'unpickle_passages')} s (counted as the coordinator's own work). "
            "Keyword s with worker segments includes waiting for the last segment.",
            "",
        ]
    if "hnsw" in res:
        h = res["hnsw"]
        out += [
            f"FAISS HNSW32 float32 build of {h[0]['vectors']} vectors: "
            f"{both(h, 'seconds')} s = {both(h, 'rate', '{:.0f}')} vectors/s.",
            "",
        ]
    out += ["## Expected build of 20 million passages", "", *estimate(res), ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "gnad-test")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--sizes", default="1,10", help="replication factors for the zero-cost runs")
    ap.add_argument("--articles", type=int, default=None, help="first N articles (smoke test)")
    ap.add_argument("--skip-use", action="store_true", help="no real-model runs")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cluster.md")
    ap.add_argument("--report-only", type=Path, help="rewrite cluster.md from a cluster.json")
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](*args.rest)))
        return
    if args.report_only:
        data = json.loads(args.report_only.read_text("utf-8"))
        text = report(data["results"], args, data["started"], data["ended"])
        args.out.write_text(text + "\n", "utf-8")
        print(text)
        return
    if args.bench.name == "gnad-test" and not args.bench.is_dir():
        args.bench = Path("/work/shared/bench/gnad-test")

    started = load()
    rows = load_gnad(args.bench / "articles.csv", args.articles)
    work = Path(tempfile.mkdtemp(prefix="seedsearch-cluster-"))
    res: dict = {}
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
        for factor in sorted({1, *sizes}):
            write_seeds(rows, work / f"seeds-{factor}x", factor)
        s1 = work / "seeds-1x"
        print(f"{len(rows)} articles, work folder {work}", flush=True)
        if not args.skip_use:
            for key in ("use_cli_local", "use_cli_workers", "use_local", "use_cluster_warm"):
                res[key] = []
            for run in range(args.runs):
                ix = work / f"ix-use-{run}"
                res["use_cli_local"].append(cli(s1, ix, USE))
                res["use_cli_workers"].append(cli(s1, ix, USE, ["--workers", "2"]))
                res["use_local"].append(sub("local", str(s1), str(ix), USE))
                res["use_cluster_warm"].append(sub("cluster", str(s1), str(ix), USE, "2", "1000"))
                shutil.rmtree(ix, ignore_errors=True)
        res["zero"] = {}
        for factor in sizes:
            seeds = str(work / f"seeds-{factor}x")
            z: dict[str, list] = {"local": [], "cluster_coordinator": [], "cluster_segments": []}
            for run in range(args.runs):
                ix = str(work / f"ix-zero-{factor}x-{run}")
                z["local"].append(sub("local", seeds, ix, ZERO))
                never = str(10**12)  # the coordinator writes the keyword index
                z["cluster_coordinator"].append(sub("cluster", seeds, ix, ZERO, "2", never))
                # 1x is below the default SEGMENT_MIN: 1,000 makes two segments there too
                seg_min = str(min(5000, 1000 * factor))
                z["cluster_segments"].append(sub("cluster", seeds, ix, ZERO, "2", seg_min))
                shutil.rmtree(ix, ignore_errors=True)
            res["zero"][f"{factor}x"] = z
        res["hnsw"] = [sub("hnsw", str(24430)) for _ in range(args.runs)]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {"results": res, "started": started, "ended": load()}
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=1), "utf-8")
        text = report(res, args, started, data["ended"])
        args.out.write_text(text + "\n", "utf-8")
        print(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
