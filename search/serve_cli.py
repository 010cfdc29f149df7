"""What ``seedsearch serve`` does, apart from its options (kept out of search/cli.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from indexer.errors import SeedsearchError


def _import_stack():
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise SeedsearchError(
            f"seedsearch serve needs Starlette and uvicorn ({exc.name} is missing): "
            "pip install 'seedsearch[serve]'"
        ) from None
    return uvicorn


def run_server(
    index_dir: Path,
    host: str,
    port: int,
    workers: int,
    watch: bool,
    seeds: Path | None,
    api_key: str | None,
    echo: Callable[[str], None],
    warn: Callable[[str], None],
) -> None:
    """Start uvicorn (and the seeds watcher with ``watch``) until Ctrl-C."""
    uvicorn = _import_stack()
    from search.server import CONFIG_ENV, ServerConfig, create_app, exposure_warning

    if watch and seeds is None:
        seeds = Path("seeds")
    config = ServerConfig(index_dir=index_dir, seeds_dir=seeds, api_key=api_key or None)
    message = exposure_warning(host, config.api_key)
    if message:
        warn(message)
    stop = threading.Event()
    watcher = _start_watcher(seeds, index_dir, stop, echo, warn) if watch else None
    if watcher is None:
        from indexer.store import generations

        generations.current_generation(index_dir)  # a clear error before binding
    shown = f"[{host}]" if ":" in host else host
    echo(f"serving {index_dir} on http://{shown}:{port}/ (API: /api/search, /openapi.json)")
    options = dict(host=host, port=port, log_level="info", access_log=False)
    options.update(limit_concurrency=512, timeout_keep_alive=5, server_header=False)
    try:
        if workers > 1:
            os.environ[CONFIG_ENV] = config.to_env()
            uvicorn.run("search.server:app_from_env", factory=True, workers=workers, **options)
        else:
            uvicorn.run(create_app(config), **options)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=10)


def _start_watcher(
    seeds: Path,
    index_dir: Path,
    stop: threading.Event,
    echo: Callable[[str], None],
    warn: Callable[[str], None],
) -> threading.Thread:
    """Bring the index up to date now (errors stop the command), then follow the
    seeds folder in a thread; the server sees each update it publishes."""
    from indexer import Indexer
    from indexer.watch import watch as watch_seeds

    if not seeds.is_dir():
        raise SeedsearchError(f"seeds folder {seeds} does not exist or is not a folder")
    indexer = Indexer(seeds, index_dir, on_warning=warn)
    report = indexer.update()
    echo(f"index up to date: {report.documents} articles, {report.passages} passages")

    def show(r) -> None:
        echo(f"updated: {r.passages} passages, {r.embedded} embedded, {r.seconds:.1f} s")

    def run() -> None:
        try:
            watch_seeds(indexer, show, lambda m: echo(f"error: {m}"), 500, stop_event=stop)
        except SeedsearchError as exc:
            echo(f"error: watching stopped: {exc}")

    thread = threading.Thread(target=run, name="seedsearch-watch", daemon=True)
    thread.start()
    echo(f"watching {seeds} -> {index_dir}")
    return thread
