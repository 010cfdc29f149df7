"""``seedsearch serve``: the HTTP API and the page, through Starlette's test client."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _serve_fixtures import ARCHIVE, SCRIPT, build_archive, write_archive
from conftest import FakeEmbedder
from starlette.testclient import TestClient
from typer.testing import CliRunner

from indexer import Indexer
from search import SearchEngine
from search import engine as engine_module
from search.cli import app as cli_app
from search.engine import index_status
from search.server import API_KEY_HEADER, ServerConfig, create_app, exposure_warning

KEY = "geheimer-schluessel-42"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """One archive index for the module (the tests only read it)."""
    return build_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def client(archive):
    seeds, index = archive
    app = create_app(ServerConfig(index, seeds_dir=seeds, model=FakeEmbedder(), interval=0.05))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def cli(archive, monkeypatch):
    """``seedsearch search`` in-process on the same index, with the fake embedder."""
    real = engine_module.load_embedder
    monkeypatch.setattr(
        engine_module,
        "load_embedder",
        lambda model=None: FakeEmbedder() if model == FakeEmbedder.spec else real(model),
    )
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_app, ["search", "--index", str(archive[1]), *args])


def search(client, **params):
    return client.get("/api/search", params=params)


# ------------------------------------------------------------------- search


def test_search_answers_like_the_python_api(client, archive):
    r = search(client, q="Wer liefert Waffen?", k=3)
    assert r.status_code == 200
    body = r.json()
    assert {"query", "took_ms", "total", "hits"} <= set(body)
    assert body["query"] == "Wer liefert Waffen?"
    with SearchEngine.open(archive[1], model=FakeEmbedder()) as engine:
        expected = [(h.id, h.score) for h in engine.search("Wer liefert Waffen?", k=3)]
    assert [(h["id"], h["score"]) for h in body["hits"]] == expected
    assert body["total"] >= len(body["hits"]) == 3
    assert r.headers["X-Seedsearch-Generation"] == str(body["generation"])


def test_hits_have_exactly_the_keys_of_search_json(client, cli):
    result = cli("--json", "-k", "3", "Hitze in Bayern")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    cli_hits = printed["hits"] if isinstance(printed, dict) else printed
    api_hits = search(client, q="Hitze in Bayern", k=3).json()["hits"]
    assert [set(h) for h in api_hits] == [set(h) for h in cli_hits]
    assert [h["id"] for h in api_hits] == [h["id"] for h in cli_hits]


def test_offset_pages_through_the_same_ranking(client):
    full = search(client, q="Sieg in Köln", k=6).json()
    page = search(client, q="Sieg in Köln", k=2, offset=2).json()
    assert [h["id"] for h in page["hits"]] == [h["id"] for h in full["hits"][2:4]]
    assert [h["rank"] for h in page["hits"]] == [3, 4]
    assert page["offset"] == 2 and page["total"] == full["total"] > 4


@pytest.mark.parametrize(
    ("params", "docs"),
    [
        ({"source": "Sportschau"}, {"Sport/fussball.txt", "Sport/boxen.txt"}),
        ({"folder": "Sport"}, {"Sport/fussball.txt", "Sport/boxen.txt", "Sport/kopie.txt"}),
        ({"since": "2024-01-01"}, {"nordkorea.txt", "Sport/boxen.txt", "Sport/kopie.txt"}),
        ({"since": "2023-01-01", "until": "2023-12-31"}, {"Wetter/hitze.md"}),
        ({"agency": "dpa"}, {"nordkorea.txt", "Wetter/hitze.md"}),
        (
            {"source": ["Sportschau", "Tagesschau"], "until": "2024-01-31"},
            {"Sport/fussball.txt", "Sport/boxen.txt"},
        ),
    ],
)
def test_filters_keep_only_matching_articles(client, params, docs):
    body = search(client, q="Sieg Hitze Putin Köln Bayern", k=50, mode="hybrid", **params).json()
    assert body["hits"], body
    assert {h["doc"] for h in body["hits"]} <= docs
    assert body["total"] == len(body["hits"])


def test_sort_by_date_puts_the_newest_first(client, archive):
    hits = search(client, q="Sieg Hitze Putin Köln", k=20, sort="date").json()["hits"]
    order = [h["doc"] for h in hits]
    dates = {"nordkorea.txt": 5, "Sport/kopie.txt": 4, "Sport/boxen.txt": 3}
    dates |= {"Wetter/hitze.md": 2, "Sport/fussball.txt": 1}  # sicherheit.md: undated, last
    ranked = [dates.get(d, 0) for d in order]
    assert ranked == sorted(ranked, reverse=True) and ranked[0] == 5


# --------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": "0"}, "k=0"),
        ({"k": "-1"}, "k=-1"),
        ({"k": "2.5"}, "whole number"),
        ({"k": "zehn"}, "whole number"),
        ({"k": "101"}, "k=101"),
        ({"offset": "-1"}, "offset=-1"),
        ({"offset": "100000"}, "offset=100000"),
        ({"alpha": "2"}, "alpha"),
        ({"alpha": "-0.1"}, "alpha"),
        ({"alpha": "nan"}, "alpha"),
        ({"alpha": "viel"}, "alpha"),
        ({"mode": "fuzzy"}, "fuzzy"),
        ({"fusion": "sum"}, "sum"),
        ({"sort": "zufall"}, "zufall"),
        ({"typos": "vielleicht"}, "typos"),
        ({"since": "gestern"}, "not a date"),
        ({"until": "2024-13-01"}, "not a date"),
        ({"since": "2024-02-01", "until": "2024-01-01"}, "after"),
        ({"source": ["x"] * 21}, "at most 20"),
        ({"q": ["a", "b"]}, "given 2 times"),
        ({"q": ""}, "empty query"),
        ({"q": "   "}, "empty query"),
        ({"q": "\x00\x01"}, "empty query"),
        ({"q": "Hitze " * 400}, "too long"),
    ],
)
def test_bad_parameters_are_400_with_a_message(client, params, message):
    r = client.get("/api/search", params={"q": "Hitze", **params})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"}
    assert message in r.json()["error"]
    assert "Traceback" not in r.text


def test_no_query_at_all_is_400(client):
    r = client.get("/api/search")
    assert r.status_code == 400 and "empty query" in r.json()["error"]


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "0"],
        ["-k", "-1"],
        ["--alpha", "2"],
        ["--alpha", "-1"],
        ["--alpha", "nan"],
        ["--mode", "fuzzy"],
        ["--fusion", "sum"],
        ["--", ""],
        ["--", "  "],
        ["--offset", "-1"],
        ["--since", "gestern"],
        ["--until", "2024-13-01"],
        ["--sort", "zufall"],
    ],
)
def test_bad_options_give_the_cli_message(client, cli, args):
    """Every bad option of the CLI's robustness tests, through HTTP too: same message."""
    result = cli(*args, "Hitze") if args[0] != "--" else cli(*args)
    assert result.exit_code == 2
    cli_message = result.stderr.strip().removeprefix("error: ")
    name = args[0].lstrip("-") if args[0] != "--" else None
    params = {"q": "Hitze", name: args[1]} if name else {"q": args[1]}
    r = client.get("/api/search", params=params)
    assert r.status_code == 400
    assert r.json()["error"] == cli_message


def test_odd_queries_of_the_robustness_tests_answer(client):
    import importlib.util

    # by path: benchmarks/reliability.py may already be imported as "reliability"
    path = Path(__file__).resolve().parents[1] / "reliability" / "test_bad_queries.py"
    spec = importlib.util.spec_from_file_location("_odd_queries", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ODD_QUERIES = module.ODD_QUERIES  # noqa: N806

    sendable = [q for q in ODD_QUERIES if not re.search("[\ud800-\udfff]", q)]
    assert len(sendable) == len(ODD_QUERIES) - 1  # a lone surrogate cannot be sent as UTF-8
    for q in sendable:
        for mode in ("hybrid", "bm25", "vector"):
            r = search(client, q=q, k=5, mode=mode)
            assert r.status_code == 200, (q, mode, r.text)
            hits = r.json()["hits"]
            assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))


# ----------------------------------------------------------------- article


def test_article_by_doc_and_by_passage(client):
    a = client.get("/api/articles/Sport/boxen.txt").json()
    assert a["title"] == "Boxen in Köln" and a["source"] == "Sportschau"
    assert [p["id"] for p in a["passages"]] == ["Sport/boxen.txt#1", "Sport/boxen.txt#2"]
    assert a["marked"] is None
    b = client.get("/api/articles/Sport/boxen.txt%232").json()
    assert b["marked"] == "Sport/boxen.txt#2" and b["passages"] == a["passages"]


@pytest.mark.parametrize(
    "ident",
    [
        "gibtsnicht.txt",
        "Sport/boxen.txt%2399",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        "%2Fetc%2Fpasswd",
        "..%5C..%5Cwindows%5Cwin.ini",
        "Sport%2F..%2Fnordkorea.txt",
        "Sport%2F..%2F..%2Findex%2FCURRENT",
    ],
)
def test_unknown_or_escaping_article_ids_are_404(client, ident):
    r = client.get(f"/api/articles/{ident}")
    assert r.status_code == 404, r.text
    assert set(r.json()) == {"error"} and "root:" not in r.text


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/api/nichts").status_code == 404
    r = client.post("/api/search", params={"q": "Hitze"})
    assert r.status_code == 405 and "GET" in r.json()["error"]


# ------------------------------------------------------------ status, health


def test_status_is_the_status_json_data(client, archive):
    seeds, index = archive
    data = client.get("/api/status").json()
    expected = index_status(index, seeds).to_dict()
    assert {k: v for k, v in data.items() if k != "served_generation"} == expected
    assert data["served_generation"] == expected["generation"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_without_an_index_it_answers_503_until_one_is_published(tmp_path):
    seeds, index = write_archive(tmp_path / "seeds"), tmp_path / "index"
    app = create_app(ServerConfig(index, model=FakeEmbedder(), interval=0.05))
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 503
        r = c.get("/api/search", params={"q": "Hitze"})
        assert r.status_code == 503 and "seedsearch index" in r.json()["error"]
        assert c.get("/").status_code == 503
        Indexer(seeds, index, model=FakeEmbedder()).update()
        assert app.state.live.wait_for(lambda e: True, timeout=10)
        assert c.get("/api/search", params={"q": "Hitze"}).json()["hits"]


def test_openapi_describes_every_api_route(client):
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    routes = {r.path.replace("{ident:path}", "{id}") for r in client.app.routes}
    api = {p for p in routes if p.startswith("/api/") or p == "/healthz"}
    assert api == set(schema["paths"])
    names = {p["name"] for p in schema["paths"]["/api/search"]["get"]["parameters"]}
    assert {"q", "k", "offset", "mode", "since", "until", "source", "agency", "folder"} <= names


# --------------------------------------------------------------- security


@pytest.fixture(scope="module")
def locked(archive):
    app = create_app(ServerConfig(archive[1], model=FakeEmbedder(), api_key=KEY))
    with TestClient(app) as c:
        yield c


def test_api_key_is_needed_on_every_api_request(locked):
    for path in ("/api/search?q=Hitze", "/api/status", "/api/articles/nordkorea.txt"):
        r = locked.get(path)
        assert r.status_code == 401 and API_KEY_HEADER in r.json()["error"]
        assert locked.get(path, headers={API_KEY_HEADER: "falsch-falsch"}).status_code == 401
        assert locked.get(path, headers={API_KEY_HEADER: KEY}).status_code == 200
    assert locked.get("/api/status", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert locked.get("/healthz").status_code == 200


def test_page_asks_for_the_key_once(locked):
    r = locked.get("/", params={"q": "Hitze"})
    assert r.status_code == 401 and 'name="key"' in r.text and "Hitze" not in r.text
    bad = locked.post("/anmelden", data={"key": "falsch-falsch"}, follow_redirects=False)
    assert bad.status_code == 401
    ok = locked.post("/anmelden", data={"key": KEY}, follow_redirects=False)
    assert ok.status_code == 303 and KEY not in ok.headers["set-cookie"]
    assert "httponly" in ok.headers["set-cookie"].lower()
    page = locked.get("/", params={"q": "Hitze"})
    assert page.status_code == 200 and "Hitzewelle" in page.text
    assert locked.get("/api/status").status_code == 401  # the cookie is for the page only


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
        ("0.0.0.0", None, True),
        ("192.168.1.5", None, True),
        ("0.0.0.0", KEY, False),
    ],
)
def test_exposure_warning(host, key, warned):
    message = exposure_warning(host, key)
    assert (message is not None) == warned
    if warned:
        assert "--api-key" in message and host in message


@pytest.mark.parametrize("key", ["", "kurz", "mit leerzeichen drin"])
def test_weak_api_keys_are_refused(tmp_path, key):
    from indexer.errors import SeedsearchError

    with pytest.raises(SeedsearchError, match="at least 8"):
        ServerConfig(tmp_path, api_key=key)


def test_request_limits(client):
    assert client.get("/api/search", params={"q": "x" * 9000}).status_code == 414
    r = client.request("GET", "/api/search?q=Hitze", content=b"x" * 5000)
    assert r.status_code == 413 and "body" in r.json()["error"]


# -------------------------------------------------------------------- page


def test_page_is_german_with_labelled_search_box(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<html lang="de">' in r.text
    for ident in ("q", "f-since", "f-until", "f-source", "f-folder"):
        assert f'<label class="q" for="{ident}"' in r.text or f'<label for="{ident}"' in r.text
    assert "Sportschau" in r.text and ">Sport<" in r.text  # the index's sources, folders


def test_page_shows_results_with_evidence_and_highlights(client):
    r = client.get("/", params={"q": "Wer liefert Waffen?"})
    assert r.status_code == 200
    assert "Putin reist nach Nordkorea" in r.text
    assert "<mark>Waffenlieferungen</mark>" in r.text or "<mark>Waffen</mark>" in r.text
    assert "BM25:" in r.text and "Vektor:" in r.text and "(Rang 1)" in r.text
    assert "18.06.2024" in r.text and "Tagesschau" in r.text
    assert 'href="/articles/nordkorea.txt?passage=nordkorea.txt%232' in r.text


def test_page_filters_and_pagination(client):
    r = client.get("/", params={"q": "Sieg Köln", "k": "1", "source": "Sportschau"})
    assert r.status_code == 200
    assert "Treffer 1–1 von " in r.text
    nxt = re.search(r'rel="next" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert "offset=1" in nxt and "source=Sportschau" in nxt
    second = client.get(nxt)
    assert "Treffer 2–2 von " in second.text and 'rel="prev"' in second.text
    assert "Nordkorea" not in second.text.split("<main", 1)[1].split("</form>", 1)[1]


def test_page_names_exact_copies(client):
    r = client.get("/", params={"q": "Boxkampf Punktsieg", "k": "3"})
    copy = re.search(r"Gleicher Text auch in: <a href=\"([^\"]+)\">([^<]+)</a>", r.text)
    assert copy is not None, r.text
    assert copy.group(2) in ("Sport/kopie.txt#1", "Sport/boxen.txt#1")
    assert client.get(copy.group(1).replace("&amp;", "&")).status_code == 200


def test_typos_are_corrected_unless_switched_off(client):
    body = search(client, q="Hitzwelle Bayern", k=2).json()
    assert body["corrections"] == [{"from": "Hitzwelle", "to": "Hitzewelle"}]
    assert body["hits"][0]["doc"] == "Wetter/hitze.md"
    assert search(client, q="Hitzwelle Bayern", k=2, typos="false").json()["corrections"] == []
    page = client.get("/", params={"q": "Hitzwelle Bayern"}).text
    assert "Suche nach: <strong>Hitzewelle Bayern</strong>" in page
    exact = re.search(r'<a rel="nofollow" href="([^"]+)">Stattdessen genau', page).group(1)
    again = client.get(exact.replace("&amp;", "&")).text
    assert "Suche nach:" not in again and 'name="typos" value="false"' in again


def test_page_shows_bad_input_as_a_message(client):
    r = client.get("/", params={"q": "Hitze", "since": "gestern"})
    assert r.status_code == 400 and 'role="alert"' in r.text and "not a date" in r.text


def test_article_view_marks_the_passage(client):
    r = client.get("/articles/nordkorea.txt", params={"passage": "nordkorea.txt#2", "q": "Waffen"})
    assert r.status_code == 200
    marked = re.search(r'<p id="p-2" class="marked"[^>]*>(.*?)</p>', r.text).group(1)
    assert "<mark>Waffenlieferungen</mark>" in marked or "<mark>Waffen" in marked
    assert r.text.count('class="marked"') == 1
    assert 'href="https://example.org/nordkorea"' in r.text
    assert client.get("/articles/gibtsnicht.txt").status_code == 404


def test_seed_text_and_queries_are_escaped(client):
    """A seed and a query containing <script>: shown as text, never as markup."""
    for r in (
        client.get("/", params={"q": f"Sicherheitslücke {SCRIPT}"}),
        client.get("/articles/sicherheit.md", params={"q": SCRIPT}),
        client.get("/", params={"q": SCRIPT, "since": SCRIPT}),
    ):
        assert "<script" not in r.text.lower()
        assert "&lt;script&gt;" in r.text
    r = client.get("/articles/sicherheit.md")
    assert "javascript:" not in r.text.split("<main", 1)[1].replace("javascript:alert(1)</dd>", "")
    assert 'href="javascript' not in r.text


def test_archive_seeds_are_all_served(client):
    docs = {client.get(f"/api/articles/{d}").json()["doc"] for d in ARCHIVE}
    assert docs == set(ARCHIVE)
