"""Collection statistics for BM25 over live passages only (pure data, no I/O).

Whoosh keeps deleted documents in its term and length totals until segments are
merged, and even a merge keeps the old field-length totals. Scores after an
incremental update would then drift from a fresh build. The index therefore keeps
its own statistics (document frequency per term, total field lengths, passage
count), updated exactly on every add and delete, and the search engine scores with
them (``search.bm25``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class CollectionStats:
    """BM25 statistics per field: ``df[field][term]``, ``length[field]``, ``docs``."""

    docs: int = 0
    length: dict[str, int] = field(default_factory=dict)
    df: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, fields: dict[str, list[str]], sign: int = 1) -> None:
        """Count one passage (``sign=1``) or remove it (``sign=-1``)."""
        self.docs += sign
        for name, terms in fields.items():
            self.length[name] = self.length.get(name, 0) + sign * len(terms)
            df = self.df.setdefault(name, {})
            for term in set(terms):
                n = df.get(term, 0) + sign
                if n > 0:
                    df[term] = n
                else:
                    df.pop(term, None)

    def add_all(self, passages: Iterable[dict[str, list[str]]], sign: int = 1) -> None:
        for fields in passages:
            self.add(fields, sign)

    def avg_length(self, name: str) -> float:
        return (self.length.get(name, 0) / self.docs) if self.docs else 0.0

    def idf(self, name: str, term: str) -> float:
        """Robertson-Sparck Jones idf as in Lucene and bm25s: always positive."""
        n = self.df.get(name, {}).get(term, 0)
        return math.log(1.0 + (self.docs - n + 0.5) / (n + 0.5))

    def to_json(self) -> dict:
        return {"docs": self.docs, "length": self.length, "df": self.df}

    @classmethod
    def from_json(cls, data: dict) -> CollectionStats:
        return cls(
            int(data["docs"]), dict(data["length"]), {k: dict(v) for k, v in data["df"].items()}
        )
