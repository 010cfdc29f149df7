"""Index settings and the one rule for reusing or changing them.

An index remembers the settings it was built with (in its manifest). Every writer
(``seedsearch index``, ``watch``, ``Indexer(...).update()``) reuses them unless told
otherwise; a different value needs a full rebuild, asked for explicitly. The rule is
a pure function (:func:`resolve_settings`), so the CLI, the watcher and the Python
API cannot disagree about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from indexer.embedder import DEFAULT_MODEL
from indexer.errors import EmbedderMismatchError, SeedsearchError, SettingsMismatchError
from indexer.seeds import MAX_PASSAGE_WORDS
from indexer.store.vectors import ANN_CHOICES, ANN_THRESHOLD, VECTOR_TYPES

#: The ``seedsearch index`` option for each setting that has one.
CLI_FLAGS = {"model": "--model", "ann": "--ann", "vectors": "--vectors"}


@dataclass(frozen=True)
class IndexSettings:
    """Choices that change what is indexed; recorded in the manifest.

    ``model``: the embedder spec (``e5-small``, ``use-m3``, a sentence-transformers name
    or folder).
    ``max_passage_words``: longer paragraphs are split at sentence ends.
    ``embed_title``: embed "title. passage" instead of the passage alone.
    ``title_field``: index the article title as a BM25 field of every passage.
    ``ann``: vector search structure: "flat" (exact), "hnsw" (approximate graph) or
    "auto" (flat below ``ann_threshold`` passages, HNSW from there on).
    ``vectors``: "float32", "float16" (half the memory) or "sq8" (a quarter).
    """

    model: str = DEFAULT_MODEL
    max_passage_words: int = MAX_PASSAGE_WORDS
    embed_title: bool = False
    title_field: bool = True
    ann: str = "auto"
    vectors: str = "float32"
    ann_threshold: int = ANN_THRESHOLD

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise SeedsearchError(
                f"model={self.model!r} is not a model spec: use 'e5-small', 'use-m3' or a "
                "sentence-transformers model name or folder"
            )
        for name in ("ann", "vectors"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, value.strip().lower())
        if (
            isinstance(self.max_passage_words, bool)
            or not isinstance(self.max_passage_words, int)
            or self.max_passage_words < 10
        ):
            raise SeedsearchError(
                f"max_passage_words={self.max_passage_words!r} is too small: use 10 or more"
            )
        if self.ann not in ANN_CHOICES:
            raise SeedsearchError(f"ann={self.ann!r} is unknown: use {', '.join(ANN_CHOICES)}")
        if self.vectors not in VECTOR_TYPES:
            raise SeedsearchError(
                f"vectors={self.vectors!r} is unknown: use {', '.join(VECTOR_TYPES)}"
            )
        if (
            isinstance(self.ann_threshold, bool)
            or not isinstance(self.ann_threshold, int)
            or self.ann_threshold < 1
        ):
            raise SeedsearchError(f"ann_threshold={self.ann_threshold!r}: use a whole number >= 1")
        for name in ("embed_title", "title_field"):
            if not isinstance(getattr(self, name), bool):
                raise SeedsearchError(f"{name}={getattr(self, name)!r}: use True or False")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> IndexSettings:
        """Settings as a manifest records them; keys this version does not know are
        an error (the index comes from a newer seedsearch)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SeedsearchError(
                f"unknown index settings {', '.join(unknown)}: the index was built by a "
                "newer seedsearch; upgrade seedsearch"
            )
        return cls(**dict(data))


def setting_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(IndexSettings))


def _flag(name: str, value) -> str:
    if name in CLI_FLAGS:
        return f"{CLI_FLAGS[name]} {value}"
    return f"{name}={value!r}"


def _command(changes: Mapping[str, object], seeds_dir: Path | None, index_dir: Path) -> str:
    """The exact rebuild command for ``changes`` (Python form if a setting has no flag)."""
    if all(name in CLI_FLAGS for name in changes):
        parts = ["seedsearch index --full", *(_flag(n, v) for n, v in changes.items())]
        if seeds_dir is not None and Path(seeds_dir) != Path("seeds"):
            parts.append(f"--seeds {seeds_dir}")
        if Path(index_dir) != Path("index_data"):
            parts.append(f"--index {index_dir}")
        return " ".join(parts)
    args = ", ".join(f"{n}={v!r}" for n, v in changes.items())
    return f"Indexer({str(seeds_dir)!r}, {str(index_dir)!r}, {args}).update(full=True)"


def conflict_message(
    index_dir: Path,
    conflicts: Mapping[str, tuple[object, object]],
    seeds_dir: Path | None = None,
    searching: bool = False,
) -> str:
    """One line naming each setting that differs (built value, asked value) and the fix."""
    what = "; ".join(f"{name}={old!r}, not {new!r}" for name, (old, new) in conflicts.items())
    command = _command({n: new for n, (_, new) in conflicts.items()}, seeds_dir, index_dir)
    if searching:
        keep = "search without --model"
    else:
        keep = "keep the built value by leaving out " + ", ".join(
            CLI_FLAGS.get(n, n) for n in conflicts
        )
    return (
        f"index at {index_dir} was built with {what}: {keep}, or rebuild it with the new "
        f"value: {command}"
    )


def resolve_settings(
    built: IndexSettings | None,
    requested: Mapping[str, object],
    full: bool,
    index_dir: Path,
    seeds_dir: Path | None = None,
) -> IndexSettings:
    """The settings an update builds with.

    ``built``: what the existing index was built with (None: no readable index).
    ``requested``: only the settings the caller asked for explicitly.
    A new index, or a full rebuild, takes ``built`` (else the defaults) with the
    requested values; an incremental update takes ``built`` and refuses a requested
    value that differs (SettingsMismatchError naming the setting, both values and
    the exact rebuild command).
    """
    unknown = sorted(set(requested) - set(setting_names()))
    if unknown:
        raise SeedsearchError(
            f"unknown index setting {', '.join(unknown)}: use {', '.join(setting_names())}"
        )
    wanted = replace(built or IndexSettings(), **requested)  # validates the values
    if built is None or full:
        return wanted
    conflicts = {
        name: (getattr(built, name), getattr(wanted, name))
        for name in requested
        if getattr(built, name) != getattr(wanted, name)
    }
    if conflicts:
        error = EmbedderMismatchError if "model" in conflicts else SettingsMismatchError
        raise error(conflict_message(index_dir, conflicts, seeds_dir))
    return built
