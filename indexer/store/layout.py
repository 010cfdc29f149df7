"""Names of the files in an index folder, and the format version of the layout."""

#: Bump when the layout or the meaning of an index file changes. Format 1 (seedsearch
#: 0.1) kept passages in passages.jsonl and BM25 statistics in bm25stats.json.
FORMAT_VERSION = 2
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DOCS = "docs.sqlite"
VECTORS = "vectors.faiss"
WHOOSH = "whoosh"
LOCK = ".lock"
#: Generations kept before the current one, for readers that opened them.
KEEP_OLD_GENERATIONS = 2
FIX = "rebuild it with: seedsearch index --full"
