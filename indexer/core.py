"""The ``Indexer``: seeds folder -> published index generation, incrementally."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from indexer import store
from indexer.analysis import ANALYZER_VERSION, analyze
from indexer.bm25stats import CollectionStats
from indexer.embedcache import EmbedCache
from indexer.embedder import DEFAULT_MODEL, Embedder, load_embedder
from indexer.errors import EmbedderMismatchError, IndexCorruptError, SeedsearchError
from indexer.seeds import (
    MAX_PASSAGE_WORDS,
    Article,
    Passage,
    check_folders,
    scan_seeds,
    split_passages,
)


@dataclass(frozen=True)
class IndexSettings:
    """Choices that change what is indexed; recorded in the manifest.

    ``embed_title``: embed "title. passage" instead of the passage alone.
    ``title_field``: index the article title as a BM25 field of every passage.
    ``ann``: vector search structure: "flat" (exact), "hnsw" (approximate graph) or
    "auto" (flat below ``ann_threshold`` passages, HNSW from there on).
    ``vectors``: "float32", "float16" (half the memory) or "sq8" (a quarter).
    """

    max_passage_words: int = MAX_PASSAGE_WORDS
    embed_title: bool = False
    title_field: bool = True
    ann: str = "auto"
    vectors: str = "float32"
    ann_threshold: int = store.ANN_THRESHOLD

    def __post_init__(self) -> None:
        if not isinstance(self.max_passage_words, int) or self.max_passage_words < 10:
            raise SeedsearchError(
                f"max_passage_words={self.max_passage_words!r} is too small: use 10 or more"
            )
        if self.ann not in store.ANN_CHOICES:
            raise SeedsearchError(
                f"ann={self.ann!r} is unknown: use {', '.join(store.ANN_CHOICES)}"
            )
        if self.vectors not in store.VECTOR_TYPES:
            raise SeedsearchError(
                f"vectors={self.vectors!r} is unknown: use {', '.join(store.VECTOR_TYPES)}"
            )
        if not isinstance(self.ann_threshold, int) or self.ann_threshold < 1:
            raise SeedsearchError(f"ann_threshold={self.ann_threshold!r}: use a whole number >= 1")


#: Settings added after the first release, with the value older indexes were built
#: with, so that their manifests still match the defaults.
_SETTINGS_BEFORE = {"ann": "auto", "vectors": "float32", "ann_threshold": store.ANN_THRESHOLD}


@dataclass(frozen=True)
class IndexReport:
    """What an update did (also the JSON of ``seedsearch index --json``)."""

    documents: int
    passages: int
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int
    embedded: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def progress_bar(description: str, total: int):
    """A transient rich progress bar with one task: (Progress, task id)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    return bar, bar.add_task(description, total=total)


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def embed_text(p: Passage | store.StoredPassage, settings: IndexSettings) -> str:
    return f"{p.title}. {p.text}" if settings.embed_title else p.text


def _model_spec(model: str | Embedder | None) -> str:
    if model is None:
        return DEFAULT_MODEL
    return model if isinstance(model, str) else model.spec


class Indexer:
    """Builds and updates the index in ``index_dir`` from the articles in ``seeds_dir``.

    Only changed articles are re-analysed; only passages whose text changed are
    re-embedded. Readers never see a half-built index (see ``indexer.store``).
    """

    def __init__(
        self,
        seeds_dir: str | Path,
        index_dir: str | Path,
        model: str | Embedder | None = None,
        settings: IndexSettings | None = None,
        progress: bool = False,
        on_warning: Callable[[str], None] | None = None,
        lock_wait: float = 10.0,
    ) -> None:
        self.seeds_dir = Path(seeds_dir)
        self.index_dir = Path(index_dir)
        self._model = model
        self.model_spec = _model_spec(model)
        self.settings = settings or IndexSettings()
        self.progress = progress
        self.on_warning = on_warning
        self.lock_wait = lock_wait
        self._embedder: Embedder | None = model if not isinstance(model, str | None) else None
        #: Texts embedded between two saves of the resume cache (16 batches of 64).
        self.embed_chunk = 1024

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self._model)
        return self._embedder

    # ------------------------------------------------------------------ api

    def update(self, full: bool = False) -> IndexReport:
        """Bring the index in line with the seeds; ``full`` rebuilds from scratch."""
        t0 = time.perf_counter()
        if not self.seeds_dir.is_dir():
            raise SeedsearchError(
                f"seeds folder {self.seeds_dir} does not exist or is not a folder: "
                "pass --seeds DIR with your articles (.txt, .md, .jsonl)"
            )
        if self.index_dir.exists() and not self.index_dir.is_dir():
            raise SeedsearchError(f"index path {self.index_dir} is a file, not a folder")
        check_folders(self.seeds_dir, self.index_dir)  # seeds inside the index: an error
        with store.writer_lock(self.index_dir, self.lock_wait):
            store.collect_garbage(self.index_dir)
            old = None if full else self._open_previous()
            return self._update(old, t0)

    # ------------------------------------------------------------ internals

    def _open_previous(self) -> tuple[Path, store.Manifest] | None:
        try:
            gen = store.current_generation(self.index_dir)
        except store.IndexMissingError:
            return None
        manifest = store.read_manifest(gen)
        if manifest.format_version != store.FORMAT_VERSION:
            raise IndexCorruptError(
                f"index at {self.index_dir} has format {manifest.format_version}, this "
                f"seedsearch writes format {store.FORMAT_VERSION}; {store.FIX}"
            )
        if manifest.embedder != self.model_spec:
            raise EmbedderMismatchError(
                f"index at {self.index_dir} was built with embedder {manifest.embedder!r}, "
                f"not {self.model_spec!r}; rebuild it with: seedsearch index --full "
                f"--model {self.model_spec}"
            )
        if manifest.analyzer != ANALYZER_VERSION or {
            **_SETTINGS_BEFORE,
            **manifest.settings,
        } != asdict(self.settings):
            raise IndexCorruptError(
                f"index at {self.index_dir} was built with another analyzer or settings "
                f"({manifest.analyzer}); {store.FIX}"
            )
        # An update builds on these files: damage must not be carried forward
        # (the vectors are checked when they are read).
        store.verify_checksums(gen, manifest.checksums, skip=(store.VECTORS,))
        return gen, manifest

    def _warn(self, message: str, sink: list[str]) -> None:
        sink.append(message)
        if self.on_warning:
            self.on_warning(message)

    def _update(self, old: tuple[Path, store.Manifest] | None, t0: float) -> IndexReport:
        warnings: list[str] = []
        articles: dict[str, Article] = {}
        files: dict[str, str] = {}
        article_file: dict[str, str] = {}
        for seed in scan_seeds(
            self.seeds_dir, lambda w: self._warn(w, warnings), exclude=(self.index_dir,)
        ):
            files[seed.path] = seed.file_hash
            for art in seed.articles:
                if art.doc in articles:
                    self._warn(f"{seed.path}: duplicate article {art.doc!r}, skipped", warnings)
                    continue
                articles[art.doc] = art
                article_file[art.doc] = seed.path

        old_gen, old_manifest = old if old else (None, None)
        old_articles = old_manifest.articles if old_manifest else {}
        added = sorted(d for d in articles if d not in old_articles)
        removed = sorted(d for d in old_articles if d not in articles)
        changed = sorted(
            d
            for d in articles
            if d in old_articles and old_articles[d]["hash"] != articles[d].content_hash
        )
        unchanged = len(articles) - len(added) - len(changed)

        if (
            old_manifest is not None
            and not (added or removed or changed)
            and old_manifest.files == files
        ):
            return IndexReport(
                documents=old_manifest.documents,
                passages=old_manifest.passages,
                added=[],
                changed=[],
                removed=[],
                unchanged=unchanged,
                embedded=0,
                seconds=round(time.perf_counter() - t0, 3),
                warnings=warnings,
            )

        redo = set(added) | set(changed)
        drop = set(removed) | set(changed)
        old_passages = store.read_passages(old_gen / store.PASSAGES) if old_gen else []
        kept = [p for p in old_passages if p.doc not in drop]
        new_passages = [
            p
            for d in sorted(redo)
            for p in split_passages(articles[d], self.settings.max_passage_words)
        ]

        cache = EmbedCache(
            self.index_dir, self.model_spec, old_manifest.dim if old_manifest else None
        )
        number = store.highest_generation(self.index_dir) + 1
        tmp = store.new_generation_dir(self.index_dir, number)
        try:
            stored, vectors_index, embedded, next_vid, dead = self._vectors(
                old_gen, old_manifest, old_passages, kept, new_passages, cache
            )
            stats = store.read_stats(old_gen) if old_gen else CollectionStats()
            dropped = [p for p in old_passages if p.doc in drop]
            stats.add_all((self.fields(p) for p in dropped), sign=-1)
            new_fields = [self.fields(p) for p in new_passages]
            stats.add_all(new_fields)
            store.write_stats(tmp / store.STATS, stats)
            self._keyword_index(old_gen, tmp, drop, new_passages, new_fields)
            store.write_vectors(vectors_index, tmp / store.VECTORS)
            order = {d: i for i, d in enumerate(sorted(articles))}
            all_passages = sorted(kept + stored, key=lambda p: (order[p.doc], p.paragraph, p.part))
            store.write_passages(tmp / store.PASSAGES, all_passages)
            if vectors_index.ntotal - dead != len(all_passages):
                raise IndexCorruptError(
                    f"internal error: {vectors_index.ntotal} vectors ({dead} dead) for "
                    f"{len(all_passages)} passages; {store.FIX}"
                )
            manifest = store.Manifest(
                format_version=store.FORMAT_VERSION,
                analyzer=ANALYZER_VERSION,
                embedder=self.model_spec,
                dim=int(vectors_index.d),
                settings=asdict(self.settings),
                built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                generation=number,
                documents=len(articles),
                passages=len(all_passages),
                next_vid=next_vid,
                files=files,
                articles={
                    d: {"hash": a.content_hash, "file": article_file[d], "title": a.title}
                    for d, a in sorted(articles.items())
                },
                checksums={
                    store.VECTORS: store.file_checksum(tmp / store.VECTORS),
                    store.PASSAGES: store.file_checksum(tmp / store.PASSAGES),
                    store.STATS: store.file_checksum(tmp / store.STATS),
                    **store.folder_checksums(tmp / store.WHOOSH, store.WHOOSH),
                },
                vector_index=store.describe_vector_index(vectors_index),
                dead_vectors=dead,
            )
            store.publish(self.index_dir, tmp, manifest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        cache.delete()  # published: finished embeddings are in the index now
        store.collect_garbage(self.index_dir)
        return IndexReport(
            documents=len(articles),
            passages=len(all_passages),
            added=added,
            changed=changed,
            removed=removed,
            unchanged=unchanged,
            embedded=embedded,
            seconds=round(time.perf_counter() - t0, 3),
            warnings=warnings,
        )

    def _vectors(self, old_gen, old_manifest, old_passages, kept, new_passages, cache):
        """The FAISS index of kept + new passages, the number of texts embedded, the
        next id, and the number of dead vectors left in the index.

        A new passage's vector comes from the previous generation (same embedded
        text), else from the resume cache of an interrupted run, else from the
        embedder (each distinct text once). A flat index is updated in place
        (remove + add). HNSW cannot remove ids: the vectors of dropped passages stay
        in the graph as dead ids (skipped by searches) until more than
        ``store.HNSW_MAX_DEAD_SHARE`` of it is dead; then, or on a change of
        structure, the index is rebuilt from the live vectors (decoded; an sq8
        quantizer is carried over, so codes do not drift).
        """
        old_index = None
        if old_gen is not None:
            old_index = store.read_vectors(
                old_gen / store.VECTORS, old_manifest.checksums.get(store.VECTORS)
            )
        next_vid = old_manifest.next_vid if old_manifest else 0
        by_hash = {p.th: p.vid for p in old_passages}
        texts = [embed_text(p, self.settings) for p in new_passages]
        hashes = [_text_hash(t) for t in texts]
        todo: dict[str, str] = {}  # hash -> text, distinct texts still to embed
        for t, h in zip(texts, hashes, strict=True):
            if h not in by_hash and h not in todo and cache.get(h) is None:
                todo[h] = t
        if todo:
            self._embed(list(todo.values()), list(todo), cache)
        if old_index is not None:
            dim = int(old_index.d)
        elif len(cache):
            dim = int(next(iter(cache.vectors.values())).shape[0])
        else:
            dim = self.embedder.dim
        new_rows = np.zeros((len(new_passages), dim), dtype=np.float32)
        reuse = [i for i, h in enumerate(hashes) if h in by_hash]
        if reuse:
            new_rows[reuse] = store.reconstruct(old_index, [by_hash[hashes[i]] for i in reuse])
        for i, h in enumerate(hashes):
            if h not in by_hash:
                new_rows[i] = cache.get(h)

        kind = store.vector_index_kind(
            self.settings.ann, len(kept) + len(new_passages), self.settings.ann_threshold
        )
        ids = np.arange(next_vid, next_vid + len(new_passages), dtype=np.int64)
        kept_ids = np.array([p.vid for p in kept], dtype=np.int64)
        dropped = np.array(
            sorted({p.vid for p in old_passages} - set(kept_ids.tolist())), dtype=np.int64
        )
        # HNSW in place: every old id that is not kept is dead afterwards
        dead = int(old_index.ntotal) - len(kept_ids) if old_index is not None else 0
        total = dead + len(kept_ids) + len(new_passages)
        in_place = (
            old_index is not None
            and old_index.is_trained
            and store.vector_index_layout(old_index) == (kind, self.settings.vectors)
            and (kind == "flat" or dead <= store.HNSW_MAX_DEAD_SHARE * total)
            and store.fits_quantizer(old_index, new_rows)
        )
        if in_place:
            index = old_index
            store.apply_hnsw_settings(index)  # an index from an older version: current values
            if kind == "flat" and len(dropped):
                index.remove_ids(dropped)
                dead = 0
            if len(new_passages):
                index.add_with_ids(new_rows, ids)
        else:
            dead = 0
            old_rows = (
                store.reconstruct(old_index, kept_ids.tolist())
                if old_index is not None
                else np.zeros((0, dim), dtype=np.float32)
            )
            index = store.build_vector_index(
                dim,
                kind,
                self.settings.vectors,
                np.vstack([old_rows, new_rows]),
                np.concatenate([kept_ids, ids]),
                like=old_index,
            )
        stored = [
            store.StoredPassage(p.id, p.doc, p.paragraph, p.part, p.text, p.title, vid, th)
            for p, vid, th in zip(new_passages, ids.tolist(), hashes, strict=True)
        ]
        return stored, index, len(todo), next_vid + len(new_passages), dead

    def _embed(self, texts: list[str], hashes: list[str], cache: EmbedCache) -> None:
        """Embed ``texts`` into ``cache``, ``embed_chunk`` texts at a time; each
        finished chunk is saved at once, so an interrupted run resumes after it."""
        embedder = self.embedder
        chunk = max(1, int(self.embed_chunk))

        def run(advance: Callable[[int], None] | None = None) -> None:
            for start in range(0, len(texts), chunk):
                part = texts[start : start + chunk]
                cache.put(hashes[start : start + chunk], embedder.embed_passages(part))
                if advance:
                    advance(len(part))

        if not (self.progress and sys.stderr.isatty()):
            run()
            return
        bar, task = progress_bar("embedding", len(texts))
        with bar:
            if not hasattr(embedder, "on_batch"):
                run(lambda n: bar.advance(task, n))
                return
            previous = embedder.on_batch
            embedder.on_batch = lambda n: bar.advance(task, n)
            try:
                run()
            finally:
                embedder.on_batch = previous

    def fields(self, p: Passage | store.StoredPassage) -> dict[str, list[str]]:
        """Analysed BM25 fields of a passage (the same analysis as at query time)."""
        title = analyze(p.title) if self.settings.title_field else []
        return {"body": analyze(p.text), "title": title}

    def _keyword_index(
        self,
        old_gen: Path | None,
        tmp: Path,
        drop: set[str],
        new_passages: list[Passage],
        new_fields: list[dict[str, list[str]]],
    ) -> None:
        """Whoosh: hard-link the old index, delete changed/removed articles, add new
        passages. Deleted documents may linger in segments until Whoosh merges them;
        scores do not depend on that (see indexer.bm25stats)."""
        path = tmp / store.WHOOSH
        if old_gen is not None:
            store.link_tree(old_gen / store.WHOOSH, path)
            ix = store.whoosh_open(path)
        else:
            ix = store.whoosh_create(path)
        writer = ix.writer(limitmb=256, procs=1, timeout=5.0)
        try:
            for doc in sorted(drop):
                writer.delete_by_term("doc", doc)
            for p, f in zip(new_passages, new_fields, strict=True):
                writer.add_document(
                    id=p.id, doc=p.doc, body=" ".join(f["body"]), title=" ".join(f["title"])
                )
            writer.commit()
        except BaseException:
            # A commit that failed half-way (disk full) has closed the writer already;
            # the original error is the one to report.
            with contextlib.suppress(Exception):
                writer.cancel()
            raise
        ix.close()
