"""`seedsearch serve` under load: requests/s and latency p50/p99 at 1, 8 and 32
concurrent clients on the 1x and 10x gnad index, with 1 and 2 server workers, and
the in-process Python API in the same run as the reference; then 8 clients while the
index is updated 50 times (failed requests, answers that mix generations, and how
long the server takes to serve a newly published generation).

The server is the real command (`python -m search.cli serve`, a subprocess); the
clients are one asyncio process speaking plain HTTP/1.1 keep-alive (a thin client, so
that the measurement is the server's and not httpx's). Queries: the first six words
of gnad lead sentences plus '?', k=10, hybrid, e5-small (the default model).

    python benchmarks/serve.py [--sizes 1,10] [--clients 1,8,32] [--workers 1,2]
                               [--seconds 8] [--updates 50]

Indexes are built once into ~/.cache/seedsearch/bench-serve (reused when present).
Writes benchmarks/results/serve.md and serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import load, load_gnad, make_queries, pct, write_seed  # noqa: E402

CACHE = Path.home() / ".cache" / "seedsearch" / "bench-serve"
RESULTS = ROOT / "benchmarks" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_index(rows, copies: int) -> tuple[Path, Path, dict]:
    """(seeds, index, build info) of the gnad replication, built once and cached."""
    from indexer import Indexer

    seeds, index = CACHE / f"{copies}x" / "seeds", CACHE / f"{copies}x" / "index"
    info_file = CACHE / f"{copies}x" / "build.json"
    if info_file.exists() and (index / "CURRENT").exists():
        return seeds, index, json.loads(info_file.read_text())
    shutil.rmtree(CACHE / f"{copies}x", ignore_errors=True)
    write_seed(rows, seeds, copies)
    t = time.perf_counter()
    report = Indexer(seeds, index).update()
    info = {
        "passages": report.passages,
        "documents": report.documents,
        "seconds": round(time.perf_counter() - t, 1),
    }
    info_file.write_text(json.dumps(info))
    return seeds, index, info


# ------------------------------------------------------------------ client


class Conn:
    """One keep-alive HTTP/1.1 connection (enough HTTP for this server)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _load(port: int, paths: list[str], clients: int, seconds: float, warm: int):
    """``clients`` connections, each sending requests back to back for ``seconds``."""
    lat: list[float] = []
    errors = 0
    stop_at = 0.0

    async def one(n: int) -> None:
        nonlocal errors
        conn = Conn("127.0.0.1", port)
        i = n * 7
        try:
            for _ in range(warm):
                await conn.get(paths[i % len(paths)])
                i += 1
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                try:
                    status, _ = await conn.get(paths[i % len(paths)])
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    conn.close()
                    conn = Conn("127.0.0.1", port)
                    continue
                i += 1
                if status != 200:
                    errors += 1
                lat.append(time.perf_counter() - t)
        finally:
            conn.close()

    stop_at = time.perf_counter() + seconds + 2.0  # warm-up is inside the first 2 s
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(clients)))
    wall = time.perf_counter() - started
    return lat, errors, wall


def measure(port: int, queries: list[str], clients: int, seconds: float) -> dict:
    paths = ["/api/search?" + urlencode({"q": q, "k": 10}) for q in queries]
    lat, errors, wall = asyncio.run(_load(port, paths, clients, seconds, warm=3))
    # drop the first 10 % (warm-up after connect) from the latency figures only
    kept = lat[len(lat) // 10 :]
    return {
        "clients": clients,
        "requests": len(lat),
        "errors": errors,
        "rps": round(len(lat) / wall, 1),
        "p50_ms": round(pct(kept, 50) * 1000, 2),
        "p99_ms": round(pct(kept, 99) * 1000, 2),
    }


# ------------------------------------------------------------------ server


class Server:
    """`python -m search.cli serve` in a subprocess, until stopped."""

    def __init__(self, index: Path, workers: int, seeds: Path | None = None) -> None:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "search.cli",
            "serve",
            "--index",
            str(index),
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        if seeds is not None:
            cmd += ["--seeds", str(seeds)]
        self.log = open(CACHE / f"server-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.log.name}")
            try:
                status, _ = asyncio.run(Conn("127.0.0.1", self.port).get("/healthz"))
                if status == 200:
                    # every worker loads its model at startup; give them time to finish
                    self._warm(workers)
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("server did not start in 120 s")

    def _warm(self, workers: int) -> None:
        path = "/api/search?" + urlencode({"q": "Wer liefert Waffen?", "k": 10})

        async def go():
            conns = [Conn("127.0.0.1", self.port) for _ in range(4 * workers)]
            for _ in range(3):
                await asyncio.gather(*(c.get(path) for c in conns))
            for c in conns:
                c.close()

        asyncio.run(go())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def in_process(index: Path, queries: list[str], seconds: float, as_dict: bool = True) -> dict:
    """The Python API on the same queries: one caller, back to back. ``as_dict``: also
    ``result.to_dict()``, the data the API sends (it computes each hit's highlights)."""
    from search import SearchEngine

    with SearchEngine.open(index) as engine:
        for q in queries[:20]:
            engine.search(q, k=10)
        lat = []
        stop_at = time.perf_counter() + seconds
        i = 0
        started = time.perf_counter()
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            result = engine.search(queries[i % len(queries)], k=10)
            if as_dict:
                result.to_dict()
            lat.append(time.perf_counter() - t)
            i += 1
        wall = time.perf_counter() - started
    return {
        "clients": 1,
        "requests": len(lat),
        "errors": 0,
        "rps": round(len(lat) / wall, 1),
        "p50_ms": round(pct(lat, 50) * 1000, 2),
        "p99_ms": round(pct(lat, 99) * 1000, 2),
    }


# ----------------------------------------------------------------- updates


def update_phase(rows, src_seeds: Path, src_index: Path, updates: int, clients: int) -> dict:
    """``clients`` clients search while ``updates`` generations are published."""
    from indexer import Indexer
    from indexer.store import DOCS, generations
    from indexer.store.docstore import DocStore

    work = CACHE / "updates"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src_seeds, work / "seeds")
    shutil.copytree(src_index, work / "index")
    seeds, index = work / "seeds", work / "index"
    seed_file = seeds / "gnad.jsonl"
    lines = seed_file.read_text(encoding="utf-8").splitlines()
    target = json.loads(lines[0])
    marker = {
        "A": "Der Stadtrat stimmt dem Haushalt zu.",
        "B": "Der Stadtrat lehnt den Haushalt ab.",
    }
    query = "Stadtrat Haushalt"

    def write(version: str) -> None:
        rec = dict(target, text=target["text"] + "\n\n" + marker[version])
        seed_file.write_text(
            "\n".join([json.dumps(rec, ensure_ascii=False), *lines[1:]]) + "\n", encoding="utf-8"
        )

    def texts_of_current() -> tuple[int, dict[str, str]]:
        gen = generations.current_generation(index)
        docs = DocStore(gen / DOCS)
        try:
            return int(gen.name[4:]), {p.id: p.text for p in docs.all_passages()}
        finally:
            docs.close()

    indexer = Indexer(seeds, index)
    write("A")
    indexer.update()
    published: dict[int, float] = {}
    passages: dict[int, dict[str, str]] = {}
    g, texts = texts_of_current()
    published[g], passages[g] = time.time(), texts

    server = Server(index, workers=1)
    seen: list[tuple[float, int, list]] = []
    errors: list[str] = []
    done = threading.Event()
    queries = [query, *make_queries(rows, 20)]

    async def client(n: int) -> None:
        conn = Conn("127.0.0.1", server.port)
        i = n
        while not done.is_set():
            q = queries[i % len(queries)] if i % 2 else query
            i += 1
            try:
                status, body = await conn.get("/api/search?" + urlencode({"q": q, "k": 10}))
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors.append(repr(exc))
                conn = Conn("127.0.0.1", server.port)
                continue
            if status != 200:
                errors.append(f"{status} {body[:200]!r}")
                continue
            data = json.loads(body)
            seen.append(
                (time.time(), data["generation"], [(h["id"], h["text"]) for h in data["hits"]])
            )
        conn.close()

    def clients_thread() -> None:
        async def go():
            await asyncio.gather(*(client(n) for n in range(clients)))

        asyncio.run(go())

    t = threading.Thread(target=clients_thread)
    t.start()
    update_s = []
    try:
        time.sleep(1.0)
        for u in range(updates):
            write("B" if u % 2 == 0 else "A")
            t0 = time.perf_counter()
            indexer.update()
            update_s.append(time.perf_counter() - t0)
            g, texts = texts_of_current()
            published[g], passages[g] = time.time(), texts
            time.sleep(0.3)
        time.sleep(1.5)
    finally:
        done.set()
        t.join(timeout=60)
        server.stop()
    mixed = 0
    for _, gen, hits in seen:
        known = passages.get(gen, {})
        if any(known.get(pid) != text for pid, text in hits):
            mixed += 1
    delays = []
    for gen, at in sorted(published.items())[1:]:
        first = min((ts for ts, g2, _ in seen if g2 >= gen), default=None)
        if first is not None:
            delays.append(max(0.0, first - at))
    return {
        "updates": updates,
        "generations": len(published),
        "clients": clients,
        "requests": len(seen) + len(errors),
        "failed": len(errors),
        "mixed": mixed,
        "generations_served": len({g for _, g, _ in seen}),
        "update_s_median": round(statistics.median(update_s), 2),
        "notice_ms_p50": round(pct(delays, 50) * 1000),
        "notice_ms_max": round(max(delays) * 1000) if delays else None,
        "first_errors": errors[:3],
    }


# ----------------------------------------------------------------- report


def report(results: dict, args) -> str:
    lines = [
        f"# seedsearch serve under load ({date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/serve.py --sizes {args.sizes} --clients {args.clients} "
        f"--workers {args.workers} --seconds {args.seconds} --updates {args.updates}` on 2 CPU "
        f"cores shared with other jobs (load average at start {results['load_start']}, at the "
        f"end {results['load_end']}). The clients (one asyncio process, plain HTTP/1.1 "
        "keep-alive) run on the same 2 cores as the server. Hybrid search, k=10, e5-small; "
        "queries: the first six words of gnad-test lead sentences plus '?'. Each "
        f"configuration runs {args.seconds} s after a 2 s warm-up; latency is per request as "
        "the client sees it (connection kept open).",
        "",
    ]
    for size, r in results["sizes"].items():
        b = r["build"]
        lines += [
            f"### {size}: {b['documents']} articles, {b['passages']} passages",
            "",
            "| server | clients | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        ref = r["in_process"]
        so = r.get("search_only")
        if so:
            lines.append(
                f"| Python API in-process, `engine.search` only | 1 | {so['rps']} | "
                f"{so['p50_ms']} | {so['p99_ms']} | 0 |"
            )
        for when, run in zip(("before", "after"), r["in_process_runs"], strict=True):
            lines.append(
                f"| Python API in-process, `search(...).to_dict()`, {when} the HTTP runs "
                f"(reference) | 1 | {run['rps']} | "
                f"{run['p50_ms']} | {run['p99_ms']} | 0 |"
            )
        for m in r["http"]:
            lines.append(
                f"| serve --workers {m['workers']} | {m['clients']} | {m['rps']} | "
                f"{m['p50_ms']} | {m['p99_ms']} | {m['errors']} |"
            )
        one = [m for m in r["http"] if m["workers"] == 1 and m["clients"] == 1]
        if one:
            lines += [
                "",
                f"p50 at 1 client: HTTP {one[0]['p50_ms']} ms vs in-process "
                f"{ref['p50_ms']} ms (mean of both reference runs) = "
                f"**{one[0]['p50_ms'] / ref['p50_ms']:.2f}x** "
                "(target <= 2x).",
            ]
        for c in sorted({m["clients"] for m in r["http"]}):
            w1 = [m for m in r["http"] if m["workers"] == 1 and m["clients"] == c]
            w2 = [m for m in r["http"] if m["workers"] == 2 and m["clients"] == c]
            if w1 and w2 and c > 1:
                lines.append(
                    f"Throughput at {c} clients: 2 workers {w2[0]['rps']} req/s vs 1 worker "
                    f"{w1[0]['rps']} = **{w2[0]['rps'] / w1[0]['rps']:.2f}x** (target >= 1.6x)."
                )
        lines.append("")
    u = results.get("updates")
    if u:
        lines += [
            f"### {u['clients']} clients during {u['updates']} index updates (1x index)",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| requests | {u['requests']} |",
            f"| failed requests | **{u['failed']}** |",
            f"| answers not matching the passages of the generation they came from | "
            f"**{u['mixed']}** |",
            f"| generations published / seen in answers | {u['generations']} / "
            f"{u['generations_served']} |",
            f"| update (one article changed) median | {u['update_s_median']} s |",
            f"| publish -> first answer from it, p50 / max | {u['notice_ms_p50']} / "
            f"{u['notice_ms_max']} ms |",
            "",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "gnad-test")
    ap.add_argument("--sizes", default="1,10")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--updates", type=int, default=50)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.md")
    args = ap.parse_args()
    bench = args.bench if args.bench.exists() else Path("/work/shared/bench/gnad-test")
    rows = load_gnad(bench / "articles.csv")
    queries = make_queries(rows, args.queries)
    CACHE.mkdir(parents=True, exist_ok=True)
    results: dict = {"load_start": load(), "sizes": {}}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        seeds, index, build = ensure_index(rows, size)
        print(f"{size}x: {build['passages']} passages", flush=True)
        search_only = in_process(index, queries, args.seconds, as_dict=False)
        before = in_process(index, queries, args.seconds)
        entry = {"build": build, "in_process_runs": [before], "http": []}
        entry["search_only"] = search_only
        print(f"  in-process search only {search_only}; with to_dict {before}", flush=True)
        for workers in [int(w) for w in args.workers.split(",") if w]:
            server = Server(index, workers)
            try:
                for clients in [int(c) for c in args.clients.split(",") if c]:
                    m = measure(server.port, queries, clients, args.seconds)
                    m["workers"] = workers
                    entry["http"].append(m)
                    print(f"  workers={workers} {m}", flush=True)
            finally:
                server.stop()
        after = in_process(index, queries, args.seconds)  # the load may have changed
        print(f"  in-process again {after}", flush=True)
        entry["in_process_runs"].append(after)
        entry["in_process"] = {
            key: round((before[key] + after[key]) / 2, 2) for key in ("rps", "p50_ms", "p99_ms")
        }
        results["sizes"][f"{size}x"] = entry
    if args.updates:
        seeds, index, _ = ensure_index(rows, 1)
        results["updates"] = update_phase(rows, seeds, index, args.updates, clients=8)
        print(f"  updates {results['updates']}", flush=True)
    results["load_end"] = load()
    text = report(results, args)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
