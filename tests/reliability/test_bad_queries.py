"""Bad queries, through the API and the CLI: an answer or one ``error:`` line, exit 2."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import FakeEmbedder
from typer.testing import CliRunner

from indexer.errors import QueryError
from search import SearchEngine
from search import engine as engine_module
from search.cli import app
from search.engine import MAX_K, MAX_QUERY_CHARS, QueryTruncatedWarning

ODD_QUERIES = [
    "?!.,;:-",
    "der die das und oder",
    "wer wie was",
    "title:Bayern",
    "body:hitz*",
    "*",
    '"unbalanced',
    "AND OR NOT",
    "(",
    ")",
    "[/]",
    "[bold]fett[/bold] [link=x]",
    "{}%s%n\\",
    "😀🔥 Hitze 🇩🇪",
    "Москва Кремль",
    "مرحبا بالعالم",
    "北京 天气 東京",
    "Hitze\x00\x1b[31m\x07\x7f",
    "\u200b\u200d\ufeff",
    "a\ud800b",
    "Hitze\tBayern\r\nWetter",
    "ß" * 50,
    "kinder" * 333,
]


@pytest.fixture
def engine(built_index):
    with SearchEngine.open(built_index, model=FakeEmbedder()) as e:
        yield e


@pytest.mark.parametrize("query", ODD_QUERIES)
@pytest.mark.parametrize("mode", ["hybrid", "bm25", "vector"])
def test_odd_queries_answer(engine, query, mode):
    hits = engine.search(query, k=5, mode=mode)
    assert len(hits) <= 5
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "\x00\x01\x1b", "\ud800"])
def test_empty_queries_raise_query_error(engine, query):
    with pytest.raises(QueryError, match="empty query"):
        engine.search(query)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k=0"),
        ({"k": -1}, "k=-1"),
        ({"k": 2.5}, "whole number"),
        ({"k": True}, "whole number"),
        ({"alpha": 2}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"mode": "fuzzy"}, "fuzzy"),
        ({"fusion": "sum"}, "sum"),
    ],
)
def test_invalid_options_raise_query_error(engine, kwargs, message):
    with pytest.raises(QueryError, match=message):
        engine.search("Hitze", **kwargs)


def test_huge_k_is_capped(engine):
    hits = engine.search("Hitze", k=100_000)
    assert 0 < len(hits) <= min(MAX_K, len(engine))


def test_long_query_is_truncated_with_warning(engine):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hits = engine.search("Hitze Bayern " * 10_000)
    assert hits
    assert [w.category for w in caught] == [QueryTruncatedWarning]
    assert str(MAX_QUERY_CHARS) in str(caught[0].message)


def test_non_string_query_raises_query_error(engine):
    with pytest.raises(QueryError):
        engine.search(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- CLI


@pytest.fixture
def cli(built_index, monkeypatch):
    """Run ``seedsearch`` in-process against the fake-embedder index."""
    real = engine_module.load_embedder

    def load(model=None):
        return FakeEmbedder() if model == FakeEmbedder.spec else real(model)

    monkeypatch.setattr(engine_module, "load_embedder", load)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, ["search", "--index", str(built_index), *args])

    return run


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


def assert_one_error_line(result) -> None:
    assert_no_traceback(result)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@pytest.mark.parametrize("query", ODD_QUERIES[:-1])
def test_cli_odd_queries(cli, query):
    result = cli("--", query.replace("\x00", ""))  # argv cannot hold NUL
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("query", ODD_QUERIES[:5])
def test_cli_odd_queries_json(cli, query):
    result = cli("--json", "--", query)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # one object, even for punctuation only
    assert isinstance(data["hits"], list) and data["query"]


def test_cli_no_results_with_markup_query(cli):
    result = cli("--mode", "bm25", "--", "[/] [bold]xyzzyplugh")
    assert result.exit_code == 0, result.output
    assert "no results for" in result.stdout and "[/]" in result.stdout


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_cli_empty_query(cli, query):
    result = cli("--", query)
    assert_one_error_line(result)
    assert "empty query" in result.stderr


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
    ],
)
def test_cli_invalid_options(cli, args):
    assert_one_error_line(cli(*args, "Hitze"))


def test_cli_huge_k(cli):
    result = cli("-k", "100000", "--json", "Hitze")
    assert result.exit_code == 0, result.output
    assert '"rank": 1' in result.stdout


def test_cli_long_query_truncated_with_notice(cli):
    result = cli("--json", "--", "Hitze " * 20_000)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("warning: ") and "cut" in notes[0]


def test_cli_missing_index(tmp_path):
    result = CliRunner().invoke(app, ["search", "--index", str(tmp_path / "none"), "Hitze"])
    assert_one_error_line(result)
    assert "seedsearch index" in result.stderr
