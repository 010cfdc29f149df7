"""Retrieval quality metrics: pure functions on plain data (no I/O).

A *run* maps each query id to its retrieved ids, best first; *qrels* map each
query id to ``{relevant id: grade}``. A grade > 0 means relevant. Metrics are
averaged over the queries of the qrels that have at least one relevant id; a
query missing from the run scores 0. Definitions follow ``ranx`` (nDCG with the
linear gain of Järvelin & Kekäläinen), so figures are comparable with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Run = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int | float]]

#: Cut-offs of the recall figures reported by :func:`evaluate_run`.
RECALL_KS = (1, 5, 10, 100)


def _dedupe(ranked: Sequence[str]) -> list[str]:
    """Ids in order with repeats removed (a repeat cannot be relevant twice)."""
    return list(dict.fromkeys(ranked))


def _relevant(judged: Mapping[str, int | float]) -> dict[str, float]:
    return {pid: float(g) for pid, g in judged.items() if g > 0}


def reciprocal_rank(ranked: Sequence[str], judged: Mapping[str, int | float], k: int = 10) -> float:
    """1 / rank of the first relevant id within the top ``k``, else 0."""
    relevant = _relevant(judged)
    for rank, pid in enumerate(_dedupe(ranked)[:k], start=1):
        if pid in relevant:
            return 1.0 / rank
    return 0.0


def ndcg(ranked: Sequence[str], judged: Mapping[str, int | float], k: int = 10) -> float:
    """nDCG@k with gain = grade and discount log2(rank + 1); 0 without relevant ids."""
    relevant = _relevant(judged)
    if not relevant:
        return 0.0
    dcg = sum(
        relevant.get(pid, 0.0) / math.log2(rank + 1)
        for rank, pid in enumerate(_dedupe(ranked)[:k], start=1)
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg


def recall(ranked: Sequence[str], judged: Mapping[str, int | float], k: int) -> float:
    """Share of the relevant ids found in the top ``k``; 0 without relevant ids."""
    relevant = _relevant(judged)
    if not relevant:
        return 0.0
    found = sum(1 for pid in _dedupe(ranked)[:k] if pid in relevant)
    return found / len(relevant)


@dataclass(frozen=True)
class Metrics:
    """Mean metrics over ``queries`` judged queries."""

    mrr_at_10: float
    ndcg_at_10: float
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    recall_at_100: float
    queries: int

    def to_dict(self) -> dict[str, float | int]:
        """``{"mrr@10": ..., "ndcg@10": ..., "recall@1": ..., ..., "queries": n}``."""
        return {
            "mrr@10": self.mrr_at_10,
            "ndcg@10": self.ndcg_at_10,
            "recall@1": self.recall_at_1,
            "recall@5": self.recall_at_5,
            "recall@10": self.recall_at_10,
            "recall@100": self.recall_at_100,
            "queries": self.queries,
        }


def judged_queries(qrels: Qrels) -> list[str]:
    """Query ids with at least one relevant id, sorted: the ones metrics average over."""
    return sorted(q for q, judged in qrels.items() if _relevant(judged))


def evaluate_run(run: Run, qrels: Qrels, queries: Sequence[str] | None = None) -> Metrics:
    """Mean MRR@10, nDCG@10 and Recall@1/5/10/100 of ``run`` against ``qrels``.

    ``queries``: restrict the mean to these query ids (e.g. one half of a split);
    ids without a relevant judgement are ignored. Empty -> all figures 0.
    """
    ids = judged_queries(qrels)
    if queries is not None:
        wanted = set(queries)
        ids = [q for q in ids if q in wanted]
    if not ids:
        return Metrics(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    sums = [0.0] * (2 + len(RECALL_KS))
    for q in ids:
        ranked = run.get(q, ())
        judged = qrels[q]
        sums[0] += reciprocal_rank(ranked, judged, 10)
        sums[1] += ndcg(ranked, judged, 10)
        for i, k in enumerate(RECALL_KS, start=2):
            sums[i] += recall(ranked, judged, k)
    n = len(ids)
    means = [s / n for s in sums]
    return Metrics(*means, queries=n)
