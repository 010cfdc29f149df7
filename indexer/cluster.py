"""Building an index on a Dask cluster: ``Indexer(..., cluster=...)``, ``--cluster``/``--workers``.

What runs where:

* on the workers, in batches of seed files: reading and parsing the files, passage
  splitting, German analysis (the BM25 field terms), and the embedding of new or
  changed passages;
* on the coordinator (the process that calls ``update``): the writer lock, the diff
  against the published generation, the resume cache, the keyword index, the FAISS
  index, the document store, and the atomic publish (see :mod:`indexer.core`).

What travels: a read task gets the seeds folder's path and a batch of file names
(workers read the files themselves, so they must see the seeds folder at the same
path as the coordinator, e.g. on shared storage) and sends back only article
headers (ids, content hashes, titles, metadata) for the diff; the parsed files stay
on the workers as Dask futures. The added and changed articles' passages and terms
come back once. An embedding task gets the hashes of the texts to embed, not the
texts (the worker holds them already), and sends back their vectors.

Models: the embedder's spec travels, never the model. Each worker process loads the
model on its first embedding batch and keeps it for every later batch and build
(:func:`worker_model`), with as many compute threads as the worker has Dask
threads. A spec works on a worker if it is ``use-m3``, a sentence-transformers name
or folder the worker can load, or ``package.module:factory`` for your own embedder
(importable on the workers; see :mod:`indexer.embedder`).

Faults: Dask reruns the batch of a worker that dies, and recomputes parsed files
that died with it. Every finished embedding batch is saved in the resume cache as
it arrives, so a build that fails anyway (a batch whose workers died
``distributed.scheduler.allowed-failures`` times, a lost scheduler, Ctrl-C) leaves
the published index as it was, and a rerun embeds only what is still missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from indexer.embedcache import EmbedCache
from indexer.embedder import Embedder, load_embedder
from indexer.errors import IndexCorruptError, SeedsearchError
from indexer.seeds import Passage, SeedFile, list_seed_files, read_seed_file, split_passages
from indexer.settings import IndexSettings

#: Seconds to wait for a scheduler (and for its first worker) before giving up.
CONNECT_TIMEOUT = 5.0
#: Seed files per read task; an embedding task takes at most ``Indexer.embed_chunk``
#: texts of one such batch.
BATCH_FILES = 64
#: Keyword index segments written by the workers: none below SEGMENT_MIN new
#: passages (the coordinator writes them, as a local build does); else one per
#: worker, each of at least SEGMENT_MIN and at most SEGMENT_MAX passages (the most
#: whose postings a worker sorts in memory: keyword.SEGMENT_POOL_MB). The coordinator
#: adopts the segments without rewriting their postings.
SEGMENT_MIN = 5_000
SEGMENT_MAX = 50_000
INSTALL_HINT = "pip install 'seedsearch[cluster]'"


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise SeedsearchError(
            f"a cluster build needs Dask distributed, which is not installed: {INSTALL_HINT}"
        ) from exc
    return distributed


def _is_client(obj: object) -> bool:
    distributed = sys.modules.get("distributed")  # a Client exists only once it is imported
    return distributed is not None and isinstance(obj, distributed.Client)


def check_target(target: object, model: object = None) -> str | int | object:
    """Validate ``Indexer(cluster=...)`` without starting anything: an address, a
    number of local workers (>= 1), or a ``distributed.Client``. The workers load the
    model from its spec, so ``model`` must not be an object."""
    if isinstance(target, bool) or not (isinstance(target, int | str) or _is_client(target)):
        raise SeedsearchError(
            f"cluster={target!r}: give a Dask scheduler address ('tcp://host:8786'), a "
            "number of local worker processes, or a distributed.Client"
        )
    if isinstance(target, int) and target < 1:
        raise SeedsearchError(f"cluster={target}: start 1 or more local workers")
    if isinstance(target, str):
        target = target.strip()
        if not target:
            raise SeedsearchError("cluster='': give a Dask scheduler address ('tcp://host:8786')")
    if model is not None and not isinstance(model, str):
        raise SeedsearchError(
            "a cluster build loads the model on every worker from its spec: give model as a "
            "spec ('use-m3', a sentence-transformers name, or 'package.module:factory' for "
            f"your own embedder), not as a {type(model).__name__} object"
        )
    return target


@contextlib.contextmanager
def connect(target: str | int | object) -> Iterator[object]:
    """A ``distributed.Client`` for one build. A number starts a local cluster of that
    many worker processes (one thread each, bound to 127.0.0.1) and stops it after;
    an address connects (``CONNECT_TIMEOUT``); a given Client is used and left open."""
    distributed = _distributed()
    if _is_client(target):
        yield target
        return
    if isinstance(target, int):
        try:
            local = distributed.LocalCluster(
                n_workers=target,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # no fixed port; bokeh serves it if installed
                silence_logs=logging.ERROR,
            )
        except Exception as exc:  # distributed raises many types while starting
            raise SeedsearchError(f"cannot start {target} local Dask workers: {exc}") from exc
        client = distributed.Client(local)
        try:
            yield client
        finally:
            client.close()
            local.close()
        return
    try:
        client = distributed.Client(target, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SeedsearchError(
            f"cannot reach the Dask scheduler at {target} ({reason}): start one (`dask "
            "scheduler`) and check the address, or use --workers N for local workers"
        ) from exc
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except Exception as exc:
            raise SeedsearchError(
                f"the Dask scheduler at {target} has no workers after {CONNECT_TIMEOUT:g} s: "
                f"start some (`dask worker {target}`)"
            ) from exc
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def build_on(target: str | int | object, seeds_dir: Path, settings: IndexSettings):
    """The cluster side of one update (a :class:`ClusterBuild`), connected for its
    duration; its futures are released at the end."""
    with connect(target) as client:
        build = ClusterBuild(client, seeds_dir, settings)
        try:
            yield build
        finally:
            build.close()


# ----------------------------------------------------------- on the workers


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the code and data that decide what a worker computes: a worker with
    other seedsearch code would build another index, so a task refuses to run there."""
    digest = hashlib.sha256()
    package = resources.files("indexer")
    for name in (
        "seeds.py",
        "analysis.py",
        "core.py",
        "cluster.py",
        "embedder.py",
        "data/lexicon.txt",
        "data/lexicon_stems.txt",
    ):
        digest.update(package.joinpath(name).read_bytes())
    return digest.hexdigest()[:16]


def _check_code(fingerprint: str) -> None:
    if fingerprint != code_fingerprint():
        raise SeedsearchError(
            f"the Dask worker on {socket.gethostname()} runs other seedsearch code than the "
            f"coordinator ({code_fingerprint()} != {fingerprint}): install the same "
            "seedsearch on every worker"
        )


def read_files(seeds_dir: str, rels: Sequence[str], fingerprint: str) -> list[SeedFile]:
    """Worker task: read and parse a batch of seed files."""
    _check_code(fingerprint)
    root = Path(seeds_dir)
    if not root.is_dir():
        raise SeedsearchError(
            f"the Dask worker on {socket.gethostname()} cannot see the seeds folder "
            f"{seeds_dir}: every worker must see it at the same path (shared storage)"
        )
    return [read_seed_file(root, rel) for rel in rels]


def headers(seeds: Sequence[SeedFile]) -> list[SeedFile]:
    """Worker task: the seed files without the articles' paragraphs (for the diff)."""
    return [
        replace(s, articles=tuple(replace(a, paragraphs=()) for a in s.articles)) for s in seeds
    ]


@dataclass(frozen=True)
class Prepared:
    """Passages of a batch's added and changed articles in the order asked for, with
    their BM25 field terms and the hashes of their embedded texts."""

    passages: list[Passage]
    terms: list[dict[str, list[str]]]
    hashes: list[str]


def prepare(
    seeds: Sequence[SeedFile], docs: Sequence[tuple[str, str, str]], settings: IndexSettings
) -> Prepared:
    """Worker task: split and analyse the articles ``docs`` ((doc, file, content hash))."""
    from indexer.core import embed_text, passage_fields, text_hash

    articles = {(s.path, a.doc): a for s in seeds for a in s.articles}
    passages: list[Passage] = []
    for doc, file, content_hash in docs:
        article = articles.get((file, doc))
        if article is None or article.content_hash != content_hash:
            # Only when a lost batch was read again after its file changed.
            raise SeedsearchError(f"{file} changed during the build: run the update again")
        passages += split_passages(article, settings.max_passage_words)
    return Prepared(
        passages,
        [passage_fields(p, settings) for p in passages],
        [text_hash(embed_text(p, settings)) for p in passages],
    )


@dataclass(frozen=True)
class Embedded:
    """Vectors of one embedding task, and what the worker's model says of itself."""

    hashes: list[str]
    vectors: np.ndarray
    dim: int
    model_id: str


_MODELS: dict[str, tuple[Embedder, threading.Lock]] = {}
_MODELS_LOCK = threading.Lock()


def _worker_threads() -> int | None:
    """The Dask threads of this worker (None outside a worker)."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


def worker_model(spec: str) -> tuple[Embedder, threading.Lock]:
    """The embedder of ``spec`` in this process, loaded once and kept, and the lock
    that lets one batch at a time use it (the model's own threads do the rest)."""
    with _MODELS_LOCK:
        if spec not in _MODELS:
            _MODELS[spec] = (load_embedder(spec, threads=_worker_threads()), threading.Lock())
        return _MODELS[spec]


def _describe(model: Embedder, hashes: list[str], vectors: np.ndarray) -> Embedded:
    return Embedded(hashes, vectors, int(model.dim), str(getattr(model, "model_id", "") or ""))


def embed(prepared: Prepared, hashes: Sequence[str], settings: IndexSettings) -> Embedded:
    """Worker task: embed the passages of ``prepared`` whose text hashes are asked for."""
    from indexer.core import embed_text

    wanted = set(hashes)
    texts: dict[str, str] = {}
    for p, h in zip(prepared.passages, prepared.hashes, strict=True):
        if h in wanted and h not in texts:
            texts[h] = embed_text(p, settings)
    if len(texts) != len(wanted):
        raise SeedsearchError("internal error: a batch lacks texts it was asked to embed")
    model, lock = worker_model(settings.model)
    order = list(hashes)
    with lock:
        vectors = np.asarray(model.embed_passages([texts[h] for h in order]), dtype=np.float32)
    return _describe(model, order, vectors)


def write_segment(prepared: Sequence[Prepared], vids: Sequence[Sequence[int]]):
    """Worker task: the keyword index segment of some batches' passages."""
    from indexer.store import keyword

    return keyword.write_segment(
        (vid, p.doc, terms["body"], terms["title"])
        for prep, ids in zip(prepared, vids, strict=True)
        for p, terms, vid in zip(prep.passages, prep.terms, ids, strict=True)
    )


def segment_groups(sizes: Sequence[int], workers: int) -> list[list[int]]:
    """Consecutive batches (by index) per worker-written segment, for batches of
    ``sizes`` passages: see SEGMENT_MIN and SEGMENT_MAX. Empty: none."""
    total = sum(sizes)
    if total < SEGMENT_MIN:
        return []
    count = max(math.ceil(total / SEGMENT_MAX), min(max(1, workers), total // SEGMENT_MIN))
    target = total / count
    groups: list[list[int]] = [[]]
    held = 0
    for i, size in enumerate(sizes):
        if held >= target * len(groups) and len(groups) < count:
            groups.append([])
        groups[-1].append(i)
        held += size
    return [g for g in groups if g]


def model_info(spec: str) -> Embedded:
    """Worker task: the model's dimension and id, without embedding anything."""
    model, _ = worker_model(spec)
    return _describe(model, [], np.zeros((0, int(model.dim)), dtype=np.float32))


# ------------------------------------------------------- on the coordinator


class ClusterBuild:
    """The cluster side of one update: the steps ``Indexer`` hands to the workers.

    Futures of parsed files and prepared passages stay on the workers between the
    steps, so each step sends only what the next one needs.
    """

    def __init__(self, client, seeds_dir: Path, settings: IndexSettings) -> None:
        self.client = client
        self.root = str(Path(seeds_dir).resolve())
        self.settings = settings
        self.batch_files = BATCH_FILES
        self._fingerprint = code_fingerprint()
        self._files: list = []  # futures: parsed seed files per batch
        self._batch_of_file: dict[str, int] = {}
        self._prepared: list = []  # futures: Prepared per batch with changes
        self._where: dict[str, int] = {}  # text hash -> index in _prepared
        self._model: tuple[int, str] | None = None
        self._segments: list = []  # futures: keyword index segments
        self._vids = range(0)  # the vector ids the segments were written with

    def close(self) -> None:
        """Drop this build's results from the workers (and cancel unfinished tasks)."""
        futures = self._files + self._prepared + self._segments
        self._files, self._prepared, self._segments = [], [], []
        with contextlib.suppress(Exception):  # a lost scheduler has dropped them already
            self.client.cancel(futures)

    def _submit(self, fn: Callable, *args, priority: int = 0):
        return self.client.submit(fn, *args, pure=False, priority=priority)

    def _gather(self, futures: list) -> list:
        with _cluster_errors():
            return self.client.gather(futures)

    def scan(
        self, warn: Callable[[str], None], exclude: Sequence[str | Path] = ()
    ) -> Iterator[SeedFile]:
        """Every seed file, parsed on the workers, in path order (articles without
        their paragraphs); warnings go to ``warn`` and ``exclude`` (the index folder) is
        left out, as in :func:`indexer.seeds.scan_seeds`."""
        rels = list_seed_files(Path(self.root), warn, exclude=exclude)
        batches = [rels[i : i + self.batch_files] for i in range(0, len(rels), self.batch_files)]
        self._files = [self._submit(read_files, self.root, b, self._fingerprint) for b in batches]
        self._batch_of_file = {rel: i for i, b in enumerate(batches) for rel in b}
        for seeds in self._gather([self._submit(headers, f) for f in self._files]):
            for seed in seeds:
                for w in seed.warnings:
                    warn(w)
                yield seed

    def passages(
        self, redo: Sequence[tuple[str, str, str]], first_vid: int
    ) -> tuple[list[Passage], list[dict[str, list[str]]]]:
        """Passages and field terms of the articles ``redo`` ((doc, file, content
        hash), in article order), split and analysed on the workers. Workers then
        start writing keyword segments, with vector ids from ``first_vid`` on in
        this order (see :meth:`segments`)."""
        asked: dict[int, list[tuple[str, str, str]]] = {}
        for item in redo:
            asked.setdefault(self._batch_of_file[item[1]], []).append(item)
        batches = sorted(asked)
        self._prepared = [
            self._submit(prepare, self._files[i], asked[i], self.settings) for i in batches
        ]
        self._files = []  # Dask keeps what it needs to recompute a lost batch
        by_doc: dict[str, tuple[list[Passage], list[dict]]] = {}
        prepared = self._gather(self._prepared)
        for n, prep in enumerate(prepared):
            for p, terms, h in zip(prep.passages, prep.terms, prep.hashes, strict=True):
                got = by_doc.setdefault(p.doc, ([], []))
                got[0].append(p)
                got[1].append(terms)
                self._where.setdefault(h, n)
        passages: list[Passage] = []
        fields: list[dict[str, list[str]]] = []
        for doc, _, _ in redo:
            ps, ts = by_doc.get(doc, ([], []))
            passages += ps
            fields += ts
        self._write_segments(prepared, passages, first_vid)
        return passages, fields

    def _write_segments(
        self, prepared: list[Prepared], passages: list[Passage], first_vid: int
    ) -> None:
        self._vids = range(first_vid, first_vid + len(passages))
        vid_of = {p.id: vid for p, vid in zip(passages, self._vids, strict=True)}
        workers = len(self.client.scheduler_info().get("workers", {}))
        for group in segment_groups([len(prep.passages) for prep in prepared], workers):
            vids = [[vid_of[p.id] for p in prepared[i].passages] for i in group]
            self._segments.append(  # after the embedding: its results are kept on failure
                self._submit(write_segment, [self._prepared[i] for i in group], vids, priority=-1)
            )

    def segments(self, vids: Sequence[int]) -> Iterator | None:
        """The workers' keyword segments one by one, or None when the coordinator is
        to write the keyword rows itself. ``vids``: the new passages' vector ids as
        the coordinator assigned them (they must be the ones the segments hold)."""
        if not self._segments:
            return None
        if list(vids) != list(self._vids):
            raise IndexCorruptError(
                "internal error: keyword segments were written with other vector ids"
            )
        return self._each_segment()

    def _each_segment(self) -> Iterator:
        while self._segments:
            future = self._segments.pop(0)
            (segment,) = self._gather([future])
            future.release()
            yield segment

    def embed(
        self,
        hashes: Sequence[str],
        cache: EmbedCache,
        chunk: int,
        advance: Callable[[int], None] | None = None,
    ) -> None:
        """Embed the texts of ``hashes`` on the workers, at most ``chunk`` per task,
        into ``cache``: saved every ``chunk`` texts as tasks finish, and whatever has
        finished when the build fails."""
        distributed = _distributed()
        asked: dict[int, list[str]] = {}
        for h in hashes:
            asked.setdefault(self._where[h], []).append(h)
        futures = [
            self._submit(embed, self._prepared[n], part[i : i + chunk], self.settings)
            for n, part in sorted(asked.items())
            for i in range(0, len(part), chunk)
        ]
        done_h: list[str] = []
        done_v: list[np.ndarray] = []
        pending = len(futures)

        def save() -> None:
            if done_h:
                cache.put(done_h, np.vstack(done_v))
                done_h.clear()
                done_v.clear()

        try:
            for future in distributed.as_completed(futures):
                with _cluster_errors():
                    result: Embedded = future.result()
                future.release()
                pending -= 1
                self._model = (result.dim, result.model_id)
                done_h.extend(result.hashes)
                done_v.append(result.vectors)
                if len(done_h) >= chunk or pending == 0:
                    save()
                if advance:
                    advance(len(result.hashes))
        finally:
            save()
            with contextlib.suppress(Exception):
                self.client.cancel(futures)

    def model_info(self) -> tuple[int, str]:
        """(dimension, model id) of the workers' model: as seen by the last
        embedding task, else asked of a worker (which loads the model)."""
        if self._model is None:
            (info,) = self._gather([self._submit(model_info, self.settings.model)])
            self._model = (info.dim, info.model_id)
        return self._model


@contextlib.contextmanager
def _cluster_errors() -> Iterator[None]:
    """Cluster failures as one line that says what happened to the index."""
    distributed = _distributed()
    kept = (
        "the published index is unchanged and finished embedding batches are kept: run "
        "the update again"
    )
    try:
        yield
    except distributed.KilledWorker as exc:
        raise SeedsearchError(
            f"a batch failed because the Dask workers running it died ({exc}); {kept}"
        ) from exc
    except (distributed.CancelledError, distributed.comm.CommClosedError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SeedsearchError(f"lost the Dask cluster during the build ({reason}); {kept}") from exc
