"""BM25 collection totals over live passages only (pure data, no I/O).

Whoosh keeps deleted documents in its term and length totals until segments are
merged, and even a merge keeps the old field-length totals. Scores after an
incremental update would then drift from a fresh build. The manifest therefore
records the live passage count and the total length of each field, updated
exactly on every add and delete; document frequencies are counted from the live
postings at query time (search.bm25), so they are exact as well.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class CollectionStats:
    """Live passage count and total terms per field."""

    docs: int = 0
    length: dict[str, int] = field(default_factory=dict)

    def add_lengths(self, lengths: Iterable[Mapping[str, int]], sign: int = 1) -> None:
        """Count passages given as ``{field: number of terms}`` (``sign=-1`` removes)."""
        for fields in lengths:
            self.docs += sign
            for name, n in fields.items():
                self.length[name] = self.length.get(name, 0) + sign * int(n)

    def avg_length(self, name: str) -> float:
        return (self.length.get(name, 0) / self.docs) if self.docs else 0.0

    def to_json(self) -> dict:
        return {"docs": self.docs, "length": dict(sorted(self.length.items()))}

    @classmethod
    def from_json(cls, data: Mapping) -> CollectionStats:
        return cls(int(data["docs"]), {str(k): int(v) for k, v in dict(data["length"]).items()})


def idf(docs: int, df: int) -> float:
    """Robertson-Sparck Jones idf as in Lucene and bm25s: always positive."""
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))
