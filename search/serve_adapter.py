"""The one place where the server meets the engine's archive API: a validated
``SearchRequest`` from URL parameters, ``run_search``, ``read_article`` and ``facets``.

The engine does the work (``Filters``, ``offset``/``total``, ``engine.article()``);
this module adds the API's own limits and turns URL text into the engine's types with
the messages a user of the CLI sees.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from indexer.errors import NotFoundError, QueryError
from search.archive import Filters, SortOrder
from search.engine import MAX_K, SearchEngine
from search.fusion import FusionMethod, SearchMode

#: The API's limits (the engine has its own, larger ones).
API_MAX_K = 100
API_MAX_OFFSET = MAX_K - API_MAX_K
API_MAX_QUERY_CHARS = 2000
API_MAX_FILTER_VALUES = 20
API_MAX_FILTER_CHARS = 200
SORTS = tuple(order.value for order in SortOrder)


@dataclass(frozen=True)
class SearchRequest:
    """One search as the API and the page ask for it, validated at construction: the
    API's limits, then the engine's own types (which bring the CLI's messages)."""

    q: str
    k: int = 10
    offset: int = 0
    mode: SearchMode = SearchMode.HYBRID
    alpha: float | None = None
    fusion: FusionMethod | None = None
    sort: SortOrder = SortOrder.RELEVANCE
    filters: Filters = field(default_factory=Filters)
    typos: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.q, str):
            raise QueryError(f"query must be text, got {type(self.q).__name__}")
        if len(self.q) > API_MAX_QUERY_CHARS:
            raise QueryError(
                f"query of {len(self.q)} characters is too long: the API takes at most "
                f"{API_MAX_QUERY_CHARS}"
            )
        for name, value, high in (
            ("k", self.k, API_MAX_K),
            ("offset", self.offset, API_MAX_OFFSET),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise QueryError(f"{name} must be a whole number, got {value!r}")
            if name == "k" and value < 1:  # the engine's message, as the CLI shows it
                raise QueryError(f"k={value} is invalid: ask for at least 1 result")
            if name == "offset" and value < 0:
                raise QueryError(f"offset={value!r} is invalid: use a whole number >= 0")
            if value > high:
                more = "hits at a time; use offset for the next ones" if name == "k" else ""
                raise QueryError(
                    f"k={value} is too many: the API returns at most {high} {more}"
                    if name == "k"
                    else f"offset={value} is too deep: the API pages up to offset {high}"
                )
        object.__setattr__(self, "mode", SearchMode.from_str(self.mode))
        if self.fusion is not None:
            object.__setattr__(self, "fusion", FusionMethod.from_str(self.fusion))
        object.__setattr__(self, "sort", SortOrder.from_str(self.sort))
        if self.alpha is not None:
            from search.engine import check_alpha

            object.__setattr__(self, "alpha", check_alpha(self.alpha))
        if not isinstance(self.typos, bool):
            raise QueryError(f"typos must be true or false, got {self.typos!r}")
        if not isinstance(self.filters, Filters):
            raise QueryError(f"filters must be a Filters(...), got {type(self.filters).__name__}")

    @classmethod
    def from_params(cls, params: Any) -> SearchRequest:
        """From URL query parameters (a Starlette ``QueryParams`` or a dict of lists):
        text parsed with the messages a user of the CLI would see."""

        def one(name: str) -> str | None:
            values = _getlist(params, name)
            if len(values) > 1:
                raise QueryError(f"{name} given {len(values)} times: give it once")
            return values[0].strip() if values and values[0].strip() else None

        def whole(name: str, default: int) -> int:
            raw = one(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise QueryError(f"{name} must be a whole number, got {raw!r}") from None

        alpha = one("alpha")
        if alpha is not None:
            try:
                alpha = float(alpha)
            except ValueError:
                raise QueryError(
                    f"alpha={alpha!r} is out of range: use a number from 0 to 1"
                ) from None
        typos = (one("typos") or "true").lower()
        if typos not in _BOOLEAN:
            raise QueryError(f"typos={typos!r} is invalid: use true or false")
        q = _getlist(params, "q")
        if len(q) > 1:
            raise QueryError(f"q given {len(q)} times: give it once")
        return cls(
            q=q[0] if q else "",
            k=whole("k", 10),
            offset=whole("offset", 0),
            mode=one("mode") or SearchMode.HYBRID,
            alpha=alpha,
            fusion=one("fusion"),
            sort=one("sort") or SortOrder.RELEVANCE,
            typos=_BOOLEAN[typos],
            filters=Filters(
                since=one("since"),
                until=one("until"),
                sources=_values(params, "source"),
                agencies=_values(params, "agency"),
                folders=_values(params, "folder"),
            ),
        )


_BOOLEAN = {"true": True, "1": True, "yes": True, "on": True}
_BOOLEAN |= {"false": False, "0": False, "no": False, "off": False}


def _getlist(params: Any, name: str) -> list[str]:
    if hasattr(params, "getlist"):
        return list(params.getlist(name))
    value = params.get(name, [])
    return [value] if isinstance(value, str) else list(value)


def _values(params: Any, name: str) -> tuple[str, ...]:
    """A repeatable filter's values (empty ones dropped: an empty select means all)."""
    values = tuple(v.strip() for v in _getlist(params, name) if v.strip())
    if len(values) > API_MAX_FILTER_VALUES:
        raise QueryError(f"{len(values)} {name} filters given: use at most {API_MAX_FILTER_VALUES}")
    for v in values:
        if len(v) > API_MAX_FILTER_CHARS:
            raise QueryError(
                f"a {name} filter of {len(v)} characters is too long: use at most "
                f"{API_MAX_FILTER_CHARS}"
            )
    return values


# ------------------------------------------------------------------ search


def run_search(engine: SearchEngine, req: SearchRequest) -> dict:
    """``{"query", "total", "offset", "hits", "notices", ...}``: the engine's
    ``SearchResult.to_dict()`` (each hit with the keys of ``search --json``)."""
    result = engine.search(
        req.q,
        k=req.k,
        mode=req.mode,
        alpha=req.alpha,
        fusion=req.fusion,
        offset=req.offset,
        filters=req.filters,
        sort=req.sort,
        typos=req.typos,
    )
    return result.to_dict()


# ----------------------------------------------------------------- article

#: ids that are no article id of any index (seed paths are relative, without ``..``):
#: refused before the lookup, which only ever reads the document store anyway
_NOT_AN_ID = re.compile(r"(^|[/\\])\.\.([/\\]|$)|^[/\\]|\x00")


def read_article(engine: SearchEngine, ident: str) -> dict:
    """The ``show`` data of an article (its ``doc``) or of a passage's article (its
    ``id``, then ``marked``); NotFoundError if the index has none.

    The id is only looked up in the index's document store, never used as a path;
    ``..`` segments and absolute paths are refused outright.
    """
    if not isinstance(ident, str) or len(ident) > 1000 or _NOT_AN_ID.search(ident):
        raise NotFoundError(
            f"no article {str(ident)[:100]!r} in the index: use the id or doc of a search hit"
        )
    return engine.article(ident).to_dict()


_FACETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def facets(engine: SearchEngine) -> Mapping[str, list[str]]:
    """The sources, agencies and folders of the index (for the page's filter lists),
    read once per engine, that is once per generation."""
    cached = _FACETS.get(engine)
    if cached is not None:
        return cached
    from indexer.seeds import split_agencies

    agencies = {a for v in engine.docs.distinct("agency") for a in split_agencies(v)}
    out = {
        "sources": sorted(engine.docs.distinct("source"), key=str.casefold),
        "agencies": sorted(agencies, key=str.casefold),
        "folders": sorted(engine.docs.distinct("folder"), key=str.casefold),
    }
    _FACETS[engine] = out
    return out
