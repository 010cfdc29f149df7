"""The ``Indexer``: seeds folder -> published index generation, incrementally."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from indexer.analysis import ANALYZER_VERSION, analyze_words, term_count
from indexer.bm25stats import CollectionStats
from indexer.embedcache import EmbedCache
from indexer.embedder import Embedder, load_embedder
from indexer.errors import (
    EmbedderMismatchError,
    IndexCorruptError,
    IndexMissingError,
    SeedsearchError,
)
from indexer.seeds import Article, Passage, check_folders, scan_seeds, split_passages
from indexer.settings import IndexSettings, resolve_settings, setting_names
from indexer.store import (
    DOCS,
    FIX,
    FORMAT_VERSION,
    VECTORS,
    WHOOSH,
    generations,
    keyword,
    manifest,
    vectors,
)
from indexer.store.docstore import DocStore, DocStoreWriter, RemovedPassage, StoredPassage
from indexer.store.files import file_checksum, folder_checksums, verify_checksums
from indexer.store.lock import writer_lock
from indexer.store.words import WORDS, updated_stats, write_words


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


def text_hash(text: str) -> str:
    """The hash of an embedded text: equal hash, same vector (reused, resumed)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def embed_text(p: Passage | StoredPassage, settings: IndexSettings) -> str:
    return f"{p.title}. {p.text}" if settings.embed_title else p.text


def passage_fields(p: Passage | StoredPassage, settings: IndexSettings) -> dict[str, list[str]]:
    """Analysed BM25 fields of a passage (the same analysis as at query time)."""
    title = analyze_words(p.title) if settings.title_field else []
    return {"body": analyze_words(p.text), "title": title}


def settings_from_manifest(raw: Mapping) -> IndexSettings | None:
    """The settings recorded by a manifest of any format (format 1 kept the model in
    ``embedder``), or None when they cannot be read: a full rebuild keeps them."""
    data = raw.get("settings")
    if not isinstance(data, dict):
        return None
    data = {k: v for k, v in data.items() if k in setting_names()}
    if "model" not in data and isinstance(raw.get("embedder"), str):
        data["model"] = raw["embedder"]
    try:
        return IndexSettings(**data)
    except (SeedsearchError, TypeError):
        return None


@dataclass(frozen=True)
class _Previous:
    """The published generation an incremental update builds on."""

    gen: Path
    manifest: manifest.Manifest
    docs: DocStore


@dataclass(frozen=True)
class _Scan:
    """The articles of the seeds folder, as read now."""

    articles: dict[str, Article]
    article_file: dict[str, str]
    files: dict[str, str]


@dataclass(frozen=True)
class _Diff:
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int

    @property
    def redo(self) -> set[str]:
        return set(self.added) | set(self.changed)

    @property
    def drop(self) -> set[str]:
        return set(self.removed) | set(self.changed)


class Indexer:
    """Builds and updates the index in ``index_dir`` from the articles in ``seeds_dir``.

    Only changed articles are re-analysed; only passages whose text changed are
    re-embedded. Readers never see a half-built index (see ``indexer.store``).

    ``model``: an embedder spec or an object with ``spec``, ``dim``,
    ``embed_passages`` and ``embed_query``. ``settings``: a complete
    :class:`IndexSettings` (every value counts as asked for) or a mapping of only the
    settings to set, e.g. ``{"vectors": "float16"}``. What is not asked for is taken
    from the existing index (else the defaults); asking for a value the index was
    not built with needs ``update(full=True)`` (see :mod:`indexer.settings`).

    ``cluster``: build on Dask (see :mod:`indexer.cluster`): a scheduler address
    (``"tcp://host:8786"``), a ``distributed.Client``, or a number of local worker
    processes started for each update. ``model`` must then be a spec, which every
    worker loads for itself.
    """

    def __init__(
        self,
        seeds_dir: str | Path,
        index_dir: str | Path,
        model: str | Embedder | None = None,
        settings: IndexSettings | Mapping[str, object] | None = None,
        progress: bool = False,
        on_warning: Callable[[str], None] | None = None,
        lock_wait: float = 10.0,
        cluster: str | int | object | None = None,
    ) -> None:
        self.seeds_dir = Path(seeds_dir)
        self.index_dir = Path(index_dir)
        self._requested = self._requested_settings(model, settings)
        self.settings: IndexSettings | None = None  # resolved by each update
        self._previous_id = ""  # embedder_id of the generation an update builds on
        self.progress = progress
        self.on_warning = on_warning
        self.lock_wait = lock_wait
        self._embedder: Embedder | None = model if not isinstance(model, str | None) else None
        #: Texts embedded between two saves of the resume cache (16 batches of 64).
        self.embed_chunk = 1024
        self._cluster = None
        if cluster is not None:
            from indexer.cluster import check_target

            self._cluster = check_target(cluster, model)
        self._run = None  # the cluster side of the update in progress (ClusterBuild)

    @staticmethod
    def _requested_settings(model, settings) -> dict[str, object]:
        if isinstance(settings, IndexSettings):
            requested = settings.to_dict()
        elif settings is None:
            requested = {}
        elif isinstance(settings, Mapping):
            requested = dict(settings)
        else:
            raise SeedsearchError(
                f"settings must be IndexSettings or a mapping, got {type(settings).__name__}"
            )
        if model is not None:
            spec = model if isinstance(model, str) else getattr(model, "spec", None)
            if not isinstance(spec, str):
                raise SeedsearchError(
                    f"model must be a spec string or an Embedder, got {type(model).__name__}"
                )
            asked = requested.get("model")
            explicit = not isinstance(settings, IndexSettings) or asked != IndexSettings.model
            if asked is not None and explicit and asked != spec:
                raise SeedsearchError(f"model={spec!r} and settings model={asked!r} disagree")
            requested["model"] = spec
        return requested

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self._model_spec())
        return self._embedder

    def _model_spec(self) -> str:
        if self.settings is not None:
            return self.settings.model
        return str(self._requested.get("model") or IndexSettings.model)

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
        check_folders(self.seeds_dir, self.index_dir)
        with writer_lock(self.index_dir, self.lock_wait):
            generations.collect_garbage(self.index_dir)
            previous = self._previous(full)
            try:
                with self._on_cluster() as self._run:
                    return self._build(previous, t0)
            finally:
                self._run = None
                if previous is not None:
                    previous.docs.close()

    # ------------------------------------------------------------ the steps

    def _on_cluster(self):
        """A context giving the cluster side of one update, or None for a local build."""
        if self._cluster is None:
            return contextlib.nullcontext()
        from indexer.cluster import build_on

        return build_on(self._cluster, self.seeds_dir, self.settings)

    def _previous(self, full: bool) -> _Previous | None:
        """Resolve the settings (see :mod:`indexer.settings`) and open the generation
        to build on (None for a new index or a full rebuild)."""
        built: IndexSettings | None = None
        checked = None
        self._previous_id = ""
        try:
            gen = generations.current_generation(self.index_dir)
            checked = manifest.read_checked(gen, self.index_dir)
            built = IndexSettings.from_dict(checked.settings)
        except IndexMissingError:
            gen = None
        except manifest.IndexFormatError as exc:  # another version: --full keeps its settings
            if not full:
                raise
            built = settings_from_manifest(exc.raw)
        except IndexCorruptError:
            if not full:
                raise
        self.settings = resolve_settings(
            built, self._requested, full, self.index_dir, self.seeds_dir
        )
        if full or checked is None or gen is None:
            return None
        # An update builds on these files: damage must not be carried forward
        # (the vectors are checked when they are read).
        verify_checksums(gen, checked.checksums, skip=(VECTORS,))
        self._previous_id = checked.embedder_id
        return _Previous(gen, checked, DocStore(gen / DOCS))

    def _warn(self, message: str, sink: list[str]) -> None:
        sink.append(message)
        if self.on_warning:
            self.on_warning(message)

    def _scan(self, warnings: list[str]) -> _Scan:
        """Every article of the seeds folder. On a cluster the workers read and parse
        the files; articles then come without paragraphs (they stay on the workers)."""
        articles: dict[str, Article] = {}
        article_file: dict[str, str] = {}
        files: dict[str, str] = {}
        warn = functools.partial(self._warn, sink=warnings)
        exclude = (self.index_dir,)
        seeds = (
            self._run.scan(warn, exclude)
            if self._run
            else scan_seeds(self.seeds_dir, warn, exclude=exclude)
        )
        for seed in seeds:
            files[seed.path] = seed.file_hash
            for art in seed.articles:
                if art.doc in articles:
                    self._warn(f"{seed.path}: duplicate article {art.doc!r}, skipped", warnings)
                    continue
                articles[art.doc] = art
                article_file[art.doc] = seed.path
        return _Scan(articles, article_file, files)

    @staticmethod
    def _diff(previous: _Previous | None, scan: _Scan) -> _Diff:
        old = previous.docs.article_hashes() if previous else {}
        now = scan.articles
        added = sorted(d for d in now if d not in old)
        removed = sorted(d for d in old if d not in now)
        changed = sorted(d for d in now if d in old and old[d] != now[d].content_hash)
        return _Diff(added, changed, removed, len(now) - len(added) - len(changed))

    def _build(self, previous: _Previous | None, t0: float) -> IndexReport:
        warnings: list[str] = []
        scan = self._scan(warnings)
        diff = self._diff(previous, scan)

        def report(documents: int, passages: int, embedded: int) -> IndexReport:
            return IndexReport(
                documents=documents,
                passages=passages,
                added=diff.added,
                changed=diff.changed,
                removed=diff.removed,
                unchanged=diff.unchanged,
                embedded=embedded,
                seconds=round(time.perf_counter() - t0, 3),
                warnings=warnings,
            )

        if (
            previous is not None
            and not (diff.added or diff.removed or diff.changed)
            and previous.docs.files() == scan.files
        ):
            return report(previous.manifest.documents, previous.manifest.passages, 0)

        settings = self.settings
        new_passages, terms = self._passages(previous, scan, diff)
        old_dim = previous.manifest.dim if previous else None
        cache = EmbedCache(self.index_dir, settings.model, old_dim)
        number = generations.highest_generation(self.index_dir) + 1
        tmp = generations.new_generation_dir(self.index_dir, number)
        try:
            removed = previous.docs.removed(diff.drop) if previous else []
            stored, index, embedded, next_vid, dead = self._vectors(
                previous, removed, new_passages, cache
            )
            stats = self._bm25_totals(previous, removed, terms)
            self._keyword(previous, tmp, diff, stored, terms)
            vectors.write_vectors(index, tmp / VECTORS)
            documents, passages = self._write_docs(previous, tmp, scan, diff, stored, terms)
            # typo tolerance: the vocabulary with document frequencies (search.typos)
            old_gen, old_docs = (previous.gen, previous.docs) if previous else (None, None)
            words = updated_stats(
                old_gen, old_docs, (r.vid for r in removed), stored, settings.title_field
            )
            write_words(tmp / WORDS, words)
            if index.ntotal - dead != passages or stats.docs != passages:
                raise IndexCorruptError(
                    f"internal error: {index.ntotal} vectors ({dead} dead) and BM25 "
                    f"statistics of {stats.docs} for {passages} passages; {FIX}"
                )
            built = self._manifest(
                previous,
                tmp,
                number,
                index,
                stats,
                embedded,
                dead,
                counts=(documents, passages, next_vid),
            )
            generations.publish(self.index_dir, tmp, number, built.to_json())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        cache.delete()  # published: finished embeddings are in the index now
        generations.collect_garbage(self.index_dir)
        return report(documents, passages, embedded)

    def _keyword(self, previous, tmp, diff, stored, terms) -> None:
        """The new generation's keyword index. On a cluster the workers may have written
        the new passages' segments: the coordinator then adopts them."""
        segments = self._run.segments([p.vid for p in stored]) if self._run else None
        rows = ((p.vid, p.doc, t["body"], t["title"]) for p, t in zip(stored, terms, strict=True))
        keyword.update(
            previous.gen / WHOOSH if previous else None,
            tmp / WHOOSH,
            diff.drop,
            rows if segments is None else (),
            segments=segments or (),
        )

    def _passages(
        self, previous: _Previous | None, scan: _Scan, diff: _Diff
    ) -> tuple[list[Passage], list[dict]]:
        """The passages of added and changed articles in article order, with their BM25
        fields (split and analysed on the workers of a cluster build, which also write
        their keyword segments with the vector ids that ``_vectors`` gives them)."""
        redo = sorted(diff.redo)
        if self._run is not None:
            return self._run.passages(
                [(d, scan.article_file[d], scan.articles[d].content_hash) for d in redo],
                first_vid=previous.manifest.next_vid if previous else 0,
            )
        limit = self.settings.max_passage_words
        passages = [p for d in redo for p in split_passages(scan.articles[d], limit)]
        return passages, [self.fields(p) for p in passages]

    def _manifest(
        self, previous, tmp, number, index, stats, embedded, dead, counts
    ) -> manifest.Manifest:
        """The manifest of the generation built in ``tmp`` (checksums of its files);
        ``counts``: (articles, passages, next vector id)."""
        documents, passages, next_vid = counts
        return manifest.Manifest(
            format_version=FORMAT_VERSION,
            analyzer=ANALYZER_VERSION,
            settings=self.settings.to_dict(),
            embedder_id=self._embedder_id(previous, embedded),
            dim=int(index.d),
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            generation=number,
            documents=documents,
            passages=passages,
            next_vid=next_vid,
            vector_index=vectors.describe_vector_index(index),
            dead_vectors=dead,
            bm25=stats.to_json(),
            checksums={
                VECTORS: file_checksum(tmp / VECTORS),
                DOCS: file_checksum(tmp / DOCS),
                WORDS: file_checksum(tmp / WORDS),
                **folder_checksums(tmp / WHOOSH, WHOOSH),
            },
        )

    def _embedder_id(self, previous: _Previous | None, embedded: int) -> str:
        """What identifies the exact weights of the embedder, if it says (e.g. a
        checksum of its graph). Without new embeddings the previous id stays true."""
        if embedded == 0 and self._embedder is None and previous is not None:
            return previous.manifest.embedder_id
        if self._run is not None:
            return self._run.model_info()[1]
        return str(getattr(self.embedder, "model_id", "") or "")

    @staticmethod
    def _bm25_totals(
        previous: _Previous | None,
        removed: list[RemovedPassage],
        terms: list[dict[str, list[str]]],
    ) -> CollectionStats:
        stats = CollectionStats.from_json(previous.manifest.bm25) if previous else CollectionStats()
        stats.add_lengths(({"body": r.body_len, "title": r.title_len} for r in removed), -1)
        stats.add_lengths({name: term_count(t) for name, t in f.items()} for f in terms)
        return stats

    def _write_docs(
        self,
        previous: _Previous | None,
        tmp: Path,
        scan: _Scan,
        diff: _Diff,
        stored: list[StoredPassage],
        terms: list[dict[str, list[str]]],
    ) -> tuple[int, int]:
        """The new generation's document store; returns (articles, passages) in it."""
        writer = DocStoreWriter(tmp / DOCS, base=previous.gen / DOCS if previous else None)
        try:
            writer.remove_articles(sorted(diff.drop))
            for doc in sorted(diff.redo):
                writer.add_article(scan.articles[doc], scan.article_file[doc])
            writer.add_passages(
                (p, term_count(t["body"]), term_count(t["title"]))
                for p, t in zip(stored, terms, strict=True)
            )
            writer.set_files(scan.files)
            counts = writer.counts()
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return counts

    def _vectors(
        self,
        previous: _Previous | None,
        removed: list[RemovedPassage],
        new_passages: list[Passage],
        cache: EmbedCache,
    ):
        """The FAISS index of kept + new passages, the new passages as stored, the
        number of texts embedded, the next id, and the number of dead vectors."""
        old_index = None
        if previous is not None:
            old_index = vectors.read_vectors(
                previous.gen / VECTORS, previous.manifest.checksums.get(VECTORS)
            )
        texts = [embed_text(p, self.settings) for p in new_passages]
        hashes = [text_hash(t) for t in texts]
        reuse = previous.docs.vids_by_text_hash(hashes) if previous else {}
        embedded = self._embed_missing(texts, hashes, reuse, cache)
        dim = self._dim(old_index, cache)
        new_rows = np.zeros((len(new_passages), dim), dtype=np.float32)
        again = [i for i, h in enumerate(hashes) if h in reuse]
        if again:
            new_rows[again] = vectors.reconstruct(old_index, [reuse[hashes[i]] for i in again])
        for i, h in enumerate(hashes):
            if h not in reuse:
                new_rows[i] = cache.get(h)

        next_vid = previous.manifest.next_vid if previous else 0
        ids = np.arange(next_vid, next_vid + len(new_passages), dtype=np.int64)
        old_vids = previous.docs.vids() if previous else np.zeros(0, np.int64)
        dropped = np.array(sorted(r.vid for r in removed), dtype=np.int64)
        kept_ids = np.setdiff1d(old_vids, dropped)
        index, dead = self._vector_index(old_index, kept_ids, dropped, new_rows, ids, dim)
        stored = [
            StoredPassage(p.id, p.doc, p.paragraph, p.part, p.text, p.title, vid, th)
            for p, vid, th in zip(new_passages, ids.tolist(), hashes, strict=True)
        ]
        return stored, index, embedded, next_vid + len(new_passages), dead

    def _embed_missing(
        self, texts: list[str], hashes: list[str], reuse: Mapping[str, int], cache: EmbedCache
    ) -> int:
        """Embed each distinct text that is neither in the previous generation nor in
        the resume cache; returns how many were embedded."""
        todo: dict[str, str] = {}  # hash -> text
        for t, h in zip(texts, hashes, strict=True):
            if h not in reuse and h not in todo and cache.get(h) is None:
                todo[h] = t
        if todo:
            self._check_embedder_id()
            self._embed(list(todo.values()), list(todo), cache)
        return len(todo)

    def _check_embedder_id(self) -> None:
        """New vectors must come from the exact graph the old ones came from (an
        upgrade may change it): else EmbedderMismatchError, rebuild with --full."""
        built = self._previous_id
        now = str(getattr(self.embedder, "model_id", "") or "")
        if built and now and built != now:
            raise EmbedderMismatchError(
                f"index at {self.index_dir} was embedded with {self.settings.model} {built}, "
                f"this seedsearch's {self.settings.model} is {now} (vectors would not be "
                f"comparable); {FIX}"
            )

    def _dim(self, old_index, cache: EmbedCache) -> int:
        if old_index is not None:
            return int(old_index.d)
        if len(cache):
            return int(next(iter(cache.vectors.values())).shape[0])
        if self._run is not None:
            return self._run.model_info()[0]
        return self.embedder.dim

    def _vector_index(self, old_index, kept_ids, dropped, new_rows, ids, dim):
        """Update the old index in place, or build a new one from kept + new vectors.

        A flat index is updated in place (remove + add). HNSW cannot remove ids: the
        vectors of dropped passages stay in the graph as dead ids (skipped by
        searches) until more than ``vectors.HNSW_MAX_DEAD_SHARE`` of it is dead; then,
        or on a change of structure, the index is rebuilt from the live vectors
        (decoded; an sq8 quantizer is carried over, so codes do not drift).
        Returns (index, dead vectors in it).
        """
        settings = self.settings
        kind = vectors.vector_index_kind(
            settings.ann, len(kept_ids) + len(ids), settings.ann_threshold
        )
        dead = int(old_index.ntotal) - len(kept_ids) if old_index is not None else 0
        total = dead + len(kept_ids) + len(ids)
        in_place = (
            old_index is not None
            and old_index.is_trained
            and vectors.vector_index_layout(old_index) == (kind, settings.vectors)
            and (kind == "flat" or dead <= vectors.HNSW_MAX_DEAD_SHARE * total)
            and vectors.fits_quantizer(old_index, new_rows)
        )
        if in_place:
            vectors.apply_hnsw_settings(old_index)  # an index from an older version
            if kind == "flat" and len(dropped):
                old_index.remove_ids(dropped)
                dead = 0
            if len(ids):
                old_index.add_with_ids(new_rows, ids)
            return old_index, dead
        old_rows = (
            vectors.reconstruct(old_index, kept_ids.tolist())
            if old_index is not None
            else np.zeros((0, dim), dtype=np.float32)
        )
        index = vectors.build_vector_index(
            dim,
            kind,
            settings.vectors,
            np.vstack([old_rows, new_rows]),
            np.concatenate([kept_ids, ids]),
            like=old_index,
        )
        return index, 0

    def _embed(self, texts: list[str], hashes: list[str], cache: EmbedCache) -> None:
        """Embed ``texts`` into ``cache``, ``embed_chunk`` texts at a time; each
        finished chunk is saved at once, so an interrupted run resumes after it. On a
        cluster the workers embed (they hold the texts) and the chunks are saved here."""
        chunk = max(1, int(self.embed_chunk))
        if self._run is not None:
            self._embed_on_cluster(hashes, cache, chunk)
            return
        embedder = self.embedder

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

    def _embed_on_cluster(self, hashes: list[str], cache: EmbedCache, chunk: int) -> None:
        if not (self.progress and sys.stderr.isatty()):
            self._run.embed(hashes, cache, chunk)
            return
        bar, task = progress_bar("embedding on the cluster", len(hashes))
        with bar:
            self._run.embed(hashes, cache, chunk, lambda n: bar.advance(task, n))

    def fields(self, p: Passage | StoredPassage) -> dict[str, list[str]]:
        """Analysed BM25 fields of a passage (the same analysis as at query time)."""
        return passage_fields(p, self.settings or IndexSettings())
