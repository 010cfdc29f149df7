"""Names of the files in an index folder, and the format version of the layout."""

import re
from collections.abc import Mapping

#: Bump when the layout or the meaning of an index file changes. Format 1 (seedsearch
#: 0.1) kept passages in passages.jsonl and BM25 statistics in bm25stats.json. Format 2
#: had no word positions in the keyword index (no phrase queries) and no duplicate key
#: (``nh``) in the document store.
FORMAT_VERSION = 3
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DOCS = "docs.sqlite"
VECTORS = "vectors.faiss"
WHOOSH = "whoosh"
LOCK = ".lock"
#: Generations kept before the current one, for readers that opened them.
KEEP_OLD_GENERATIONS = 2
FIX = "rebuild it with: seedsearch index --full"
#: Where format 1 kept the passages (recognised so an old index is never read as seeds).
_FORMAT1_PASSAGES = "passages.jsonl"

_GEN_DIR_RE = re.compile(r"gen-\d{8,}(?:\.tmp-\d+)?")


def looks_like_index(name: str, entries: Mapping[str, bool]) -> bool:
    """Whether a folder (its ``name`` and its entries, name -> is a folder) holds a
    seedsearch index or one of its generations (this format or format 1):

    - ``CURRENT`` or ``.lock`` next to a ``gen-NNNNNNNN`` folder (an index, also
      one in its first build);
    - a ``gen-NNNNNNNN[.tmp-PID]`` folder with a manifest, a document store or
      ``whoosh/`` (a generation, also one being built);
    - a manifest and a document store next to ``whoosh/`` or the vectors (a
      generation under another name).
    """

    def is_file(n: str) -> bool:
        return entries.get(n) is False

    has_gen = any(is_dir and _GEN_DIR_RE.fullmatch(n) for n, is_dir in entries.items())
    if has_gen and (is_file(CURRENT) or is_file(LOCK)):
        return True
    store = is_file(DOCS) or is_file(_FORMAT1_PASSAGES)
    parts = is_file(MANIFEST) or store or entries.get(WHOOSH)
    if _GEN_DIR_RE.fullmatch(name) and parts:
        return True
    return is_file(MANIFEST) and store and (bool(entries.get(WHOOSH)) or is_file(VECTORS))
