"""A searcher process for the load tests: searches while another process updates.

Usage: python _rel_searcher.py INDEX EXPECTED.json STOPFILE [MODEL]

EXPECTED.json holds ``{"versions": [{passage id: text}, ...], "queries": [...]}``: every
engine this process opens must hold exactly one of the versions, and every hit must
be a passage of that version with its text. Prints "ready" once the first search
worked, then, at the end, one JSON line: queries served, generations seen, errors.
MODEL: "fake" (default, the tests' FakeEmbedder) or an embedder spec such as use-m3.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    index, expected_path, stop = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    model_name = sys.argv[4] if len(sys.argv) > 4 else "fake"
    from search import SearchEngine

    if model_name == "fake":
        from conftest import FakeEmbedder

        model = FakeEmbedder()
    else:
        from indexer.embedder import load_embedder

        model = load_embedder(model_name)
    expected = json.loads(expected_path.read_text("utf-8"))
    versions = [dict(v) for v in expected["versions"]]
    queries = expected["queries"]
    served, errors, generations = 0, [], set()
    engine = None
    ready = False
    while not stop.exists():
        try:
            engine = SearchEngine.open(index, model=model) if engine is None else engine.refresh()
            generations.add(engine.manifest.generation)
            held = {p.id: p.text for p in engine.docs.all_passages()}
            matching = [v for v in versions if v == held]
            if not matching:
                errors.append(f"generation {engine.manifest.generation}: passages match no version")
            for q in queries:
                for mode in ("hybrid", "bm25", "vector"):
                    hits = engine.search(q, k=5, mode=mode)
                    served += 1
                    for h in hits:
                        if not matching or matching[0].get(h.id) != h.text:
                            errors.append(f"{q!r}/{mode}: hit {h.id} is not in its version")
        except Exception:  # every failure is a finding, reported to the test
            errors.append(traceback.format_exc(limit=3))
        if not ready:
            print("ready", flush=True)
            ready = True
    print(
        json.dumps(
            {
                "served": served,
                "errors": errors[:20],
                "error_count": len(errors),
                "generations": sorted(generations),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
