"""News-archive logic on plain data: filters, phrases, grouping, sorting, highlights and
the article view. Nothing here reads the index; :mod:`search.engine` feeds it rows.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum

from indexer.errors import QueryError

# ------------------------------------------------------------------ filters


def _day(value: object, name: str) -> str | None:
    """A filter bound as ``YYYY-MM-DD``: a date, a datetime (its day) or ISO text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        from indexer.seeds import normalize_date

        iso = normalize_date(value)
        if iso is not None:
            return iso[:10]
    raise QueryError(f"{name}={value!r} is not a date: use YYYY-MM-DD (e.g. {name}=2024-06-17)")


def _names(value: object, name: str) -> tuple[str, ...]:
    """A filter's values as a tuple of non-empty strings (one string is one value)."""
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else value
    try:
        items = tuple(items)  # type: ignore[arg-type]
    except TypeError:
        raise QueryError(f"{name}={value!r}: give a name or a list of names") from None
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise QueryError(f"{name}={value!r}: every value must be a non-empty name")
        out.append(item.strip())
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Filters:
    """Which articles a search may return. Within one field any value matches (OR),
    across fields all must (AND); an empty field does not filter.

    ``since``/``until``: days, inclusive (an article's day as written in its date);
    articles without a date never match a date filter. ``sources``/``agencies``:
    names, compared without case (``afp`` matches an article by ``dpa, AFP``).
    ``folders``: shell patterns over the article's folder relative to the seeds folder
    (``Wirtschaft``, ``Sport*``, ``2024/*``), compared without case.
    """

    since: str | date | None = None
    until: str | date | None = None
    sources: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        since, until = _day(self.since, "since"), _day(self.until, "until")
        if since and until and since > until:
            raise QueryError(f"since={since} is after until={until}: swap them")
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)
        for name in ("sources", "agencies", "folders"):
            object.__setattr__(self, name, _names(getattr(self, name), name))

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.sources or self.agencies or self.folders)

    def to_dict(self) -> dict:
        return {
            "since": self.since,
            "until": self.until,
            "sources": list(self.sources),
            "agencies": list(self.agencies),
            "folders": list(self.folders),
        }


def _split_agencies(value: str) -> tuple[str, ...]:
    from indexer.seeds import split_agencies

    return split_agencies(value)


def resolve_values(filters: Filters, known: Callable[[str], Sequence[str]]) -> dict[str, list[str]]:
    """The exact stored values each metadata filter allows, per column.

    ``known(column)`` lists the distinct stored values of ``source``, ``agency`` or
    ``folder``. A stored agency value may name several agencies (``dpa, AFP``): it is
    allowed when one of them matches. A filter that matches nothing gives an empty
    list (the search then has no hits), not an error: news sources come and go.
    """
    out: dict[str, list[str]] = {}
    if filters.sources:
        wanted = {s.casefold() for s in filters.sources}
        out["source"] = [v for v in known("source") if v.casefold() in wanted]
    if filters.agencies:
        wanted = {a.casefold() for a in filters.agencies}
        out["agency"] = [
            v
            for v in known("agency")
            if wanted.intersection(a.casefold() for a in _split_agencies(v))
        ]
    if filters.folders:
        patterns = [p.strip("/").casefold() for p in filters.folders]
        out["folder"] = [
            v
            for v in known("folder")
            if any(
                fnmatch.fnmatchcase(v.casefold(), p) or v.casefold().startswith(p + "/")
                for p in patterns
            )
        ]
    return out


# ------------------------------------------------------------------ phrases

#: Quote pairs that delimit a phrase: "...", „...“ (German), “...”, »...«.
_PHRASE_RE = re.compile(r'"([^"]*)"|„([^“”"]*)[“”"]|“([^”"]*)”|»([^«]*)«')


@dataclass(frozen=True)
class ParsedQuery:
    """A query split into its phrases (quoted, in order) and its text without quote
    marks (what the retrievers score; phrases are an extra condition)."""

    text: str
    phrases: tuple[str, ...] = ()


def phrase_spans(query: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each quoted phrase in ``query``, quotes included (the spans
    :func:`parse_query` reads phrases from; typo tolerance leaves them alone)."""
    return [m.span() for m in _PHRASE_RE.finditer(query)]


def parse_query(query: str) -> ParsedQuery:
    """Phrases in balanced double quotes; an unbalanced quote is plain text, and so are
    quotes around nothing searchable (``""``)."""
    phrases = []
    for m in _PHRASE_RE.finditer(query):
        inner = next(g for g in m.groups() if g is not None).strip()
        if inner:
            phrases.append(inner)
    if not phrases:
        return ParsedQuery(query)
    text = _PHRASE_RE.sub(lambda m: " " + next(g for g in m.groups() if g is not None) + " ", query)
    return ParsedQuery(" ".join(text.split()), tuple(phrases))


# ---------------------------------------------------------- sorting, grouping


class SortOrder(str, Enum):
    """``relevance``: best match first. ``date``: newest first among the matching hits
    of the query (undated last, then by relevance)."""

    RELEVANCE = "relevance"
    DATE = "date"

    @classmethod
    def from_str(cls, value: str | SortOrder) -> SortOrder:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise QueryError(f"sort={value!r} is unknown: use one of {valid}") from None


@dataclass(frozen=True)
class Candidate:
    """A ranked passage before paging: what grouping and sorting need to know."""

    id: str
    doc: str
    score: float
    dup_key: str | None = None
    date_key: str | None = None


@dataclass(frozen=True)
class Group:
    """A candidate kept for the result, with the ids of its exact duplicates."""

    candidate: Candidate
    duplicates: tuple[str, ...] = ()


def collapse(
    ranked: Sequence[Candidate],
    collapse_duplicates: bool = True,
    per_article: int | None = None,
) -> list[Group]:
    """Group a ranking: exact duplicates (equal ``dup_key``) fold into their best-ranked
    copy, which lists the others among the candidates (the engine adds the copies beyond
    the candidate cut for the hits it shows); then at most ``per_article`` hits per
    article are kept (None: no limit). The order is kept."""
    if per_article is not None and (
        isinstance(per_article, bool) or not isinstance(per_article, int) or per_article < 1
    ):
        raise QueryError(f"per_article={per_article!r} is invalid: use a whole number >= 1")
    first: dict[str, int] = {}
    groups: list[list] = []
    for c in ranked:
        if collapse_duplicates and c.dup_key is not None and c.dup_key in first:
            groups[first[c.dup_key]][1].append(c.id)
            continue
        if collapse_duplicates and c.dup_key is not None:
            first[c.dup_key] = len(groups)
        groups.append([c, []])
    out: list[Group] = []
    per_doc: dict[str, int] = {}
    for c, seen in groups:
        if per_article is not None:
            if per_doc.get(c.doc, 0) >= per_article:
                continue
            per_doc[c.doc] = per_doc.get(c.doc, 0) + 1
        out.append(Group(c, tuple(sorted(seen)) if collapse_duplicates else ()))
    return out


def sort_groups(groups: Sequence[Group], order: SortOrder) -> list[Group]:
    """Relevance keeps the ranking; date puts the newest first (by ``date_key``, which
    sorts chronologically), undated after all dated ones, ties in ranking order."""
    if order is SortOrder.RELEVANCE:
        return list(groups)
    dated = [g for g in groups if g.candidate.date_key]
    undated = [g for g in groups if not g.candidate.date_key]
    dated.sort(key=lambda g: g.candidate.date_key, reverse=True)  # stable: ties by rank
    return dated + undated


# --------------------------------------------------------------- highlights


def highlight_spans(text: str, query_terms: Iterable[str]) -> tuple[tuple[int, int], ...]:
    """Character spans ``(start, end)`` of the words of ``text`` whose analysed terms
    meet the query's (the same German analysis as the search: ``Waffen`` marks
    ``Waffenlieferungen``' stem part, ``Müller`` marks ``Mueller``)."""
    from indexer.analysis import surface_terms, word_matches

    terms = frozenset(query_terms)
    if not terms:
        return ()
    return tuple(
        m.span() for m in word_matches(text) if not terms.isdisjoint(surface_terms(m.group()))
    )


# ------------------------------------------------------------- article view


@dataclass(frozen=True)
class ArticlePassage:
    """One passage of an article in reading order."""

    id: str
    paragraph: int
    part: int
    text: str

    def to_dict(self) -> dict:
        return {"id": self.id, "paragraph": self.paragraph, "part": self.part, "text": self.text}


@dataclass(frozen=True)
class ArticleView:
    """A whole article as indexed: metadata and passages; ``marked`` is the passage id
    that was asked for (None when an article was asked for)."""

    doc: str
    title: str
    file: str
    date: str | None
    source: str | None
    url: str | None
    author: str | None
    agency: str | None
    folder: str | None
    passages: tuple[ArticlePassage, ...] = field(default_factory=tuple)
    marked: str | None = None

    def to_dict(self) -> dict:
        return {
            "doc": self.doc,
            "title": self.title,
            "file": self.file,
            "date": self.date,
            "source": self.source,
            "url": self.url,
            "author": self.author,
            "agency": self.agency,
            "folder": self.folder,
            "marked": self.marked,
            "passages": [p.to_dict() for p in self.passages],
        }
