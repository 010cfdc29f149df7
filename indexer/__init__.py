"""seedsearch indexer: seeds folder -> Whoosh BM25 index + FAISS vectors, incrementally."""

from indexer.core import Indexer, IndexReport, IndexSettings
from indexer.errors import SeedsearchError

__all__ = ["IndexReport", "IndexSettings", "Indexer", "SeedsearchError"]
