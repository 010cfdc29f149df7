"""The Whoosh keyword index: schema, creation, opening, and one update step.

Fields are pre-analysed: the German analysis runs in :mod:`indexer.analysis` and
Whoosh only splits on spaces, so index and query time cannot diverge. Whoosh holds
postings, field lengths and deletions; everything else about a passage lives in the
document store, reached through the ``vid`` column (the passage's vector id).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from whoosh.analysis import Token, Tokenizer

from indexer.analysis import WORD_JOIN
from indexer.errors import IndexCorruptError
from indexer.store.files import link_tree
from indexer.store.layout import FIX

#: Whoosh versions this module and search/bm25.py were tested with. The fast BM25
#: path reads Whoosh's column and posting internals; tests fail if it is not taken.
TESTED_WHOOSH = ">=3.54,<3.55"


class WordTermsTokenizer(Tokenizer):
    """Whoosh tokenizer for pre-analysed fields: words are separated by spaces, the
    terms of one word (its stem and compound parts) by ``+``
    (:func:`indexer.analysis.analyze_words`); all terms of a word share its position,
    so ``"Waffenlieferungen an Moskau"`` is a phrase of two words, as typed. Term
    frequencies and field lengths count terms, exactly as splitting on spaces did."""

    def __eq__(self, other) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __call__(
        self,
        value,
        positions=False,
        chars=False,
        keeporiginal=False,
        removestops=True,
        start_pos=0,
        start_char=0,
        tokenize=True,
        mode="",
        **kwargs,
    ):
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        pos = start_pos
        for word in value.split(" "):
            if not word:
                continue
            for term in word.split(WORD_JOIN):
                t.text = term
                t.boost = 1.0
                t.stopped = False
                if keeporiginal:
                    t.original = term
                if positions:
                    t.pos = pos
                yield t
            pos += 1


def schema():
    """``doc`` (indexed, for deleting an article's passages), ``vid`` (a numeric
    column: Whoosh docnum -> passage), ``body`` and ``title`` (analysed words, scored by
    BM25) and ``phrase`` (each word's stem with its position, for phrase queries only).

    Positions live in their own field: in ``body`` they made every BM25 query decode
    them with the postings (+25 % BM25 time at 1x, measured in benchmarks/speed.py
    ``--positions``), and unquoted queries must stay as fast as without phrases."""
    from whoosh.columns import NumericColumn
    from whoosh.fields import COLUMN, ID, TEXT, Schema

    return Schema(
        doc=ID(),
        vid=COLUMN(NumericColumn("q")),
        body=TEXT(analyzer=WordTermsTokenizer(), phrase=False),
        title=TEXT(analyzer=WordTermsTokenizer(), phrase=False),
        phrase=TEXT(analyzer=WordTermsTokenizer(), phrase=True),
    )


def phrase_words(body: list[str]) -> str:
    """The ``phrase`` field of a passage: the stem of each word of its ``body`` words
    (:func:`indexer.analysis.analyze_words`), one position each."""
    return " ".join(w.split(WORD_JOIN, 1)[0] for w in body)


def create(path: Path):
    import whoosh.index

    path.mkdir(parents=True, exist_ok=True)
    return whoosh.index.create_in(str(path), schema())


def open_index(path: Path):
    """Open a keyword index; a damaged one is an IndexCorruptError."""
    import whoosh.index

    try:
        return whoosh.index.open_dir(str(path))
    except Exception as exc:  # whoosh raises many types for damaged files
        raise IndexCorruptError(f"the keyword index in {path} is damaged ({exc}); {FIX}") from exc


@dataclass(frozen=True)
class Segment:
    """A Whoosh segment written in another process (a cluster worker): Whoosh's
    segment object and the bytes of its files, to be adopted by :func:`update`."""

    segment: object
    files: dict[str, bytes]


def _add_rows(writer, rows: Iterable[tuple[int, str, list[str], list[str]]]) -> None:
    for vid, doc, body, title in rows:
        writer.add_document(
            doc=doc, vid=vid, body=" ".join(body), title=" ".join(title), phrase=phrase_words(body)
        )


#: Whoosh's posting pool of a worker-written segment. A pool that outgrows it spills
#: sorted runs to disk and merges them (pickle per posting): with 256 MB a segment
#: of 24k gnad passages took 35 s, with 1024 MB 18 s (12k: 10 s either way); 50k
#: passages fit (1.1 GB peak RSS), see SEGMENT_MAX in indexer.cluster.
SEGMENT_POOL_MB = 1024


def write_segment(rows: Iterable[tuple[int, str, list[str], list[str]]]) -> Segment:
    """One segment holding ``rows`` ``(vid, doc, body terms, title terms)``, written in
    a temporary folder and returned as bytes (a worker's share of a cluster build)."""
    with tempfile.TemporaryDirectory(prefix="seedsearch-segment-") as folder:
        ix = create(Path(folder))
        try:
            writer = ix.writer(limitmb=SEGMENT_POOL_MB, procs=1)
            _add_rows(writer, rows)
            writer.commit(merge=False)
            (segment,) = ix._read_toc().segments
        finally:
            ix.close()
        prefix = f"{segment.segment_id()}."
        files = {
            p.name: p.read_bytes() for p in Path(folder).iterdir() if p.name.startswith(prefix)
        }
    return Segment(segment, files)


def update(
    old: Path | None,
    new: Path,
    drop_docs: Iterable[str],
    add: Iterable[tuple[int, str, list[str], list[str]]],
    segments: Iterable[Segment] = (),
) -> None:
    """Write the keyword index of a new generation into ``new``.

    The old index is hard-linked (Whoosh never rewrites a file in place), the
    passages of ``drop_docs`` are deleted and ``add`` rows ``(vid, doc, body terms,
    title terms)`` are added. ``segments`` written elsewhere are adopted as they are
    (their postings are not rewritten). Deleted documents may linger in segments until
    Whoosh merges them; scores do not depend on that (see search.bm25).
    """
    from whoosh.writing import MERGE_SMALL

    if old is not None:
        link_tree(old, new)
        ix = open_index(new)
    else:
        ix = create(new)
    writer = ix.writer(limitmb=256, procs=1, timeout=5.0)
    try:
        for doc in sorted(drop_docs):
            writer.delete_by_term("doc", doc)
        _add_rows(writer, add)
        adopted = []
        for seg in segments:  # one at a time: a cluster sends them as they are asked for
            for name, data in seg.files.items():
                with open(new / name, "xb") as f:  # never over another segment's file
                    f.write(data)
            adopted.append(seg.segment)
        writer.commit(mergetype=lambda w, current: MERGE_SMALL(w, current) + adopted)
    except BaseException:
        # A commit that failed half-way (disk full) has closed the writer already;
        # the original error is the one to report.
        with contextlib.suppress(Exception):
            writer.cancel()
        raise
    finally:
        ix.close()
