"""``seedsearch serve``: options, the exposure warning, workers, --watch, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import uvicorn
from _serve_fixtures import build_archive, write_archive
from typer.testing import CliRunner

from search.cli import app
from search.server import CONFIG_ENV, ServerConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def started(monkeypatch):
    """uvicorn.run replaced by a recorder: what the command would serve."""
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.delenv("SEEDSEARCH_API_KEY", raising=False)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    return calls


def serve(*args: str):
    return CliRunner().invoke(app, ["serve", *args])


def test_serves_on_localhost_by_default_without_warning(tmp_path, started):
    _seeds, index = build_archive(tmp_path)
    result = serve("--index", str(index))
    assert result.exit_code == 0, result.output
    ((target, options),) = started
    assert options["host"] == "127.0.0.1" and options["port"] == 8000
    assert target.state.config.index_dir == index and target.state.config.api_key is None
    assert "warning" not in result.stderr
    assert "http://127.0.0.1:8000/" in result.stdout


def test_other_host_without_key_warns(tmp_path, started):
    _seeds, index = build_archive(tmp_path)
    result = serve("--index", str(index), "--host", "0.0.0.0", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: serving on 0.0.0.0 without an API key")
    assert started[0][1]["port"] == 8123


def test_other_host_with_key_from_the_environment_does_not_warn(tmp_path, started, monkeypatch):
    _seeds, index = build_archive(tmp_path)
    monkeypatch.setenv("SEEDSEARCH_API_KEY", "ein-langer-schluessel")
    result = serve("--index", str(index), "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert started[0][0].state.config.api_key == "ein-langer-schluessel"


def test_workers_start_the_factory_with_the_settings(tmp_path, started, monkeypatch):
    _seeds, index = build_archive(tmp_path)
    result = serve("--index", str(index), "--workers", "2")
    assert result.exit_code == 0, result.output
    ((target, options),) = started
    assert target == "search.server:app_from_env" and options["factory"] is True
    assert options["workers"] == 2
    config = ServerConfig(**json.loads(os.environ[CONFIG_ENV]))
    assert config.index_dir == index


def test_missing_index_is_one_error_line(tmp_path, started):
    result = serve("--index", str(tmp_path / "nichts"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if line.startswith("error: ")
    ]
    assert "seedsearch index" in result.stderr and started == []


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--api-key", "kurz"], "at least 8"), (["--port", "0"], "port"), (["--workers", "0"], "")],
)
def test_bad_options(tmp_path, started, args, message):
    _seeds, index = build_archive(tmp_path)
    result = serve("--index", str(index), *args)
    assert result.exit_code == 2 and message in result.output and started == []
    assert "Traceback" not in result.output


def test_watch_updates_first_then_serves(tmp_path, started, monkeypatch):
    """--watch brings the index up to date before serving, then follows the seeds."""
    from conftest import FakeEmbedder

    from indexer import core

    real = core.load_embedder

    def load(model=None, *args, **kwargs):
        return FakeEmbedder() if model == FakeEmbedder.spec else real(model, *args, **kwargs)

    monkeypatch.setattr(core, "load_embedder", load)
    seeds, index = build_archive(tmp_path)
    write_archive(seeds, {"neu.txt": "Ein neuer Artikel über Segelboote.\n"})
    result = serve("--index", str(index), "--watch", "--seeds", str(seeds))
    assert result.exit_code == 0, result.output
    assert "index up to date: 7 articles" in result.stdout
    assert f"watching {seeds}" in result.stdout and len(started) == 1


def test_watch_without_seeds_folder_fails(tmp_path, started):
    result = serve("--index", str(tmp_path / "i"), "--watch", "--seeds", str(tmp_path / "x"))
    assert result.exit_code == 2 and "does not exist" in result.stderr and started == []


@pytest.mark.slow
def test_other_commands_do_not_import_the_server_stack():
    code = (
        "import sys, search.cli\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(search.cli.app, ['status', '--index', '/nonexistent'])\n"
        "print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
