"""Opening checks sizes and stamps (no file read), ``seedsearch check`` hashes every
file: damage is still an error, never silent garbage."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import FakeEmbedder, answers
from typer.testing import CliRunner

from indexer import Indexer
from indexer.errors import IndexCorruptError
from indexer.store import DOCS, MANIFEST, VECTORS, WHOOSH, files, generations, stamps
from search import SearchEngine
from search.check import check_index
from search.cli import app

FIX = "seedsearch index --full"
QUERIES = ["Hitze Bayern", "Fußball Dortmund"]


def gen_dir(index: Path) -> Path:
    return generations.current_generation(index)


def data_files(index: Path) -> list[Path]:
    gen = gen_dir(index)
    whoosh = sorted(p for p in (gen / WHOOSH).iterdir() if "WRITELOCK" not in p.name)
    return [gen / DOCS, gen / VECTORS, *whoosh]


def flip_keeping_mtime(path: Path) -> None:
    """Damage one byte and put the modification time back (what a stat cannot see:
    bits rotting on disk, or a tool that restores times)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def count_hashes(monkeypatch) -> list[str]:
    """The files hashed from now on (by the stamps module or any other)."""
    hashed: list[str] = []
    real = files.file_checksum

    def counting(path):
        hashed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(stamps, "file_checksum", counting)
    monkeypatch.setattr(files, "file_checksum", counting)
    return hashed


def open_fake(index: Path) -> SearchEngine:
    return SearchEngine.open(index, model=FakeEmbedder())


def test_published_index_opens_without_reading_its_files(built_index, monkeypatch):
    assert (gen_dir(built_index) / stamps.STAMPS).is_file()
    hashed = count_hashes(monkeypatch)
    with open_fake(built_index) as engine:
        assert engine.search("Hitze Bayern", k=1)[0].doc == "wetter.md"
    assert hashed == []


@pytest.mark.parametrize("which", [0, 1, 2], ids=["docs", "vectors", "whoosh"])
def test_check_finds_damage_open_cannot_see_then_open_refuses(built_index, which):
    target = data_files(built_index)[which]
    flip_keeping_mtime(target)
    result = CliRunner().invoke(app, ["check", "--index", str(built_index)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert target.name in lines[0] and "checksum" in lines[0] and FIX in lines[0]
    # the failed check removed the stamps: every open now hashes, and refuses
    with pytest.raises(IndexCorruptError, match=target.name):
        open_fake(built_index)


def test_written_file_is_hashed_at_open_and_refused(built_index):
    target = data_files(built_index)[0]
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))  # same size, new mtime: the stamp no longer matches
    with pytest.raises(IndexCorruptError, match="does not match its checksum"):
        open_fake(built_index)


def test_truncated_file_is_refused_by_its_size(built_index, monkeypatch):
    target = data_files(built_index)[2]
    st = target.stat()
    target.write_bytes(target.read_bytes()[:-7])
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    hashed = count_hashes(monkeypatch)
    with pytest.raises(IndexCorruptError, match=f"{target.name} has .* bytes, the manifest says"):
        open_fake(built_index)
    assert hashed == []


def test_copied_index_is_hashed_once_then_opens_cheaply(built_index, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(built_index, copy)  # new inodes: the stamps do not match
    before = answers(built_index, QUERIES, 3)
    hashed = count_hashes(monkeypatch)
    assert answers(copy, QUERIES, 3) == before
    assert len(hashed) == len(json.loads((gen_dir(copy) / MANIFEST).read_text())["checksums"])
    hashed.clear()
    assert answers(copy, QUERIES, 3) == before
    assert hashed == []


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"docs.sqlite": [1, 2, 3]}'])
def test_damaged_stamps_only_cost_a_full_hash(built_index, content, monkeypatch):
    (gen_dir(built_index) / stamps.STAMPS).write_text(content, "utf-8")
    hashed = count_hashes(monkeypatch)
    with open_fake(built_index) as engine:
        assert len(engine) > 0
    assert DOCS in hashed
    assert json.loads((gen_dir(built_index) / stamps.STAMPS).read_text("utf-8"))[DOCS][0] > 0


def test_counts_that_disagree_are_an_error_at_open(built_index):
    path = gen_dir(built_index) / MANIFEST
    raw = json.loads(path.read_text("utf-8"))
    raw["passages"] += 1
    path.write_text(json.dumps(raw), "utf-8")
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        open_fake(built_index)


def test_store_of_another_build_with_valid_checksums_is_an_error(built_index, seeds_dir, tmp_path):
    """Files that each match their checksum but come from different builds."""
    (seeds_dir / "mehr.txt").write_text("Schnee in Österreich.\n\nStraßen gesperrt.\n", "utf-8")
    other = tmp_path / "other"
    Indexer(seeds_dir, other, model=FakeEmbedder()).update()
    gen, other_gen = gen_dir(built_index), gen_dir(other)
    shutil.copyfile(other_gen / DOCS, gen / DOCS)
    raw = json.loads((gen / MANIFEST).read_text("utf-8"))
    raw["checksums"][DOCS] = json.loads((other_gen / MANIFEST).read_text("utf-8"))["checksums"][
        DOCS
    ]
    (gen / MANIFEST).write_text(json.dumps(raw), "utf-8")
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        open_fake(built_index)
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        check_index(built_index)


def test_check_of_an_intact_index(built_index):
    result = CliRunner().invoke(app, ["check", "--index", str(built_index), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    gen = gen_dir(built_index)
    files = json.loads((gen / MANIFEST).read_text("utf-8"))["checksums"]
    assert report["files"] == len(files) and report["passages"] > 0
    assert report["bytes"] == sum(size for size, _ in files.values())
    plain = CliRunner().invoke(app, ["check", "--index", str(built_index)])
    assert plain.exit_code == 0 and plain.stdout.startswith("ok: ")


def test_check_without_an_index(tmp_path):
    result = CliRunner().invoke(app, ["check", "--index", str(tmp_path / "nirgends")])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: no index at")


def test_passage_under_another_vector_id_is_refused_by_open_and_check(built_index):
    """Same counts, one passage under another vector id (checksums made to match):
    open sees it in the ids' sum and range, the check also row by row."""
    import sqlite3

    from indexer.store.files import file_checksum

    gen = gen_dir(built_index)
    db = sqlite3.connect(gen / DOCS)
    db.execute("UPDATE passages SET vid = vid + 1000 WHERE vid = (SELECT max(vid) FROM passages)")
    db.commit()
    db.close()
    raw = json.loads((gen / MANIFEST).read_text("utf-8"))
    raw["checksums"][DOCS] = file_checksum(gen / DOCS)
    (gen / MANIFEST).write_text(json.dumps(raw), "utf-8")
    with pytest.raises(IndexCorruptError, match="name different passages"):
        open_fake(built_index)
    with pytest.raises(IndexCorruptError, match="name different passages"):
        check_index(built_index)
