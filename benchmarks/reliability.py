"""Reliability run: bad seeds at scale, fuzzing, and searchers under updates with faults.

Three phases, each bounded:

1. Bad seeds at scale: 10,000 tiny files, one big file (100 MB by default), a 10 MB
   line, binary/invalid/empty files; the update must finish, warn, and index the rest.
2. Fuzzing: the properties of tests/reliability/test_fuzz.py with many more examples.
3. Load: searcher processes query the index for ``--seconds`` while this process
   updates it over and over, injecting faults (disk full at each write, a damaged
   previous generation) into some of the updates. Every answer must come from one
   consistent version; the final index must equal a fresh build.

Writes benchmarks/results/reliability.md.

    .venv/bin/python benchmarks/reliability.py [--seconds 60] [--model fake|use-m3]
        [--big-mb 100] [--tiny 10000] [--fuzz 2000]
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from indexer.store import generations

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

import test_fuzz  # noqa: E402
from _faults import FAULTS, fault_patches, write_version  # noqa: E402
from conftest import GERMAN_ARTICLES, FakeEmbedder  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from indexer import Indexer  # noqa: E402
from indexer.embedder import load_embedder  # noqa: E402
from search import SearchEngine  # noqa: E402

_WORD_TEXT = (
    "Bundesregierung beschließt neue Regeln für Energie und Klima im Sommer Bayern "
    "Hitze Wetterdienst warnt Regen Köln Fußball Dortmund Putin Nordkorea Besuch"
)
WORDS = _WORD_TEXT.split()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ phase 1


def bad_seeds(work: Path, tiny: int, big_mb: int) -> dict:
    seeds, index = work / "seeds", work / "index"
    seeds.mkdir(parents=True)
    rng = random.Random(1)
    for i in range(tiny):
        (seeds / f"tiny/{i // 1000:02d}").mkdir(parents=True, exist_ok=True)
        (seeds / f"tiny/{i // 1000:02d}/t{i:05d}.txt").write_text(
            f"Meldung nummer{i} {rng.choice(WORDS)} {rng.choice(WORDS)}.\n", "utf-8"
        )
    with open(seeds / "big.txt", "w", encoding="utf-8") as f:  # paragraphs of ~80 words
        written = 0
        while written < big_mb * 1_000_000:
            para = " ".join(rng.choice(WORDS) for _ in range(80)) + ".\n\n"
            f.write(para)
            written += len(para.encode())
        f.write("Grosseschlussmarke am Ende.\n")
    (seeds / "line.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(1_300_000)), "utf-8")
    (seeds / "binary.txt").write_bytes(os.urandom(100_000).replace(b"\x00", b"\x01") + b"\x00")
    (seeds / "latin1.txt").write_bytes("Grüße aus München.\n".encode("cp1252"))
    (seeds / "empty.md").write_bytes(b"")
    (seeds / "broken.jsonl").write_text('{"id": 1, "text": "gut"}\n{kaputt\n' + "[" * 100_000)
    inputs = tiny + 6
    t = time.perf_counter()
    report = Indexer(seeds, index, model=FakeEmbedder()).update()
    seconds = time.perf_counter() - t
    with SearchEngine.open(index, model=FakeEmbedder()) as engine:
        ok = engine.search("Grosseschlussmarke", k=1, mode="bm25")[0].doc == "big.txt"
        last = tiny - 1
        hits = engine.search(f"nummer{last}", k=1, mode="bm25")
        ok &= bool(hits) and hits[0].doc.endswith(f"t{last:05d}.txt")
    expected_docs = tiny + 4  # big, line, latin1, broken.jsonl:1
    errors = 0 if ok and report.documents == expected_docs else 1
    result = {
        "inputs": inputs,
        "documents": report.documents,
        "expected_documents": expected_docs,
        "passages": report.passages,
        "warnings": len(report.warnings),
        "seconds": round(seconds, 1),
        "size_mb": round(sum(p.stat().st_size for p in seeds.rglob("*") if p.is_file()) / 1e6),
        "errors": errors,
    }
    shutil.rmtree(work)
    return result


# ------------------------------------------------------------------ phase 2


def fuzz(examples: int, work: Path) -> dict:
    tried: dict[str, int] = {}
    failures: dict[str, str] = {}
    cfg = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    def counted(name, check):
        @functools.wraps(check)  # hypothesis reads the signature of check
        def run(*args, **kwargs):
            tried[name] = tried.get(name, 0) + 1
            check(*args, **kwargs)

        return run

    for name, (check, strategies) in test_fuzz.STRATEGIES.items():
        try:
            cfg(given(*strategies)(counted(name, check)))()
        except Exception as exc:  # a property failed: that is a finding
            failures[name] = f"{type(exc).__name__}: {exc}"[:300]

    seeds = work / "seeds"
    seeds.mkdir(parents=True)
    for name, text in GERMAN_ARTICLES.items():
        (seeds / name).write_text(text, encoding="utf-8")
    Indexer(seeds, work / "index", model=FakeEmbedder()).update()
    with SearchEngine.open(work / "index", model=FakeEmbedder()) as engine:

        def query(q, k, mode, alpha):
            tried["search"] = tried.get("search", 0) + 1
            test_fuzz.check_search(engine, q, k, mode, alpha)

        try:
            cfg(given(*test_fuzz.QUERY_ARGS)(query))()
        except Exception as exc:
            failures["search"] = f"{type(exc).__name__}: {exc}"[:300]
    shutil.rmtree(work)
    return {"tried": tried, "failures": failures}


# ------------------------------------------------------------------ phase 3

VERSIONS = [
    GERMAN_ARTICLES,
    {
        **GERMAN_ARTICLES,
        "wechsel.txt": "Version Beta: Die Regierung senkt die Steuern.\n",
        "extra/neu.txt": "Ein neuer Artikel über Regen in Köln und Bonn.\n",
    },
    {
        "nordkorea.txt": GERMAN_ARTICLES["nordkorea.txt"],
        "wetter.md": "# Regen statt Hitze\n\nIn Köln regnet es seit Tagen.\n",
        "wechsel.txt": "Version Gamma: Steuern bleiben gleich.\n\nZweiter Absatz.\n",
    },
]
QUERIES = ["Hitze Bayern", "Putin Nordkorea", "Regierung Steuern", "Regen Köln", "Fußball"]


def load(seconds: float, model: str, searchers: int, work: Path) -> dict:
    embedder = FakeEmbedder() if model == "fake" else load_embedder(model)
    expected = []
    for i, version in enumerate(VERSIONS):
        s, ix = work / f"v{i}" / "s", work / f"v{i}" / "i"
        s.mkdir(parents=True)
        write_version(s, version)
        Indexer(s, ix, model=embedder).update()
        with SearchEngine.open(ix, model=embedder) as engine:
            expected.append({p.id: p.text for p in engine.docs.all_passages()})
    (work / "expected.json").write_text(
        json.dumps({"versions": expected, "queries": QUERIES}), encoding="utf-8"
    )
    seeds, index = work / "seeds", work / "index"
    seeds.mkdir()
    write_version(seeds, VERSIONS[0])
    indexer = Indexer(seeds, index, model=embedder)
    indexer.update()
    stop = work / "stop"
    worker = ROOT / "tests" / "reliability" / "_rel_searcher.py"
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(index), str(work / "expected.json"), str(stop)]
            + [model],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(searchers)
    ]
    for p in procs:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"searcher did not start: {p.stderr.read()[-2000:]}")
    rng = random.Random(7)
    updates = faults = update_errors = 0
    current = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        target = rng.choice([i for i in range(len(VERSIONS)) if i != current])
        write_version(seeds, VERSIONS[target])
        gen_before = generations.current_generation(index).name
        if rng.random() < 0.3:  # disk full at one write: the update fails, nothing changes
            point = rng.choice(FAULTS)
            faults += 1
            with ExitStack() as stack:
                for patch in fault_patches(point, embedder):
                    stack.enter_context(patch)
                try:
                    indexer.update()
                    if point != "embed":  # all vectors may be reusable: no embedding
                        update_errors += 1  # the fault was not noticed
                    updates += 1
                    current = target
                    continue
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        update_errors += 1
                except Exception:
                    update_errors += 1
            if generations.current_generation(index).name != gen_before:
                update_errors += 1
            continue
        try:
            indexer.update()
            updates += 1
            current = target
        except Exception as exc:
            log(f"update failed: {exc}")
            update_errors += 1
    stop.touch()
    indexer.update()  # the last round may have been a failed one
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        try:
            results.append(json.loads(out.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            results.append({"served": 0, "error_count": 1, "errors": [err[-2000:]]})
    fresh = work / "fresh"
    Indexer(seeds, fresh, model=embedder).update()
    lost = 0
    with (
        SearchEngine.open(index, model=embedder) as a,
        SearchEngine.open(fresh, model=embedder) as b,
    ):
        pa = {p.id: p.text for p in a.docs.all_passages()}
        pb = {p.id: p.text for p in b.docs.all_passages()}
        lost = len(set(pb.items()) - set(pa.items())) + len(set(pa.items()) - set(pb.items()))
        same = all(
            [(h.id, h.score) for h in a.search(q, k=10, mode=m)]
            == [(h.id, h.score) for h in b.search(q, k=10, mode=m)]
            for q in QUERIES
            for m in ("bm25", "vector", "hybrid")
        )
    shutil.rmtree(work)
    return {
        "seconds": seconds,
        "model": model,
        "searchers": searchers,
        "queries": sum(r["served"] for r in results),
        "generations_seen": sorted({g for r in results for g in r.get("generations", [])}),
        "searcher_errors": sum(r["error_count"] for r in results),
        "error_samples": [e for r in results for e in r["errors"]][:5],
        "updates": updates,
        "faults": faults,
        "update_errors": update_errors,
        "final_equals_fresh": same and lost == 0,
        "passages_lost_or_wrong": lost,
    }


# ------------------------------------------------------------------ report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the load phase")
    ap.add_argument("--model", default="fake", help="fake (FakeEmbedder) or e.g. use-m3")
    ap.add_argument("--searchers", type=int, default=3)
    ap.add_argument("--big-mb", type=int, default=100)
    ap.add_argument("--tiny", type=int, default=10_000)
    ap.add_argument("--fuzz", type=int, default=2000, help="examples per fuzzed property")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reliability.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seedsearch-rel-"))
    t0 = time.perf_counter()
    log(f"phase 1: {args.tiny} tiny files + {args.big_mb} MB file")
    seeds_result = bad_seeds(work / "seeds", args.tiny, args.big_mb)
    log(f"  {seeds_result}")
    log(f"phase 2: fuzzing, {args.fuzz} examples per property")
    fuzz_result = fuzz(args.fuzz, work / "fuzz")
    log(f"  {fuzz_result}")
    log(f"phase 3: {args.searchers} searchers for {args.seconds:.0f} s, model {args.model}")
    load_result = load(args.seconds, args.model, args.searchers, work / "load")
    log(f"  {load_result}")
    shutil.rmtree(work, ignore_errors=True)

    errors = (
        seeds_result["errors"]
        + len(fuzz_result["failures"])
        + load_result["searcher_errors"]
        + load_result["update_errors"]
        + (0 if load_result["final_equals_fresh"] else 1)
    )
    inputs = seeds_result["inputs"] + sum(fuzz_result["tried"].values())
    lost = load_result["passages_lost_or_wrong"]
    fuzz_rows = "\n".join(
        f"| {name} | {n:,} | {fuzz_result['failures'].get(name, 'none')} |"
        for name, n in sorted(fuzz_result["tried"].items())
    )
    text = f"""# Reliability run

Generated by `benchmarks/reliability.py` on {date.today().isoformat()} \
({time.perf_counter() - t0:.0f} s in all; {os.cpu_count()} CPUs).

| figure | value |
|---|---|
| inputs tried (seed files + fuzzed inputs) | {inputs:,} |
| queries served during updates | {load_result["queries"]:,} |
| successful updates during the load phase | {load_result["updates"]} |
| faults injected (disk full at one write of an update) | {load_result["faults"]} |
| errors (searchers, updates, fuzz properties, bad seeds) | **{errors}** |
| passages lost or wrong after the run (vs. a fresh build) | {lost} |

## 1. Bad seeds at scale

{seeds_result["inputs"]:,} seed files, {seeds_result["size_mb"]} MB: {args.tiny:,} tiny
files, one {args.big_mb} MB file, one 10 MB single-line file, a binary, a cp1252, an
empty file and a .jsonl with broken lines (one nested 100,000 deep). One update with
the FakeEmbedder: {seeds_result["documents"]:,} articles (expected
{seeds_result["expected_documents"]:,}), {seeds_result["passages"]:,} passages,
{seeds_result["warnings"]} warnings, {seeds_result["seconds"]} s.

## 2. Fuzzing (hypothesis, up to {args.fuzz:,} examples per property)

| property | inputs tried | failure |
|---|---|---|
{fuzz_rows}

## 3. Searchers during updates with faults

{load_result["searchers"]} searcher processes (model `{load_result["model"]}`) searched
{len(QUERIES)} queries in 3 modes, in a loop, for {load_result["seconds"]:.0f} s while
this process switched the seeds between {len(VERSIONS)} versions and updated the
index. Into 30 % of the updates a disk-full error (ENOSPC) was injected at one of:
{", ".join(FAULTS)}; such an update must fail with that error and leave the
published index as it was. Each searcher checked that every engine it opened holds
exactly one version's passages and that every hit belongs to it. (Damaged files are
covered by tests/reliability/test_damaged_index.py.)

- queries served: {load_result["queries"]:,}
- generations seen by searchers: {len(load_result["generations_seen"])}
- updates: {load_result["updates"]}, faults injected: {load_result["faults"]}
- searcher errors: {load_result["searcher_errors"]}, update errors (a fault not
  reported, or reported wrongly, or the index changed by a failed update):
  {load_result["update_errors"]}
- final index equals a fresh build: {load_result["final_equals_fresh"]}
"""
    if load_result["error_samples"]:
        text += "\nError samples:\n\n" + "\n".join(
            f"    {e[:400]}" for e in load_result["error_samples"]
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    log(f"wrote {args.out}: errors {errors}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
