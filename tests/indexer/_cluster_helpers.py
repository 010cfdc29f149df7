"""Embedders for the cluster tests, made on Dask workers from their specs
(``_cluster_helpers:CountingEmbedder`` ...): spawned workers inherit the test
process's ``sys.path``, which holds this folder."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from conftest import FakeEmbedder

#: How many CountingEmbedders this process has made.
LOADS = 0


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting how often a process loads it."""

    def __init__(self) -> None:
        super().__init__()
        global LOADS
        LOADS += 1


def loads() -> int:
    return LOADS


#: A text with this word kills the worker that embeds it, every time.
CRASH_ALWAYS = "Dauerabsturz"
#: A text with this word kills the first worker that embeds it (once per folder
#: ``$SEEDSEARCH_TEST_CRASH_DIR``, where a marker file remembers the crash).
CRASH_ONCE = "Einmalabsturz"


def _in_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def _first_crash() -> bool:
    folder = os.environ.get("SEEDSEARCH_TEST_CRASH_DIR")
    if not folder:
        return False
    try:
        os.close(os.open(Path(folder) / "crashed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class CrashingEmbedder(FakeEmbedder):
    """The fake embedder, whose worker process dies (SIGKILL, like a crash or the OOM
    killer) while embedding a text with CRASH_ALWAYS, or CRASH_ONCE the first time.
    Outside a Dask worker it refuses, so it can never kill the test process."""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if any(CRASH_ALWAYS in t or CRASH_ONCE in t for t in texts):
            if not _in_worker():
                raise RuntimeError("CrashingEmbedder crashes Dask workers only")
            if any(CRASH_ALWAYS in t for t in texts) or _first_crash():
                os.kill(os.getpid(), signal.SIGKILL)
        return super().embed_passages(texts)
