"""``seedsearch watch``: keep the index in step with the seeds folder.

File events are debounced by watchfiles (many files saved at once give one
update). Each update is a normal incremental ``Indexer.update()``, which compares
content hashes, so editors that save via a temp file and a rename, or events for
files that are not seeds, cost one cheap scan and no new generation.

Events inside the index folder (when it lies inside the seeds folder) and inside any
other seedsearch index there are ignored: an update must not trigger the next one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from indexer.core import Indexer, IndexReport
from indexer.errors import SeedsearchError
from indexer.seeds import SEED_SUFFIXES, check_folders
from indexer.store.generations import is_index_folder


def is_seed_event(path: str, root: Path | None = None, excluded: Iterable[Path] = ()) -> bool:
    """Events that may change the seeds: seed files and folders (moved or deleted)
    under ``root``, but nothing inside an ``excluded`` folder (the index being
    written; resolved paths) or inside a folder that holds a seedsearch index."""
    p = Path(path)
    name = p.name
    if name.startswith("."):
        return False
    if not (name.lower().endswith(SEED_SUFFIXES) or "." not in name):
        return False
    real = Path(os.path.realpath(p))  # an index reached through a symlink
    for folder in excluded:
        if folder in (p, real) or folder in p.parents or folder in real.parents:
            return False
    if root is None:
        return True
    for folder in (p, *p.parents):
        if folder == root or root not in folder.parents:
            break
        if is_index_folder(folder):
            return False
    return True


def watch(
    indexer: Indexer,
    on_update: Callable[[IndexReport], None],
    on_error: Callable[[str], None],
    debounce_ms: int = 500,
    stop_event: threading.Event | None = None,
) -> None:
    """Update once, then after every debounced batch of relevant file events.

    An error in the first update (the index cannot be updated at all: damaged, built
    by another version, other settings asked for, the seeds folder inside the index
    folder) is raised: watching would only repeat it. Later errors (a file that
    vanished meanwhile, the lock held by another writer) go to ``on_error`` and
    watching goes on. Returns when ``stop_event`` is set or on Ctrl-C.
    """
    import logging

    import watchfiles

    check_folders(indexer.seeds_dir, indexer.index_dir)
    root = Path(indexer.seeds_dir).resolve()
    excluded = (Path(indexer.index_dir).resolve(),)

    # watchfiles logs "KeyboardInterrupt caught" on Ctrl-C; the CLI says "stopped".
    logging.getLogger("watchfiles.main").setLevel(logging.ERROR)

    def run_update() -> None:
        try:
            report = indexer.update()
        except SeedsearchError as exc:
            on_error(str(exc))
            return
        if report.added or report.changed or report.removed:
            on_update(report)

    report = indexer.update()
    if report.added or report.changed or report.removed:
        on_update(report)
    for changes in watchfiles.watch(
        root,
        debounce=debounce_ms,
        step=50,
        stop_event=stop_event,
        raise_interrupt=False,
        watch_filter=lambda _change, path: is_seed_event(path, root, excluded),
    ):
        if changes:
            run_update()
