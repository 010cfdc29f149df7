"""BM25 scoring for Whoosh with the index's own live statistics.

Whoosh's BM25F takes idf and average field length from its segment totals, which
still count deleted documents after an incremental update. ``ExactBM25F`` takes
them from :class:`indexer.bm25stats.CollectionStats` instead, so an updated index
scores exactly like a fresh build. Per-document term frequencies and lengths still
come from Whoosh, and deleted documents are never matched.
"""

from __future__ import annotations

from typing import Any

from whoosh.scoring import BM25F, BM25FScorer, WeightScorer

from indexer.bm25stats import CollectionStats


class _Scorer(BM25FScorer):
    def __init__(
        self,
        searcher: Any,
        fieldname: str,
        text: str,
        stats: CollectionStats,
        B: float,
        K1: float,
        qf: int = 1,
    ) -> None:  # noqa: N803 (Whoosh's names)
        self.idf = stats.idf(fieldname, text)
        self.avgfl = stats.avg_length(fieldname) or 1.0
        self.B, self.K1, self.qf = B, K1, qf
        self.setup(searcher, fieldname, text)


class ExactBM25F(BM25F):
    """BM25F with idf and average length from the index's live statistics."""

    def __init__(self, stats: CollectionStats, B: float = 0.75, K1: float = 1.2) -> None:  # noqa: N803
        super().__init__(B=B, K1=K1)
        self.stats = stats

    def scorer(self, searcher: Any, fieldname: str, text: str, qf: int = 1):
        if not searcher.schema[fieldname].scorable:
            return WeightScorer.for_(searcher, fieldname, text)
        return _Scorer(searcher, fieldname, text, self.stats, self.B, self.K1, qf=qf)
