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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.analysis import duplicate_key
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
    th TEXT NOT NULL, body_len INTEGER NOT NULL, title_len INTEGER NOT NULL,
    nh TEXT NOT NULL
);
CREATE INDEX passages_doc ON passages (doc, paragraph, part);
CREATE INDEX passages_th ON passages (th);
CREATE INDEX passages_nh ON passages (nh);
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

    def distinct(self, column: str) -> list[str]:
        """The distinct known values of an article metadata column (for filters)."""
        if column not in ARTICLE_META:
            raise ValueError(f"unknown article column {column!r}")
        rows = self._rows(f"SELECT DISTINCT {column} FROM articles WHERE {column} IS NOT NULL")
        return sorted(r[0] for r in rows)

    def filtered_vids(
        self,
        since: str | None = None,
        until: str | None = None,
        values: Mapping[str, Sequence[str]] | None = None,
    ) -> np.ndarray:
        """Vector ids of the passages whose article's day (``YYYY-MM-DD`` as written) is
        within ``since``..``until`` (inclusive; undated articles never match) and whose
        metadata column holds one of the given exact values, for each column in
        ``values`` (OR within a column, AND across), ascending."""
        where, params = [], []
        if since is not None:
            where.append("a.date IS NOT NULL AND substr(a.date, 1, 10) >= ?")
            params.append(since)
        if until is not None:
            where.append("a.date IS NOT NULL AND substr(a.date, 1, 10) <= ?")
            params.append(until)
        for column, allowed in (values or {}).items():
            if column not in ARTICLE_META:
                raise ValueError(f"unknown article column {column!r}")
            if not allowed:
                return np.zeros(0, np.int64)
            where.append(f"a.{column} IN ({','.join('?' * len(allowed))})")
            params.extend(allowed)
        sql = f"SELECT p.vid FROM {_PASSAGE_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(f"({w})" for w in where)
        rows = self._rows(sql + " ORDER BY p.vid", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def group_keys(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """``(article, duplicate key)`` of each passage id: what grouping needs."""
        rows = self._in("SELECT id, doc, nh FROM passages WHERE id IN ({})", ids)
        return {pid: (doc, nh) for pid, doc, nh in rows}

    def ids_by_duplicate_key(
        self, keys: Iterable[str], allowed: np.ndarray | None = None
    ) -> dict[str, list[str]]:
        """Every passage id with each duplicate key, in id order; ``allowed``: only
        passages with these vector ids (sorted), None for all."""
        out: dict[str, list[str]] = {}
        rows = self._in("SELECT nh, id, vid FROM passages WHERE nh IN ({})", keys)
        for nh, pid, vid in sorted(rows):
            if allowed is not None:
                at = np.searchsorted(allowed, vid)
                if at >= len(allowed) or allowed[at] != vid:
                    continue
            out.setdefault(nh, []).append(pid)
        return out

    def find_article(self, key: str) -> str | None:
        """The article id for an article id, a seed file path (relative to the seeds
        folder; the first article of a multi-article file) or a passage id."""
        for sql in (
            "SELECT doc FROM articles WHERE doc = ?",
            "SELECT doc FROM passages WHERE id = ?",
            "SELECT doc FROM articles WHERE file = ? ORDER BY doc LIMIT 1",
        ):
            rows = self._rows(sql, (key,))
            if rows:
                return rows[0][0]
        return None

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
        """Insert ``(passage, body length, title length)`` rows (with the passage's
        duplicate key, :func:`indexer.analysis.duplicate_key`)."""
        self._db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    p.vid,
                    p.id,
                    p.doc,
                    p.paragraph,
                    p.part,
                    p.text,
                    p.th,
                    body,
                    title,
                    duplicate_key(p.text),
                )
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
