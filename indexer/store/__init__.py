"""Everything that touches index files, one module per job.

Layout of an index folder::

    index_data/
      CURRENT            name of the published generation ("gen-00000003")
      gen-00000003/      manifest.json  docs.sqlite  vectors.faiss  whoosh/
      .lock              held (flock) by the one writer

* :mod:`~indexer.store.generations`: CURRENT, generation folders, atomic publish,
  garbage collection (a reader sees the old index or the new one, never a mix);
* :mod:`~indexer.store.lock`: the single-writer lock;
* :mod:`~indexer.store.manifest`: what an index is, and the one compatibility check
  shared by the indexer and the search engine;
* :mod:`~indexer.store.files`: checksums, fsync, atomic small files, hard-link copies;
* :mod:`~indexer.store.docstore`: articles and passages (SQLite, read lazily): the one
  source of truth for passage ids, texts, metadata and vector ids;
* :mod:`~indexer.store.keyword`: the Whoosh keyword index (postings only);
* :mod:`~indexer.store.vectors`: the FAISS vector index.
"""

from indexer.store.layout import (
    CURRENT,
    DOCS,
    FIX,
    FORMAT_VERSION,
    KEEP_OLD_GENERATIONS,
    LOCK,
    MANIFEST,
    VECTORS,
    WHOOSH,
)

__all__ = [
    "CURRENT",
    "DOCS",
    "FIX",
    "FORMAT_VERSION",
    "KEEP_OLD_GENERATIONS",
    "LOCK",
    "MANIFEST",
    "VECTORS",
    "WHOOSH",
]
