"""Index folders inside the seeds folder are never read; seeds inside the index folder
are an error (issue 10, item 1). Also the 'not an article' warning through the CLI."""

from __future__ import annotations

import json

import pytest
from conftest import FakeEmbedder, write_german_seeds
from typer.testing import CliRunner

from indexer import Indexer
from indexer.errors import SeedsearchError
from indexer.seeds import check_folders, file_hashes, list_seed_files
from indexer.store.generations import is_index_folder
from indexer.store.layout import looks_like_index


def build(seeds, index):
    return Indexer(seeds, index, model=FakeEmbedder()).update()


def counts(report) -> tuple[int, int]:
    return report.documents, report.passages


# ------------------------------------------------------- recognising an index


@pytest.mark.parametrize(
    ("name", "entries"),
    [
        ("_idx", {"CURRENT": False, "gen-00000003": True, ".lock": False}),
        ("_idx", {".lock": False, "gen-00000001.tmp-4711": True}),  # first build running
        ("gen-00000003", {"manifest.json": False, "passages.jsonl": False, "whoosh": True}),
        ("gen-00000001.tmp-4711", {"passages.jsonl": False}),  # a generation being written
        ("kopie", {"manifest.json": False, "passages.jsonl": False, "vectors.faiss": False}),
    ],
)
def test_index_layouts_are_recognised(name, entries):
    assert looks_like_index(name, entries)


@pytest.mark.parametrize(
    ("name", "entries"),
    [
        ("Wirtschaft", {"a.txt": False, "Börse": True}),
        ("Wirtschaft", {"CURRENT": False, "a.txt": False}),  # a file named CURRENT alone
        ("gen-2024", {"passages.jsonl": False}),  # a user's folder, not 8 digits
        ("daten", {"manifest.json": False, "passages.jsonl": False}),
        ("_idx", {"CURRENT": True, "gen-00000001": True}),  # CURRENT must be a file
    ],
)
def test_ordinary_folders_are_not_taken_for_an_index(name, entries):
    assert not looks_like_index(name, entries)


# ------------------------------------------------- an index inside the seeds


def test_index_inside_seeds_run_three_times_gives_the_same_counts(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    index = seeds / "_idx"
    reports = [build(seeds, index) for _ in range(3)]
    assert [counts(r) for r in reports] == [(3, 16)] * 3
    assert reports[0].added == ["fussball.txt", "nordkorea.txt", "wetter.md"]
    assert all(r.added == r.changed == r.removed == [] for r in reports[1:])
    assert not any("_idx" in w for r in reports for w in r.warnings)
    assert is_index_folder(index)
    assert sorted(file_hashes(seeds)) == ["fussball.txt", "nordkorea.txt", "wetter.md"]


def test_relative_paths_seeds_dotdot_and_index_inside(tmp_path, monkeypatch):
    write_german_seeds(tmp_path / "seeds")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    reports = [build("../seeds", "../seeds/_idx") for _ in range(3)]
    assert [counts(r) for r in reports] == [(3, 16)] * 3
    assert (tmp_path / "seeds" / "_idx" / "CURRENT").is_file()


def test_seeds_given_through_a_symlink_with_the_index_inside(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    link = tmp_path / "seeds-link"
    link.symlink_to(seeds, target_is_directory=True)
    first = build(link, seeds / "_idx")  # index by its real path, seeds by the link
    again = build(seeds, link / "_idx")  # and the other way round
    third = build(link, link / "_idx")
    assert [counts(r) for r in (first, again, third)] == [(3, 16)] * 3


def test_the_given_index_folder_is_skipped_even_before_it_holds_an_index(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    (seeds / "archiv").mkdir()
    (seeds / "archiv" / "alt.txt").write_text("Ein alter Text über Köln.\n", "utf-8")
    reports = [build(seeds, seeds / "archiv") for _ in range(2)]
    assert [counts(r) for r in reports] == [(3, 16)] * 2
    assert all("archiv/alt.txt" not in r.added for r in reports)


def test_other_indexes_and_generations_in_the_seeds_folder_are_skipped(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    elsewhere = tmp_path / "andere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("Ganz andere Nachrichten aus Graz.\n", "utf-8")
    build(elsewhere, seeds / "Wirtschaft" / "fremder-index")
    # a generation of a build still running somewhere, and a copy of one
    running = seeds / "gen-00000007.tmp-4711"
    running.mkdir()
    (running / "passages.jsonl").write_text(json.dumps({"text": "Graz"}) + "\n", "utf-8")
    copy = seeds / "sicherung"
    copy.mkdir()
    for name in ("manifest.json", "passages.jsonl", "vectors.faiss"):
        (copy / name).write_text("{}\n", "utf-8")
    warnings: list[str] = []
    assert list_seed_files(seeds, warnings.append) == [
        "fussball.txt",
        "nordkorea.txt",
        "wetter.md",
    ]
    assert warnings == []  # no 'not an article' warning for index files either
    assert counts(build(seeds, tmp_path / "ix")) == (3, 16)


def test_a_seeds_folder_that_is_an_index_is_an_error(tmp_path):
    seeds = write_german_seeds(tmp_path / "seeds")
    build(seeds, tmp_path / "ix")
    with pytest.raises(SeedsearchError, match="holds a seedsearch index, not articles"):
        build(tmp_path / "ix", tmp_path / "ix2")


# ------------------------------------------------- seeds inside the index


def test_check_folders_allows_an_index_inside_the_seeds(tmp_path):
    (tmp_path / "seeds").mkdir()
    check_folders(tmp_path / "seeds", tmp_path / "seeds" / "_idx")
    check_folders(tmp_path / "seeds", tmp_path / "index")


def test_same_folder_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "seeds").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SeedsearchError, match="are the same folder") as err:
        check_folders("seeds", "./seeds/../seeds")
    assert "--index" in str(err.value)


def test_seeds_inside_the_index_is_an_error_also_through_symlinks_and_relative_paths(
    tmp_path, monkeypatch
):
    index = tmp_path / "idx"
    write_german_seeds(index / "artikel")
    with pytest.raises(SeedsearchError, match="inside the index folder"):
        check_folders(index / "artikel", index)
    link = tmp_path / "artikel-link"
    link.symlink_to(index / "artikel", target_is_directory=True)
    with pytest.raises(SeedsearchError, match="inside the index folder"):
        check_folders(link, index)
    monkeypatch.chdir(index / "artikel")
    with pytest.raises(SeedsearchError, match="inside the index folder"):
        check_folders(".", "..")
    with pytest.raises(SeedsearchError, match="inside the index folder") as err:
        build(".", "..")  # the indexer checks before it writes anything
    assert str(err.value).startswith("seeds folder . is inside the index folder ..")
    assert not (index / "CURRENT").exists() and not (index / ".lock").exists()


# -------------------------------------------------------------- the CLI


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """CliRunner with the fake embedder standing in for the default model."""
    import indexer.embedder

    monkeypatch.setattr(indexer.embedder, "UseEmbedder", FakeEmbedder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEEDSEARCH_INDEX", raising=False)
    from search.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_cli_index_json_warns_about_files_that_are_not_articles(cli, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "report.pdf").write_bytes(b"%PDF-1.4")
    (seeds / "note.docx").write_bytes(b"PK\x03\x04")
    (seeds / "README").write_text("Lies mich zuerst.\n", "utf-8")
    (seeds / ".versteckt").write_text("still\n", "utf-8")
    result = cli("index", "--seeds", "seeds", "--index", "seeds/_idx", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = (
        "skipped 3 files that are not articles (.docx 1, .pdf 1, no extension 1: "
        "note.docx, README, report.pdf); seedsearch reads .txt, .md and .jsonl"
    )
    assert report["warnings"] == [expected]
    assert report["documents"] == 0
    assert f"warning: {expected}" in result.stderr
    again = json.loads(cli("index", "--seeds", "seeds", "--index", "seeds/_idx", "--json").stdout)
    assert again["warnings"] == [expected]  # the index folder is not counted


def test_cli_seeds_inside_the_index_is_one_error_line(cli, tmp_path):
    write_german_seeds(tmp_path / "idx" / "seeds")
    result = cli("index", "--seeds", "idx/seeds", "--index", "idx")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: seeds folder idx/seeds is inside")
    assert "Traceback" not in result.output
