"""The server on real uvicorn over TCP (127.0.0.1, a free port), and under load while
the index is updated 50 times."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from _serve_fixtures import build_archive, write_archive
from conftest import FakeEmbedder

from indexer import Indexer
from search import SearchEngine
from search.serve_adapter import SearchRequest, run_search
from search.server import ServerConfig, create_app, serving


def test_real_uvicorn_serves_api_and_page(tmp_path):
    seeds, index = build_archive(tmp_path)
    app = create_app(ServerConfig(index, seeds_dir=seeds, model=FakeEmbedder()))
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert url.startswith("http://127.0.0.1:")
        r = http.get("/api/search", params={"q": "Wer liefert Waffen?", "k": 2})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json()["hits"][0]["doc"] == "nordkorea.txt"
        page = http.get("/", params={"q": "Hitze"})
        assert page.status_code == 200 and "Hitzewelle" in page.text
        assert http.get("/api/search", params={"q": "Hitze", "k": "x"}).status_code == 400
        assert http.get("/healthz").json()["status"] == "ok"


VERSION_A = "Version Alpha: Die Regierung plant neue Steuern.\n\nZweiter Absatz Alpha.\n"
VERSION_B = "Version Beta: Die Regierung senkt die Steuern in Köln.\n"
QUERIES = ["Regierung Steuern", "Version Alpha Beta", "Hitze Bayern", "Sieg Köln"]


def answer_of(engine, q: str) -> list:
    return [(h["id"], h["score"]) for h in run_search(engine, SearchRequest(q=q, k=5))["hits"]]


@pytest.mark.slow
def test_load_during_50_updates_no_errors_no_mixed_answers(tmp_path):
    """8 clients search over HTTP while 50 generations are published: every answer
    is 200 and equals the answer of the one generation it says it came from, and each
    generation is one of the two versions of the seeds."""
    seeds, index = build_archive(tmp_path)
    write_archive(seeds, {"wechsel.txt": VERSION_A})
    Indexer(seeds, index, model=FakeEmbedder()).update()
    expected: dict[int, dict] = {}

    def record() -> None:
        with SearchEngine.open(index, model=FakeEmbedder()) as engine:
            expected[engine.manifest.generation] = {q: answer_of(engine, q) for q in QUERIES}

    record()
    app = create_app(ServerConfig(index, model=FakeEmbedder(), interval=0.05))
    seen: list[tuple[int, str, list]] = []
    failures: list[str] = []
    done = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = n
            while not done.is_set():
                q = QUERIES[i % len(QUERIES)]
                i += 1
                try:
                    r = http.get("/api/search", params={"q": q, "k": 5})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                    continue
                body = r.json()
                seen.append((body["generation"], q, [(h["id"], h["score"]) for h in body["hits"]]))

    with serving(app) as url:
        clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in clients:
            t.start()
        try:
            for update in range(50):
                text = VERSION_B if update % 2 == 0 else VERSION_A
                write_archive(seeds, {"wechsel.txt": text})
                report = Indexer(seeds, index, model=FakeEmbedder()).update()
                assert report.changed == ["wechsel.txt"]
                record()
            final = max(expected)
            assert app.state.live.wait_for(lambda e: e.manifest.generation == final, 10)
            time.sleep(0.3)
        finally:
            done.set()
            for t in clients:
                t.join(timeout=30)
    assert failures == []
    assert len(expected) == 51
    mixed = [(g, q) for g, q, hits in seen if hits != expected[g][q]]
    assert mixed == []
    distinct = {tuple(sorted((q, tuple(a)) for q, a in snap.items())) for snap in expected.values()}
    assert len(distinct) == 2  # every generation is version A or version B
    served = {g for g, _, _ in seen}
    assert final in served and len(served) >= 10  # the server followed the updates
