"""The one place where the server meets the engine's archive API (filters, offset,
article view): ``run_search``, ``read_article`` and ``facets``.

The engine gained ``Filters``, ``offset``/``total`` and ``article()`` in the archive
work (issue 12). Where the running engine has them, they are used as they are; an
engine without them is served by a plain emulation over its document store (the
same metadata, filtered after retrieval among the top MAX_K candidates), so the
server and its tests do not depend on which engine they run against.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from indexer.errors import QueryError
from search.engine import MAX_K, SearchEngine
from search.fusion import FusionMethod, SearchMode

try:  # the archive API (issue 12)
    from search import ArticleView as _ArticleView  # noqa: F401
    from search import Filters as _Filters
except ImportError:  # pragma: no cover - depends on the engine version
    _Filters = None

try:
    from indexer.errors import NotFoundError
except ImportError:  # pragma: no cover - depends on the engine version
    try:
        from search import NotFoundError  # type: ignore[no-redef]
    except ImportError:

        class NotFoundError(QueryError):  # type: ignore[no-redef]
            """No article or passage with this id in the index."""


#: Whether ``SearchEngine.search`` takes ``filters``/``offset`` and the engine has
#: ``article()``: decided once, from the engine's signature.
HAS_ARCHIVE_API = (
    _Filters is not None
    and "filters" in inspect.signature(SearchEngine.search).parameters
    and hasattr(SearchEngine, "article")
)

#: The API's limits (the engine has its own, larger ones).
API_MAX_K = 100
API_MAX_OFFSET = MAX_K - API_MAX_K
API_MAX_QUERY_CHARS = 2000
API_MAX_FILTER_VALUES = 20
API_MAX_FILTER_CHARS = 200
SORTS = ("relevance", "date")

_PASSAGE_SUFFIX = re.compile(r"#\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class SearchRequest:
    """One search as the API and the page ask for it, validated at construction with
    the same messages as the CLI where the CLI has the option."""

    q: str
    k: int = 10
    offset: int = 0
    mode: SearchMode = SearchMode.HYBRID
    alpha: float | None = None
    fusion: FusionMethod | None = None
    sort: str = "relevance"
    since: str | None = None
    until: str | None = None
    sources: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.q, str):
            raise QueryError(f"query must be text, got {type(self.q).__name__}")
        if len(self.q) > API_MAX_QUERY_CHARS:
            raise QueryError(
                f"query of {len(self.q)} characters is too long: the API takes at most "
                f"{API_MAX_QUERY_CHARS}"
            )
        for name, value, low, high in (
            ("k", self.k, 1, API_MAX_K),
            ("offset", self.offset, 0, API_MAX_OFFSET),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise QueryError(f"{name} must be a whole number, got {value!r}")
            if name == "k" and value < 1:  # the engine's message, as the CLI shows it
                raise QueryError(f"k={value} is invalid: ask for at least 1 result")
            if name == "k" and value > high:
                raise QueryError(
                    f"k={value} is too many: the API returns at most {high} hits at a time; "
                    "use offset for the next ones"
                )
            if not low <= value <= high:
                raise QueryError(
                    f"{name}={value} is invalid: use a whole number from {low} to {high}"
                )
        object.__setattr__(self, "mode", SearchMode.from_str(self.mode))
        if self.fusion is not None:
            object.__setattr__(self, "fusion", FusionMethod.from_str(self.fusion))
        if self.sort not in SORTS:
            raise QueryError(f"sort={self.sort!r} is invalid: use relevance or date")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _iso_date(name, value))
        if self.since and self.until and self.since > self.until:
            raise QueryError(
                f"since={self.since} is after until={self.until}: swap them or leave one out"
            )
        for name in ("sources", "agencies", "folders"):
            values = tuple(v.strip() for v in getattr(self, name) if v and v.strip())
            if len(values) > API_MAX_FILTER_VALUES:
                raise QueryError(
                    f"{len(values)} {name} given: filter by at most {API_MAX_FILTER_VALUES}"
                )
            for v in values:
                if len(v) > API_MAX_FILTER_CHARS:
                    raise QueryError(
                        f"a {name[:-1]} filter of {len(v)} characters is too long: use at "
                        f"most {API_MAX_FILTER_CHARS}"
                    )
            object.__setattr__(self, name, values)

    @property
    def filtered(self) -> bool:
        return bool(self.since or self.until or self.sources or self.agencies or self.folders)

    @classmethod
    def from_params(cls, params: Any) -> SearchRequest:
        """From URL query parameters (a Starlette ``QueryParams`` or a dict of lists):
        text values parsed with the messages a user of the CLI would see."""

        def one(name: str) -> str | None:
            values = _getlist(params, name)
            if len(values) > 1:
                raise QueryError(f"{name} given {len(values)} times: give it once")
            return values[0] if values else None

        def whole(name: str, default: int) -> int:
            raw = one(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                return int(raw.strip())
            except ValueError:
                raise QueryError(f"{name} must be a whole number, got {raw!r}") from None

        alpha_raw = one("alpha")
        alpha = None
        if alpha_raw is not None and alpha_raw.strip():
            try:
                alpha = float(alpha_raw)
            except ValueError:
                raise QueryError(
                    f"alpha={alpha_raw!r} is out of range: use a number from 0 to 1"
                ) from None
            from search.engine import check_alpha

            check_alpha(alpha)
        return cls(
            q=one("q") or "",
            k=whole("k", 10),
            offset=whole("offset", 0),
            mode=(one("mode") or "hybrid").strip() or "hybrid",
            alpha=alpha,
            fusion=(one("fusion") or "").strip() or None,
            sort=(one("sort") or "relevance").strip() or "relevance",
            since=(one("since") or "").strip() or None,
            until=(one("until") or "").strip() or None,
            sources=tuple(_getlist(params, "source")),
            agencies=tuple(_getlist(params, "agency")),
            folders=tuple(_getlist(params, "folder")),
        )


def _getlist(params: Any, name: str) -> list[str]:
    if hasattr(params, "getlist"):
        return list(params.getlist(name))
    value = params.get(name, [])
    return [value] if isinstance(value, str) else list(value)


def _iso_date(name: str, value: str) -> str:
    """``YYYY-MM-DD`` (also ``YYYY`` and ``YYYY-MM``, taken as their first day for
    ``since`` and their last for ``until``)."""
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            return f"{text}-01-01" if name == "since" else f"{text}-12-31"
        if re.fullmatch(r"\d{4}-\d{2}", text):
            first = date.fromisoformat(text + "-01")
            if name == "since":
                return first.isoformat()
            nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1).isoformat()
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise QueryError(
            f"{name}={text!r} is not a date: use YYYY-MM-DD, e.g. {name}=2024-06-18"
        ) from None


# ------------------------------------------------------------------ search


@dataclass
class _Meta:
    """Article metadata per document, read once per engine (one generation)."""

    articles: dict[str, Any] = field(default_factory=dict)


_META_CACHE: dict[int, tuple[Any, _Meta]] = {}


def _meta(engine: SearchEngine) -> _Meta:
    """All articles' metadata of this engine's generation (cached per engine)."""
    key = id(engine)
    hit = _META_CACHE.get(key)
    if hit is not None and hit[0] is engine:
        return hit[1]
    docs = engine.docs
    meta = _Meta(docs.articles(list(docs.article_hashes())))
    if len(_META_CACHE) > 8:
        _META_CACHE.clear()
    _META_CACHE[key] = (engine, meta)
    return meta


def forget(engine: SearchEngine) -> None:
    """Drop the cached metadata of a closed engine."""
    _META_CACHE.pop(id(engine), None)


def _article_fields(a: Any) -> dict[str, str | None]:
    return {
        name: getattr(a, name, None)
        for name in ("date", "source", "url", "author", "agency", "folder")
    }


def _passes(a: Any, req: SearchRequest) -> bool:
    if a is None:
        return not req.filtered
    day = (getattr(a, "date", None) or "")[:10]
    if (req.since or req.until) and not day:
        return False
    if req.since and day < req.since:
        return False
    if req.until and day > req.until:
        return False
    if req.sources and (a.source or "") not in req.sources:
        return False
    agencies = {x.strip() for x in re.split(r"[,;/]", a.agency or "") if x.strip()}
    if req.agencies and not agencies.intersection(req.agencies):
        return False
    folder = a.folder or ""
    return not req.folders or any(
        folder == f or folder.startswith(f.rstrip("/") + "/") for f in req.folders
    )


def run_search(engine: SearchEngine, req: SearchRequest) -> dict:
    """``{"query", "total", "offset", "hits", "corrections", "notices"}`` for ``req``,
    each hit with the keys of ``seedsearch search --json``."""
    if HAS_ARCHIVE_API:
        filters = _Filters(
            since=req.since,
            until=req.until,
            sources=req.sources,
            agencies=req.agencies,
            folders=req.folders,
        )
        result = engine.search(
            req.q,
            k=req.k,
            mode=req.mode,
            alpha=req.alpha,
            fusion=req.fusion,
            offset=req.offset,
            filters=filters,
            sort=req.sort,
        )
        return result.to_dict()
    # Emulation for an engine without the archive API. Filtered or by date: rank the
    # top MAX_K, filter by the stored article metadata, sort, page; ``total`` counts
    # the matches among them. Unfiltered: rank one more than the page needs (ranking
    # 1000 costs ~30 ms more per query); ``total`` is then a lower bound that says
    # whether a next page exists.
    everything = req.filtered or req.sort == "date"
    asked = MAX_K if everything else min(MAX_K, req.offset + req.k + 1)
    result = engine.search(req.q, k=asked, mode=req.mode, alpha=req.alpha, fusion=req.fusion)
    hits = list(result.hits)
    if everything:
        articles = _meta(engine).articles
        hits = [h for h in hits if _passes(articles.get(h.doc), req)]
        if req.sort == "date":
            hits.sort(key=lambda h: getattr(articles.get(h.doc), "date", None) or "", reverse=True)
    page = hits[req.offset : req.offset + req.k]
    dicts = []
    for rank, h in enumerate(page, start=req.offset + 1):
        d = h.to_dict()
        d["rank"] = rank
        dicts.append(d)
    return {
        "query": req.q,
        "total": len(hits),
        "offset": req.offset,
        "hits": dicts,
        "corrections": [],
        "notices": list(result.notices),
    }


def hit_metadata(engine: SearchEngine, hits: list[dict]) -> dict[str, dict]:
    """Article metadata (date, source, url, author, agency, folder) by document, for
    hits that do not carry it themselves."""
    if all("date" in h for h in hits):
        return {h["doc"]: {k: h.get(k) for k in _ARTICLE_KEYS} for h in hits}
    articles = _meta(engine).articles
    return {h["doc"]: _article_fields(articles.get(h["doc"])) for h in hits}


_ARTICLE_KEYS = ("date", "source", "url", "author", "agency", "folder")


# ----------------------------------------------------------------- article


def read_article(engine: SearchEngine, ident: str) -> dict:
    """The ``show`` data of an article (``doc``) or of the article of a passage
    (``doc#paragraph``, which is then ``marked``); NotFoundError if unknown.

    The id is only ever looked up in the index's document store, never used as a
    path: ``../`` and the like name no article.
    """
    if not isinstance(ident, str) or not ident.strip() or len(ident) > 1000:
        raise NotFoundError(f"no article {str(ident)[:100]!r} in the index")
    if HAS_ARCHIVE_API:
        return engine.article(ident).to_dict()
    docs = engine.docs
    doc, marked = ident, None
    if _PASSAGE_SUFFIX.search(ident) and not docs.articles([ident]):
        doc, marked = ident[: ident.rindex("#")], ident
    found = docs.articles([doc])
    if doc not in found:
        raise NotFoundError(f"no article {ident!r} in the index: use the doc or id of a search hit")
    passages = docs.article_passages(doc)
    if marked is not None and marked not in {p.id for p in passages}:
        raise NotFoundError(f"no passage {ident!r} in the index: use the id of a search hit")
    a = found[doc]
    return {
        "doc": a.doc,
        "title": a.title,
        "file": a.file,
        **_article_fields(a),
        "passages": [
            {"id": p.id, "paragraph": p.paragraph, "part": p.part, "text": p.text} for p in passages
        ],
        "marked": marked,
    }


def facets(engine: SearchEngine) -> dict[str, list[str]]:
    """The sources, agencies and folders of the index, for the page's filter lists."""
    out: dict[str, set[str]] = {"sources": set(), "agencies": set(), "folders": set()}
    for a in _meta(engine).articles.values():
        if a.source:
            out["sources"].add(a.source)
        for x in re.split(r"[,;/]", a.agency or ""):
            if x.strip():
                out["agencies"].add(x.strip())
        if a.folder:
            out["folders"].add(a.folder)
    return {name: sorted(values, key=str.casefold) for name, values in out.items()}
