"""Reading seed articles: files -> Articles (with metadata) -> Passages.

Parsing and splitting are plain functions on strings (``parse_text``,
``parse_jsonl``, ``parse_byline``, ``split_front_matter``, ``normalize_date``,
``split_passages``); ``list_seed_files``/``scan_seeds`` alone touch the disk.

Metadata of an article, and where it comes from (first source that has a field wins,
field by field):

1. a YAML front-matter block at the top of a ``.md``/``.txt`` file
   (``---`` ... ``---`` or ``...``; keys ``title date source url author agency``,
   case-insensitive; other keys are ignored);
2. the fields of a ``.jsonl`` record (``title date source url author agency``);
3. the byline, a last line such as ``(dr / afp)`` (author and agencies only);
4. for the title: a Markdown ``# heading``, else the file name (or record id).

``folder`` is the folder of the file relative to the seeds folder (None at the top).
Dates are ISO 8601 (see ``normalize_date``); a malformed one is a warning and the
article is indexed without a date. Index folders inside the seeds folder are never
read (see ``looks_like_index``).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as _date
from datetime import datetime, timezone
from datetime import time as _time
from pathlib import Path

import yaml

from indexer.errors import SeedsearchError
from indexer.store.layout import looks_like_index

SEED_SUFFIXES = (".txt", ".md", ".jsonl")
_SUFFIXES_TEXT = ".txt, .md and .jsonl"

#: A paragraph longer than this many words is split at sentence boundaries: USE
#: and MiniLM truncate or blur long inputs (about 128-256 word pieces).
MAX_PASSAGE_WORDS = 200

# "(dr / afp)", "(APA)", "(dpa, AFP)": a short parenthesised closing line (see parse_byline).
_BYLINE_RE = re.compile(r"^\(\s*([^()\n]{1,60}?)\s*\)$")
# One word of a byline name: letters, with inner or final . ' ’ - ("dpa-AFX", "stu.").
_BYLINE_WORD_RE = re.compile(r"^[^\W\d_](?:[^\W\d_]|[.'’-])*$")
# An unknown agency or author code: one short word in one case ("dr", "xy", "KAP").
_BYLINE_CODE_RE = re.compile(r"^(?:[a-zäöüß]{1,6}|[A-ZÄÖÜ]{1,6})$")
#: News agencies recognised in a byline (compared case-insensitively, kept as written).
KNOWN_AGENCIES = frozenset(
    """dpa afp apa ap reuters kna epd sid dts ddp dapd afx dpa-afx awp sda keystone-sda ats
    ansa efe kap kathpress ots apa-ots xinhua tass itar-tass interfax ria bloomberg upi pti
    ips idea kipa anp belga pap ctk mti hina tanjug yonhap kyodo jiji""".split()  # noqa: SIM905
)
_BLANK_LINE_RE = re.compile(r"\n[ \t\r\f\v]*\n")
# Sentence end: . ! ? (optionally followed by a closing quote/bracket), whitespace,
# then something that starts a sentence. "Nr. 5" or "z. B. so" stay together
# because a lower-case letter or digit does not start a sentence.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"'“”»«)]*\s+(?=[\"'„“»«(]?[A-ZÄÖÜ])")
_ABBREVIATIONS = frozenset(
    "dr prof nr st bzw ca vgl hl mio mrd abs art str sog u.a z.b".split()  # noqa: SIM905
)
_MD_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Passage:
    """One searchable unit: a paragraph, or a part of a long paragraph."""

    id: str  # "<doc>#<paragraph>" or "<doc>#<paragraph>.<part>"
    doc: str
    paragraph: int  # 1-based within the article
    part: int  # 0 when the paragraph is not split, else 1-based
    text: str
    title: str


@dataclass(frozen=True)
class Article:
    """An article as read from the seeds folder, with its metadata.

    ``agencies`` are the agencies as written (``("dpa", "AFP")``), ``agency`` their
    display string (``"dpa, AFP"``); either one fills the other. ``date`` is a
    canonical ISO 8601 date or date-time (``normalize_date``); ``day`` and
    ``date_key`` derive sortable keys from it.
    """

    doc: str  # path relative to the seeds dir; "<file>:<id>" for a .jsonl record
    title: str
    paragraphs: tuple[str, ...]
    author: str | None = None
    agency: str | None = None
    date: str | None = None
    url: str | None = None
    source: str | None = None
    content_hash: str = ""
    agencies: tuple[str, ...] = ()
    folder: str | None = None  # folder relative to the seeds dir; None at the top level

    def __post_init__(self) -> None:
        if self.date is not None and (
            not isinstance(self.date, str) or normalize_date(self.date) != self.date
        ):
            raise SeedsearchError(
                f"Article {self.doc!r}: date {self.date!r} is not a canonical ISO 8601 "
                f"date; pass normalize_date(value) ({DATE_FORMATS})"
            )
        if not isinstance(self.agencies, tuple):
            object.__setattr__(self, "agencies", tuple(self.agencies))
        if self.agencies and self.agency is None:
            object.__setattr__(self, "agency", ", ".join(self.agencies))
        elif self.agency is not None and not self.agencies:
            object.__setattr__(self, "agencies", split_agencies(self.agency))

    @property
    def day(self) -> str | None:
        """The calendar day as written (``YYYY-MM-DD``), for day filters."""
        return date_day(self.date)

    @property
    def date_key(self) -> str | None:
        """A key that sorts chronologically (see ``date_key``)."""
        return date_key(self.date)


@dataclass(frozen=True)
class Metadata:
    """Metadata of one source (front matter, a .jsonl record, a byline)."""

    title: str | None = None
    date: str | None = None
    source: str | None = None
    url: str | None = None
    author: str | None = None
    agencies: tuple[str, ...] = ()


def merge_metadata(*layers: Metadata) -> Metadata:
    """Field by field, the first layer that has a value wins (highest precedence first)."""

    def first(name: str):
        return next((getattr(m, name) for m in layers if getattr(m, name)), None)

    return Metadata(
        title=first("title"),
        date=first("date"),
        source=first("source"),
        url=first("url"),
        author=first("author"),
        agencies=first("agencies") or (),
    )


@dataclass(frozen=True)
class SeedFile:
    """A seed file with its articles, or the reason it was skipped."""

    path: str  # relative to the seeds dir, '/'-separated
    file_hash: str
    articles: tuple[Article, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _article_hash(paragraphs: Sequence[str], meta: Metadata) -> str:
    """Hash of what an article's content says: its paragraphs and the metadata read
    from it (front matter, byline, .jsonl fields), so an edit of either makes it
    'changed'. Not the path, nor what follows from it (a title from the file name,
    the folder): another path is another article."""
    parts = [list(paragraphs), meta.title, meta.date, meta.source, meta.url, meta.author]
    parts.append(list(meta.agencies))
    return _hash(json.dumps(parts, ensure_ascii=False).encode("utf-8"))


def decode(data: bytes, name: str) -> tuple[str | None, list[str]]:
    """Bytes -> NFC text. UTF-8 (BOM allowed), else cp1252 with a warning.

    Returns ``(None, [warning])`` for binary (NUL bytes) or empty content.
    """
    if not data.strip():
        return None, [f"{name}: empty file, skipped"]
    if b"\x00" in data[:65536] or b"\x00" in data:
        return None, [f"{name}: binary file (NUL bytes), skipped"]
    warnings: list[str] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
        warnings.append(f"{name}: not valid UTF-8, decoded as cp1252")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    # Other control characters are noise in a news text; keep tabs and newlines.
    text = "".join(c if c in "\n\t" or unicodedata.category(c) != "Cc" else " " for c in text)
    return text, warnings


def _clean_text(text: str) -> str:
    """NFC text without control characters (tabs and newlines kept) or lone
    surrogates (a JSON ``\\ud800`` escape), which could not be written as UTF-8."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SURROGATE_RE.sub("\ufffd", text)
    text = unicodedata.normalize("NFC", text)
    return "".join(c if c in "\n\t" or unicodedata.category(c) != "Cc" else " " for c in text)


def _clean_field(text: str) -> str:
    """A one-line field (id, title, date ...): like the text, newlines become spaces."""
    return _clean_text(text).replace("\n", " ").replace("\t", " ")


def folder_of(rel: str) -> str | None:
    """The folder of a seed file relative to the seeds folder; None at the top level."""
    return posixpath.dirname(rel) or None


# ----------------------------------------------------------------- dates

#: What ``normalize_date`` accepts, for messages.
DATE_FORMATS = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
_ISO_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?[ \t]*(Z|z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def normalize_date(value: str) -> str | None:
    """The canonical form of an ISO 8601 date or date-time, or None if it is none.

    Accepted: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS[.fff]]`` (``T`` or a space), with
    an optional offset ``Z``, ``+HH:MM``, ``+HHMM`` or ``+HH``. Canonical:
    ``2024-06-17`` or ``2024-06-17T08:30:00[+02:00]``: the offset is kept as given
    (``Z`` becomes ``+00:00``), fractions of a second are dropped, no offset stays
    none. Impossible dates (``2024-02-30``, ``25:00``) are rejected.
    """
    m = _ISO_DATE_RE.fullmatch(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, offset = m.groups()
    try:
        out = _date(int(year), int(month), int(day)).isoformat()
        if hour is None:
            return out
        out += "T" + _time(int(hour), int(minute), int(second or 0)).isoformat()
    except ValueError:
        return None
    if offset:
        if offset in "Zz":
            return out + "+00:00"
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            return None
        out += f"{offset[0]}{hours:02d}:{minutes:02d}"
    return out


def date_day(iso: str | None) -> str | None:
    """The calendar day of a canonical date as written (``YYYY-MM-DD``; no time zone
    conversion), for filters by day."""
    return iso[:10] if iso else None


def date_key(iso: str | None) -> str | None:
    """A string that sorts chronologically: ``YYYY-MM-DD`` for a date, else the
    timestamp in UTC, ``YYYY-MM-DDTHH:MM:SSZ`` (a time without offset is taken as
    UTC). A date sorts before the times of the same day."""
    if not iso:
        return None
    if len(iso) == 10:
        return iso
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _date_or_warning(value: str, where: str, warnings: list[str]) -> str | None:
    iso = normalize_date(value)
    if iso is None:
        shown = value if len(value) <= 40 else value[:40] + "…"
        warnings.append(
            f"{where}: date {shown!r} is not an ISO 8601 date ({DATE_FORMATS}), "
            "article indexed without a date"
        )
    return iso


# ------------------------------------------------------------ front matter

_FRONT_MATTER_KEYS = ("title", "date", "source", "url", "author", "agency")
_YAML_KEY_RE = re.compile(r"[A-Za-z_][\w-]*")
_YAML_KEY_LINE_RE = re.compile(r"[A-Za-z_][\w-]*[ \t]*:(?:[ \t]|$)")
_FENCE_OPEN_RE = re.compile(r"---[ \t]*\n")
_FENCE_CLOSE_RE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


class _FrontMatterLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that keeps dates as written: every source of a date goes
    through ``normalize_date`` (PyYAML would turn ``2024-06-17`` into a ``date``)."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def split_front_matter(text: str) -> tuple[str | None, str]:
    """``(block, rest)`` of a text that starts with a ``---`` line and has a closing
    ``---`` or ``...`` line; ``(None, text)`` otherwise. ``rest`` is a suffix of
    ``text``, so passages stay substrings of the file."""
    if not _FENCE_OPEN_RE.match(text):
        return None, text
    start = text.index("\n") + 1
    close = _FENCE_CLOSE_RE.search(text, start)
    if close is None:
        return None, text
    return text[start : close.start()], text[close.end() :]


def _meta_text(value) -> str | None:
    """A front-matter or .jsonl value as one line of text (a list is joined by ', ')."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, list | tuple):
        items = [_meta_text(v) for v in value if not isinstance(v, list | tuple)]
        return ", ".join(i for i in items if i) or None
    return _clean_field(str(value)).strip() or None


def split_agencies(value) -> tuple[str, ...]:
    """``"dpa, AFP"``, ``"dpa/AFP"`` or ``["dpa", "AFP"]`` -> ``("dpa", "AFP")``."""
    text = _meta_text(value)
    if not text:
        return ()
    return tuple(a.strip() for a in re.split(r"[,;/]", text) if a.strip())


def _fields_to_metadata(
    fields: Mapping, where: str, warnings: list[str], lower_keys: bool = False
) -> Metadata:
    """Metadata from front-matter keys or .jsonl fields; a bad date is a warning."""
    if lower_keys:
        fields = {str(k).lower(): v for k, v in fields.items()}
    date = _meta_text(fields.get("date"))
    return Metadata(
        title=_meta_text(fields.get("title")),
        date=_date_or_warning(date, where, warnings) if date else None,
        source=_meta_text(fields.get("source")),
        url=_meta_text(fields.get("url")),
        author=_meta_text(fields.get("author")),
        agencies=split_agencies(fields.get("agency")),
    )


def parse_front_matter(block: str, name: str) -> tuple[Metadata | None, list[str]]:
    """Metadata of a front-matter block, or ``(None, [])`` if it is no front matter.

    It is front matter when it loads (YAML, safe) as a mapping that has one of the
    known keys or only identifier-like keys (``layout``, ``tags``), and when it does
    not load but starts with a ``key:`` line: then its fields are ignored with a
    warning, and the block is still not indexed as text. Anything else (a ``---``
    rule around a sentence) is text.
    """
    try:
        data = yaml.load(block, Loader=_FrontMatterLoader)  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        first = next((ln for ln in block.split("\n") if ln.strip()), "")
        if not _YAML_KEY_LINE_RE.match(first):
            return None, []
        why = getattr(exc, "problem", None) or getattr(exc, "context", None) or "unreadable"
        mark = getattr(exc, "problem_mark", None)
        at = f" in line {mark.line + 2}" if mark is not None else ""  # +1: the --- line
        return Metadata(), [
            f"{name}: front matter is not valid YAML ({why}{at}); its fields are ignored "
            "(fix the YAML between the --- lines)"
        ]
    if data is None:
        return Metadata(), []
    if not isinstance(data, dict):
        return None, []
    keys = [str(k) for k in data]
    known = any(k.lower() in _FRONT_MATTER_KEYS for k in keys)
    if not known and not all(_YAML_KEY_RE.fullmatch(k) for k in keys):
        return None, []
    warnings: list[str] = []
    return _fields_to_metadata(data, name, warnings, lower_keys=True), warnings


# ----------------------------------------------------------------- bylines


@dataclass(frozen=True)
class Byline:
    """The closing ``(author / agency)`` line of a news text."""

    author: str | None
    agencies: tuple[str, ...]

    @property
    def agency(self) -> str | None:
        return ", ".join(self.agencies) or None


def parse_byline(line: str) -> Byline | None:
    """A byline, or None if ``line`` is not one.

    Recognised (the whole line in parentheses; names separated by ``/ , ;``):
    ``(dpa)``, ``(dpa, AFP)``, ``(dpa/AFP)`` (agencies only), ``(dr / afp)``,
    ``(red / apa)``, ``(Hans Müller / dpa)``, ``(APA, red)`` (authors are the names
    that are not known agencies, see ``KNOWN_AGENCIES``), and ``(ab / xy)`` with an
    unknown agency when both sides are one short code word. Each name has at most
    three words of letters (``.'-`` inside); no digits, no other punctuation. So
    ``(Ende)``, ``(Mehr dazu morgen)``, ``(Foto: dpa)`` or ``(siehe Seite 3)`` are
    text, not bylines.
    """
    m = _BYLINE_RE.match(line.strip())
    if not m:
        return None
    inner = m.group(1)
    if len(inner.split()) > 8:
        return None
    names = [n.strip() for n in re.split(r"[/,;]", inner)]
    for name in names:
        words = name.split()
        if not 1 <= len(words) <= 3 or not all(_BYLINE_WORD_RE.match(w) for w in words):
            return None
    agencies = tuple(n for n in names if n.lower() in KNOWN_AGENCIES)
    authors = [n for n in names if n.lower() not in KNOWN_AGENCIES]
    if agencies:
        return Byline(", ".join(authors) or None, agencies) if len(authors) <= 2 else None
    if len(names) == 2 and inner.count("/") == 1 and all(_BYLINE_CODE_RE.match(n) for n in names):
        return Byline(names[0], (names[1],))
    return None


def split_byline(paragraphs: list[str]) -> tuple[list[str], Byline | None]:
    """Remove a byline from the end: the last paragraph, or the last line of the last
    paragraph (``Der Kauf ...\\n(red / apa)``). A byline that is the whole text stays."""
    if not paragraphs:
        return paragraphs, None
    *lines, last = paragraphs[-1].split("\n")
    byline = parse_byline(last)
    if byline is None:
        return paragraphs, None
    if lines:
        return [*paragraphs[:-1], "\n".join(lines).rstrip()], byline
    if len(paragraphs) < 2:
        return paragraphs, None
    return paragraphs[:-1], byline


# ------------------------------------------------------------- paragraphs


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of a text: blank-line separated if it has blank lines, else one per line."""
    blank_lines = _BLANK_LINE_RE.search(text.strip())
    blocks = _BLANK_LINE_RE.split(text) if blank_lines else text.split("\n")
    return [b.strip() for b in blocks if b.strip()]


def _markdown_blocks(paragraphs: list[str], title: str | None) -> tuple[list[str], str | None]:
    """Headings of a Markdown text: the first ``# heading`` is the title (unless the
    front matter has one: then it is dropped if it repeats it, else kept as text);
    other headings become paragraphs of their own without the ``#``. A heading on
    the first line of a block counts as if a blank line followed it."""
    kept: list[str] = []
    heading_title = None
    for p in paragraphs:
        first, _, rest = p.partition("\n")
        m = _MD_HEADING_RE.match(first)
        if m is None:
            kept.append(p)
            continue
        text = m.group(2).strip()
        is_title = len(m.group(1)) == 1 and heading_title is None and text
        if is_title and (title is None or text.casefold() == title.casefold()):
            heading_title = text
        elif text:
            kept.append(text)
        if rest.strip():
            kept.append(rest.strip())
    return kept, heading_title


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _SENTENCE_END_RE.finditer(text):
        prev = text[start : m.start()].rsplit(None, 1)
        last_word = prev[-1].rstrip(".").lower() if prev else ""
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def split_long(paragraph: str, max_words: int = MAX_PASSAGE_WORDS) -> list[str]:
    """Split a paragraph of more than ``max_words`` words into parts at sentence ends.

    Each part is a substring of the paragraph. A single sentence longer than the limit
    is cut at word boundaries.
    """
    if len(paragraph.split()) <= max_words:
        return [paragraph]
    pieces: list[tuple[int, int]] = []
    for a, b in _sentence_spans(paragraph):
        words = [m.span() for m in re.finditer(r"\S+", paragraph[a:b])]
        for i in range(0, len(words), max_words):
            chunk = words[i : i + max_words]
            pieces.append((a + chunk[0][0], a + chunk[-1][1]))
    parts: list[tuple[int, int]] = []
    count = 0
    for a, b in pieces:
        n = len(paragraph[a:b].split())
        if parts and count + n <= max_words:
            parts[-1] = (parts[-1][0], b)
            count += n
        else:
            parts.append((a, b))
            count = n
    return [paragraph[a:b] for a, b in parts]


def split_passages(article: Article, max_words: int = MAX_PASSAGE_WORDS) -> list[Passage]:
    """Passages of an article with stable ids ``<doc>#<paragraph>[.<part>]``."""
    out: list[Passage] = []
    for p_no, paragraph in enumerate(article.paragraphs, start=1):
        parts = split_long(paragraph, max_words)
        for part_no, text in enumerate(parts, start=1):
            split = len(parts) > 1
            pid = f"{article.doc}#{p_no}.{part_no}" if split else f"{article.doc}#{p_no}"
            out.append(
                Passage(pid, article.doc, p_no, part_no if split else 0, text, article.title)
            )
    return out


def _article(
    doc: str, paragraphs: list[str], meta: Metadata, fallback_title: str, folder: str | None
) -> Article:
    title = meta.title or fallback_title
    return Article(
        doc=doc,
        title=title,
        paragraphs=tuple(paragraphs),
        author=meta.author,
        date=meta.date,
        url=meta.url,
        source=meta.source,
        content_hash=_article_hash(paragraphs, meta),
        agencies=meta.agencies,
        folder=folder,
    )


def parse_text(
    text: str,
    doc: str,
    markdown: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> Article | None:
    """A .txt/.md article (``doc``: its path relative to the seeds folder).

    Title: front matter, else a leading ``# heading`` (Markdown only; in a .txt a
    ``#`` line is text), else the file name. Problems in the front matter (bad YAML,
    a bad date) go to ``on_warning``; the article is still read.
    """
    warnings: list[str] = []
    block, body = split_front_matter(text)
    front = None
    if block is not None:
        front, warnings = parse_front_matter(block, doc)
        if front is None:  # no front matter after all: the block is text
            body = text
    front = front or Metadata()
    paragraphs = split_paragraphs(body)
    heading = None
    if markdown:
        paragraphs, heading = _markdown_blocks(paragraphs, front.title)
    paragraphs, byline = split_byline(paragraphs)
    if on_warning:
        for w in warnings:
            on_warning(w)
    if not paragraphs:
        return None
    from_byline = Metadata(author=byline.author, agencies=byline.agencies) if byline else None
    meta = merge_metadata(front, Metadata(title=heading), from_byline or Metadata())
    return _article(doc, paragraphs, meta, Path(doc).stem, folder_of(doc))


def parse_jsonl(text: str, rel: str) -> tuple[list[Article], list[str]]:
    """A .jsonl corpus: one article per line (``id``, ``title``, ``text``, and optional
    ``date``, ``url``, ``source``, ``author``, ``agency``; the fields win over a byline
    at the end of the text)."""
    articles: list[Article] = []
    warnings: list[str] = []
    seen: set[str] = set()
    folder = folder_of(rel)
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as exc:  # also too deep nesting, huge numbers
            reason = getattr(exc, "msg", None) or type(exc).__name__
            warnings.append(f"{rel}:{line_no}: not valid JSON ({reason}), line skipped")
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            warnings.append(f"{rel}:{line_no}: no 'text' string, line skipped")
            continue
        rid = _clean_field(str(rec.get("id", line_no))).strip() or str(line_no)
        if rid in seen:
            warnings.append(f"{rel}:{line_no}: duplicate id {rid!r}, line skipped")
            continue
        seen.add(rid)
        body = _clean_text(rec["text"])
        paragraphs, byline = split_byline(split_paragraphs(body))
        if not paragraphs:
            warnings.append(f"{rel}:{line_no}: empty text, line skipped")
            continue
        fields = _fields_to_metadata(rec, f"{rel}:{line_no}", warnings)
        from_byline = Metadata(author=byline.author, agencies=byline.agencies) if byline else None
        meta = merge_metadata(fields, from_byline or Metadata())
        articles.append(_article(f"{rel}:{rid}", paragraphs, meta, rid, folder))
    return articles, warnings


# ------------------------------------------------------------ the seeds folder


def check_folders(seeds_dir: str | Path, index_dir: str | Path) -> None:
    """Raise SeedsearchError if the seeds folder is the index folder or inside it
    (the indexer replaces and deletes files there). An index folder inside the seeds
    folder is fine: the loader skips it. Symlinks and relative paths are resolved."""
    seeds, index = Path(seeds_dir).resolve(), Path(index_dir).resolve()
    if seeds == index:
        raise SeedsearchError(
            f"seeds folder {seeds_dir} and index folder {index_dir} are the same folder: "
            "keep the index apart from the articles, e.g. --index index_data"
        )
    if index in seeds.parents:
        raise SeedsearchError(
            f"seeds folder {seeds_dir} is inside the index folder {index_dir}, where "
            "seedsearch replaces and deletes files: move the articles out of it or "
            "pass another --index"
        )


def skipped_files_warning(rels: Sequence[str], shown: int = 3) -> str | None:
    """One warning for the files that are not articles, by type, with the first names:
    ``skipped 3 files that are not articles (.docx 1, .pdf 1, no extension 1: ...)``."""
    if not rels:
        return None
    names = sorted(rels, key=lambda r: (r.lower(), r))
    kinds = Counter(posixpath.splitext(r)[1].lower() or "no extension" for r in names)
    order = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0] == "no extension", kv[0]))
    listed = ", ".join(names[:shown])
    if len(names) > shown:
        listed += f" and {len(names) - shown} more"
    what = (
        "1 file that is not an article"
        if len(names) == 1
        else (f"{len(names)} files that are not articles")
    )
    by_kind = ", ".join(f"{k} {n}" for k, n in order)
    return f"skipped {what} ({by_kind}: {listed}); seedsearch reads {_SUFFIXES_TEXT}"


def _shown_name(rel: str) -> str | None:
    """``rel``, or None with a printable form if it is not valid UTF-8."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return None


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symlink, like os.walk
    except OSError:
        return False


def list_seed_files(
    seeds_dir: Path,
    on_warning: Callable[[str], None] | None = None,
    *,
    exclude: Iterable[str | Path] = (),
) -> list[str]:
    """Relative paths of seed files, sorted.

    Hidden files and folders are ignored; so are index folders: those in ``exclude``
    and any folder that holds a seedsearch index (``looks_like_index``). Symlinks are
    followed only when they stay inside the seeds folder (symlinked folders are not
    entered). Walks with a stack, so folder depth has no limit. To ``on_warning``:
    unreadable folders, file names that are not UTF-8, and one line for all files
    that are not articles. An unreadable ``seeds_dir``, one that is an index, or one
    inside an ``exclude`` folder raises SeedsearchError.
    """
    root = seeds_dir.resolve()
    skip = set()
    for folder in exclude:
        check_folders(seeds_dir, folder)
        skip.add(Path(folder).resolve())
    found: list[str] = []
    others: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = [(e, _entry_is_dir(e)) for e in it]
        except OSError as exc:
            if folder == root:  # else an unreadable seeds folder would empty the index
                raise SeedsearchError(
                    f"cannot read seeds folder {seeds_dir} ({exc.strerror or exc}): "
                    "check that it exists and that you may read it"
                ) from exc
            if on_warning:
                rel = folder.relative_to(root).as_posix()
                on_warning(f"{rel}: cannot read folder ({exc.strerror or exc}), skipped")
            continue
        if looks_like_index(folder.name, {e.name: is_dir for e, is_dir in entries}):
            if folder == root:
                raise SeedsearchError(
                    f"seeds folder {seeds_dir} holds a seedsearch index, not articles: "
                    f"pass --seeds DIR with your articles ({_SUFFIXES_TEXT})"
                )
            continue
        for entry, is_dir in entries:
            name = entry.name
            if name.startswith("."):
                continue
            full = Path(entry.path)
            if is_dir:
                if not entry.is_symlink() and full not in skip:
                    stack.append(full)
                continue
            rel = full.relative_to(root).as_posix()
            if not name.lower().endswith(SEED_SUFFIXES):
                others.append(_shown_name(rel) or rel)
                continue
            shown = _shown_name(rel)
            if shown is not None:
                if on_warning:
                    on_warning(f"{shown}: file name is not valid UTF-8, skipped (rename it)")
                continue
            if entry.is_symlink():
                try:
                    full.resolve(strict=True).relative_to(root)
                except (OSError, ValueError, RuntimeError):
                    continue
            found.append(rel)
    warning = skipped_files_warning(others)
    if warning and on_warning:
        on_warning(warning)
    return sorted(found)


def read_seed_file(seeds_dir: Path, rel: str) -> SeedFile:
    """Read and parse one seed file; problems become warnings, never exceptions."""
    try:
        path = seeds_dir / rel
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            return SeedFile(rel, "", (), (f"{rel}: not a regular file, skipped",))
        data = path.read_bytes()
    except OSError as exc:
        return SeedFile(rel, "", (), (f"{rel}: cannot read ({exc.strerror or exc}), skipped",))
    file_hash = _hash(data)
    text, warnings = decode(data, rel)
    if text is None:
        return SeedFile(rel, file_hash, (), tuple(warnings))
    if rel.lower().endswith(".jsonl"):
        articles, more = parse_jsonl(text, rel)
        return SeedFile(rel, file_hash, tuple(articles), tuple(warnings + more))
    article = parse_text(text, rel, rel.lower().endswith(".md"), warnings.append)
    if article is None:
        warnings.append(f"{rel}: no paragraphs, skipped")
        return SeedFile(rel, file_hash, (), tuple(warnings))
    return SeedFile(rel, file_hash, (article,), tuple(warnings))


def scan_seeds(
    seeds_dir: Path,
    on_warning: Callable[[str], None] | None = None,
    *,
    exclude: Iterable[str | Path] = (),
) -> Iterator[SeedFile]:
    """Every seed file under ``seeds_dir``, parsed, in path order; ``exclude``: index
    folders never to read (the index being written, when it is inside the seeds)."""
    for rel in list_seed_files(seeds_dir, on_warning, exclude=exclude):
        seed = read_seed_file(seeds_dir, rel)
        if on_warning:
            for w in seed.warnings:
                on_warning(w)
        yield seed


def file_hashes(seeds_dir: Path, *, exclude: Iterable[str | Path] = ()) -> dict[str, str]:
    """Content hash of every seed file (for staleness checks without parsing)."""
    out = {}
    for rel in list_seed_files(seeds_dir, exclude=exclude):
        try:
            if stat.S_ISREG((seeds_dir / rel).stat().st_mode):
                out[rel] = _hash((seeds_dir / rel).read_bytes())
        except OSError:
            continue
    return out
