"""The document store: articles, passages and seed files in one SQLite file.

It is the one source of truth for what a passage is (id, article, text, metadata)
and which vector id (``vid``) it has: the FAISS index stores vectors under the vid,
the Whoosh index stores the vid in a column. Searches read only the rows they need,
so opening an index does not parse every passage.

A generation's file is written once by :class:`DocStoreWriter` (an update copies the
previous generation's file and changes it in one transaction) and afterwards only
read, with SQLite's ``immutable`` flag (no locking, no journal).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.errors import IndexCorruptError
from indexer.store.layout import FIX

#: Article metadata columns (None when unknown), in the order of the table.
ARTICLE_META = ("date", "source", "url", "author", "agency", "folder")

_SCHEMA = f"""
CREATE TABLE files (path TEXT PRIMARY KEY, hash TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE articles (
    doc TEXT PRIMARY KEY, file TEXT NOT NULL, hash TEXT NOT NULL, title TEXT NOT NULL,
    {", ".join(f"{c} TEXT" for c in ARTICLE_META)}
) WITHOUT ROWID;
CREATE TABLE passages (
    vid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL,
    paragraph INTEGER NOT NULL, part INTEGER NOT NULL, text TEXT NOT NULL,
    th TEXT NOT NULL, body_len INTEGER NOT NULL, title_len INTEGER NOT NULL
);
CREATE INDEX passages_doc ON passages (doc, paragraph, part);
CREATE INDEX passages_th ON passages (th);
"""
#: Parameters per IN (...) query (SQLite's old default limit is 999).
_CHUNK = 900


@dataclass(frozen=True)
class StoredPassage:
    """A passage as stored: text, its article's title, and its vector id."""

    id: str  # "<doc>#<paragraph>" or "<doc>#<paragraph>.<part>"
    doc: str
    paragraph: int
    part: int
    text: str
    title: str
    vid: int  # FAISS id (IndexIDMap2), stable across updates
    th: str  # hash of the embedded text: equal hash -> the vector is reused


@dataclass(frozen=True)
class StoredArticle:
    """An article's record: title, metadata and the seed file it came from."""

    doc: str
    file: str
    hash: str
    title: str
    date: str | None = None
    source: str | None = None
    url: str | None = None
    author: str | None = None
    agency: str | None = None
    folder: str | None = None


@dataclass(frozen=True)
class RemovedPassage:
    """What an update needs to know of a passage it removes."""

    vid: int
    th: str
    body_len: int
    title_len: int


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_PASSAGE_COLS = "p.id, p.doc, p.paragraph, p.part, p.text, a.title, p.vid, p.th"
_PASSAGE_FROM = "passages p JOIN articles a ON a.doc = p.doc"


class DocStore:
    """Read access to a published generation's document store (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise IndexCorruptError(f"{self.path} is missing; {FIX}")
        uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._db.execute("SELECT count(*) FROM passages").fetchone()
        except sqlite3.Error as exc:
            raise IndexCorruptError(f"{self.path} is damaged ({exc}); {FIX}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise IndexCorruptError(f"{self.path} is damaged ({exc}); {FIX}") from exc

    def _in(self, sql: str, keys: Iterable) -> list[tuple]:
        """Rows of ``sql`` (with one ``IN ({})`` slot) for all ``keys``, chunked."""
        keys = list(dict.fromkeys(keys))
        out: list[tuple] = []
        for part in _chunks(keys):
            out += self._rows(sql.format(",".join("?" * len(part))), part)
        return out

    # ------------------------------------------------------------- counts

    def passage_count(self) -> int:
        return int(self._rows("SELECT count(*) FROM passages")[0][0])

    def article_count(self) -> int:
        return int(self._rows("SELECT count(*) FROM articles")[0][0])

    def vids(self) -> np.ndarray:
        """Every passage's vector id, ascending."""
        rows = self._rows("SELECT vid FROM passages ORDER BY vid")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vid_summary(self) -> tuple[int, int, int, int]:
        """(count, sum, min, max) of the passages' vector ids: one aggregate in SQLite
        (60 ms at 240k passages where :meth:`vids` took 0.8 s), compared at every open
        with the keyword index's ids; ``seedsearch check`` compares every id."""
        n, total, low, high = self._rows(
            "SELECT count(*), sum(vid), min(vid), max(vid) FROM passages"
        )[0]
        return (
            int(n),
            int(total or 0),
            int(-1 if low is None else low),
            int(-1 if high is None else high),
        )

    # ------------------------------------------------------------ lookups

    def ids(self, vids: Iterable[int]) -> dict[int, str]:
        """Passage id by vector id (unknown vids are left out)."""
        return dict(self._in("SELECT vid, id FROM passages WHERE vid IN ({})", map(int, vids)))

    def passages(self, ids: Iterable[str]) -> dict[str, StoredPassage]:
        """Passages by id (unknown ids are left out)."""
        rows = self._in(f"SELECT {_PASSAGE_COLS} FROM {_PASSAGE_FROM} WHERE p.id IN ({{}})", ids)
        return {r[0]: StoredPassage(*r) for r in rows}

    def passages_by_vid(self, vids: Iterable[int]) -> dict[int, StoredPassage]:
        rows = self._in(
            f"SELECT {_PASSAGE_COLS} FROM {_PASSAGE_FROM} WHERE p.vid IN ({{}})", map(int, vids)
        )
        return {r[6]: StoredPassage(*r) for r in rows}

    def article_passages(self, doc: str) -> list[StoredPassage]:
        """The passages of one article in reading order."""
        rows = self._rows(
            f"SELECT {_PASSAGE_COLS} FROM {_PASSAGE_FROM} WHERE p.doc = ? "
            "ORDER BY p.paragraph, p.part",
            (doc,),
        )
        return [StoredPassage(*r) for r in rows]

    def all_passages(self) -> list[StoredPassage]:
        """Every passage, by article and reading order (for tools and tests; a search
        reads only the rows it needs)."""
        rows = self._rows(
            f"SELECT {_PASSAGE_COLS} FROM {_PASSAGE_FROM} ORDER BY p.doc, p.paragraph, p.part"
        )
        return [StoredPassage(*r) for r in rows]

    def articles(self, docs: Iterable[str]) -> dict[str, StoredArticle]:
        cols = ", ".join(("doc", "file", "hash", "title", *ARTICLE_META))
        rows = self._in(f"SELECT {cols} FROM articles WHERE doc IN ({{}})", docs)
        return {r[0]: StoredArticle(*r) for r in rows}

    def vids_by_text_hash(self, hashes: Iterable[str]) -> dict[str, int]:
        """A vector id for each known embedded-text hash (the lowest, if several)."""
        rows = self._in("SELECT th, min(vid) FROM passages WHERE th IN ({}) GROUP BY th", hashes)
        return dict(rows)

    def article_hashes(self) -> dict[str, str]:
        """Content hash of every article (what an update compares with the seeds)."""
        return dict(self._rows("SELECT doc, hash FROM articles"))

    def files(self) -> dict[str, str]:
        """Content hash of every seed file read by the build."""
        return dict(self._rows("SELECT path, hash FROM files"))

    def removed(self, docs: Iterable[str]) -> list[RemovedPassage]:
        """The passages of ``docs``, as an update that removes them needs them."""
        rows = self._in("SELECT vid, th, body_len, title_len FROM passages WHERE doc IN ({})", docs)
        return [RemovedPassage(*r) for r in rows]


class DocStoreWriter:
    """Writes a new generation's document store in one transaction.

    ``base``: the previous generation's file, copied first (an incremental update
    then only deletes and inserts what changed); None starts empty.
    """

    def __init__(self, path: Path, base: Path | None = None) -> None:
        self.path = Path(path)
        if base is not None:
            shutil.copyfile(base, self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")  # the folder is private until publish
        self._db.execute("PRAGMA synchronous = OFF")  # the publish fsyncs every file
        if base is None:
            self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")

    def remove_articles(self, docs: Iterable[str]) -> None:
        docs = list(docs)
        for part in _chunks(docs):
            marks = ",".join("?" * len(part))
            self._db.execute(f"DELETE FROM passages WHERE doc IN ({marks})", part)
            self._db.execute(f"DELETE FROM articles WHERE doc IN ({marks})", part)

    def add_article(self, article, file: str) -> None:
        """Insert an article record (``article``: an :class:`indexer.seeds.Article`)."""
        meta = [getattr(article, name, None) for name in ARTICLE_META]
        self._db.execute(
            f"INSERT INTO articles VALUES (?, ?, ?, ?, {', '.join('?' * len(meta))})",
            (article.doc, file, article.content_hash, article.title, *meta),
        )

    def add_passages(self, rows: Iterable[tuple[StoredPassage, int, int]]) -> None:
        """Insert ``(passage, body length, title length)`` rows."""
        self._db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (p.vid, p.id, p.doc, p.paragraph, p.part, p.text, p.th, body, title)
                for p, body, title in rows
            ),
        )

    def set_files(self, files: dict[str, str]) -> None:
        self._db.execute("DELETE FROM files")
        self._db.executemany("INSERT INTO files VALUES (?, ?)", sorted(files.items()))

    def counts(self) -> tuple[int, int]:
        """(articles, passages) as written so far."""
        a = self._db.execute("SELECT count(*) FROM articles").fetchone()[0]
        p = self._db.execute("SELECT count(*) FROM passages").fetchone()[0]
        return int(a), int(p)

    def commit(self) -> None:
        self._db.execute("COMMIT")
        self._db.close()

    def abort(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        self._db.close()
