"""The benchmarks' disk cache of embeddings: same vectors as embedding afresh, nothing
re-embedded on the next run, never shared between models or graphs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from conftest import FakeEmbedder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from vector_cache import DiskCachingEmbedder  # noqa: E402

TEXTS = ["Die Straße in München ist gesperrt.", "Größere Hitze in Baden-Württemberg."]
QUERY = "Wo ist die Straße gesperrt?"


def test_second_run_reads_the_file_and_embeds_nothing(tmp_path):
    first = DiskCachingEmbedder(FakeEmbedder(), tmp_path)
    fresh = first.embed_passages(TEXTS)
    query = first.embed_query(QUERY)
    first.save()

    inner = FakeEmbedder()
    second = DiskCachingEmbedder(inner, tmp_path)
    assert second.loaded == 3
    assert np.array_equal(second.embed_passages(TEXTS), fresh)
    assert np.array_equal(second.embed_query(QUERY), query)
    assert inner.calls == 0
    second.embed_passages([*TEXTS, "Ärzte raten zu Wasser."])
    assert inner.calls == 1  # only the new passage


def test_another_graph_of_the_same_spec_does_not_reuse_vectors(tmp_path):
    a, b = FakeEmbedder(), FakeEmbedder()
    a.model_id, b.model_id = "graph:aaa", "graph:bbb"
    DiskCachingEmbedder(a, tmp_path).embed_passages(TEXTS)
    cached = DiskCachingEmbedder(a, tmp_path)
    cached.embed_passages(TEXTS)
    cached.save()
    other = DiskCachingEmbedder(b, tmp_path)
    assert other.loaded == 0 and other.path != cached.path
    other.embed_passages(TEXTS)
    assert b.calls == len(TEXTS)
