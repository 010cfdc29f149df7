"""Searcher processes keep answering, consistently, while the index is updated."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _faults import write_version
from conftest import GERMAN_ARTICLES, FakeEmbedder, answers

from indexer import Indexer
from search import SearchEngine

WORKER = Path(__file__).with_name("_rel_searcher.py")
QUERIES = ["Hitze Bayern", "Putin Nordkorea", "Regierung Steuern", "Regen Köln", "Fußball"]

VERSION_A = {
    **GERMAN_ARTICLES,
    "wechsel.txt": "Version Alpha: Die Regierung plant neue Steuern.\n\nZweiter Absatz Alpha.\n",
}
VERSION_B = {
    "nordkorea.txt": GERMAN_ARTICLES["nordkorea.txt"],
    "wetter.md": "# Regen statt Hitze\n\nIn Köln regnet es seit Tagen ohne Pause.\n",
    "wechsel.txt": "Version Beta: Die Regierung senkt die Steuern.\n",
    "extra/neu.txt": "Ein ganz neuer Artikel über Regen in Köln und Bonn.\n",
}


def passages_of(version: dict[str, str], work: Path) -> dict[str, str]:
    seeds, index = work / "s", work / "i"
    seeds.mkdir(parents=True)
    write_version(seeds, version)
    Indexer(seeds, index, model=FakeEmbedder()).update()
    with SearchEngine.open(index, model=FakeEmbedder()) as engine:
        out = {p.id: p.text for p in engine.docs.all_passages()}
    shutil.rmtree(work)
    return out


def snapshot(index: Path) -> dict:
    return answers(index, QUERIES, k=10)


@pytest.mark.slow
def test_searchers_during_repeated_updates(tmp_path):
    seeds, index = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    expected = {
        "versions": [
            passages_of(VERSION_A, tmp_path / "va"),
            passages_of(VERSION_B, tmp_path / "vb"),
        ],
        "queries": QUERIES,
    }
    (tmp_path / "expected.json").write_text(json.dumps(expected), encoding="utf-8")
    write_version(seeds, VERSION_A)
    indexer = Indexer(seeds, index, model=FakeEmbedder())
    indexer.update()

    stop = tmp_path / "stop"
    root = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(index), str(tmp_path / "expected.json"), str(stop)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for w in workers:  # each has opened the index and searched once
            assert w.stdout.readline().strip() == "ready", w.stderr.read()
        updates = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline or updates < 6:
            write_version(seeds, VERSION_B if updates % 2 == 0 else VERSION_A)
            report = indexer.update()
            assert report.added or report.changed or report.removed
            updates += 1
    finally:
        stop.touch()
        outputs = [w.communicate(timeout=60) for w in workers]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    for r, (_, err) in zip(results, outputs, strict=True):
        assert r["error_count"] == 0, r["errors"]
        assert r["served"] > 0, err
    assert sum(len(r["generations"]) for r in results) > 3  # they saw updates happen

    fresh = tmp_path / "fresh"
    Indexer(seeds, fresh, model=FakeEmbedder()).update()
    assert snapshot(index) == snapshot(fresh)
