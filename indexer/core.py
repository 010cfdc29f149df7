"""The ``Indexer``: seeds folder -> published index generation, incrementally."""

from __future__ import annotations

import contextlib
import hashlib
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
from indexer.embedder import DEFAULT_MODEL, Embedder, load_embedder
from indexer.errors import EmbedderMismatchError, IndexCorruptError, SeedsearchError
from indexer.seeds import MAX_PASSAGE_WORDS, Article, Passage, scan_seeds, split_passages


@dataclass(frozen=True)
class IndexSettings:
    """Choices that change what is indexed; recorded in the manifest.

    ``embed_title``: embed "title. passage" instead of the passage alone.
    ``title_field``: index the article title as a BM25 field of every passage.
    """

    max_passage_words: int = MAX_PASSAGE_WORDS
    embed_title: bool = False
    title_field: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_passage_words, int) or self.max_passage_words < 10:
            raise SeedsearchError(
                f"max_passage_words={self.max_passage_words!r} is too small: use 10 or more"
            )


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
        if manifest.analyzer != ANALYZER_VERSION or manifest.settings != asdict(self.settings):
            raise IndexCorruptError(
                f"index at {self.index_dir} was built with another analyzer or settings "
                f"({manifest.analyzer}); {store.FIX}"
            )
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
        for seed in scan_seeds(self.seeds_dir, lambda w: self._warn(w, warnings)):
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

        number = store.highest_generation(self.index_dir) + 1
        tmp = store.new_generation_dir(self.index_dir, number)
        try:
            stored, vectors_index, embedded, next_vid = self._vectors(
                old_gen, old_manifest, old_passages, kept, new_passages
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
            if vectors_index.ntotal != len(all_passages):
                raise IndexCorruptError(
                    f"internal error: {vectors_index.ntotal} vectors for {len(all_passages)} "
                    f"passages; {store.FIX}"
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
                },
            )
            store.publish(self.index_dir, tmp, manifest)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
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

    def _vectors(self, old_gen, old_manifest, old_passages, kept, new_passages):
        """Old FAISS index minus dropped passages plus new ones; reuses vectors of
        passages whose embedded text is unchanged (no re-embedding)."""
        old_index = None
        if old_gen is not None:
            old_index = store.read_vectors(
                old_gen / store.VECTORS, old_manifest.checksums.get(store.VECTORS)
            )
        next_vid = old_manifest.next_vid if old_manifest else 0
        by_hash = {p.th: p.vid for p in old_passages}
        texts = [embed_text(p, self.settings) for p in new_passages]
        hashes = [_text_hash(t) for t in texts]
        todo = [i for i, h in enumerate(hashes) if h not in by_hash]
        vectors = None
        if todo:
            vectors = self._embed([texts[i] for i in todo])
        dim = (
            vectors.shape[1]
            if vectors is not None
            else (old_index.d if old_index is not None else self.embedder.dim)
        )
        new_rows = np.zeros((len(new_passages), dim), dtype=np.float32)
        if vectors is not None:
            new_rows[todo] = vectors
        reuse = [i for i, h in enumerate(hashes) if h in by_hash]
        if reuse:
            new_rows[reuse] = store.reconstruct(old_index, [by_hash[hashes[i]] for i in reuse])

        index = store.new_vector_index(dim)
        if old_index is not None and kept:
            kept_ids = np.array([p.vid for p in kept], dtype=np.int64)
            index.add_with_ids(store.reconstruct(old_index, kept_ids.tolist()), kept_ids)
        stored = []
        ids = np.arange(next_vid, next_vid + len(new_passages), dtype=np.int64)
        if len(new_passages):
            index.add_with_ids(new_rows, ids)
        for p, vid, th in zip(new_passages, ids.tolist(), hashes, strict=True):
            stored.append(
                store.StoredPassage(p.id, p.doc, p.paragraph, p.part, p.text, p.title, vid, th)
            )
        return stored, index, len(todo), next_vid + len(new_passages)

    def _embed(self, texts: list[str]) -> np.ndarray:
        embedder = self.embedder
        show = self.progress and sys.stderr.isatty()
        if not show:
            return embedder.embed_passages(texts)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("embedding", total=len(texts))
            previous = getattr(embedder, "on_batch", None)
            with contextlib.suppress(AttributeError):
                embedder.on_batch = lambda n: bar.advance(task, n)
            try:
                return embedder.embed_passages(texts)
            finally:
                with contextlib.suppress(AttributeError):
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
            writer.cancel()
            raise
        ix.close()
