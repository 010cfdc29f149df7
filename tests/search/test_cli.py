"""The ``seedsearch`` command line via Typer's CliRunner (real default USE model).

One index is built per module (about 1-2 s with USE) and only read afterwards;
tests that change an index build their own small one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write_german_seeds
from typer.testing import CliRunner

from search.cli import app
from search.engine import SearchSettings

runner = CliRunner()

INDEX_KEYS = {"documents", "passages", "added", "changed", "removed", "unchanged", "embedded"}
INDEX_KEYS |= {"seconds"}
HIT_KEYS = {"rank", "id", "doc", "paragraph", "text", "score", "bm25", "vector"}


def hits_of(result) -> list[dict]:
    """The hits of ``search --json`` (an object: query, total, offset, hits, notices)."""
    data = json.loads(result.stdout)
    assert set(data) >= {"query", "total", "offset", "hits", "notices"}, data
    return data["hits"]


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def assert_user_error(result, *needles: str) -> str:
    """Exit code 2, exactly one stderr line starting with 'error:', no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert "Usage:" not in result.output  # ours, not a Click usage error
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Never touch ./index_data or ./seeds of the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEEDSEARCH_INDEX", raising=False)


@pytest.fixture(scope="module")
def built_result(tmp_path_factory):
    """(seeds, index, result) of one ``seedsearch index --json`` run; the seeds
    hold the three conftest articles and one empty file."""
    root = tmp_path_factory.mktemp("cli")
    seeds = write_german_seeds(root / "seeds")
    (seeds / "leer.txt").write_bytes(b"")
    index = root / "index"
    result = invoke("index", "--seeds", str(seeds), "--index", str(index), "--json")
    assert result.exit_code == 0, result.output
    return seeds, index, result


@pytest.fixture
def built(built_result) -> tuple[Path, Path, dict]:
    """(seeds, index, report JSON)."""
    seeds, index, result = built_result
    return seeds, index, json.loads(result.stdout)


# ------------------------------------------------------------------ index


def test_index_json_report(built):
    _, _, report = built
    assert set(report) >= INDEX_KEYS
    assert report["documents"] == 3
    assert report["passages"] == report["embedded"] == 16
    assert report["added"] == ["fussball.txt", "nordkorea.txt", "wetter.md"]
    assert report["changed"] == report["removed"] == []
    assert report["unchanged"] == 0
    assert isinstance(report["seconds"], float | int)


def test_index_again_reports_no_changes(built):
    seeds, index, _ = built
    result = invoke("index", "--seeds", str(seeds), "--index", str(index), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedded"] == 0 and report["unchanged"] == 3
    assert report["added"] == report["changed"] == report["removed"] == []
    text = invoke("index", "--seeds", str(seeds), "--index", str(index))
    assert text.exit_code == 0
    assert "indexed 3 articles, 16 passages" in text.stdout
    assert "no changes" in text.stdout


def test_index_warnings_go_to_stderr(built_result):
    _, _, result = built_result
    assert result.stderr.strip() == "warning: leer.txt: empty file, skipped"
    report = json.loads(result.stdout)  # stdout stays valid JSON
    assert report["warnings"] == ["leer.txt: empty file, skipped"]


# ----------------------------------------------------------------- search


def test_search_json(built):
    _, index, _ = built
    result = invoke("search", "Wer liefert Waffen?", "--index", str(index), "--json", "-k", "3")
    assert result.exit_code == 0, result.output
    hits = hits_of(result)
    assert len(hits) == 3
    for i, hit in enumerate(hits, start=1):
        assert set(hit) >= HIT_KEYS
        assert hit["rank"] == i
        assert hit["id"] == f"{hit['doc']}#{hit['paragraph']}"
    assert {"nordkorea.txt#2", "nordkorea.txt#6"} <= {h["id"] for h in hits}
    assert hits[0]["bm25"] is not None and hits[0]["vector"] is not None


def test_search_modes_in_json(built):
    _, index, _ = built
    bm25 = hits_of(
        invoke("search", "Wasser trinken", "--index", str(index), "--json", "--mode", "bm25")
    )
    assert [h["id"] for h in bm25] == ["wetter.md#2"]
    assert bm25[0]["vector"] is None
    vec = hits_of(
        invoke("search", "Wasser trinken", "--index", str(index), "--json", "--mode", "vector")
    )
    assert len(vec) == 5 and all(h["bm25"] is None for h in vec)
    rrf = invoke("search", "Waffen", "--index", str(index), "--json", "--fusion", "rrf")
    assert rrf.exit_code == 0 and hits_of(rrf)[0]["score"] < 0.05


def test_search_json_object(built):
    """``--json`` prints one object: the query, the hits, corrections and notices."""
    _, index, _ = built
    result = invoke("search", "Wasser trinken", "--index", str(index), "--json", "--mode", "bm25")
    data = json.loads(result.stdout)
    assert set(data) >= {"query", "hits", "corrections", "notices"}
    assert data["query"] == "Wasser trinken" and data["corrections"] == []


def test_search_corrects_typos_and_says_what_it_searched(built):
    _, index, _ = built
    args = ("search", "Hitzewele Bayern", "--index", str(index), "--mode", "bm25", "-k", "1")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Suche nach: Hitzewelle Bayern"
    assert "wetter.md#1" in result.stdout
    data = json.loads(invoke(*args, "--json").stdout)
    assert data["corrections"] == [{"from": "Hitzewele", "to": "Hitzewelle"}]
    assert data["hits"][0]["id"] == "wetter.md#1"


def test_no_typos_searches_as_typed(built):
    _, index, _ = built
    args = ("search", "Hitzewele Bayern", "--index", str(index), "--mode", "bm25", "-k", "1")
    result = invoke(*args, "--no-typos")
    assert result.exit_code == 0, result.output
    assert "Suche nach" not in result.stdout
    data = json.loads(invoke(*args, "--no-typos", "--json").stdout)
    assert data["corrections"] == []
    assert data["hits"][0]["id"] == "fussball.txt#1"  # only "Bayern" matched


def test_quoted_words_are_not_corrected(built):
    _, index, _ = built
    args = ("search", '"Hitzewele" Bayern', "--index", str(index), "--mode", "bm25", "--json")
    assert json.loads(invoke(*args).stdout)["corrections"] == []


def test_search_table_shows_passage_ids(built):
    _, index, _ = built
    result = invoke("search", "Hitze in Bayern", "--index", str(index), "-k", "2")
    assert result.exit_code == 0, result.output
    assert "wetter.md#1" in result.stdout
    assert "Hitze in Bayern und Baden-Württemberg" in result.stdout  # the snippet
    assert "Hitzewelle in Süddeutschland" in result.stdout  # the Markdown title
    assert result.stderr == ""


def test_search_without_bm25_matches_says_so(built):
    _, index, _ = built
    result = invoke("search", "und oder aber", "--index", str(index), "--mode", "bm25")
    assert result.exit_code == 0
    assert "no results" in result.stdout


def test_search_syntax_characters(built):
    _, index, _ = built
    # BM25 mode: the keyword side is where query syntax could bite (and no model loads).
    for q in ("title:x", "*", '"unbalanced', "AND OR NOT", "("):
        result = invoke("search", q, "--index", str(index), "--json", "--mode", "bm25")
        assert result.exit_code == 0, (q, result.output)
        assert hits_of(result) == []
    result = invoke("search", "title:Waffen AND (", "--index", str(index), "--json")
    assert result.exit_code == 0, result.output
    assert len(hits_of(result)) == 5


def test_long_query_is_cut_with_a_warning(built):
    _, index, _ = built
    result = invoke(
        "search", "Waffen " * 400, "--index", str(index), "--json", "-k", "1", "--mode", "bm25"
    )
    assert result.exit_code == 0, result.output
    assert len(hits_of(result)) == 1
    assert result.stderr.startswith("warning: query of")


def test_seedsearch_index_env_var_is_the_default_index(built, tmp_path):
    _, index, _ = built
    env = {"SEEDSEARCH_INDEX": str(index)}
    result = invoke("search", "Hitze", "--json", "-k", "1", env=env)
    assert result.exit_code == 0, result.output
    assert hits_of(result)[0]["id"] == "wetter.md#1"
    status = invoke("status", "--json", env=env)
    assert json.loads(status.stdout)["index"] == str(index)
    # --index wins over the environment.
    missing = invoke("search", "Hitze", "--index", str(tmp_path / "none"), env=env)
    assert_user_error(missing, str(tmp_path / "none"))


def test_default_index_is_index_data_in_the_current_folder(tmp_path):
    assert not (tmp_path / "index_data").exists()
    result = invoke("search", "Hitze")
    assert_user_error(result, "index_data")


# ----------------------------------------------------------------- status


def test_status_json(built):
    seeds, index, _ = built
    result = invoke("status", "--index", str(index), "--seeds", str(seeds), "--json")
    assert result.exit_code == 0, result.output
    st = json.loads(result.stdout)
    assert st["documents"] == 3 and st["passages"] == 16
    assert (st["embedder"], st["dim"]) == ("e5-small", 384)
    assert (st["vector_index"], st["dead_vectors"]) == ("flat/float32", 0)
    assert st["generation"] >= 1 and st["size_bytes"] > 0
    assert st["stale"] is False
    assert st["stale_added"] == st["stale_changed"] == st["stale_removed"] == []


def test_status_text_reports_stale_files(built, tmp_path):
    seeds, index, _ = built
    copy = write_german_seeds(tmp_path / "seeds-copy")
    (copy / "neu.txt").write_text("Ein neuer Artikel.\n", "utf-8")
    result = invoke("status", "--index", str(index), "--seeds", str(copy))
    assert result.exit_code == 0, result.output
    assert "passages:   16" in result.stdout
    assert "vectors:    flat/float32\n" in result.stdout
    assert "stale:      yes" in result.stdout
    assert "added: neu.txt" in result.stdout
    unknown = invoke("status", "--index", str(index), "--seeds", str(tmp_path / "nope"))
    assert "stale:      unknown" in unknown.stdout


# ------------------------------------------------------------ user errors


def test_search_without_index_is_one_error_line(tmp_path):
    result = invoke("search", "Waffen", "--index", str(tmp_path / "nowhere"))
    line = assert_user_error(result, "no index at")
    assert "seedsearch index" in line  # says how to fix it


def test_status_without_index_is_one_error_line(tmp_path):
    assert_user_error(invoke("status", "--index", str(tmp_path / "nowhere")), "no index")


@pytest.mark.parametrize("query", ["", "   ", "\t"])
def test_empty_query_is_one_error_line(built, query):
    _, index, _ = built
    assert_user_error(invoke("search", query, "--index", str(index)), "empty query")


def test_missing_seeds_folder_is_one_error_line(tmp_path):
    result = invoke("index", "--seeds", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"))
    assert_user_error(result, "nope", "does not exist")
    assert not (tmp_path / "ix" / "CURRENT").exists()


def test_seeds_path_that_is_a_file_is_one_error_line(tmp_path):
    (tmp_path / "seeds.txt").write_text("kein Ordner")
    result = invoke(
        "index", "--seeds", str(tmp_path / "seeds.txt"), "--index", str(tmp_path / "ix")
    )
    assert_user_error(result, "not a folder")


def test_unreadable_seeds_folder_is_one_error_line(tmp_path, monkeypatch):
    seeds = write_german_seeds(tmp_path / "seeds")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).resolve() == seeds.resolve():
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    # chmod 000 does not stop root, so the permission error is simulated.
    monkeypatch.setattr(os, "scandir", scandir)
    result = invoke("index", "--seeds", str(seeds), "--index", str(tmp_path / "ix"))
    assert_user_error(result, "Permission denied")
    assert not (tmp_path / "ix" / "CURRENT").exists()  # no empty index published


def test_wrong_embedder_via_model_is_one_error_line(built):
    seeds, index, _ = built
    result = invoke("index", "--seeds", str(seeds), "--index", str(index), "--model", "other-model")
    line = assert_user_error(result, "e5-small", "other-model")
    assert "--full" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("-k", "0"), "k=0"),
        (("-k", "-3"), "at least 1"),
        (("--alpha", "2"), "alpha=2"),
        (("--alpha", "-0.5"), "0 to 1"),
        (("--mode", "semantic"), "hybrid, bm25, vector"),
        (("--fusion", "borda"), "minmax, rrf"),
    ],
)
def test_bad_search_options_are_one_error_line(built, args, needle):
    _, index, _ = built
    result = invoke("search", "Waffen", "--index", str(index), *args)
    assert_user_error(result, needle)


def test_index_path_that_is_a_file_is_one_error_line(built, tmp_path):
    seeds, _, _ = built
    (tmp_path / "ix").write_text("kein Ordner")
    result = invoke("index", "--seeds", str(seeds), "--index", str(tmp_path / "ix"))
    assert_user_error(result)


def test_default_search_imports_no_heavy_modules(built):
    """The default path (USE) must start fast: no torch, no sentence-transformers,
    and no pydantic (typer 0.29 imports it on every run: +0.2 s of a 0.6 s start)."""
    import subprocess
    import sys

    _, index, _ = built
    code = (
        "import sys\n"
        "from search.cli import main\n"
        f"sys.argv = ['seedsearch', 'search', 'Hitze in Bayern', '--index', {str(index)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = ('torch', 'sentence_transformers', 'pydantic')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Hitzewelle" in proc.stdout or "Hitze" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY []"


# ------------------------------------------------------------ help and notes


def test_help_shows_defaults_and_the_environment_variable():
    result = invoke("search", "--help", env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = result.output
    assert "[default: index_data]" in text and "[env var: SEEDSEARCH_INDEX]" in text
    alpha = f"[default: ({SearchSettings().alpha}; 0.6 for use-m3)]"
    assert "[default: minmax]" in text and alpha in text and "[default: 5]" in text
    assert "folder ." not in text and "rrf ." not in text  # nothing eaten by markup
    index_help = invoke("index", "--help", env={"COLUMNS": "200"}).output
    assert "[default: (as built, else float32)]" in index_help


def test_version():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"seedsearch {version('seedsearch')}"


def test_search_on_a_file_says_it_is_not_an_index(tmp_path):
    (tmp_path / "some_file.tsv").write_text("x\ty\n")
    line = assert_user_error(invoke("search", "--index", str(tmp_path / "some_file.tsv"), "x"))
    assert "is a file, not an index folder" in line and "--full" not in line


def test_stopword_query_says_it_ranks_by_meaning_only(built_result):
    _, index, _ = built_result
    result = invoke("search", "--index", str(index), "der die das")
    assert result.exit_code == 0
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: 'der die das' has only stopwords (words too common to search for): "
        "ranked by meaning only"
    ]
    as_json = invoke("search", "--index", str(index), "--json", "der die das")
    assert json.loads(as_json.stdout)["notices"]  # --json carries the notice too


def test_index_env_var_is_used(built_result):
    _, index, _ = built_result
    result = invoke("status", env={"COLUMNS": "200", "SEEDSEARCH_INDEX": str(index)})
    assert result.exit_code == 0 and str(index) in result.stdout
