"""A ``SearchEngine`` that follows the published index: a server's view of it.

A background thread looks at the index's ``CURRENT`` pointer every
``interval`` seconds (a tiny file read) and, when another generation is published,
opens it with ``engine.refresh()`` (checksums verified, the embedder reused) and
swaps it in. Requests lease the engine for the length of one answer, so each answer
comes from exactly one generation: the old one or the new one, never a mix, and a
half-built generation is never seen (the writer publishes only finished ones). A
replaced engine is closed when its last lease ends.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from indexer.errors import IndexCorruptError, IndexMissingError, SeedsearchError
from indexer.store import generations
from search.engine import SearchEngine

log = logging.getLogger("seedsearch.serve")

T = TypeVar("T")

#: How often the published generation is checked (seconds): a new one is served
#: within this plus the time to open it (benchmarks/serve.py measures both).
DEFAULT_INTERVAL = 0.2


class NoIndexError(SeedsearchError):
    """The server has no index to answer from (yet)."""


class LiveEngine:
    """The engine of the currently published generation, swapped in when it changes.

    ``opener(index_dir)`` opens the first engine (default: ``SearchEngine.open``);
    later generations are opened with ``engine.refresh()``. Thread-safe.
    """

    def __init__(
        self,
        index_dir: str | Path,
        opener: Callable[[Path], SearchEngine] | None = None,
        interval: float = DEFAULT_INTERVAL,
        on_close: Callable[[SearchEngine], None] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval={interval!r}: use a number of seconds > 0")
        self.index_dir = Path(index_dir)
        self.interval = interval
        self._opener = opener or SearchEngine.open
        self._on_close = on_close
        self._lock = threading.Lock()
        self._engine: SearchEngine | None = None
        self._leases: dict[int, int] = {}  # id(engine) -> open leases
        self._retired: dict[int, SearchEngine] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.swaps = 0

    # ------------------------------------------------------------- lifecycle

    def start(self) -> LiveEngine:
        """Open the published index if there is one, then follow it in a thread."""
        self.check()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._follow, name="seedsearch-index-follower", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following and close every engine (call when no request runs)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            engines = [e for e in (self._engine, *self._retired.values()) if e is not None]
            self._engine = None
            self._retired.clear()
            self._leases.clear()
        for engine in engines:
            self._close(engine)

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    # ----------------------------------------------------------------- swap

    def check(self) -> bool:
        """Serve the published generation if it is another one; True if swapped.

        Errors (no index yet, a generation removed while it was opened, a damaged
        one) keep the current engine and are remembered in ``last_error``; the next
        check tries again.
        """
        current = self._engine
        try:
            if current is None:
                generations.current_generation(self.index_dir)  # cheap "is there one"
                new = self._opener(self.index_dir)
            else:
                if generations.current_generation(self.index_dir) == current.generation_dir:
                    return False
                new = current.refresh()
        except (SeedsearchError, OSError) as exc:
            message = str(exc)
            if message != self.last_error:
                (log.info if isinstance(exc, IndexMissingError) else log.warning)(
                    "index not (re)loaded: %s", message
                )
            self.last_error = message
            return False
        self.last_error = None
        if new is current:
            return False
        with self._lock:
            old, self._engine = self._engine, new
            self.swaps += 1
            if old is not None and self._leases.get(id(old)):
                self._retired[id(old)] = old
                old = None
        if old is not None:
            self._close(old)
        log.info("serving %s", new.generation_dir.name)
        return True

    def _close(self, engine: SearchEngine) -> None:
        if self._on_close is not None:
            self._on_close(engine)
        with contextlib.suppress(Exception):
            engine.close()

    # ---------------------------------------------------------------- lease

    @property
    def engine(self) -> SearchEngine | None:
        """The engine served now (None before the first index is published)."""
        return self._engine

    @contextlib.contextmanager
    def lease(self) -> Iterator[SearchEngine]:
        """The current engine, kept open until the block ends."""
        with self._lock:
            engine = self._engine
            if engine is None:
                raise NoIndexError(
                    self.last_error
                    or f"no index at {self.index_dir}: build one with: seedsearch index "
                    f"--index {self.index_dir}"
                )
            self._leases[id(engine)] = self._leases.get(id(engine), 0) + 1
        try:
            yield engine
        finally:
            close = None
            with self._lock:
                left = self._leases[id(engine)] - 1
                if left:
                    self._leases[id(engine)] = left
                else:
                    del self._leases[id(engine)]
                    close = self._retired.pop(id(engine), None)
            if close is not None:
                self._close(close)

    def run(self, fn: Callable[[SearchEngine], T]) -> T:
        """``fn(engine)`` on the current engine. If it fails because its generation's
        files were removed meanwhile (a reader that fell far behind many quick
        updates), it runs once more on the newest generation."""
        with self.lease() as engine:
            try:
                return fn(engine)
            except (IndexCorruptError, OSError):
                if self._engine is engine and not self._generation_changed(engine):
                    raise
        self.check()
        with self.lease() as engine:
            return fn(engine)

    def _generation_changed(self, engine: SearchEngine) -> bool:
        try:
            return generations.current_generation(self.index_dir) != engine.generation_dir
        except SeedsearchError:
            return False

    def wait_for(self, predicate: Callable[[SearchEngine], bool], timeout: float) -> bool:
        """Wait until the served engine satisfies ``predicate`` (for tests and tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            engine = self._engine
            if engine is not None and predicate(engine):
                return True
            time.sleep(min(self.interval, 0.05))
        return False
