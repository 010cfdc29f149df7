"""seedsearch query side: ``SearchEngine.open(index_dir).search("Wer liefert Waffen?")``."""

from indexer.errors import SeedsearchError
from search.engine import Hit, IndexStatus, SearchEngine, SearchSettings, index_status
from search.fusion import FusionMethod, SearchMode

__all__ = [
    "FusionMethod",
    "Hit",
    "IndexStatus",
    "SearchEngine",
    "SearchMode",
    "SearchSettings",
    "SeedsearchError",
    "index_status",
]
