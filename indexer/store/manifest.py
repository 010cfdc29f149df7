"""The manifest: what an index generation is, written last, checked on every open.

One check (:func:`read_checked`) serves the search engine and the indexer, so both
refuse the same indexes with the same messages: a format from another seedsearch
version, an analyzer other than the one this code runs, or a damaged manifest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from indexer.errors import IndexCorruptError
from indexer.store.layout import FIX, FORMAT_VERSION, MANIFEST


class IndexFormatError(IndexCorruptError):
    """The index was written by a seedsearch with another index format.

    ``raw`` holds the manifest as read, so a full rebuild can keep its settings."""

    def __init__(self, message: str, raw: dict) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class Manifest:
    """What an index generation is.

    ``settings``: the :class:`indexer.settings.IndexSettings` it was built with (as a
    dict; ``settings["model"]`` is the embedder spec). ``embedder_id``: what the
    embedder says identifies its exact weights and graph (may be empty).
    ``bm25``: live passage count and total field lengths (BM25's average lengths).
    ``checksums``: ``[size, blake2b]`` of every file of the generation.
    """

    format_version: int
    analyzer: str
    settings: dict
    embedder_id: str
    dim: int
    built_at: str
    generation: int
    documents: int
    passages: int
    next_vid: int
    vector_index: str  # what vectors.faiss holds, e.g. "flat/float32", "hnsw32/sq8"
    dead_vectors: int  # vectors of removed passages still in an HNSW graph
    bm25: dict = field(default_factory=dict)  # {"docs": n, "length": {field: total}}
    checksums: dict = field(default_factory=dict)  # file -> [size, blake2b]

    @property
    def embedder(self) -> str:
        return str(self.settings.get("model", ""))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, where: str) -> Manifest:
        try:
            manifest = cls(**data)
        except TypeError as exc:
            raise IndexCorruptError(f"index manifest {where} is damaged ({exc}); {FIX}") from exc
        for name, kind in _TYPES.items():  # valid JSON, but the wrong shape
            value = getattr(manifest, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise IndexCorruptError(
                    f"index manifest {where} is damaged ({name} is {value!r}); {FIX}"
                )
        return manifest


_TYPES = {
    **dict.fromkeys(("format_version", "dim", "generation", "documents"), int),
    **dict.fromkeys(("passages", "next_vid", "dead_vectors"), int),
    **dict.fromkeys(("analyzer", "embedder_id", "built_at", "vector_index"), str),
    **dict.fromkeys(("settings", "bm25", "checksums"), dict),
}


def read_raw(gen_dir: Path) -> dict:
    """The manifest of a generation as a JSON object (IndexCorruptError if unreadable)."""
    path = gen_dir / MANIFEST
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise IndexCorruptError(f"index manifest {path} is missing; {FIX}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"cannot read index manifest {path} ({exc}); {FIX}") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise IndexCorruptError(f"index manifest {path} is damaged ({exc}); {FIX}") from exc
    if not isinstance(data, dict):
        raise IndexCorruptError(f"index manifest {path} is damaged (not an object); {FIX}")
    return data


def read_checked(gen_dir: Path, index_dir: Path) -> Manifest:
    """The manifest of a generation, after the checks every reader and writer makes:
    the format version is this seedsearch's and the analyzer is the one it runs.
    """
    from indexer.analysis import ANALYZER_VERSION

    raw = read_raw(gen_dir)
    where = str(gen_dir / MANIFEST)
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexCorruptError(f"index manifest {where} is damaged (no format version); {FIX}")
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"index at {index_dir} has format {version}, newer than this seedsearch "
            f"(format {FORMAT_VERSION}): upgrade seedsearch, or {FIX}",
            raw,
        )
    if version < FORMAT_VERSION:
        raise IndexFormatError(
            f"index at {index_dir} was built by an older seedsearch (format {version}; this "
            f"one reads format {FORMAT_VERSION}); {FIX} (its settings are kept)",
            raw,
        )
    manifest = Manifest.from_dict(raw, where)
    if manifest.analyzer != ANALYZER_VERSION:
        raise IndexFormatError(
            f"index at {index_dir} was built with analyzer {manifest.analyzer}, this "
            f"seedsearch analyses with {ANALYZER_VERSION}; {FIX} (its settings are kept)",
            raw,
        )
    return manifest


def check_counts(
    index_dir: Path,
    manifest: Manifest,
    stored: int,
    vectors_live: int,
    keyword_docs: int,
    dead: int,
) -> None:
    """IndexCorruptError unless the document store, the vector index and the keyword
    index hold the passages the manifest says (and the dead vectors it records)."""
    counts = (stored, vectors_live, keyword_docs)
    if len(set(counts)) != 1 or stored != manifest.passages:
        raise IndexCorruptError(
            f"index at {index_dir} is inconsistent: manifest {manifest.passages} passages, "
            f"stored {stored}, vectors {vectors_live}, keyword index {keyword_docs}; {FIX}"
        )
    if dead != manifest.dead_vectors:
        raise IndexCorruptError(
            f"index at {index_dir} is inconsistent: {dead} vectors without a passage, "
            f"manifest {manifest.dead_vectors}; {FIX}"
        )
    if manifest.bm25.get("docs") != manifest.passages:
        raise IndexCorruptError(
            f"index at {index_dir} is inconsistent: BM25 statistics count "
            f"{manifest.bm25.get('docs')} passages, manifest {manifest.passages}; {FIX}"
        )


def read_manifest(gen_dir: Path) -> Manifest:
    """The manifest of a generation of this format, without the compatibility checks
    of :func:`read_checked` (for tools that only display it)."""
    return Manifest.from_dict(read_raw(gen_dir), str(gen_dir / MANIFEST))
