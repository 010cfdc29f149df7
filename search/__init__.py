"""seedsearch query side: ``SearchEngine.open(index_dir).search("Wer liefert Waffen?")``."""

from indexer.errors import NotFoundError, QueryError, SeedsearchError
from search.archive import ArticlePassage, ArticleView, Filters, SortOrder
from search.engine import Hit, IndexStatus, SearchEngine, SearchResult, SearchSettings, index_status
from search.fusion import FusionMethod, SearchMode

#: ``engine.article(id)`` returns an ``Article`` (the name the issue and README use).
Article = ArticleView

__all__ = [
    "Article",
    "ArticlePassage",
    "ArticleView",
    "Filters",
    "FusionMethod",
    "Hit",
    "IndexStatus",
    "NotFoundError",
    "QueryError",
    "SearchEngine",
    "SearchMode",
    "SearchResult",
    "SearchSettings",
    "SeedsearchError",
    "SortOrder",
    "index_status",
]
