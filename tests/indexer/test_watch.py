"""``seedsearch watch``: debounced updates after file changes, clean stop, and no
updates caused by its own writes when the index lies inside the seeds folder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import FakeEmbedder

from indexer import Indexer, IndexReport
from indexer.errors import SeedsearchError
from indexer.watch import is_seed_event, watch
from search import SearchEngine


class Watcher:
    def __init__(self, seeds: Path, index: Path) -> None:
        self.reports: list[IndexReport] = []
        self.errors: list[str] = []
        self.updates = 0  # calls of Indexer.update, also those that changed nothing
        self.stop = threading.Event()
        self.indexer = Indexer(seeds, index, model=FakeEmbedder())
        update = self.indexer.update

        def counted_update(*args, **kwargs):
            self.updates += 1
            return update(*args, **kwargs)

        self.indexer.update = counted_update
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


# ---------------------------------------------- the index inside the seeds folder


def test_events_inside_the_index_folder_are_not_seed_events(tmp_path):
    seeds = tmp_path / "seeds"
    index = seeds / "_idx"
    (seeds / "Kultur").mkdir(parents=True)
    root, excluded = seeds.resolve(), (index.resolve(),)
    for inside in ("_idx", "_idx/CURRENT", "_idx/gen-00000002/passages.jsonl", "_idx/x.txt"):
        assert not is_seed_event(str(root / inside), root, excluded), inside
    for seed in ("a.txt", "Kultur/Straße.md", "Kultur", "k.jsonl", "_idx2/a.txt"):
        assert is_seed_event(str(root / seed), root, excluded), seed
    for other in ("bild.png", ".a.txt.swp", "Kultur/.versteckt.txt"):
        assert not is_seed_event(str(root / other), root, excluded), other


def test_events_inside_another_index_in_the_seeds_folder_are_ignored(tmp_path, seeds_dir):
    other = seeds_dir / "Archiv" / "altindex"
    Indexer(seeds_dir / "nicht-da", other, model=FakeEmbedder())  # not built this way:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("Grüße aus Graz.\n", "utf-8")
    Indexer(elsewhere, other, model=FakeEmbedder()).update()
    root = seeds_dir.resolve()
    gen = next(other.glob("gen-*")).name
    for inside in ("CURRENT", f"{gen}/passages.jsonl", f"{gen}/whoosh", f"{gen}"):
        assert not is_seed_event(str(other.resolve() / inside), root), inside
    assert not is_seed_event(str(other.resolve()), root)
    assert is_seed_event(str(root / "Archiv" / "neu.txt"), root)


def test_index_reached_through_a_symlink_is_excluded(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    real = tmp_path / "real-idx"
    real.mkdir()
    (seeds / "idx").symlink_to(real, target_is_directory=True)
    root = seeds.resolve()
    path = str(root / "idx" / "gen-00000001" / "passages.jsonl")
    assert not is_seed_event(path, root, (real.resolve(),))


def test_watch_refuses_seeds_inside_the_index(tmp_path):
    index = tmp_path / "idx"
    (index / "seeds").mkdir(parents=True)
    indexer = Indexer(index / "seeds", index, model=FakeEmbedder())
    with pytest.raises(SeedsearchError, match="inside the index folder"):
        watch(indexer, lambda r: None, lambda m: None, 100, threading.Event())


@pytest.mark.slow  # a real watch for about 3 s
def test_watch_with_the_index_inside_the_seeds_does_not_trigger_itself(seeds_dir):
    w = Watcher(seeds_dir, seeds_dir / "idx")
    w.thread.start()
    try:
        w.wait_for(1)
        time.sleep(1.2)  # its own writes (CURRENT, gen-*, whoosh, passages.jsonl) settle
        assert w.updates == 1
        (seeds_dir / "neu.txt").write_text("Die Brücke über die Isar ist gesperrt.\n", "utf-8")
        w.wait_for(2)
        time.sleep(1.2)
        assert w.updates == 2, "an update triggered another one"
        assert [r.documents for r in w.reports] == [3, 4]
        assert w.reports[1].added == ["neu.txt"]
        assert w.errors == []
    finally:
        w.stop.set()
        w.thread.join(timeout=5)
    assert not w.thread.is_alive()
