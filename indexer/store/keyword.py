"""The Whoosh keyword index: schema, creation, opening, and one update step.

Fields are pre-analysed: the German analysis runs in :mod:`indexer.analysis` and
Whoosh only splits on spaces, so index and query time cannot diverge. Whoosh holds
postings, field lengths and deletions; everything else about a passage lives in the
document store, reached through the ``vid`` column (the passage's vector id).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

from indexer.errors import IndexCorruptError
from indexer.store.files import link_tree
from indexer.store.layout import FIX

#: Whoosh versions this module and search/bm25.py were tested with. The fast BM25
#: path reads Whoosh's column and posting internals; tests fail if it is not taken.
TESTED_WHOOSH = ">=3.54,<3.55"


def schema():
    """``doc`` (indexed, for deleting an article's passages), ``vid`` (a numeric
    column: Whoosh docnum -> passage), ``body`` and ``title`` (analysed terms)."""
    from whoosh.analysis import SpaceSeparatedTokenizer
    from whoosh.columns import NumericColumn
    from whoosh.fields import COLUMN, ID, TEXT, Schema

    return Schema(
        doc=ID(),
        vid=COLUMN(NumericColumn("q")),
        body=TEXT(analyzer=SpaceSeparatedTokenizer(), phrase=False),
        title=TEXT(analyzer=SpaceSeparatedTokenizer(), phrase=False),
    )


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


def update(
    old: Path | None,
    new: Path,
    drop_docs: Iterable[str],
    add: Iterable[tuple[int, str, list[str], list[str]]],
) -> None:
    """Write the keyword index of a new generation into ``new``.

    The old index is hard-linked (Whoosh never rewrites a file in place), the
    passages of ``drop_docs`` are deleted and ``add`` rows ``(vid, doc, body terms,
    title terms)`` are added. Deleted documents may linger in segments until Whoosh
    merges them; scores do not depend on that (see search.bm25).
    """
    if old is not None:
        link_tree(old, new)
        ix = open_index(new)
    else:
        ix = create(new)
    writer = ix.writer(limitmb=256, procs=1, timeout=5.0)
    try:
        for doc in sorted(drop_docs):
            writer.delete_by_term("doc", doc)
        for vid, doc, body, title in add:
            writer.add_document(doc=doc, vid=vid, body=" ".join(body), title=" ".join(title))
        writer.commit()
    except BaseException:
        # A commit that failed half-way (disk full) has closed the writer already;
        # the original error is the one to report.
        with contextlib.suppress(Exception):
            writer.cancel()
        raise
    finally:
        ix.close()
