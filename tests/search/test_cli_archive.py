"""The archive on the command line: filters, paging, copies, phrases, ``show`` and the
evaluation options (real default model, one small index per module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import assert_user_error, hits_of, invoke
from test_engine_archive import ARTICLES, write


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEEDSEARCH_INDEX", raising=False)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-archive")
    seeds = write(root / "seeds", ARTICLES)
    result = invoke("index", "--seeds", str(seeds), "--index", str(root / "ix"))
    assert result.exit_code == 0, result.output
    return root / "ix"


def search(index: Path, *args: str):
    return invoke("search", *args, "--index", str(index))


def test_json_is_an_object_with_total_offset_and_metadata(index):
    result = search(index, "Wer liefert Waffen?", "--json", "-k", "2", "--offset", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["query"] == "Wer liefert Waffen?" and data["offset"] == 1
    assert [h["rank"] for h in data["hits"]] == [2, 3] and data["total"] >= 3
    for h in data["hits"]:
        assert {"date", "source", "url", "author", "agency", "folder", "duplicates"} <= set(h)
        for a, b in h["highlights"]:
            assert 0 <= a < b <= len(h["text"])


def test_filters_on_the_command_line(index):
    hits = hits_of(search(index, "Waffen", "--json", "-k", "20", "--since", "2024-01-01"))
    assert {h["doc"] for h in hits} == {"Politik/kim-putin.md", "Wirtschaft/rheinmetall.md"}
    hits = hits_of(
        search(index, "Waffen", "--json", "-k", "20", "--agency", "AFP", "--folder", "Wirt*")
    )
    assert {h["doc"] for h in hits} == {"Wirtschaft/rheinmetall.md", "Wirtschaft/kopie.md"}
    hits = hits_of(
        search(index, "Waffen", "--json", "-k", "20", "--source", "ORF", "--source", "Kurier")
    )
    assert {h["source"] for h in hits} == {"ORF", "Kurier"}


def test_sort_per_article_and_no_collapse(index):
    by_date = hits_of(search(index, "Waffen", "--json", "-k", "20", "--sort", "date"))
    dates = [h["date"] for h in by_date if h["date"]]
    assert dates == sorted(dates, reverse=True)
    one = hits_of(search(index, "Nordkorea", "--json", "-k", "20", "--per-article", "1"))
    assert len({h["doc"] for h in one}) == len(one)
    both = hits_of(search(index, '"Waffen an Moskau"', "--json", "--no-collapse"))
    folded = hits_of(search(index, '"Waffen an Moskau"', "--json"))
    assert len(both) == len(folded) + 1
    assert any(h["duplicates"] for h in folded)


def test_table_shows_metadata_copies_and_the_next_page(index):
    result = search(index, '"Waffen an Moskau"', "-k", "1")
    assert result.exit_code == 0, result.output
    assert "1-1 of 2" in result.stdout
    assert "also in:" in result.stdout
    assert "next page: --offset 1" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--since", "2024-13-01"), "YYYY-MM-DD"),
        (("--since", "2024-07-01", "--until", "2024-06-01"), "swap"),
        (("--offset", "-3"), "offset=-3"),
        (("--sort", "neu"), "relevance, date"),
        (("--per-article", "0"), "per_article=0"),
    ],
)
def test_bad_archive_options_are_one_error_line(index, args, needle):
    assert_user_error(search(index, "Waffen", *args), needle)


def test_show_prints_metadata_and_marks_the_passage(index):
    result = invoke("show", "Politik/kim-putin.md#2", "--index", str(index))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Putin und Kim unterzeichnen Partnerschaft" in out
    assert "Der Standard" in out and "apa" in out and "2024-06-20" in out
    assert "▶ Politik/kim-putin.md#2" in out
    assert out.index("Politik/kim-putin.md#1") < out.index("▶ Politik/kim-putin.md#2")


def test_show_json_and_unknown_ids(index):
    result = invoke("show", "Wirtschaft/rheinmetall.md", "--index", str(index), "--json")
    data = json.loads(result.stdout)
    assert data["doc"] == "Wirtschaft/rheinmetall.md" and data["marked"] is None
    assert data["agency"] == "dpa, AFP" and len(data["passages"]) == 2
    assert_user_error(invoke("show", "gibt-es-nicht", "--index", str(index)), "gibt-es-nicht")


# ------------------------------------------------------------------ eval


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("judged")
    queries = root / "queries.jsonl"
    queries.write_text(
        "\n".join(
            json.dumps({"id": qid, "text": text}, ensure_ascii=False)
            for qid, text in (
                ("q1", "Wer liefert Waffen an Moskau?"),
                ("q2", "Wie hoch war der Rekordumsatz?"),
                ("q3", "Wer gewann das Spitzenspiel?"),
            )
        )
        + "\n",
        "utf-8",
    )
    qrels = root / "qrels.tsv"
    qrels.write_text(
        "q1\tPolitik/kim-putin.md\t1\nq2\tWirtschaft/rheinmetall.md\t1\n"
        "q3\tSport/fussball.txt\t1\n",
        "utf-8",
    )
    return queries, qrels


def test_eval_on_an_existing_index_with_run_and_per_query_files(index, judged, tmp_path):
    queries, qrels = judged
    run, per = tmp_path / "run.trec", tmp_path / "per-query.tsv"
    result = invoke(
        "eval", "--index", str(index), "--queries", str(queries), "--qrels", str(qrels),
        "--mode", "bm25", "--run", str(run), "--per-query", str(per), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["bm25"]
    assert metrics["mrr@10"] > 0.5
    lines = run.read_text().splitlines()
    first = lines[0].split()
    assert (
        len(first) == 6 and first[1] == "Q0" and first[3] == "1" and first[5] == "seedsearch-bm25"
    )
    assert {ln.split()[0] for ln in lines} == {"q1", "q2", "q3"}
    rows = [ln.split("\t") for ln in per.read_text().splitlines()]
    assert rows[0] == ["mode", "query", "first_relevant_rank", "reciprocal_rank"]
    assert {r[1] for r in rows[1:]} == {"q1", "q2", "q3"}
    assert all(
        r[2] == "-" or float(r[3]) == pytest.approx(1 / int(r[2]), abs=1e-4) for r in rows[1:]
    )


def test_eval_settings_change_the_hybrid_run(index, judged, tmp_path):
    queries, qrels = judged
    base = ["eval", "--index", str(index), "--queries", str(queries), "--qrels", str(qrels)]
    base += ["--mode", "hybrid"]
    runs = {}
    for alpha in ("0", "1"):
        path = tmp_path / f"run-{alpha}.trec"
        result = invoke(*base, "--alpha", alpha, "--depth", "10", "--run", str(path))
        assert result.exit_code == 0, result.output
        runs[alpha] = path.read_text()
    assert runs["0"] != runs["1"]
    rrf = invoke(*base, "--fusion", "rrf", "--json")
    assert rrf.exit_code == 0, rrf.output


def test_eval_needs_exactly_one_of_corpus_and_index(judged):
    queries, qrels = judged
    assert_user_error(
        invoke("eval", "--queries", str(queries), "--qrels", str(qrels)), "--corpus", "--index"
    )
