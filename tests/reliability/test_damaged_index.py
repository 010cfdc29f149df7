"""Damaged or foreign indexes: a clear message with the fix, never a crash; a failed
update leaves the previous index answering exactly as before."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from _faults import FAULTS, disk_full, fault_patches
from conftest import FakeEmbedder
from conftest import answers as shared_answers
from typer.testing import CliRunner

from indexer import Indexer, store
from indexer.errors import EmbedderMismatchError, IndexCorruptError, SeedsearchError
from indexer.store import docstore, generations
from indexer.store.manifest import read_manifest
from search import SearchEngine
from search.cli import app

FIX = "seedsearch index --full"
QUERIES = ["Hitze Bayern", "Putin Nordkorea", "Fußball Dortmund"]


def answers(index: Path) -> dict:
    return shared_answers(index, QUERIES, k=5)


def gen_dir(index: Path) -> Path:
    return generations.current_generation(index)


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "flip":
        b = bytearray(data)
        b[len(b) // 2] ^= 0x5A
        path.write_bytes(bytes(b))
    else:  # pragma: no cover
        raise ValueError(how)


def whoosh_files(index: Path) -> list[Path]:
    return sorted(p for p in (gen_dir(index) / store.WHOOSH).iterdir() if "WRITELOCK" not in p.name)


def expect_corrupt(index: Path, *what: str) -> str:
    with pytest.raises(IndexCorruptError) as info:
        SearchEngine.open(index, model=FakeEmbedder())
    message = str(info.value)
    assert FIX in message
    for w in what:
        assert w in message, message
    return message


def cli_search(index: Path):
    return CliRunner().invoke(app, ["search", "--index", str(index), "--mode", "bm25", "Hitze"])


def assert_cli_error(result, *what: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for w in what:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("how", ["truncate", "flip", "empty"])
def test_damaged_whoosh_files_are_detected(built_index, how):
    for i, f in enumerate(whoosh_files(built_index)):
        backup = f.read_bytes()
        damage(f, how)
        expect_corrupt(built_index, f.name)
        if i == 0:
            assert_cli_error(cli_search(built_index), f.name, FIX)
        f.write_bytes(backup)
    answers(built_index)  # intact again


def test_missing_whoosh_segment(built_index):
    seg = next(p for p in whoosh_files(built_index) if p.suffix == ".seg")
    seg.unlink()
    expect_corrupt(built_index, "missing")


@pytest.mark.parametrize("name", [store.VECTORS, store.DOCS])
@pytest.mark.parametrize("how", ["truncate", "flip", "empty"])
def test_damaged_data_files_are_detected(built_index, name, how):
    damage(gen_dir(built_index) / name, how)
    expect_corrupt(built_index, name)
    assert_cli_error(cli_search(built_index), name, FIX)


@pytest.mark.parametrize("name", [store.VECTORS, store.DOCS, store.MANIFEST])
def test_missing_files_are_detected(built_index, name):
    (gen_dir(built_index) / name).unlink()
    expect_corrupt(built_index, name)
    assert_cli_error(cli_search(built_index), name, FIX)


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text[: len(text) // 2],
        lambda text: "",
        lambda text: "\xff\xfe garbage",
        lambda text: "[1, 2, 3]",
        lambda text: "[" * 100_000,
        lambda text: text.replace('"checksums": {', '"checksums": [], "x": {', 1),
        lambda text: json.dumps({**json.loads(text), "format_version": "1"}),
        lambda text: json.dumps({**json.loads(text), "passages": None}),
        lambda text: json.dumps({**json.loads(text), "checksums": ["a"]}),
        lambda text: json.dumps({**json.loads(text), "unknown_field": 1}),
    ],
    ids=["cut", "empty", "binary", "list", "deep", "extra", "str-ver", "none", "cklist", "field"],
)
def test_damaged_manifest(built_index, edit):
    path = gen_dir(built_index) / store.MANIFEST
    path.write_text(edit(path.read_text("utf-8")), encoding="utf-8", errors="surrogateescape")
    expect_corrupt(built_index, store.MANIFEST)
    assert_cli_error(cli_search(built_index), FIX)
    with pytest.raises(IndexCorruptError, match=FIX):
        Indexer(built_index.parent / "seeds", built_index, model=FakeEmbedder()).update()


def test_manifest_checksums_for_every_data_file(built_index):
    manifest = read_manifest(gen_dir(built_index))
    names = set(manifest.checksums)
    assert {store.VECTORS, store.DOCS} <= names
    assert {f"{store.WHOOSH}/{p.name}" for p in whoosh_files(built_index)} <= names


def test_vectors_without_checksum_are_not_read(built_index):
    gen = gen_dir(built_index)
    manifest = json.loads((gen / store.MANIFEST).read_text("utf-8"))
    del manifest["checksums"][store.VECTORS]
    (gen / store.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    damage(gen / store.VECTORS, "truncate")
    expect_corrupt(built_index, "no checksum")


SUBPROCESS_OPEN = """
import sys
sys.path.insert(0, "tests")
from conftest import FakeEmbedder
from search import SearchEngine
from indexer.errors import SeedsearchError
try:
    SearchEngine.open(sys.argv[1], model=FakeEmbedder()).search("Hitze")
except SeedsearchError as exc:
    print("clean error:", exc)
    sys.exit(2)
print("opened")
"""


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_damaged_faiss_file_never_crashes_the_process(built_index, how):
    """FAISS may abort or crash on garbage: the checksum must stop it first."""
    damage(gen_dir(built_index) / store.VECTORS, how)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_OPEN, str(built_index)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "clean error:" in proc.stdout and FIX in proc.stdout


@pytest.mark.parametrize(
    "content", [b"gen-99999999\n", b"", b"\xff\xfe\x00", b"gen-abc\n", b"../etc\n", b"gen-1\x00"]
)
def test_current_pointing_nowhere(built_index, content):
    (built_index / store.CURRENT).write_bytes(content)
    with pytest.raises(IndexCorruptError, match=FIX):
        SearchEngine.open(built_index, model=FakeEmbedder())
    assert_cli_error(cli_search(built_index), "CURRENT", FIX)
    # a full rebuild repairs it
    Indexer(built_index.parent / "seeds", built_index, model=FakeEmbedder()).update(full=True)
    answers(built_index)


def test_current_is_a_folder(built_index):
    (built_index / store.CURRENT).unlink()
    (built_index / store.CURRENT).mkdir()
    with pytest.raises(IndexCorruptError, match=FIX):
        SearchEngine.open(built_index, model=FakeEmbedder())


def test_newer_format_version(built_index):
    path = gen_dir(built_index) / store.MANIFEST
    data = json.loads(path.read_text("utf-8"))
    data["format_version"] = store.FORMAT_VERSION + 1
    path.write_text(json.dumps(data), encoding="utf-8")
    message = expect_corrupt(built_index, "newer", "upgrade seedsearch")
    assert str(store.FORMAT_VERSION + 1) in message
    assert_cli_error(cli_search(built_index), "newer", FIX)
    seeds = built_index.parent / "seeds"
    with pytest.raises(IndexCorruptError, match=FIX):
        Indexer(seeds, built_index, model=FakeEmbedder()).update()
    Indexer(seeds, built_index, model=FakeEmbedder()).update(full=True)
    answers(built_index)


class OtherEmbedder(FakeEmbedder):
    spec = "other-model-32"
    dim = 32


def test_index_built_with_another_embedder(built_index):
    with pytest.raises(EmbedderMismatchError, match="fake-hash-64"):
        SearchEngine.open(built_index, model=OtherEmbedder())
    seeds = built_index.parent / "seeds"
    with pytest.raises(EmbedderMismatchError, match="--full --model other-model-32"):
        Indexer(seeds, built_index, model=OtherEmbedder()).update()
    result = CliRunner().invoke(
        app, ["search", "--index", str(built_index), "--model", "x", "Hitze"]
    )
    assert result.exit_code == 2  # unknown option or mismatch: never a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_embedder_with_the_same_name_but_another_size(built_index):
    class Impostor(FakeEmbedder):
        dim = 32

    with SearchEngine.open(built_index, model=Impostor()) as engine:
        for _ in range(2):  # the second call must not slip through either
            with pytest.raises(EmbedderMismatchError, match="32-dim"):
                engine.search("Hitze", mode="vector")
        assert engine.search("Hitze", mode="bm25")


def test_damaged_index_blocks_incremental_update_until_full_rebuild(built_index):
    seg = next(p for p in whoosh_files(built_index) if p.suffix == ".seg")
    damage(seg, "flip")
    seeds = built_index.parent / "seeds"
    (seeds / "neu.txt").write_text("Ein neuer Artikel über Regen.\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match=FIX):
        Indexer(seeds, built_index, model=FakeEmbedder()).update()
    report = Indexer(seeds, built_index, model=FakeEmbedder()).update(full=True)
    assert report.documents == 4
    assert answers(built_index)


# ------------------------------------------------------------- failed updates


@pytest.mark.parametrize("point", FAULTS)
def test_disk_full_during_update_keeps_previous_index(built_index, point):
    seeds = built_index.parent / "seeds"
    before = answers(built_index)
    gens_before = sorted(p.name for p in built_index.iterdir())
    (seeds / "neu.txt").write_text("Starkregen überflutet Keller in Köln.\n", "utf-8")
    (seeds / "fussball.txt").write_text("Der Spieltag fällt wegen Regen aus.\n", "utf-8")
    with ExitStack() as stack, pytest.raises((OSError, SeedsearchError)) as info:
        for patch in fault_patches(point, FakeEmbedder):
            stack.enter_context(patch)
        Indexer(seeds, built_index, model=FakeEmbedder()).update()
    assert "No space left" in str(info.value)
    assert answers(built_index) == before
    assert not [p for p in built_index.iterdir() if ".tmp" in p.name and p.is_dir()]
    assert sorted(p.name for p in built_index.iterdir() if p.name.startswith("gen-")) == [
        g for g in gens_before if g.startswith("gen-")
    ]
    # once there is space again, the update goes through and equals a fresh build
    Indexer(seeds, built_index, model=FakeEmbedder()).update()
    fresh = built_index.parent / "fresh"
    Indexer(seeds, fresh, model=FakeEmbedder()).update()
    assert answers(built_index) == answers(fresh)


def test_cli_index_disk_full_is_one_error_line(built_index, monkeypatch):
    seeds = built_index.parent / "seeds"
    (seeds / "neu.txt").write_text("Starkregen in Köln.\n", "utf-8")
    before = answers(built_index)
    monkeypatch.setattr(docstore.DocStoreWriter, "commit", disk_full)
    from indexer import core

    monkeypatch.setattr(core, "load_embedder", lambda model=None: FakeEmbedder())
    result = CliRunner().invoke(
        app, ["index", "--seeds", str(seeds), "--index", str(built_index), "--json"]
    )
    assert_cli_error(result, "No space left on device")
    monkeypatch.undo()
    assert answers(built_index) == before
