"""The ``seedsearch`` command line: a thin layer over ``Indexer`` and ``SearchEngine``.

User errors print one line on stderr and exit with code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from indexer.errors import SeedsearchError
from search.engine import SearchSettings

app = typer.Typer(
    help="Hybrid (BM25 + vector) search over German news articles.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

DEFAULT_SEEDS = "seeds"
DEFAULT_INDEX = "index_data"

SeedsOpt = Annotated[Path, typer.Option("--seeds", help="Folder with the articles.")]
IndexOpt = Annotated[
    Path,
    typer.Option("--index", help="Index folder.", envvar="SEEDSEARCH_INDEX", show_envvar=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
#: ``search`` and ``eval``: None is the index's model's alpha (search.engine.MODEL_ALPHA)
AlphaOpt = Annotated[
    float | None,
    typer.Option(
        "--alpha",
        help="BM25 share in hybrid fusion, 0..1.",
        show_default=f"{SearchSettings.alpha}; 0.6 for use-m3",
    ),
]
FusionOpt = Annotated[str, typer.Option("--fusion", help="minmax or rrf.")]


def index_path(given: Path | None) -> Path:
    """--index, else $SEEDSEARCH_INDEX (typer reads it into --index), else index_data."""
    if given is not None and str(given) not in ("", "."):
        return given
    return Path(os.environ.get("SEEDSEARCH_INDEX") or DEFAULT_INDEX)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"seedsearch {version('seedsearch')}")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            typer.echo("seedsearch (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Hybrid (BM25 + vector) search over German news articles."""


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def print_json(data) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


class _UserErrors:
    """Turn SeedsearchError (and Ctrl-C) into one line and an exit code."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        if issubclass(exc_type, SeedsearchError):
            fail(str(exc))
        if issubclass(exc_type, KeyboardInterrupt):
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
        if issubclass(exc_type, OSError) and not isinstance(exc, typer.Exit):
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            fail(f"{exc.strerror or exc}{where}")
        return False


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@app.command()
def index(
    seeds: SeedsOpt = Path(DEFAULT_SEEDS),
    index: IndexOpt = Path(DEFAULT_INDEX),
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Embedder: e5-small (best quality), use-m3 (4x faster builds) or a "
            "sentence-transformers model name or folder.",
            show_default="as built, else e5-small",
        ),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild from scratch (needed to change a setting).")
    ] = False,
    ann: Annotated[
        str | None,
        typer.Option(
            "--ann",
            help="Vector search: auto (exact below 100,000 passages, HNSW above), flat "
            "(exact) or hnsw.",
            show_default="as built, else auto",
        ),
    ] = None,
    vectors: Annotated[
        str | None,
        typer.Option(
            "--vectors",
            help="Vector storage: float32, float16 (1/2 the memory) or sq8 (1/4).",
            show_default="as built, else float32",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="ADDRESS",
            help="Build on a running Dask scheduler, e.g. tcp://host:8786 (workers must see "
            "the seeds folder at the same path; needs the 'cluster' extra).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Build on N local Dask worker processes (one thread each), started for "
            "this build.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Index the seeds folder (only what changed since the last run)."""
    from indexer import Indexer

    with _UserErrors():
        if cluster is not None and workers is not None:
            fail("use either --cluster ADDRESS or --workers N, not both")
        idx = index_path(index)
        asked = {name: value for name, value in (("ann", ann), ("vectors", vectors)) if value}
        indexer = Indexer(
            seeds,
            idx,
            model=model,
            settings=asked,
            progress=not as_json,
            on_warning=warn,
            cluster=cluster if cluster is not None else workers,
        )
        report = indexer.update(full=full)
    if as_json:
        print_json(report.to_dict())
        return
    changes = []
    for name, items in (
        ("added", report.added),
        ("changed", report.changed),
        ("removed", report.removed),
    ):
        if items:
            changes.append(f"{len(items)} {name}")
    what = ", ".join(changes) if changes else "no changes"
    typer.echo(
        f"indexed {report.documents} articles, {report.passages} passages in {idx} "
        f"({what}; {report.unchanged} unchanged; {report.embedded} passages embedded; "
        f"{report.seconds:.1f} s)"
    )


def _snippet(text: str, spans, width: int = 220):
    """Rich Text of the passage around its first match, matched words in bold
    (``spans``: the hit's highlights)."""
    from rich.text import Text

    spans = list(spans)
    start = 0
    if spans and spans[0][0] > width // 3:
        start = text.rfind(" ", 0, spans[0][0] - width // 4) + 1
    end = min(len(text), start + width)
    if end < len(text):
        end = text.rfind(" ", start, end) if text.rfind(" ", start, end) > start else end
    snippet = Text(("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else ""))
    offset = 1 if start > 0 else 0
    for a, b in spans:
        if a >= start and b <= end:
            snippet.stylize("bold yellow", a - start + offset, b - start + offset)
    return snippet


def _safe(text: str, limit: int = 200) -> str:
    """Shown as typed, but terminal-safe: no control characters or undecodable bytes."""
    shown = "".join(c if c.isprintable() else " " for c in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def _meta_line(h) -> str:
    """Date, source, agency and folder of a hit, as far as they are known."""
    byline = f"({h.author} / {h.agency})" if h.author and h.agency else h.agency and f"({h.agency})"
    parts = [h.date[:10] if h.date else None, h.source, byline, h.folder]
    return " · ".join(p for p in parts if p)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="A question or some words, in German.")],
    index: IndexOpt = Path(DEFAULT_INDEX),
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results.")] = 5,
    offset: Annotated[
        int, typer.Option("--offset", help="Skip this many results (the next page).")
    ] = 0,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, bm25 or vector.")] = "hybrid",
    alpha: AlphaOpt = None,
    fusion: FusionOpt = SearchSettings.fusion.value,
    since: Annotated[
        str | None, typer.Option("--since", help="Only articles of this day or later (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only articles of this day or earlier.")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this outlet (repeatable).")
    ] = None,
    agency: Annotated[
        list[str] | None, typer.Option("--agency", help="Only this agency (repeatable).")
    ] = None,
    folder: Annotated[
        list[str] | None,
        typer.Option(
            "--folder", help="Only articles in folders matching this pattern (repeatable)."
        ),
    ] = None,
    sort: Annotated[str, typer.Option("--sort", help="relevance or date (newest first).")] = (
        "relevance"
    ),
    per_article: Annotated[
        int | None,
        typer.Option(
            "--per-article",
            help="At most N hits from one article (e.g. 1: one hit per article).",
            show_default="no limit",
        ),
    ] = None,
    no_collapse: Annotated[
        bool,
        typer.Option("--no-collapse", help="Show exact copies of a passage as separate hits."),
    ] = False,
    as_json: JsonOpt = False,
    typos: Annotated[
        bool,
        typer.Option(
            "--typos/--no-typos", help="Correct mistyped words against the index's words."
        ),
    ] = True,
) -> None:
    """Search the index. Words in "double quotes" must occur in that order."""
    from search.archive import Filters
    from search.engine import SearchEngine

    with _UserErrors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = Filters(
            since=since,
            until=until,
            sources=source or (),
            agencies=agency or (),
            folders=folder or (),
        )
        engine = SearchEngine.open(index_path(index))
        result = engine.search(
            query,
            k=k,
            mode=mode,
            alpha=alpha,
            fusion=fusion,
            offset=offset,
            filters=filters,
            sort=sort,
            collapse=not no_collapse,
            per_article=per_article,
            typos=typos,
        )
    for w in caught:
        if issubclass(w.category, UserWarning):
            warn(str(w.message))
    for message in result.notices:
        typer.echo(f"note: {message}", err=True)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from search.typos import apply_corrections

    console = Console(highlight=False, soft_wrap=False)
    if result.corrections:  # typo tolerance: what was searched for (search.typos)
        searched = apply_corrections(result.query, result.corrections)
        console.print(f"Suche nach: {escape(_safe(searched))}")
    if not result:  # the query is shown as text: "[/]" is not Rich markup
        more = f" on this page (offset {offset}, {result.total} in all)" if offset else ""
        console.print(f"no results for {escape(repr(query))}{more}")
        return
    first, last = result.offset + 1, result.offset + len(result)
    table = Table(
        title=f"{escape(_safe(query))}  [dim]({escape(str(mode))}, {first}-{last} of "
        f"{result.total})[/dim]",
        show_lines=True,
    )
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("bm25", justify="right")
    table.add_column("vector", justify="right")
    table.add_column("passage")
    for h in result:
        bm = "–" if h.bm25 is None else f"{h.bm25:.2f} (#{h.bm25_rank})"
        vec = "–" if h.vector is None else f"{h.vector:.3f} (#{h.vector_rank})"
        title = "" if h.title == Path(h.doc.split(":", 1)[0]).stem else f"  {h.title}"
        cell = Text(f"{h.id}{title}\n", style="dim")
        meta = _meta_line(h)
        if meta:
            cell.append(meta + "\n", style="cyan")
        cell.append_text(_snippet(h.text, h.highlights))
        if h.duplicates:
            shown = ", ".join(h.duplicates[:3]) + (" …" if len(h.duplicates) > 3 else "")
            cell.append(f"\nalso in: {shown}", style="dim")
        table.add_row(str(h.rank), f"{h.score:.3f}", bm, vec, cell)
    console.print(table)
    if last < result.total:
        console.print(f"[dim]next page: --offset {last}[/dim]")


@app.command()
def show(
    id: Annotated[str, typer.Argument(help="A passage id or article id from a search hit.")],
    index: IndexOpt = Path(DEFAULT_INDEX),
    as_json: JsonOpt = False,
) -> None:
    """Show a whole article: its metadata and paragraphs (a given passage is marked)."""
    from search.engine import SearchEngine

    with _UserErrors():
        engine = SearchEngine.open(index_path(index))
        article = engine.article(id)
    if as_json:
        print_json(article.to_dict())
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    console.print(f"[bold]{escape(_safe(article.title, 300))}[/bold]")
    for label in ("date", "source", "author", "agency", "folder", "url"):
        value = getattr(article, label)
        if value:
            console.print(f"[dim]{label + ':':<8}[/dim] {escape(_safe(value, 300))}")
    console.print(f"[dim]{'file:':<8}[/dim] {escape(article.file)}")
    for p in article.passages:
        console.print()
        if p.id == article.marked:
            console.print(f"[bold yellow]▶ {escape(p.id)}[/bold yellow]")
            console.print(f"[bold]{escape(p.text)}[/bold]")
        else:
            console.print(f"[dim]{escape(p.id)}[/dim]")
            console.print(escape(p.text))


@app.command()
def status(
    index: IndexOpt = Path(DEFAULT_INDEX),
    seeds: SeedsOpt = Path(DEFAULT_SEEDS),
    as_json: JsonOpt = False,
) -> None:
    """Show what is indexed and whether the seeds changed since."""
    from search.engine import index_status

    with _UserErrors():
        st = index_status(index_path(index), seeds)
    if as_json:
        print_json(st.to_dict())
        return
    lines = [
        f"index:      {st.index} (generation {st.generation}, format {st.format_version})",
        f"documents:  {st.documents}",
        f"passages:   {st.passages}",
        f"embedder:   {st.embedder} ({st.dim} dims)",
        f"vectors:    {st.vector_index or 'flat/float32'}"
        + (f", {st.dead_vectors} dead (removed passages, skipped)" if st.dead_vectors else ""),
        f"analyzer:   {st.analyzer}",
        f"built at:   {st.built_at}",
        f"size:       {_human_size(st.size_bytes)}",
    ]
    if st.stale_added is None:
        lines.append(f"stale:      unknown (no seeds folder at {seeds})")
    elif not st.stale:
        lines.append(f"stale:      no, up to date with {seeds}")
    else:
        lines.append("stale:      yes, run: seedsearch index")
        for name, items in (
            ("added", st.stale_added),
            ("changed", st.stale_changed),
            ("removed", st.stale_removed),
        ):
            for item in items or []:
                lines.append(f"  {name}: {item}")
    typer.echo("\n".join(lines))


@app.command()
def check(index: IndexOpt = Path(DEFAULT_INDEX), as_json: JsonOpt = False) -> None:
    """Read every file of the index and compare it with its checksum (opening an
    index only compares sizes and stamps); exit 2 naming a damaged file."""
    from search.check import check_index

    with _UserErrors():
        result = check_index(index_path(index))
    if as_json:
        print_json(result.to_dict())
        return
    typer.echo(
        f"ok: {result.index} generation {result.generation}, {result.passages} passages; "
        f"{result.files} files ({_human_size(result.bytes)}) match their checksums "
        f"({result.seconds:.1f} s)"
    )


@app.command()
def watch(
    seeds: SeedsOpt = Path(DEFAULT_SEEDS),
    index: IndexOpt = Path(DEFAULT_INDEX),
    debounce: Annotated[
        int, typer.Option("--debounce", help="Wait this many ms for more changes.")
    ] = 500,
) -> None:
    """Watch the seeds folder and update the index shortly after files change."""
    import time

    from indexer import Indexer
    from indexer.watch import watch as watch_seeds

    def show(report) -> None:
        parts = [
            f"{len(items)} {name}"
            for name, items in (
                ("added", report.added),
                ("changed", report.changed),
                ("removed", report.removed),
            )
            if items
        ]
        typer.echo(
            f"{time.strftime('%H:%M:%S')} updated: {', '.join(parts)}; "
            f"{report.passages} passages, {report.embedded} embedded, {report.seconds:.1f} s"
        )

    with _UserErrors():
        idx = index_path(index)
        if not seeds.is_dir():
            fail(f"seeds folder {seeds} does not exist or is not a folder")
        indexer = Indexer(seeds, idx, on_warning=warn)
        typer.echo(f"watching {seeds} -> {idx} (Ctrl-C to stop)")
        watch_seeds(indexer, show, lambda m: typer.echo(f"error: {m}", err=True), debounce)
    typer.echo("stopped")


@app.command()
def serve(
    index: IndexOpt = Path(DEFAULT_INDEX),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Server processes.")] = 1,
    watch: Annotated[
        bool, typer.Option("--watch", help="Also update the index when --seeds changes.")
    ] = False,
    seeds: Annotated[
        Path | None,
        typer.Option(
            "--seeds",
            help="Seeds folder (for --watch and the status).",
            show_default="seeds with --watch",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="SEEDSEARCH_API_KEY",
            show_envvar=True,
            help="Require this key (X-API-Key header) on every API request.",
        ),
    ] = None,
) -> None:
    """Serve the search page and the HTTP API (needs the 'serve' extra)."""
    from search.serve_cli import run_server

    with _UserErrors():
        run_server(
            index_path(index),
            host,
            port,
            workers,
            watch,
            seeds,
            api_key,
            echo=typer.echo,
            warn=warn,
        )


@app.command("eval")
def eval_command(
    queries: Annotated[Path, typer.Option("--queries", help="queries.jsonl (id, text).")],
    qrels: Annotated[Path, typer.Option("--qrels", help="qrels.tsv: qid<TAB>pid<TAB>grade.")],
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="corpus.jsonl (id, title, text), indexed in a temp folder."),
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="Evaluate this existing index instead of a --corpus (judged ids: its "
            "article ids, or the record ids of its .jsonl seeds).",
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, bm25, vector or all.")] = "all",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Embedder: e5-small, use-m3 or a sentence-transformers model name or folder.",
            show_default="e5-small",
        ),
    ] = None,
    alpha: AlphaOpt = None,
    fusion: FusionOpt = SearchSettings.fusion.value,
    depth: Annotated[
        int, typer.Option("--depth", help="Candidates taken from each retriever.")
    ] = SearchSettings.depth,
    run_file: Annotated[
        Path | None, typer.Option("--run", help="Write a TREC run file (trec_eval input).")
    ] = None,
    per_query: Annotated[
        Path | None,
        typer.Option(
            "--per-query",
            help="Write one line per query: mode, id, rank of the first relevant hit, RR.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure retrieval quality (MRR@10, nDCG@10, Recall@k) on a benchmark set."""
    from indexer.settings import DEFAULT_MODEL
    from search.engine import default_settings, index_status
    from search.evaluate import (
        ALL_MODES,
        evaluate,
        evaluate_index,
        load_benchmark,
        load_qrels,
        per_query_rows,
        trec_run_lines,
    )
    from search.fusion import SearchMode

    with _UserErrors():
        if (corpus is None) == (index is None):
            fail("give either --corpus (a benchmark corpus) or --index (an existing index)")
        if index is not None and model is not None:
            fail("--model does not apply to --index: an index is searched with its own model")
        modes = ALL_MODES if mode.strip().lower() == "all" else (SearchMode.from_str(mode),)
        if index is not None:
            built = index_status(index_path(index)).embedder
            settings = default_settings(built, alpha=alpha, fusion=fusion, depth=depth)
            result = evaluate_index(index_path(index), queries, qrels, modes, settings)
            judged, name = load_qrels(qrels), index_path(index).name
        else:
            bench = load_benchmark(corpus, queries, qrels)
            settings = default_settings(
                model or DEFAULT_MODEL, alpha=alpha, fusion=fusion, depth=depth
            )
            result = evaluate(
                bench, modes, model=model, search_settings=settings, progress=not as_json
            )
            judged, name = bench.qrels, bench.name
        if run_file is not None:
            _write_lines(run_file, trec_run_lines(result.results))
        if per_query is not None:
            rows = per_query_rows(result.results, judged)
            _write_lines(
                per_query,
                ["mode\tquery\tfirst_relevant_rank\treciprocal_rank"]
                + [f"{m}\t{q}\t{'-' if r is None else r}\t{rr:.4f}" for m, q, r, rr in rows],
            )
    for w in result.warnings:
        warn(w)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    n_queries = len(next(iter(result.results)).run) if result.results else 0
    table = Table(
        title=f"{name}: {n_queries} queries, {result.documents} documents, "
        f"{result.passages} passages"
    )
    for col in ("mode", "MRR@10", "nDCG@10", "R@1", "R@5", "R@10", "R@100"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in result.results:
        m = r.metrics
        values = (m.mrr_at_10, m.ndcg_at_10, m.recall_at_1, m.recall_at_5)
        values += (m.recall_at_10, m.recall_at_100)
        table.add_row(r.mode, *(f"{v:.3f}" for v in values))
    Console(highlight=False, soft_wrap=False).print(table)


def _write_lines(path: Path, lines: list[str]) -> None:
    """Write a report file whole (a temp file renamed: never a half-written file)."""
    path = Path(path)
    if path.is_dir():
        fail(f"{path} is a folder: give a file name")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:  # pragma: no cover - entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
