"""Retrieval metrics: hand-computed cases and agreement with ranx."""

from __future__ import annotations

import math
import random

import pytest

from search.metrics import Metrics, evaluate_run, ndcg, recall, reciprocal_rank


def test_reciprocal_rank_hand_computed() -> None:
    assert reciprocal_rank(["a", "b", "c"], {"a": 1}) == 1.0
    assert reciprocal_rank(["x", "y", "c"], {"c": 1}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "c", "c"], {"c": 1, "y": 1}) == 0.5
    assert reciprocal_rank([f"n{i}" for i in range(10)] + ["c"], {"c": 1}) == 0.0
    assert reciprocal_rank(["a", "b"], {"a": 0, "b": 1}) == 0.5  # grade 0 is not relevant
    assert reciprocal_rank([], {"a": 1}) == 0.0


def test_ndcg_hand_computed() -> None:
    assert ndcg(["a"], {"a": 1}) == 1.0
    # one relevant at rank 2: (1/log2 3) / 1
    assert ndcg(["x", "a"], {"a": 1}) == pytest.approx(1 / math.log2(3))
    # graded: run b(1), a(2); ideal a(2), b(1)
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(dcg / idcg)
    # cut at k: relevant at rank 3 with k=2 counts nothing
    assert ndcg(["x", "y", "a"], {"a": 1}, k=2) == 0.0
    assert ndcg(["a"], {"a": 0}) == 0.0


def test_recall_hand_computed() -> None:
    judged = {"a": 1, "b": 1, "c": 1, "d": 0}
    assert recall(["a", "x", "b", "d"], judged, 1) == pytest.approx(1 / 3)
    assert recall(["a", "x", "b", "d"], judged, 5) == pytest.approx(2 / 3)
    assert recall(["a", "a", "a"], judged, 3) == pytest.approx(1 / 3)  # repeats count once
    assert recall(["x"], {}, 10) == 0.0


def test_evaluate_run_means_and_missing_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}, "q4": {"z": 0}}
    run = {"q1": ["a", "b"], "q2": ["x", "b"]}  # q3 missing: scores 0; q4 has no relevant
    m = evaluate_run(run, qrels)
    assert isinstance(m, Metrics)
    assert m.queries == 3
    assert m.mrr_at_10 == pytest.approx((1 + 0.5 + 0) / 3)
    assert m.recall_at_1 == pytest.approx(1 / 3)
    assert m.recall_at_5 == pytest.approx(2 / 3)
    assert m.ndcg_at_10 == pytest.approx((1 + 1 / math.log2(3)) / 3)
    half = evaluate_run(run, qrels, queries=["q2", "q4"])
    assert half.queries == 1 and half.mrr_at_10 == 0.5
    assert evaluate_run({}, {}).queries == 0
    assert set(m.to_dict()) == {
        "mrr@10",
        "ndcg@10",
        "recall@1",
        "recall@5",
        "recall@10",
        "recall@100",
        "queries",
    }


def test_metrics_are_frozen() -> None:
    m = evaluate_run({"q": ["a"]}, {"q": {"a": 1}})
    with pytest.raises(AttributeError):
        m.mrr_at_10 = 0.0  # type: ignore[misc]


@pytest.mark.slow
# ranx's numba kernel warns about its own id cast on the first (compiling) run
@pytest.mark.filterwarnings("ignore:unsafe cast from uint64 to int64")
def test_agrees_with_ranx_on_random_run() -> None:
    ranx = pytest.importorskip("ranx")
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(150)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[str]] = {}
    for q in range(40):
        qid = f"q{q}"
        qrels[qid] = {d: rng.randint(1, 3) for d in rng.sample(docs, rng.randint(1, 4))}
        run[qid] = rng.sample(docs, rng.randint(1, 120))
        if q % 3 == 0:  # make some hits likely near the top
            rel = list(qrels[qid])
            run[qid] = [rel[0]] + [d for d in run[qid] if d != rel[0]]
    ours = evaluate_run(run, qrels).to_dict()
    scored = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in run.items()}
    names = ["mrr@10", "ndcg@10", "recall@1", "recall@5", "recall@10", "recall@100"]
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(scored), names)
    for name in names:
        assert ours[name] == pytest.approx(float(theirs[name]), abs=1e-9), name
