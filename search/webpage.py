"""The German search page and article view: server-rendered HTML, no JavaScript.

Pure functions from data to HTML text. Every text that comes from seeds or from a
request goes through :func:`esc` (or :func:`highlight`, which escapes too), so a
seed or a query containing ``<script>`` is shown as text, never run.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, urlencode

from indexer.analysis import analyze, word_spans

SNIPPET_CHARS = 320

MODES = (("hybrid", "Hybrid (Stichwörter und Bedeutung)"), ("bm25", "Stichwörter (BM25)"))
MODES += (("vector", "Bedeutung (Vektoren)"),)
SORTS = (("relevance", "Relevanz"), ("date", "Datum, neueste zuerst"))

_CSS = """
:root{--fg:#1b1b1b;--muted:#555;--accent:#0b57d0;--bg:#fff;--mark:#ffe066;--line:#d0d0d0}
*{box-sizing:border-box}
body{font:17px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:62rem;padding:0 1rem 3rem}
a{color:var(--accent)}
:focus-visible{outline:3px solid #f5a623;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
header{display:flex;align-items:baseline;gap:1rem;border-bottom:1px solid var(--line)}
header h1{font-size:1.4rem;margin:.8rem 0}header h1 a{color:inherit;text-decoration:none}
form.search{margin:1rem 0;display:grid;gap:.6rem}
.row{display:flex;flex-wrap:wrap;gap:.8rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.9rem;color:var(--muted);gap:.2rem}
input,select,button{font:inherit;padding:.35rem .5rem;border:1px solid #888;border-radius:4px}
input[type=search]{flex:1;min-width:16rem;font-size:1.1rem}
.q{flex:1}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
fieldset{border:1px solid var(--line);border-radius:6px;padding:.5rem .8rem}
legend{font-size:.9rem;color:var(--muted)}
.summary{color:var(--muted)}
ol.hits{list-style:none;padding:0}
ol.hits>li{border-top:1px solid var(--line);padding:.8rem 0}
.hit h2{font-size:1.1rem;margin:0 0 .2rem}
.meta,.evidence{font-size:.9rem;color:var(--muted);margin:.2rem 0}
.evidence span{margin-right:1rem}
mark{background:var(--mark);color:inherit;padding:0 .1em}
.notice{background:#eef4ff;border-left:4px solid var(--accent);padding:.4rem .8rem}
.error{background:#fdecea;border-left:4px solid #c62828;padding:.4rem .8rem}
nav.pages{display:flex;gap:1rem;margin-top:1rem}
article p.marked{background:#fff8d6;border-left:4px solid #f5a623;padding:.3rem .6rem}
footer{margin-top:2rem;font-size:.85rem;color:var(--muted)}
"""


def esc(value: object) -> str:
    """HTML-escaped text (quotes too: safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def query_terms(query: str) -> frozenset[str]:
    """The analysed terms of a query: a word of a passage is highlighted when it
    shares one (the same German analysis as the keyword index)."""
    return frozenset(analyze(query or ""))


def match_spans(text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` that share a term with ``terms``."""
    if not terms:
        return []
    return [(a, b) for a, b, word_terms in word_spans(text) if terms.intersection(word_terms)]


def marked(text: str, spans: Sequence[Sequence[int]]) -> str:
    """``text`` escaped, with the character ``spans`` in ``<mark>``."""
    out: list[str] = []
    last = 0
    for start, end in sorted((int(a), int(b)) for a, b in spans):
        if start < last or end > len(text):
            continue
        out.append(esc(text[last:start]))
        out.append(f"<mark>{esc(text[start:end])}</mark>")
        last = end
    out.append(esc(text[last:]))
    return "".join(out)


def highlight(text: str, terms: frozenset[str]) -> str:
    """``text`` escaped, with words matching ``terms`` in ``<mark>``."""
    return marked(text, match_spans(text, terms))


def snippet(text: str, spans: Sequence[Sequence[int]], width: int = SNIPPET_CHARS) -> str:
    """The passage around its first highlighted word (cut at words), highlighted."""
    spans = sorted((int(a), int(b)) for a, b in spans)
    start = 0
    if spans and spans[0][0] > width // 3:
        start = text.rfind(" ", 0, spans[0][0] - width // 4) + 1
    end = min(len(text), start + width)
    if end < len(text):
        cut = text.rfind(" ", start, end)
        end = cut if cut > start else end
    inside = [(a - start, b - start) for a, b in spans if a >= start and b <= end]
    body = marked(text[start:end], inside)
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def german_number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def german_date(value: str | None) -> str:
    """``2024-06-18`` (or a date-time) as ``18.06.2024``; other text as it is."""
    if not value:
        return ""
    day = value[:10]
    parts = day.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return f"{parts[2]}.{parts[1]}.{parts[0]}"
    return value


def article_href(doc: str, passage: str | None = None, query: str | None = None) -> str:
    """The article view's URL; the passage is marked and scrolled to."""
    params = {k: v for k, v in (("passage", passage), ("q", query)) if v}
    url = "/articles/" + quote(doc, safe="")
    if params:
        url += "?" + urlencode(params)
    if passage:
        url += "#" + passage_anchor(passage)
    return url


def passage_anchor(pid: str) -> str:
    """An HTML id for a passage: ``p-`` and its paragraph number (``p-3``, ``p-3-2``)."""
    tail = pid.rsplit("#", 1)[-1]
    return "p-" + "".join(c if c.isalnum() else "-" for c in tail)


def safe_url(url: str | None) -> str | None:
    """Only http(s) links are shown as links (no ``javascript:`` from a seed)."""
    if url and url.strip().lower().startswith(("http://", "https://")):
        return url.strip()
    return None


def _layout(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="de">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        '<a class="skip" href="#inhalt">Zum Inhalt springen</a>\n'
        '<header><h1><a href="/">seedsearch</a></h1>'
        "<span>Suche im Nachrichtenarchiv</span></header>\n"
        f'<main id="inhalt">\n{body}\n</main>\n'
        '<footer>API: <a href="/api/search">/api/search</a> · Beschreibung (OpenAPI): '
        '<a href="/openapi.json">/openapi.json</a></footer>\n'
        "</body>\n</html>\n"
    )


def _options(choices: Iterable[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(label)}</option>'
        for v, label in choices
    )


def _multi(name: str, label: str, values: Sequence[str], chosen: Sequence[str]) -> str:
    """A filter: a select of the index's values, or a text field when it has none."""
    ident = f"f-{name}"
    if values:
        opts = '<option value="">alle</option>' + _options(
            ((v, v) for v in values), chosen[0] if chosen else ""
        )
        extra = "".join(
            f'<input type="hidden" name="{esc(name)}" value="{esc(v)}">' for v in chosen[1:]
        )
        return (
            f'<label for="{ident}">{esc(label)}'
            f'<select id="{ident}" name="{esc(name)}">{opts}</select></label>{extra}'
        )
    return (
        f'<label for="{ident}">{esc(label)}<input id="{ident}" name="{esc(name)}" '
        f'value="{esc(chosen[0] if chosen else "")}"></label>'
    )


def search_form(params: Mapping[str, object], facets: Mapping[str, Sequence[str]]) -> str:
    q = str(params.get("q") or "")
    mode = str(params.get("mode") or "hybrid")
    sort = str(params.get("sort") or "relevance")
    k = str(params.get("k") or 10)
    return (
        '<form class="search" method="get" action="/" role="search">\n'
        '<div class="row"><label class="q" for="q">Suchbegriffe oder Frage'
        f'<input type="search" id="q" name="q" value="{esc(q)}" maxlength="2000" '
        'placeholder="z. B. Wer liefert Waffen?" autofocus></label>'
        "<button type=submit>Suchen</button></div>\n"
        "<fieldset><legend>Filter</legend><div class=row>"
        f'<label for="f-since">Von (Datum)<input type="date" id="f-since" name="since" '
        f'value="{esc(params.get("since") or "")}"></label>'
        f'<label for="f-until">Bis (Datum)<input type="date" id="f-until" name="until" '
        f'value="{esc(params.get("until") or "")}"></label>'
        + _multi("source", "Quelle", facets.get("sources", ()), params.get("source") or ())
        + _multi("folder", "Ordner", facets.get("folders", ()), params.get("folder") or ())
        + (
            _multi("agency", "Agentur", facets["agencies"], params.get("agency") or ())
            if facets.get("agencies")
            else ""
        )
        + f'<label for="f-mode">Suchart<select id="f-mode" name="mode">'
        f"{_options(MODES, mode)}</select></label>"
        f'<label for="f-sort">Sortierung<select id="f-sort" name="sort">'
        f"{_options(SORTS, sort)}</select></label>"
        f'<input type="hidden" name="k" value="{esc(k)}">'
        + (
            '<input type="hidden" name="typos" value="false">'
            if str(params.get("typos") or "").lower() in ("false", "0", "no", "off")
            else ""
        )
        + "</div></fieldset>\n</form>"
    )


def _evidence(hit: Mapping) -> str:
    def one(name: str, score, rank, digits: int) -> str:
        if score is None:
            return f"<span>{name}: –</span>"
        return f"<span>{name}: {german_number(score, digits)} (Rang {esc(rank)})</span>"

    return (
        '<p class="evidence">'
        f"<span>Wertung: {german_number(hit['score'], 3)}</span>"
        + one("BM25", hit.get("bm25"), hit.get("bm25_rank"), 2)
        + one("Vektor", hit.get("vector"), hit.get("vector_rank"), 3)
        + "</p>"
    )


def _hit(hit: Mapping, terms: frozenset[str], query: str) -> str:
    """One result: the engine's highlights when the hit has them, else the query's."""
    meta = hit
    spans = hit.get("highlights")
    if spans is None:
        spans = match_spans(hit["text"], terms)
    bits = []
    if meta.get("date"):
        bits.append(f'<time datetime="{esc(meta["date"])}">{esc(german_date(meta["date"]))}</time>')
    for key in ("source", "agency", "author"):
        if meta.get(key):
            bits.append(esc(meta[key]))
    bits.append(f"Absatz {esc(hit['paragraph'])}")
    href = article_href(hit["doc"], hit["id"], query)
    return (
        '<li class="hit">'
        f'<h2><a href="{esc(href)}">{esc(hit.get("title") or hit["doc"])}</a></h2>'
        f'<p class="meta">{" · ".join(bits)}</p>'
        f'<p class="snippet">{snippet(hit["text"], spans)}</p>'
        f"{_evidence(hit)}"
        f"{_copies(hit, query)}"
        "</li>"
    )


def _copies(hit: Mapping, query: str) -> str:
    """Exact copies of the passage elsewhere (an agency text in several outlets)."""
    copies = hit.get("duplicates") or ()
    if not copies:
        return ""
    links = ", ".join(
        f'<a href="{esc(article_href(c.rsplit("#", 1)[0], c, query))}">{esc(c)}</a>' for c in copies
    )
    return f'<p class="meta">Gleicher Text auch in: {links}</p>'


def _page_link(params: Mapping[str, object], offset: int, label: str, rel: str) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if key == "offset" or value in (None, "", ()):
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            pairs.append((key, str(v)))
    pairs.append(("offset", str(offset)))
    return f'<a rel="{rel}" href="/?{esc(urlencode(pairs))}">{esc(label)}</a>'


def search_page(
    params: Mapping[str, object],
    facets: Mapping[str, Sequence[str]],
    result: Mapping | None = None,
    error: str | None = None,
) -> str:
    """The page at ``/``: the form, and the results of ``result`` (an API answer)."""
    q = str(params.get("q") or "")
    parts = [search_form(params, facets)]
    if error:
        parts.append(f'<p class="error" role="alert">Fehler: {esc(error)}</p>')
    if result is not None:
        terms = query_terms(q)
        hits = result["hits"]
        total, offset = int(result.get("total") or 0), int(result.get("offset") or 0)
        k = int(params.get("k") or 10)
        for notice in result.get("notices") or ():
            parts.append(f'<p class="notice">Hinweis: {esc(notice)}</p>')
        corrections = result.get("corrections") or ()
        if corrections:
            from search.typos import Correction, apply_corrections

            searched = apply_corrections(q, [Correction(c["from"], c["to"]) for c in corrections])
            exact = dict(params, typos="false", offset=None)
            parts.append(
                f'<p class="notice">Suche nach: <strong>{esc(searched)}</strong> · '
                f"{_page_link(exact, 0, f'Stattdessen genau „{q}“ suchen', 'nofollow')}</p>"
            )
        parts.append('<section aria-labelledby="treffer">')
        if hits:
            summary = f"Treffer {offset + 1}–{offset + len(hits)} von {total} für „{esc(q)}“"
        else:
            summary = f"Keine Treffer für „{esc(q)}“"
        parts.append(f'<h2 id="treffer" class="summary" aria-live="polite">{summary}</h2>')
        if hits:
            parts.append(f'<ol class="hits" start="{offset + 1}">')
            parts += [_hit(h, terms, q) for h in hits]
            parts.append("</ol>")
        nav = []
        if offset > 0:
            nav.append(_page_link(params, max(0, offset - k), "← Vorherige Seite", "prev"))
        if offset + len(hits) < total:
            nav.append(_page_link(params, offset + k, "Nächste Seite →", "next"))
        if nav:
            parts.append(f'<nav class="pages" aria-label="Seiten">{"".join(nav)}</nav>')
        parts.append("</section>")
    title = f"{q} – seedsearch" if q else "seedsearch – Suche"
    return _layout(title, "\n".join(parts))


def article_page(article: Mapping, query: str | None = None) -> str:
    """The article view: metadata and every passage, the marked one highlighted."""
    terms = query_terms(query or "")
    marked = article.get("marked")
    meta = []
    labels = (("date", "Datum"), ("source", "Quelle"), ("author", "Autor"))
    labels += (("agency", "Agentur"), ("folder", "Ordner"), ("file", "Datei"))
    for key, label in labels:
        value = article.get(key)
        if value:
            shown = german_date(value) if key == "date" else value
            meta.append(f"<dt>{label}</dt><dd>{esc(shown)}</dd>")
    url = safe_url(article.get("url"))
    if url:
        meta.append(f'<dt>Link</dt><dd><a href="{esc(url)}" rel="noopener">{esc(url)}</a></dd>')
    paragraphs = []
    for p in article.get("passages") or ():
        is_marked = p["id"] == marked
        attrs = f' id="{esc(passage_anchor(p["id"]))}"'
        if is_marked:
            attrs += ' class="marked" aria-current="true" tabindex="-1"'
        label = '<span class="skip">Gefundener Absatz: </span>' if is_marked else ""
        paragraphs.append(f"<p{attrs}>{label}{highlight(p['text'], terms)}</p>")
    back = f'<p><a href="/?{esc(urlencode({"q": query}))}">← Zurück zu den Treffern</a></p>'
    body = (
        (back if query else '<p><a href="/">← Zur Suche</a></p>')
        + "<article>"
        + f"<h2>{esc(article.get('title') or article.get('doc'))}</h2>"
        + (f'<dl class="meta">{"".join(meta)}</dl>' if meta else "")
        + "".join(paragraphs)
        + "</article>"
    )
    return _layout(f"{article.get('title') or article.get('doc')} – seedsearch", body)


def message_page(title: str, message: str) -> str:
    """An error page (unknown article, no index yet ...)."""
    return _layout(
        f"{title} – seedsearch",
        f'<h2>{esc(title)}</h2><p class="error" role="alert">{esc(message)}</p>'
        '<p><a href="/">Zur Suche</a></p>',
    )


def login_page(error: str | None = None) -> str:
    """Asks for the API key once (kept in a cookie), nothing else."""
    err = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    return _layout(
        "Anmelden – seedsearch",
        "<h2>Zugangsschlüssel</h2>"
        "<p>Dieser Server verlangt einen Zugangsschlüssel (API-Schlüssel).</p>"
        f"{err}"
        '<form method="post" action="/anmelden" class="search"><div class="row">'
        '<label class="q" for="key">Schlüssel<input type="password" id="key" name="key" '
        'autocomplete="current-password" required autofocus></label>'
        "<button type=submit>Anmelden</button></div></form>",
    )
