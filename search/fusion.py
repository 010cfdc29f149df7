"""Merging two rankings into one: plain functions on plain data (no I/O).

Input of each function: two ranked lists of ``(passage_id, score)``, best first,
as the retrievers return them. Output: ``[(passage_id, fused_score)]`` sorted by
fused score, ties broken by passage id so the order is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from indexer.errors import QueryError

Ranked = Sequence[tuple[str, float]]

#: Reciprocal rank fusion constant (Cormack et al. 2009): a hit at rank r adds
#: weight / (RRF_K + r). 60 is the value of the paper; it damps the head of each list.
RRF_K = 60


class FusionMethod(str, Enum):
    """How hybrid search merges BM25 and vector results."""

    MINMAX = "minmax"
    RRF = "rrf"

    @classmethod
    def from_str(cls, value: str | FusionMethod) -> FusionMethod:
        if isinstance(value, FusionMethod):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise QueryError(f"unknown fusion method {value!r}: use one of {valid}") from None


class SearchMode(str, Enum):
    """Which retrievers answer a query."""

    HYBRID = "hybrid"
    BM25 = "bm25"
    VECTOR = "vector"

    @classmethod
    def from_str(cls, value: str | SearchMode) -> SearchMode:
        if isinstance(value, SearchMode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise QueryError(f"unknown mode {value!r}: use one of {valid}") from None


def minmax_normalize(ranked: Ranked) -> dict[str, float]:
    """Scores mapped to [0, 1] by (s - min) / (max - min) over the list.

    Zero-range guard: when all scores are equal (or there is one hit) every hit
    gets 1.0: each is as good as the best this retriever found, and dividing by
    zero is avoided.
    """
    if not ranked:
        return {}
    scores = [s for _, s in ranked]
    lo, hi = min(scores), max(scores)
    if hi - lo <= 1e-12:
        return {pid: 1.0 for pid, _ in ranked}
    return {pid: (s - lo) / (hi - lo) for pid, s in ranked}


def _sorted(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def minmax_fusion(bm25: Ranked, vector: Ranked, alpha: float) -> list[tuple[str, float]]:
    """``alpha * bm25_norm + (1 - alpha) * vector_norm`` over the union of both lists.

    A hit found by one retriever only gets 0 from the other: it ranked below that
    retriever's candidate depth, i.e. at or below its minimum.
    """
    b, v = minmax_normalize(bm25), minmax_normalize(vector)
    fused = {
        pid: alpha * b.get(pid, 0.0) + (1 - alpha) * v.get(pid, 0.0) for pid in b.keys() | v.keys()
    }
    return _sorted(fused)


def rrf_fusion(
    bm25: Ranked, vector: Ranked, alpha: float = 0.5, k: int = RRF_K
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: sum of ``w / (k + rank)`` with ranks from 1.

    Weights are ``2 * alpha`` for BM25 and ``2 * (1 - alpha)`` for vectors, so
    alpha 0.5 is the standard unweighted RRF. A hit missing from one list gets
    nothing from it.
    """
    fused: dict[str, float] = {}
    for weight, ranked in ((2 * alpha, bm25), (2 * (1 - alpha), vector)):
        for rank, (pid, _) in enumerate(ranked, start=1):
            fused[pid] = fused.get(pid, 0.0) + weight / (k + rank)
    return _sorted(fused)


def fuse(
    method: FusionMethod, bm25: Ranked, vector: Ranked, alpha: float
) -> list[tuple[str, float]]:
    """Dispatch on the method."""
    if method is FusionMethod.RRF:
        return rrf_fusion(bm25, vector, alpha)
    return minmax_fusion(bm25, vector, alpha)
