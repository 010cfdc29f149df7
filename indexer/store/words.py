"""The word statistics file of a generation: the vocabulary typo correction looks in.

``words.npz`` holds two things, as numpy arrays:

* ``stats.*``: the exact :class:`indexer.vocabulary.WordStats` (document frequency of
  every folded surface word and of each spelling), which the next incremental update
  reads, changes by the removed and added passages only, and writes again;
* ``vocab.*``: the :class:`indexer.vocabulary.Vocabulary` built from them (sorted
  groups, signatures), so the search engine opens it with one read instead of
  counting words or rebuilding the lookup arrays.

The file is listed in the manifest's checksums like every other file (the engine
checks it before reading). An index written before this file existed has none: the
engine then searches without typo tolerance, and the next update counts the words
of the kept passages once.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from indexer.errors import IndexCorruptError
from indexer.store.layout import FIX
from indexer.vocabulary import Vocabulary, WordStats

if TYPE_CHECKING:
    from indexer.store.docstore import DocStore, StoredPassage

#: File name inside a generation folder.
WORDS = "words.npz"


def write_words(path: Path, stats: WordStats) -> Vocabulary:
    """Write ``stats`` and the vocabulary built from them; returns the vocabulary."""
    vocab = Vocabulary.from_stats(stats)
    arrays = {f"stats.{k}": v for k, v in stats.to_arrays().items()}
    arrays |= {f"vocab.{k}": v for k, v in vocab.to_arrays().items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return vocab


def _load(path: Path, prefix: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise IndexCorruptError(f"word statistics {path} are damaged ({exc}); {FIX}") from exc


def read_stats(path: Path) -> WordStats | None:
    """The word counts of a generation (None if it has no words file)."""
    if not path.is_file():
        return None
    try:
        return WordStats.from_arrays(_load(path, "stats."))
    except (KeyError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"word statistics {path} are damaged ({exc}); {FIX}") from exc


def read_vocabulary(path: Path) -> Vocabulary | None:
    """The vocabulary of a generation (None if it has no words file)."""
    if not path.is_file():
        return None
    try:
        return Vocabulary.from_arrays(_load(path, "vocab."))
    except (KeyError, ValueError, IndexError) as exc:
        raise IndexCorruptError(f"word statistics {path} are damaged ({exc}); {FIX}") from exc


def passage_words(p: StoredPassage, title_field: bool) -> str:
    """The text of a passage whose words count: the passage, and its article's title
    when titles are searched (BM25 matches both), unless the title is only the seed
    file's name (``nordkorea`` for ``nordkorea.txt``: its spelling is no word as the
    corpus writes it, and counted once per passage it would decide how a corrected
    word is shown)."""
    if not title_field or p.title == PurePosixPath(p.doc.split(":", 1)[0]).stem:
        return p.text
    return f"{p.title}\n{p.text}"


def updated_stats(
    previous_gen: Path | None,
    previous_docs: DocStore | None,
    removed_vids: Iterable[int],
    added: Sequence[StoredPassage],
    title_field: bool,
) -> WordStats:
    """The word counts of a new generation: the previous generation's, less the
    removed passages, plus the added ones (exact: equal to counting every passage).

    A previous generation without a words file (older seedsearch) is counted once
    from its document store.
    """
    removed = set(map(int, removed_vids))
    stats = read_stats(previous_gen / WORDS) if previous_gen is not None else None
    if stats is None:
        stats = WordStats()
        if previous_docs is not None:
            for p in previous_docs.all_passages():
                if p.vid not in removed:
                    stats.add(passage_words(p, title_field))
    elif removed:
        gone = previous_docs.passages_by_vid(removed).values() if previous_docs else ()
        for p in gone:
            stats.add(passage_words(p, title_field), -1)
    for p in added:
        stats.add(passage_words(p, title_field))
    return stats
