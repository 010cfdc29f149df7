"""``search.evaluate`` and ``seedsearch eval`` on a tiny hand-made German set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder
from typer.testing import CliRunner

from indexer.errors import SeedsearchError
from search.cli import app
from search.evaluate import (
    CachingEmbedder,
    EvalResult,
    evaluate,
    holdout_half,
    load_benchmark,
    load_corpus,
    load_qrels,
    load_queries,
)

CORPUS = [
    {
        "id": "waffen",
        "title": "Rüstung",
        "text": "Die Bundesregierung genehmigt weitere Waffenlieferungen an die Ukraine. "
        "Panzer und Munition sollen noch in diesem Jahr geliefert werden.",
    },
    {
        "id": "hitze",
        "title": "Hitzewelle in Süddeutschland",
        "text": "Die Temperaturen steigen am Wochenende auf über 35 Grad. Der Wetterdienst "
        "warnt vor großer Hitze in Bayern.\n\nÄrzte raten, viel Wasser zu trinken.",
    },
    {
        "id": "fussball",
        "title": "Bundesliga",
        "text": "Der FC Bayern München gewinnt das Spitzenspiel gegen Borussia Dortmund mit 3:1. "
        "Die Fußballfans feierten auf der Straße.",
    },
    {
        "id": "korea",
        "title": "Nordkorea",
        "text": "Machthaber Kim Jong Un lässt erneut eine Rakete testen. Südkorea und Japan "
        "verurteilen den Raketentest scharf.",
    },
]
QUERIES = [
    {"id": "q1", "text": "Wer liefert Waffen?"},
    {"id": "q2", "text": "Wie heiß wird es in Bayern am Wochenende?"},
    {"id": "q3", "text": "Wer gewann das Spitzenspiel gegen Dortmund?"},
    {"id": "q4", "text": "Was testet Kim Jong-Un?"},
    {"id": "q5", "text": "Was raten Ärzte bei Hitze?"},
]
QRELS = [("q1", "waffen"), ("q2", "hitze"), ("q3", "fussball"), ("q4", "korea"), ("q5", "hitze")]


def write_set(d: Path) -> tuple[Path, Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    corpus, queries, qrels = d / "corpus.jsonl", d / "queries.jsonl", d / "qrels.tsv"
    corpus.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in CORPUS), encoding="utf-8"
    )
    queries.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in QUERIES), encoding="utf-8"
    )
    qrels.write_text("".join(f"{q}\t{p}\t1\n" for q, p in QRELS), encoding="utf-8")
    return corpus, queries, qrels


@pytest.fixture
def bench_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    return write_set(tmp_path / "tiny-de")


# ------------------------------------------------------------------ Python API


def test_evaluate_all_modes_with_fake_embedder(bench_files) -> None:
    bench = load_benchmark(*bench_files)
    assert bench.name == "tiny-de" and len(bench.corpus) == 4 and len(bench.queries) == 5
    result = evaluate(bench, model=FakeEmbedder())
    assert isinstance(result, EvalResult)
    assert [r.mode for r in result.results] == ["hybrid", "bm25", "vector"]
    assert result.documents == 4 and result.passages == 5  # "hitze" has two paragraphs
    bm25 = result.metrics("bm25")
    assert bm25.queries == 5
    assert bm25.mrr_at_10 == 1.0 and bm25.recall_at_1 == 1.0  # German analysis does it
    assert result.metrics("hybrid").recall_at_10 == 1.0
    # runs hold corpus ids (not passage ids), each document once
    run = result.results[1].run
    assert run["q1"][0] == "waffen" and run["q5"][0] == "hitze"
    assert all(len(set(r)) == len(r) for r in run.values())
    assert set(result.to_dict()["bm25"]) == {
        "mrr@10",
        "ndcg@10",
        "recall@1",
        "recall@5",
        "recall@10",
        "recall@100",
        "queries",
    }
    with pytest.raises(AttributeError):
        result.documents = 0  # type: ignore[misc]


def test_evaluate_one_mode(bench_files) -> None:
    result = evaluate(load_benchmark(*bench_files), modes=["bm25"], model=FakeEmbedder())
    assert list(result.to_dict()) == ["bm25"]
    with pytest.raises(KeyError):
        result.metrics("vector")


def test_caching_embedder_embeds_each_text_once() -> None:
    inner = FakeEmbedder()
    cached = CachingEmbedder(inner)
    a = cached.embed_passages(["Waffen", "Hitze", "Waffen"])
    b = cached.embed_passages(["Hitze"])
    assert inner.calls == 2
    np.testing.assert_array_equal(a[1], b[0])
    np.testing.assert_array_equal(a, inner.embed_passages(["Waffen", "Hitze", "Waffen"]))
    assert cached.spec == inner.spec and cached.dim == inner.dim


def test_holdout_half_is_fixed_and_splits() -> None:
    halves = [holdout_half(f"q{i}") for i in range(200)]
    assert halves == [holdout_half(f"q{i}") for i in range(200)]
    assert 60 < sum(halves) < 140


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corpus.jsonl", '{"id": "a", "text": "x"}\n{"id": "b", "text": \n', "corpus.jsonl:2"),
        ("corpus.jsonl", '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', "duplicate"),
        ("corpus.jsonl", '{"id": "a"}\n', "no 'text' string"),
        ("corpus.jsonl", '{"id": "a", "text": "  "}\n', "empty 'text'"),
        ("corpus.jsonl", "\n\n", "no documents"),
        ("queries.jsonl", '["q1", "text"]\n', "queries.jsonl:1: expected a JSON object"),
        ("queries.jsonl", '{"text": "Wer?"}\n', "queries.jsonl:1: no 'id' string"),
        ("qrels.tsv", "q1\tp1\t1\nq2 p2 1\n", "qrels.tsv:2: expected 3 tab-separated"),
        ("qrels.tsv", "q1\tp1\thoch\n", "qrels.tsv:1: grade 'hoch'"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path: Path, name, content, message) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    loader = {"corpus.jsonl": load_corpus, "queries.jsonl": load_queries, "qrels.tsv": load_qrels}
    with pytest.raises(SeedsearchError, match=message.replace("'", ".")) as info:
        loader[name](path)
    assert str(path) in str(info.value)


def test_qrels_must_refer_to_known_ids(bench_files) -> None:
    corpus, queries, qrels = bench_files
    qrels.write_text("q1\twaffen\t1\nq9\twaffen\t1\n", encoding="utf-8")
    with pytest.raises(SeedsearchError, match="query id 'q9'"):
        load_benchmark(corpus, queries, qrels)
    qrels.write_text("q1\tnirgends\t1\n", encoding="utf-8")
    with pytest.raises(SeedsearchError, match="passage id 'nirgends'"):
        load_benchmark(corpus, queries, qrels)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SeedsearchError, match="cannot read .*nope.jsonl"):
        load_corpus(tmp_path / "nope.jsonl")


# ------------------------------------------------------------------------ CLI

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, ["eval", *args])


def test_cli_error_is_one_line_exit_2(bench_files) -> None:
    corpus, queries, qrels = bench_files
    qrels.write_text("q1\twaffen\n", encoding="utf-8")
    res = cli("--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels))
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "qrels.tsv:1" in res.stderr


def test_cli_unknown_mode_exit_2(bench_files) -> None:
    corpus, queries, qrels = bench_files
    res = cli(
        "--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels), "--mode", "x"
    )
    assert res.exit_code == 2 and res.stderr.startswith("error: unknown mode 'x'")


def test_cli_missing_corpus_exit_2(bench_files, tmp_path: Path) -> None:
    _, queries, qrels = bench_files
    res = cli(
        "--corpus", str(tmp_path / "no.jsonl"), "--queries", str(queries), "--qrels", str(qrels)
    )
    assert res.exit_code == 2 and "cannot read" in res.stderr


@pytest.mark.slow
def test_cli_json_with_default_model(bench_files) -> None:
    corpus, queries, qrels = bench_files
    res = cli("--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels), "--json")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert list(data) == ["hybrid", "bm25", "vector"]
    for metrics in data.values():
        assert metrics["queries"] == 5
        assert 0.0 <= metrics["mrr@10"] <= 1.0 and metrics["recall@100"] == 1.0
    assert data["bm25"]["mrr@10"] == 1.0
    assert data["hybrid"]["mrr@10"] >= 0.9


@pytest.mark.slow
def test_cli_table_one_mode(bench_files) -> None:
    corpus, queries, qrels = bench_files
    res = cli(
        "--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels), "--mode", "bm25"
    )
    assert res.exit_code == 0, res.stderr
    assert "tiny-de" in res.stdout and "MRR@10" in res.stdout and "bm25" in res.stdout
    assert "hybrid" not in res.stdout
