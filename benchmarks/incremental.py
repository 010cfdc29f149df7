"""Cost of an update grows with the change, not with the corpus.

Builds an index of the 1,028 German news articles of ../shared/bench/gnad-test
(one .txt seed file each), then: edits one article, adds one, deletes one, renames
one, and times each incremental update next to the full build. Writes
benchmarks/results/incremental.md.

    .venv/bin/python benchmarks/incremental.py [--bench DIR] [--articles N]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from indexer import Indexer  # noqa: E402
from search import SearchEngine  # noqa: E402


def load_gnad(path: Path, limit: int | None) -> list[tuple[str, str]]:
    """(label, text) rows of articles.csv: ``label;'text'`` with ' as quote char."""
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(r[0], r[1]) for r in csv.reader(f, delimiter=";", quotechar="'") if len(r) >= 2]
    return rows[:limit] if limit else rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "gnad-test")
    ap.add_argument("--articles", type=int, default=None, help="use only the first N articles")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "incremental.md")
    args = ap.parse_args()

    rows = load_gnad(args.bench / "articles.csv", args.articles)
    work = Path(tempfile.mkdtemp(prefix="seedsearch-incr-"))
    seeds, index = work / "seeds", work / "index"
    seeds.mkdir()
    for i, (label, text) in enumerate(rows):
        (seeds / f"{label.lower()}-{i:05d}.txt").write_text(text + "\n", encoding="utf-8")
    names = sorted(p.name for p in seeds.iterdir())
    print(f"{len(names)} articles in {seeds}", flush=True)

    indexer = Indexer(seeds, index, progress=True)
    indexer.embedder  # load the model before timing, as a long-running indexer has it  # noqa: B018
    t = time.perf_counter()
    full = indexer.update(full=True)
    full_s = time.perf_counter() - t
    print(f"full build: {full.passages} passages in {full_s:.1f} s", flush=True)

    steps = []

    def step(name: str, change) -> None:
        change()
        t0 = time.perf_counter()
        report = indexer.update()
        seconds = time.perf_counter() - t0
        steps.append((name, seconds, report))
        print(f"{name}: {seconds:.2f} s, embedded {report.embedded}", flush=True)

    victim = seeds / names[0]
    step(
        "edit one article (one sentence appended)",
        lambda: victim.write_text(
            victim.read_text(encoding="utf-8").rstrip("\n")
            + " Die Regierung kündigte weitere Gespräche an.\n",
            encoding="utf-8",
        ),
    )
    step(
        "add one article",
        lambda: (seeds / "neu-99999.txt").write_text(
            "Nordkorea liefert Waffen an Russland, berichten westliche Geheimdienste.\n",
            encoding="utf-8",
        ),
    )
    step("delete one article", lambda: (seeds / names[1]).unlink())
    step("rename one article", lambda: (seeds / names[2]).rename(seeds / ("x-" + names[2])))
    step("no change", lambda: None)

    # The incremental index must answer like a fresh build.
    fresh = work / "fresh"
    Indexer(seeds, fresh, model=indexer.embedder).update(full=True)
    queries = ["Wer liefert Waffen?", "Regierung Gespräche", "Fußball Meisterschaft Wien"]
    with SearchEngine.open(index) as a, SearchEngine.open(fresh) as b:
        same = all(
            [(h.id, h.score) for h in a.search(q, k=10)]
            == [(h.id, h.score) for h in b.search(q, k=10)]
            for q in queries
        )
    shutil.rmtree(work)

    lines = [
        f"# Incremental updates ({date.today().isoformat()})",
        "",
        f"Command: `.venv/bin/python benchmarks/incremental.py` on {len(names)} gnad-test "
        f"articles ({full.passages} passages), {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end. Model loaded before timing.",
        "",
        "| update | seconds | share of full build | passages embedded |",
        "|---|---:|---:|---:|",
        f"| full build | {full_s:.2f} | 100 % | {full.embedded} |",
    ]
    for name, seconds, report in steps:
        lines.append(
            f"| {name} | {seconds:.2f} | {100 * seconds / full_s:.1f} % | {report.embedded} |"
        )
    lines += [
        "",
        f"Incremental index answers exactly like a fresh full build: {'yes' if same else 'NO'}.",
        "Targets: one changed article under 2 s and under 5 % of the full build.",
    ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
