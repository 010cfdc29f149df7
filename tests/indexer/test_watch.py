"""``seedsearch watch``: debounced updates after file changes, clean stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import FakeEmbedder

from indexer import Indexer, IndexReport
from indexer.watch import watch
from search import SearchEngine


class Watcher:
    def __init__(self, seeds: Path, index: Path) -> None:
        self.reports: list[IndexReport] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.indexer = Indexer(seeds, index, model=FakeEmbedder())
        self.thread = threading.Thread(
            target=watch,
            args=(self.indexer, self.reports.append, self.errors.append, 300, self.stop),
            daemon=True,
        )

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.reports) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.reports) >= n, f"only {len(self.reports)} updates"


@pytest.fixture
def watcher(seeds_dir, tmp_path):
    w = Watcher(seeds_dir, tmp_path / "ix")
    w.thread.start()
    w.wait_for(1)  # the initial build
    time.sleep(0.3)  # let watchfiles start watching
    yield w
    w.stop.set()
    w.thread.join(timeout=5)
    assert not w.thread.is_alive(), "watch did not stop"


def test_initial_build_then_updates_on_change(watcher, seeds_dir, tmp_path):
    assert watcher.reports[0].documents == 3
    (seeds_dir / "neu.txt").write_text("Die Waffenruhe hält.\n", encoding="utf-8")
    watcher.wait_for(2)
    assert watcher.reports[1].added == ["neu.txt"]
    with SearchEngine.open(tmp_path / "ix", model=FakeEmbedder()) as engine:
        assert engine.search("Waffenruhe", k=1, mode="bm25")[0].id == "neu.txt#1"
    assert watcher.errors == []


def test_many_files_saved_at_once_give_one_update(watcher, seeds_dir):
    for i in range(20):
        (seeds_dir / f"m{i:02d}.txt").write_text(f"Meldung Nummer {i}.\n", encoding="utf-8")
    watcher.wait_for(2)
    time.sleep(1.0)
    assert len(watcher.reports) == 2
    assert len(watcher.reports[1].added) == 20


def test_editor_save_via_temp_file_and_rename(watcher, seeds_dir):
    target = seeds_dir / "fussball.txt"
    tmp = seeds_dir / ".fussball.txt.swp"
    tmp.write_text("Der Trainer tritt nach der Niederlage zurück.\n", encoding="utf-8")
    tmp.replace(target)
    watcher.wait_for(2)
    assert watcher.reports[1].changed == ["fussball.txt"]
    assert watcher.reports[1].embedded == 1


def test_deleting_an_article_removes_it(watcher, seeds_dir):
    (seeds_dir / "wetter.md").unlink()
    watcher.wait_for(2)
    assert watcher.reports[1].removed == ["wetter.md"]


@pytest.mark.slow
def test_cli_watch_prints_a_line_per_update_and_stops_on_ctrl_c(seeds_dir, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys

    exe = shutil.which("seedsearch", path=os.path.dirname(sys.executable))
    assert exe, "seedsearch entry point not installed"
    proc = subprocess.Popen(
        [exe, "watch", "--seeds", str(seeds_dir), "--index", str(tmp_path / "ix")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("watching")
        assert "3 added" in proc.stdout.readline()  # the initial build
        time.sleep(0.5)
        (seeds_dir / "neu.txt").write_text("Neue Sanktionen gegen Moskau.\n", encoding="utf-8")
        assert "1 added" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err
