"""The FAISS vector index: construction, layouts (flat/HNSW, float32/float16/sq8),
reading and writing, and search parameters.

Vectors live under stable ids in an ``IndexIDMap2`` (the passage's ``vid`` in the
document store), so ids survive updates; FAISS's ``-1`` padding is dropped by the
search engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.errors import IndexCorruptError
from indexer.store.files import verify_checksums
from indexer.store.layout import FIX

#: ``IndexSettings.ann``: auto = flat below ``ann_threshold`` passages, HNSW above.
ANN_CHOICES = ("auto", "flat", "hnsw")
#: ``IndexSettings.vectors``: how each vector is stored (4, 2 or 1 byte per dimension).
VECTOR_TYPES = ("float32", "float16", "sq8")
ANN_THRESHOLD = 100_000
#: HNSW graph degree and build/search breadth. Measured on 24k USE vectors of
#: gnad-test replicated 10x (every text 10 times: zero-distance copies crowd the
#: neighbour lists, the hard case for a graph): efConstruction 80 / efSearch 128
#: gave recall@10 0.86 against exact search; efConstruction 200 with efSearch 512
#: 0.97, with efSearch 1024 1.00 at 2.6 ms per query, still below a flat scan
#: (3.9 ms at 24k, linear in size; benchmarks/speed.py). FAISS stores efSearch in
#: the index file, and a search uses at least k anyway.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 1024
#: FAISS cannot remove vectors from an HNSW graph. An update that removes passages
#: leaves their vectors in the graph as dead ids, which searches skip (an ID
#: selector) but still walk through, and rebuilds the graph from the live vectors
#: only when more than this share of it would be dead. A rebuild costs about as
#: much as building from scratch (seconds per 10k vectors), an edit in place
#: costs the new passages only.
HNSW_MAX_DEAD_SHARE = 0.25


def vector_index_kind(ann: str, passages: int, threshold: int = ANN_THRESHOLD) -> str:
    """``"flat"`` (exact) or ``"hnsw"`` for an ``ann`` choice and a collection size."""
    if ann == "hnsw" or (ann == "auto" and passages >= threshold):
        return "hnsw"
    return "flat"


def _qtype(vectors: str):
    import faiss

    return {
        "float16": faiss.ScalarQuantizer.QT_fp16,
        "sq8": faiss.ScalarQuantizer.QT_8bit,
    }[vectors]


def new_vector_index(dim: int, kind: str = "flat", vectors: str = "float32"):
    """An empty inner-product index under stable ids (IndexIDMap2).

    ``kind``: "flat" (exact; ids can be removed) or "hnsw" (approximate; ids cannot
    be removed: removed passages stay as dead ids, see HNSW_MAX_DEAD_SHARE).
    ``vectors``: float32, float16 or sq8 (8-bit scalar quantizer, must be trained
    before adding).
    """
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    if vectors not in VECTOR_TYPES:
        raise ValueError(f"vectors={vectors!r}: use one of {', '.join(VECTOR_TYPES)}")
    if kind == "flat":
        inner = (
            faiss.IndexFlatIP(dim)
            if vectors == "float32"
            else faiss.IndexScalarQuantizer(dim, _qtype(vectors), ip)
        )
    elif kind == "hnsw":
        if vectors == "float32":
            inner = faiss.IndexHNSWFlat(dim, HNSW_M, ip)
        else:
            inner = faiss.IndexHNSWSQ(dim, _qtype(vectors), HNSW_M, ip)
    else:
        raise ValueError(f"kind={kind!r}: use flat or hnsw")
    index = faiss.IndexIDMap2(inner)
    apply_hnsw_settings(index)
    return index


def _inner(index):
    """The index inside the IndexIDMap2 wrapper, as its concrete FAISS class."""
    import faiss

    return faiss.downcast_index(index.index if hasattr(index, "id_map") else index)


def apply_hnsw_settings(index) -> None:
    """Set the current efConstruction/efSearch on an HNSW index (no-op for flat)."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH


def _scalar_quantizer(index):
    """The IndexScalarQuantizer inside an (IDMap-wrapped, maybe HNSW) index, or None."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        inner = faiss.downcast_index(inner.storage)
    return inner if isinstance(inner, faiss.IndexScalarQuantizer) else None


def vector_index_layout(index) -> tuple[str, str]:
    """(kind, vectors) of an index made by :func:`new_vector_index`."""
    import faiss

    kind = "hnsw" if isinstance(_inner(index), faiss.IndexHNSW) else "flat"
    sq = _scalar_quantizer(index)
    if sq is None:
        return kind, "float32"
    return kind, "float16" if sq.sq.qtype == faiss.ScalarQuantizer.QT_fp16 else "sq8"


def describe_vector_index(index) -> str:
    """Short name for the manifest, e.g. ``flat/float32`` or ``hnsw32/sq8``."""

    kind, vectors = vector_index_layout(index)
    if kind == "hnsw":
        inner = _inner(index)
        m = inner.hnsw.nb_neighbors(1)
        return f"hnsw{m}/{vectors}(efSearch={inner.hnsw.efSearch})"
    return f"{kind}/{vectors}"


def fits_quantizer(index, rows: np.ndarray) -> bool:
    """Whether an 8-bit quantizer's trained range holds ``rows`` (else they would be
    clamped, and the index must be retrained). Always true for other vector types."""
    sq = _scalar_quantizer(index) if index is not None else None
    if sq is None or not len(rows) or not sq.is_trained or sq.sq.trained.size() == 0:
        return True
    import faiss

    trained = faiss.vector_to_array(sq.sq.trained).reshape(2, -1)
    step = trained[1] / 255 + 1e-6  # decoded codes lie up to half a step outside
    vmin, vmax = trained[0] - step, trained[0] + trained[1] + step
    return bool(np.all(rows >= vmin) and np.all(rows <= vmax))


def build_vector_index(
    dim: int, kind: str, vectors: str, rows: np.ndarray, ids: np.ndarray, like=None
):
    """A new index holding ``rows`` under ``ids``.

    An 8-bit quantizer is trained on ``rows``, or copied from ``like`` (the previous
    generation's index) when that has the same vector type: re-encoding vectors that
    were decoded with the same quantizer gives the same codes, so updates do not
    drift. When ``rows`` fall outside the old range (they would be clamped), the
    quantizer is trained anew. With no rows, an sq8 index stays untrained.
    """

    index = new_vector_index(dim, kind, vectors)
    if not index.is_trained:
        old = _scalar_quantizer(like) if like is not None else None
        new = _scalar_quantizer(index)
        if (
            old is not None
            and old.is_trained
            and old.sq.qtype == new.sq.qtype
            and fits_quantizer(like, rows)
        ):
            new.sq.trained = old.sq.trained
            new.is_trained = True
            if kind == "hnsw":
                _inner(index).is_trained = True
            index.is_trained = True
        elif len(rows):
            index.train(np.ascontiguousarray(rows, dtype=np.float32))
    if len(rows):
        index.add_with_ids(
            np.ascontiguousarray(rows, dtype=np.float32), np.asarray(ids, dtype=np.int64)
        )
    return index


def write_vectors(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_vectors(path: Path, expected: list | None = None):
    """Read the FAISS file after checking size and checksum against the manifest:
    FAISS itself may crash on a damaged file instead of raising."""
    import faiss

    if not path.exists():
        raise IndexCorruptError(f"{path} is missing; {FIX}")
    if expected is not None:
        verify_checksums(path.parent, {path.name: list(expected)}, path.name)
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path} is damaged ({exc}); {FIX}") from exc


def vector_ids(index) -> np.ndarray:
    """Every id stored in an index made by :func:`new_vector_index`, dead ones too."""
    import faiss

    if not hasattr(index, "id_map"):
        raise IndexCorruptError(f"the vector index has no id map ({type(index).__name__}); {FIX}")
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def search_params(index, dead: np.ndarray):
    """FAISS search parameters that leave out the ``dead`` ids; None if there are none.
    An HNSW index keeps its own efSearch (FAISS would use the parameter's default)."""
    if not len(dead):
        return None
    import faiss

    batch = faiss.IDSelectorBatch(np.asarray(dead, dtype=np.int64))
    sel = faiss.IDSelectorNot(batch)
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=inner.hnsw.efSearch)
    else:
        params = faiss.SearchParameters(sel=sel)
    params.keep_alive = (batch, sel)  # SWIG objects do not own what they point to
    return params


def is_hnsw(index) -> bool:
    import faiss

    return isinstance(_inner(index), faiss.IndexHNSW)


def allow_params(index, allowed: np.ndarray):
    """FAISS search parameters that return only the ``allowed`` ids (a filter applied
    inside the search, before its top-k cut). Dead ids are never allowed: ``allowed``
    comes from the document store, which holds live passages only."""
    import faiss

    batch = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=batch, efSearch=inner.hnsw.efSearch)
    else:
        params = faiss.SearchParameters(sel=batch)
    params.keep_alive = batch
    return params


def reconstruct(index, vids: list[int]) -> np.ndarray:
    """Vectors stored under the given ids (decoded: lossy for float16/sq8)."""
    if not len(vids):
        return np.zeros((0, index.d), dtype=np.float32)
    return np.asarray(
        index.reconstruct_batch(np.asarray(vids, dtype=np.int64)), dtype=np.float32
    ).reshape(len(vids), index.d)
