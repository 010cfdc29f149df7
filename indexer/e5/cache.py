"""The generated e5 files on disk: built once, checked on every load, never trusted.

One folder per key under the seedsearch cache (``indexer.use_cache.cache_root``:
``$SEEDSEARCH_CACHE``, else ``$XDG_CACHE_HOME/seedsearch``, else
``~/.cache/seedsearch``)::

    e5-small-<weights sha256[:16]>-c<CONVERTER_VERSION>-<source hash>-<graph options>/
        model.onnx          the encoder graph (graph.build_graph)
        pieces.bin          the tokenizer's piece lookup table (tokenizer.PieceTable)
        checksums.json      the key and the sha256 of both files

A folder is built in a temporary folder beside it and renamed into place, so a
reader sees a whole folder or none, and two processes racing both end up with
the same files. On load both files are hashed again and compared with
``checksums.json`` (and the key with the expected one): on any difference the
folder is removed and rebuilt. The weights checksum itself is remembered per
(path, size, mtime, inode) in ``e5-small-weights.json``, so that a start does not
hash the 72 MB file again; a changed file has a new stat and is hashed anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from indexer.e5.graph import DISABLED_OPTIMIZERS, GraphOptions, build_graph
from indexer.e5.tokenizer import PieceTable
from indexer.e5.weights import Weights
from indexer.errors import SeedsearchError
from indexer.use_cache import cache_root

# Bump when the generated files change for the same weights (graph layout, ops,
# piece table): old folders are then no longer looked at. The key also holds a
# hash of the converter's source files, so an edit that forgets the bump still
# gets a new folder instead of a stale graph.
CONVERTER_VERSION = 1
_CONVERTER_SOURCES = ("graph.py", "onnx_proto.py", "tokenizer.py", "weights.py")
GRAPH = "model.onnx"
TOKENIZER = "pieces.bin"
CHECKSUMS = "checksums.json"
WEIGHTS_MEMO = "e5-small-weights.json"


@dataclass(frozen=True)
class Artifacts:
    """The checked contents of one cache folder."""

    folder: Path
    key: str
    graph: bytes
    graph_checksum: str  # sha256 of model.onnx: names the exact graph
    pieces: PieceTable


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def weights_checksum(path: Path, root: Path | None = None) -> str:
    """sha256 of the weight file, remembered by its stat in the cache folder."""
    root = root or cache_root()
    st = os.stat(path)
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
    memo_path = root / WEIGHTS_MEMO
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
        entry = memo.get(str(path))
        if entry and entry["stat"] == stamp and len(entry["sha256"]) == 64:
            return str(entry["sha256"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    digest = _file_sha256(path)
    memo[str(path)] = {"stat": stamp, "sha256": digest}
    with contextlib.suppress(OSError):  # an unwritable cache only costs speed
        root.mkdir(parents=True, exist_ok=True)
        _atomic_write(memo_path, json.dumps(memo, indent=1).encode("utf-8"))
    return digest


def converter_fingerprint() -> str:
    """``c<CONVERTER_VERSION>-<hash of the converter's source files>``."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _CONVERTER_SOURCES:
        try:
            h.update((here / name).read_bytes())
        except OSError:  # e.g. a bytecode-only install: the version number alone
            h.update(name.encode())
    return f"c{CONVERTER_VERSION}-{h.hexdigest()[:8]}"


def cache_key(weights_sha: str, options: GraphOptions) -> str:
    """Folder name: weights checksum, converter version and graph options."""
    return f"e5-small-{weights_sha[:16]}-{converter_fingerprint()}-{options.label}"


def _read(folder: Path, key: str) -> Artifacts:
    """The folder's files if they match their checksums and ``key``, else ValueError."""
    sums = json.loads((folder / CHECKSUMS).read_text(encoding="utf-8"))
    if sums.get("key") != key:
        raise ValueError(f"cache folder {folder} was built for {sums.get('key')!r}")
    graph = (folder / GRAPH).read_bytes()
    table = (folder / TOKENIZER).read_bytes()
    graph_sum = sha256(graph)
    if graph_sum != sums.get(GRAPH) or sha256(table) != sums.get(TOKENIZER):
        raise ValueError(f"cache folder {folder} does not match its checksums")
    return Artifacts(folder, key, graph, graph_sum, PieceTable.from_bytes(table))


def _build(weights: Weights, options: GraphOptions, folder: Path, key: str) -> Artifacts:
    graph = build_graph(weights, options)
    pieces = PieceTable.build(weights)
    table = pieces.to_bytes()
    sums = {"key": key, GRAPH: sha256(graph), TOKENIZER: sha256(table)}
    artifacts = Artifacts(folder, key, graph, sums[GRAPH], pieces)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    except OSError:  # no writable cache: use the files from memory
        return artifacts
    try:
        (tmp / GRAPH).write_bytes(graph)
        (tmp / TOKENIZER).write_bytes(table)
        (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1), encoding="utf-8")
        with contextlib.suppress(OSError):  # another process may have won the race
            os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return artifacts


def _discard(folder: Path) -> None:
    """Move a bad folder out of the way atomically, then delete it."""
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
    try:
        os.rename(folder, trash)
    except OSError:
        return  # already gone (another process) or not ours to move
    shutil.rmtree(trash, ignore_errors=True)


def load(weights: Weights, options: GraphOptions, root: Path | None = None) -> Artifacts:
    """The generated graph and piece table for ``weights``: from the cache if intact, else built."""
    root = root or cache_root()
    key = cache_key(weights_checksum(weights.path, root), options)
    folder = root / key
    if folder.is_dir():
        try:
            return _read(folder, key)
        except (OSError, ValueError, TypeError, AttributeError):
            _discard(folder)
    return _build(weights, options, folder, key)


def runtime():
    """The ``onnxruntime`` module, or a SeedsearchError saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SeedsearchError(
            "model 'e5-small' needs ONNX Runtime: pip install onnxruntime"
        ) from exc
    return onnxruntime


def session(artifacts: Artifacts, threads: int = 1, spinning: bool = False):
    """An ONNX Runtime CPU session for the graph.

    One intra-op thread by default: the embedder runs one sequence per thread, and
    a single thread neither spins nor waits for others (measured faster on 2
    shared cores than 2 intra-op threads on batches).
    """
    ort = runtime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(
            artifacts.graph,
            so,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=DISABLED_OPTIMIZERS,
        )
    except Exception as exc:  # e.g. an ONNX Runtime without one of the graph's ops
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SeedsearchError(
            f"ONNX Runtime {ort.__version__} cannot run the e5-small graph ({first}); "
            "install a tested version: pip install 'onnxruntime>=1.20,<2'"
        ) from exc
