"""``seedsearch watch``: keep the index in step with the seeds folder.

File events are debounced by watchfiles (many files saved at once give one
update). Each update is a normal incremental ``Indexer.update()``, which compares
content hashes, so editors that save via a temp file and a rename, or events for
files that are not seeds, cost one cheap scan and no new generation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from indexer.core import Indexer, IndexReport
from indexer.errors import SeedsearchError
from indexer.seeds import SEED_SUFFIXES


def _relevant(path: str) -> bool:
    """Events that may change the seeds: seed files, and folders (moved or deleted)."""
    name = Path(path).name
    if name.startswith("."):
        return False
    return name.lower().endswith(SEED_SUFFIXES) or "." not in name


def watch(
    indexer: Indexer,
    on_update: Callable[[IndexReport], None],
    on_error: Callable[[str], None],
    debounce_ms: int = 500,
    stop_event: threading.Event | None = None,
) -> None:
    """Update once, then after every debounced batch of relevant file events.

    An error in the first update (the index cannot be updated at all: damaged, built
    by another version, other settings asked for) is raised: watching would only
    repeat it. Later errors (a file that vanished meanwhile, the lock held by another
    writer) go to ``on_error`` and watching goes on. Returns when ``stop_event`` is
    set or on Ctrl-C.
    """
    import logging

    import watchfiles

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
        indexer.seeds_dir,
        debounce=debounce_ms,
        step=50,
        stop_event=stop_event,
        raise_interrupt=False,
        watch_filter=lambda _change, path: _relevant(path),
    ):
        if changes:
            run_update()
