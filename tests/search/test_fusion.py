"""Fusion of BM25 and vector rankings: pure functions on hand-made score lists."""

from __future__ import annotations

import pytest

from indexer.errors import QueryError
from search.fusion import (
    RRF_K,
    FusionMethod,
    SearchMode,
    fuse,
    minmax_fusion,
    minmax_normalize,
    rrf_fusion,
)

BM25 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
VEC = [("c", 0.9), ("a", 0.5), ("d", 0.1)]


def as_dict(ranked):
    return dict(ranked)


# ----------------------------------------------------------------- min-max


def test_minmax_normalize_maps_best_to_one_and_worst_to_zero():
    assert minmax_normalize(BM25) == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert minmax_normalize([]) == {}


def test_minmax_fusion_with_alpha_half():
    fused = minmax_fusion(BM25, VEC, 0.5)
    # bm25 norm: a 1, b .5, c 0; vector norm: c 1, a .5, d 0
    assert as_dict(fused) == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.5, "d": 0.0})
    assert [pid for pid, _ in fused] == ["a", "c", "b", "d"]


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (1.0, {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.0}),
        (0.0, {"a": 0.5, "b": 0.0, "c": 1.0, "d": 0.0}),
        (0.25, {"a": 0.625, "b": 0.125, "c": 0.75, "d": 0.0}),
    ],
)
def test_minmax_alpha_is_the_bm25_share(alpha, expected):
    assert as_dict(minmax_fusion(BM25, VEC, alpha)) == pytest.approx(expected)


def test_alpha_changes_the_winner():
    assert minmax_fusion(BM25, VEC, 0.9)[0][0] == "a"
    assert minmax_fusion(BM25, VEC, 0.1)[0][0] == "c"


def test_zero_range_guard_all_equal_scores_become_one():
    equal = [("x", 3.7), ("y", 3.7), ("z", 3.7)]
    assert minmax_normalize(equal) == {"x": 1.0, "y": 1.0, "z": 1.0}
    assert minmax_normalize([("solo", -2.0)]) == {"solo": 1.0}
    fused = minmax_fusion(equal, [], 0.5)
    assert as_dict(fused) == pytest.approx({"x": 0.5, "y": 0.5, "z": 0.5})


def test_hit_found_by_one_retriever_only_gets_zero_from_the_other():
    fused = as_dict(minmax_fusion(BM25, VEC, 0.5))
    assert fused["b"] == pytest.approx(0.5 * 0.5)  # bm25 only
    assert fused["d"] == pytest.approx(0.0)  # vector only, at the vector minimum
    only_vec = as_dict(minmax_fusion([], [("v", 0.8), ("w", 0.2)], 0.3))
    assert only_vec == pytest.approx({"v": 0.7, "w": 0.0})


def test_minmax_negative_scores():
    fused = as_dict(minmax_fusion([], [("p", -0.1), ("q", -0.3), ("r", -0.2)], 0.0))
    assert fused == pytest.approx({"p": 1.0, "q": 0.0, "r": 0.5})


# --------------------------------------------------------------------- RRF


def test_rrf_k_is_60():
    assert RRF_K == 60


def test_rrf_exact_values():
    fused = as_dict(rrf_fusion(BM25, VEC))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["d"] == pytest.approx(1 / 63)
    assert [pid for pid, _ in rrf_fusion(BM25, VEC)] == ["a", "c", "b", "d"]


def test_rrf_ignores_score_values_only_ranks_count():
    scaled = [(pid, s * 1000) for pid, s in BM25]
    assert rrf_fusion(scaled, VEC) == rrf_fusion(BM25, VEC)


def test_rrf_weights_follow_alpha():
    bm25_only = as_dict(rrf_fusion(BM25, VEC, alpha=1.0))
    assert bm25_only["a"] == pytest.approx(2 / 61)
    assert bm25_only["d"] == pytest.approx(0.0)
    weighted = as_dict(rrf_fusion(BM25, VEC, alpha=0.25))
    assert weighted["a"] == pytest.approx(0.5 / 61 + 1.5 / 62)


def test_fuse_dispatches_on_method():
    assert fuse(FusionMethod.RRF, BM25, VEC, 0.5) == rrf_fusion(BM25, VEC, 0.5)
    assert fuse(FusionMethod.MINMAX, BM25, VEC, 0.5) == minmax_fusion(BM25, VEC, 0.5)
    assert fuse(FusionMethod.RRF, BM25, VEC, 0.5) != fuse(FusionMethod.MINMAX, BM25, VEC, 0.5)


# --------------------------------------------------------------- ties


@pytest.mark.parametrize("method", list(FusionMethod))
def test_ties_are_broken_by_passage_id(method):
    # "b" and "a" tie in both methods: bm25 rank 1 + vector rank 2, and vice versa.
    bm25 = [("b", 5.0), ("a", 1.0)]
    vec = [("a", 0.9), ("b", 0.1)]
    fused = fuse(method, bm25, vec, 0.5)
    assert fused[0][1] == pytest.approx(fused[1][1])
    assert [pid for pid, _ in fused] == ["a", "b"]
    # Input order does not matter.
    assert fuse(method, list(reversed(bm25)), list(reversed(vec)), 0.5) == fused


def test_equal_fused_scores_sort_by_id_regardless_of_input_order():
    ids = ["doc#3", "doc#10", "doc#1", "doc#2"]
    a = minmax_fusion([(i, 1.0) for i in ids], [], 0.5)
    b = minmax_fusion([(i, 1.0) for i in reversed(ids)], [], 0.5)
    assert a == b
    assert [pid for pid, _ in a] == sorted(ids)


def test_empty_inputs():
    assert minmax_fusion([], [], 0.5) == []
    assert rrf_fusion([], []) == []


# ------------------------------------------------------------ from_str


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("minmax", FusionMethod.MINMAX),
        (" RRF ", FusionMethod.RRF),
        (FusionMethod.RRF, FusionMethod.RRF),
    ],
)
def test_fusion_method_from_str(text, expected):
    assert FusionMethod.from_str(text) is expected


def test_fusion_method_error_lists_valid_values():
    with pytest.raises(QueryError) as info:
        FusionMethod.from_str("borda")
    message = str(info.value)
    assert "'borda'" in message
    assert "minmax" in message and "rrf" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("hybrid", SearchMode.HYBRID), ("BM25", SearchMode.BM25), (" vector", SearchMode.VECTOR)],
)
def test_search_mode_from_str(text, expected):
    assert SearchMode.from_str(text) is expected


def test_search_mode_error_lists_valid_values():
    with pytest.raises(QueryError) as info:
        SearchMode.from_str("semantic")
    message = str(info.value)
    assert "'semantic'" in message
    assert all(v in message for v in ("hybrid", "bm25", "vector"))
