"""``seedsearch serve``: the HTTP API and the German search page (Starlette).

Starlette and uvicorn are imported only here (the ``serve`` extra): the other CLI
commands start as fast as before. Starlette rather than FastAPI: no pydantic (which
costs +0.2 s per import on 2 cores, see pyproject.toml; Starlette and uvicorn import
in ~0.11 s there), 2 small BSD dependencies, and the request models are the project's
own frozen dataclasses anyway.

Endpoints (described at ``/openapi.json``):

- ``GET /api/search``: ``{"query", "took_ms", "total", "offset", "k", "generation",
  "hits", "notices", "corrections"}``; each hit has the keys of ``search --json``.
- ``GET /api/articles/{id}``: an article with its passages (``id``: a ``doc`` or a
  passage id, which is then ``marked``).
- ``GET /api/status``: the ``status --json`` data and the generation being served.
- ``GET /healthz``: 200 when an index is served, else 503.
- ``GET /``, ``GET /articles/{id}``: the page (works without JavaScript).

Errors are JSON ``{"error": "..."}`` with the CLI's message: 400 for a bad
parameter, 401 without the API key, 404 for an unknown article or path, 503
while there is no index; never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from indexer.errors import (
    IndexCorruptError,
    IndexMissingError,
    QueryError,
    SeedsearchError,
    SettingsMismatchError,
)
from search import serve_adapter as adapter
from search import webpage
from search.live import DEFAULT_INTERVAL, LiveEngine, NoIndexError

log = logging.getLogger("seedsearch.serve")

API_KEY_HEADER = "X-API-Key"
API_KEY_ENV = "SEEDSEARCH_API_KEY"
COOKIE = "seedsearch_key"
#: Request limits: the longest query string (bytes) and request body (bytes).
MAX_QUERY_STRING = 8192
MAX_BODY = 4096
#: The environment variable through which ``--workers N`` passes the settings to
#: each worker process (uvicorn starts workers from an import string).
CONFIG_ENV = "SEEDSEARCH_SERVE_CONFIG"


@dataclass(frozen=True)
class ServerConfig:
    """What one server serves and how; validated at construction."""

    index_dir: Path
    seeds_dir: Path | None = None
    api_key: str | None = None
    interval: float = DEFAULT_INTERVAL
    model: Any = None  # an embedder spec or object; default: the index's own
    warm: bool = True  # one query at startup: the first user does not pay the model load

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_dir", Path(self.index_dir))
        if self.seeds_dir is not None:
            object.__setattr__(self, "seeds_dir", Path(self.seeds_dir))
        if self.api_key is not None:
            key = str(self.api_key)
            if not key.strip() or len(key) < 8 or any(c.isspace() for c in key):
                raise SeedsearchError(
                    "the API key must be at least 8 characters without spaces, e.g. "
                    "--api-key $(python -c 'import secrets; print(secrets.token_urlsafe())')"
                )
        if not 0 < self.interval <= 1:
            raise SeedsearchError(
                f"interval={self.interval!r}: use 0 < seconds <= 1 (updates within 1 s)"
            )

    def to_env(self) -> str:
        if self.model is not None and not isinstance(self.model, str):
            raise SeedsearchError("--workers needs the embedder as a spec string")
        return json.dumps(
            {
                "index_dir": str(self.index_dir),
                "seeds_dir": None if self.seeds_dir is None else str(self.seeds_dir),
                "api_key": self.api_key,
                "interval": self.interval,
                "model": self.model,
                "warm": self.warm,
            }
        )

    @classmethod
    def from_env(cls) -> ServerConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise SeedsearchError(
                f"{CONFIG_ENV} is not set: start the server with seedsearch serve"
            )
        return cls(**json.loads(raw))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The warning for a server others can reach without a key; None when fine."""
    if is_loopback(host) or api_key:
        return None
    return (
        f"serving on {host} without an API key: anyone who can reach this machine can "
        f"search the index; set --api-key KEY or {API_KEY_ENV}"
    )


# ---------------------------------------------------------------- errors


def _status_of(exc: SeedsearchError) -> int:
    if isinstance(exc, adapter.NotFoundError):
        return 404
    if isinstance(exc, QueryError):
        return 400
    if isinstance(
        exc, NoIndexError | IndexMissingError | IndexCorruptError | SettingsMismatchError
    ):
        return 503
    return 400


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path in ("/healthz", "/openapi.json"))


def _error(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
    if _wants_html(request):
        titles = {400: "Ungültige Anfrage", 401: "Zugang verweigert", 404: "Nicht gefunden"}
        title = titles.get(status, "Fehler")
        return HTMLResponse(webpage.message_page(title, message), status, headers=headers)
    return JSONResponse({"error": message}, status, headers=headers)


_HTTP_MESSAGES = {
    404: "no such page: see /openapi.json for the API",
    405: "method not allowed: the API answers GET requests",
}


async def _http_error(request: Request, exc: HTTPException) -> Response:
    message = _HTTP_MESSAGES.get(exc.status_code) or str(exc.detail)
    return _error(request, exc.status_code, message, getattr(exc, "headers", None))


async def _seedsearch_error(request: Request, exc: SeedsearchError) -> Response:
    return _error(request, _status_of(exc), str(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s", request.url.path, exc_info=exc)
    return _error(request, 500, "internal error: the server log has the details")


# ------------------------------------------------------------ middleware


class Guard:
    """Request limits and the API key, before any routing (pure ASGI)."""

    def __init__(self, app, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key
        self.cookie = _cookie_value(api_key) if api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        problem = self._check(scope)
        if problem is None:
            return await self.app(scope, receive, send)
        status, message = problem
        request = Request(scope)
        if status == 401 and _wants_html(request):
            response: Response = HTMLResponse(webpage.login_page(), 401)
        else:
            response = _error(request, status, message)
        await response(scope, receive, send)

    def _check(self, scope) -> tuple[int, str] | None:
        if len(scope.get("query_string", b"")) > MAX_QUERY_STRING:
            return 414, f"the query string is longer than {MAX_QUERY_STRING} bytes"
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY or b"transfer-encoding" in headers:
            return 413, f"the request body is larger than {MAX_BODY} bytes"
        if self.api_key is None:
            return None
        path = scope.get("path", "")
        if path in ("/healthz", "/openapi.json", "/anmelden"):
            return None
        given = headers.get(API_KEY_HEADER.lower().encode(), b"")
        auth = headers.get(b"authorization", b"")
        if auth.lower().startswith(b"bearer "):
            given = given or auth[7:].strip()
        if given and hmac.compare_digest(given, self.api_key.encode()):
            return None
        if not path.startswith("/api/") and self._cookie_ok(headers.get(b"cookie", b"")):
            return None
        return 401, f"missing or wrong API key: send it in the {API_KEY_HEADER} header"

    def _cookie_ok(self, raw: bytes) -> bool:
        for part in raw.decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and self.cookie and hmac.compare_digest(value, self.cookie):
                return True
        return False


def _cookie_value(api_key: str) -> str:
    """The page's cookie: derived from the key, not the key itself."""
    return hmac.new(api_key.encode(), b"seedsearch-page", hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ app


def create_app(config: ServerConfig, live: LiveEngine | None = None) -> Starlette:
    """The ASGI app for ``config``; ``live`` follows the index (started with the app)."""
    live = live or LiveEngine(
        config.index_dir,
        opener=lambda d: _open(d, config),
        interval=config.interval,
    )

    def served(fn: Callable) -> Any:
        return live.run(fn)

    def api_search(request: Request) -> Response:
        started = time.perf_counter()
        req = adapter.SearchRequest.from_params(request.query_params)

        def answer(engine):
            return adapter.run_search(engine, req), engine.manifest.generation

        result, generation = served(answer)
        body = {
            "query": result["query"],
            "took_ms": round((time.perf_counter() - started) * 1000, 2),
            "total": result["total"],
            "offset": result["offset"],
            "k": req.k,
            "generation": generation,
            "hits": result["hits"],
            "notices": result.get("notices", []),
            "corrections": result.get("corrections", []),
        }
        return JSONResponse(body, headers={"X-Seedsearch-Generation": str(generation)})

    def api_article(request: Request) -> Response:
        ident = request.path_params["ident"]
        return JSONResponse(served(lambda e: adapter.read_article(e, ident)))

    def api_status(request: Request) -> Response:
        from search.engine import index_status

        data = index_status(config.index_dir, config.seeds_dir).to_dict()
        engine = live.engine
        data["served_generation"] = None if engine is None else engine.manifest.generation
        return JSONResponse(data)

    def healthz(request: Request) -> Response:
        engine = live.engine
        if engine is None:
            return JSONResponse(
                {"status": "no index", "error": live.last_error or "no index yet"}, 503
            )
        return JSONResponse(
            {"status": "ok", "generation": engine.manifest.generation, "passages": len(engine)}
        )

    def openapi(request: Request) -> Response:
        return JSONResponse(openapi_schema())

    def page(request: Request) -> Response:
        params = _page_params(request)
        try:
            facets = served(adapter.facets)
        except NoIndexError as exc:
            return HTMLResponse(webpage.message_page("Noch kein Index", str(exc)), 503)
        if not str(params.get("q") or "").strip():
            return HTMLResponse(webpage.search_page(params, facets))
        try:
            req = adapter.SearchRequest.from_params(request.query_params)

            result = served(lambda engine: adapter.run_search(engine, req))
        except QueryError as exc:
            return HTMLResponse(webpage.search_page(params, facets, error=str(exc)), 400)
        return HTMLResponse(webpage.search_page(params, facets, result))

    def article(request: Request) -> Response:
        ident = request.query_params.get("passage") or request.path_params["ident"]
        if not ident.startswith(request.path_params["ident"]):
            ident = request.path_params["ident"]
        data = served(lambda e: adapter.read_article(e, ident))
        return HTMLResponse(webpage.article_page(data, request.query_params.get("q")))

    async def login(request: Request) -> Response:
        if config.api_key is None:
            return RedirectResponse("/", 303)
        if request.method == "GET":
            return HTMLResponse(webpage.login_page())
        body = (await request.body()).decode("utf-8", "replace")
        key = (parse_qs(body).get("key") or [""])[0]
        if not hmac.compare_digest(key.encode(), config.api_key.encode()):
            return HTMLResponse(webpage.login_page("Der Schlüssel stimmt nicht."), 401)
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, _cookie_value(config.api_key), httponly=True, samesite="strict")
        return response

    @asynccontextmanager
    async def lifespan(app):
        live.start()
        if config.warm and live.engine is not None:
            try:
                # the first query should not pay the model load and warm-up
                live.engine.search("Wer liefert Waffen?", k=1)
            except SeedsearchError as exc:
                log.warning("%s", exc)
        try:
            yield
        finally:
            live.stop()

    routes = [
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/articles/{ident:path}", article, methods=["GET", "HEAD"]),
        Route("/anmelden", login, methods=["GET", "POST"]),
        Route("/api/search", api_search, methods=["GET", "HEAD"]),
        Route("/api/articles/{ident:path}", api_article, methods=["GET", "HEAD"]),
        Route("/api/status", api_status, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/openapi.json", openapi, methods=["GET", "HEAD"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: _http_error,
            SeedsearchError: _seedsearch_error,
            Exception: _unexpected,
        },
    )
    app.state.live = live
    app.state.config = config
    app.add_middleware(Guard, api_key=config.api_key)
    return app


def _open(index_dir: Path, config: ServerConfig):
    from search.engine import SearchEngine

    return SearchEngine.open(index_dir, model=config.model)


def _page_params(request: Request) -> dict[str, object]:
    qp = request.query_params
    out: dict[str, object] = {
        key: qp.get(key) for key in ("q", "mode", "sort", "since", "until", "k", "offset", "typos")
    }
    for key in ("source", "folder", "agency"):
        out[key] = [v for v in qp.getlist(key) if v.strip()]
    return out


def app_from_env() -> Starlette:
    """The app factory for ``uvicorn --factory`` (one per worker process)."""
    return create_app(ServerConfig.from_env())


# --------------------------------------------------------------- OpenAPI


def openapi_schema() -> dict:
    """The API's OpenAPI 3.1 description (served at /openapi.json)."""

    def param(name: str, schema: dict, text: str, many: bool = False) -> dict:
        p = {"name": name, "in": "query", "required": False, "description": text}
        p["schema"] = {"type": "array", "items": schema} if many else schema
        if many:
            p["explode"] = True
        return p

    error = {
        "description": "a clear one-line message",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    hit_keys = ["rank", "id", "doc", "paragraph", "part", "title", "text", "score", "bm25"]
    hit_keys += ["bm25_rank", "vector", "vector_rank", "date", "source", "url", "author"]
    hit_keys += ["agency", "folder", "duplicates", "highlights"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "seedsearch",
            "version": "1",
            "description": "Hybrid (BM25 + vector) search over German news articles. "
            f"With an API key set, every /api request needs the {API_KEY_HEADER} header.",
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                },
                "Hit": {
                    "type": "object",
                    "description": "the keys of `seedsearch search --json` (metadata keys "
                    "with the archive index)",
                    "properties": {k: {} for k in hit_keys},
                },
            },
        },
        "security": [{}, {"apiKey": []}],
        "paths": {
            "/api/search": {
                "get": {
                    "summary": "Search: the best passages for a question or some words",
                    "parameters": [
                        {
                            "name": "q",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "maxLength": adapter.API_MAX_QUERY_CHARS},
                            "description": "the query, e.g. Wer liefert Waffen?",
                        },
                        param(
                            "k",
                            {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": adapter.API_MAX_K,
                                "default": 10,
                            },
                            "hits per page",
                        ),
                        param(
                            "offset",
                            {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": adapter.API_MAX_OFFSET,
                                "default": 0,
                            },
                            "hits to skip (pagination)",
                        ),
                        param("mode", {"enum": ["hybrid", "bm25", "vector"]}, "retrieval"),
                        param(
                            "alpha",
                            {"type": "number", "minimum": 0, "maximum": 1},
                            "BM25 share in hybrid fusion",
                        ),
                        param("fusion", {"enum": ["minmax", "rrf"]}, "hybrid fusion"),
                        param("sort", {"enum": list(adapter.SORTS)}, "ranking or newest first"),
                        param(
                            "typos",
                            {"type": "boolean", "default": True},
                            "correct mistyped words against the index's words",
                        ),
                        param("since", {"type": "string", "format": "date"}, "from this day"),
                        param("until", {"type": "string", "format": "date"}, "up to this day"),
                        param("source", {"type": "string"}, "only these sources", many=True),
                        param("agency", {"type": "string"}, "only these agencies", many=True),
                        param("folder", {"type": "string"}, "only these folders", many=True),
                    ],
                    "responses": {
                        "200": {
                            "description": "the hits, best first",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "query": {"type": "string"},
                                            "took_ms": {"type": "number"},
                                            "total": {"type": "integer"},
                                            "offset": {"type": "integer"},
                                            "k": {"type": "integer"},
                                            "generation": {"type": "integer"},
                                            "hits": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Hit"},
                                            },
                                            "notices": {"type": "array"},
                                            "corrections": {"type": "array"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": error,
                        "401": error,
                        "503": error,
                    },
                }
            },
            "/api/articles/{id}": {
                "get": {
                    "summary": "An article with all its passages (a passage id marks it)",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "a hit's doc, or its id (URL-encode # as %23)",
                        }
                    ],
                    "responses": {"200": {"description": "the article"}, "404": error},
                }
            },
            "/api/status": {
                "get": {
                    "summary": "What is indexed (the data of `seedsearch status --json`)",
                    "responses": {"200": {"description": "status"}, "503": error},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "200 while an index is served (no API key needed)",
                    "security": [{}],
                    "responses": {"200": {"description": "ok"}, "503": error},
                }
            },
        },
    }


# ------------------------------------------------------------ in a thread


@contextlib.contextmanager
def serving(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread (port 0: a free one) and yield its base URL;
    for tests, benchmarks and the screenshot. Stops the server on exit."""
    import threading

    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="seedsearch-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SeedsearchError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
