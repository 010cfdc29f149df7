"""The e5 cache: a damaged or stale cached graph is rebuilt, never used."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from _e5_synthetic import write_weights

from indexer.e5 import cache
from indexer.e5.graph import GraphOptions, MatMulKind, build_graph
from indexer.e5.weights import Weights


@pytest.fixture
def weights(tmp_path) -> Weights:
    path = tmp_path / "weights.bin"
    write_weights(path)
    return Weights(path)


def folders(root):
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def test_first_load_builds_then_reads_the_same_files(tmp_path, weights, monkeypatch):
    root = tmp_path / "cache"
    built = cache.load(weights, GraphOptions(), root)
    (name,) = folders(root)
    assert name == built.key and name.startswith("e5-small-")
    assert built.graph == build_graph(weights, GraphOptions())  # deterministic
    assert built.graph_checksum == cache.sha256(built.graph)

    monkeypatch.setattr(cache, "build_graph", lambda *a: pytest.fail("rebuilt an intact cache"))
    again = cache.load(weights, GraphOptions(), root)
    assert again.graph == built.graph and again.graph_checksum == built.graph_checksum
    assert again.pieces.char_map == built.pieces.char_map


@pytest.mark.parametrize("damage", ["flip-graph", "truncate-graph", "table", "checksums", "gone"])
def test_damaged_cache_is_rebuilt(tmp_path, weights, damage):
    root = tmp_path / "cache"
    good = cache.load(weights, GraphOptions(), root)
    folder = root / good.key
    if damage == "flip-graph":
        data = bytearray((folder / cache.GRAPH).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / cache.GRAPH).write_bytes(bytes(data))
    elif damage == "truncate-graph":
        (folder / cache.GRAPH).write_bytes((folder / cache.GRAPH).read_bytes()[:1000])
    elif damage == "table":
        (folder / cache.TOKENIZER).write_bytes(b"E5PT" + b"\0" * 8)
    elif damage == "checksums":
        (folder / cache.CHECKSUMS).write_text("{not json", encoding="utf-8")
    else:
        (folder / cache.GRAPH).unlink()
    again = cache.load(weights, GraphOptions(), root)
    assert again.graph == good.graph and again.graph_checksum == good.graph_checksum
    assert cache.sha256((folder / cache.GRAPH).read_bytes()) == good.graph_checksum  # repaired
    assert folders(root) == [good.key]  # no trash or temporary folders left


def test_folder_with_a_foreign_key_is_not_trusted(tmp_path, weights):
    """A folder whose checksums.json names another key (e.g. copied from another
    converter version) is rebuilt even though its files match their checksums."""
    root = tmp_path / "cache"
    good = cache.load(weights, GraphOptions(), root)
    sums_path = root / good.key / cache.CHECKSUMS
    sums = json.loads(sums_path.read_text(encoding="utf-8"))
    other = build_graph(weights, GraphOptions(matmul=MatMulKind.FP32))
    (root / good.key / cache.GRAPH).write_bytes(other)
    sums.update({"key": "e5-small-old", cache.GRAPH: cache.sha256(other)})
    sums_path.write_text(json.dumps(sums), encoding="utf-8")
    assert cache.load(weights, GraphOptions(), root).graph == good.graph


def test_stale_keys_are_not_used(tmp_path, weights, monkeypatch):
    root = tmp_path / "cache"
    old = cache.load(weights, GraphOptions(), root)
    monkeypatch.setattr(cache, "CONVERTER_VERSION", cache.CONVERTER_VERSION + 1)
    new = cache.load(weights, GraphOptions(), root)
    assert new.key != old.key and set(folders(root)) == {old.key, new.key}
    # new weights (same path, new contents and stat) get a new key too
    write_weights(weights.path, seed=7)
    changed = cache.load(Weights(weights.path), GraphOptions(), root)
    assert changed.key != new.key and changed.graph != new.graph


def test_weights_checksum_is_remembered_by_stat(tmp_path, weights, monkeypatch):
    root = tmp_path / "cache"
    first = cache.weights_checksum(weights.path, root)
    assert first == cache._file_sha256(weights.path)
    monkeypatch.setattr(cache, "_file_sha256", lambda p: pytest.fail("hashed again"))
    assert cache.weights_checksum(weights.path, root) == first


def test_unwritable_cache_still_gives_the_graph(tmp_path, weights):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    art = cache.load(weights, GraphOptions(), blocker / "cache")
    assert art.graph == build_graph(weights, GraphOptions())


def test_racing_builders_agree_and_leave_one_folder(tmp_path, weights):
    root = tmp_path / "cache"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: cache.load(weights, GraphOptions(), root), range(4)))
    assert len({r.graph_checksum for r in results}) == 1
    assert folders(root) == [results[0].key]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_a_graph_onnx_runtime_cannot_run_is_a_clear_error(tmp_path, weights):
    pytest.importorskip("onnxruntime")
    from indexer.errors import SeedsearchError

    art = cache.load(weights, GraphOptions(), tmp_path / "cache")
    broken = cache.Artifacts(art.folder, art.key, b"not an onnx model", "0" * 64, art.pieces)
    with pytest.raises(SeedsearchError, match="cannot run the e5-small graph.*pip install"):
        cache.session(broken)
