"""Reading seed articles: files -> Articles -> Passages.

Parsing and splitting are plain functions on strings (``parse_text``,
``split_passages``); ``scan_seeds`` alone touches the disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import SeedsearchError

SEED_SUFFIXES = (".txt", ".md", ".jsonl")

#: A paragraph longer than this many words is split at sentence boundaries: USE
#: and MiniLM truncate or blur long inputs (about 128-256 word pieces).
MAX_PASSAGE_WORDS = 200

# "(dr / afp)", "(APA)", "(red/dpa)": a short parenthesised closing line.
_BYLINE_RE = re.compile(r"^\(\s*([^()\n]{1,40}?)\s*\)$")
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
    """An article as read from the seeds folder."""

    doc: str  # path relative to the seeds dir; "<file>:<id>" for a .jsonl record
    title: str
    paragraphs: tuple[str, ...]
    author: str | None = None
    agency: str | None = None
    date: str | None = None
    url: str | None = None
    source: str | None = None
    content_hash: str = ""


@dataclass(frozen=True)
class SeedFile:
    """A seed file with its articles, or the reason it was skipped."""

    path: str  # relative to the seeds dir, '/'-separated
    file_hash: str
    articles: tuple[Article, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


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


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of a text: blank-line separated if it has blank lines, else one per line."""
    blank_lines = _BLANK_LINE_RE.search(text.strip())
    blocks = _BLANK_LINE_RE.split(text) if blank_lines else text.split("\n")
    return [b.strip() for b in blocks if b.strip()]


def split_byline(paragraphs: list[str]) -> tuple[list[str], str | None, str | None]:
    """Remove a trailing byline such as ``(dr / afp)``: returns (paragraphs, author, agency)."""
    if len(paragraphs) < 2:
        return paragraphs, None, None
    m = _BYLINE_RE.match(paragraphs[-1])
    if not m or len(m.group(1).split()) > 5:
        return paragraphs, None, None
    inner = m.group(1)
    if "/" in inner:
        author, agency = (p.strip() or None for p in inner.split("/", 1))
    else:
        author, agency = None, inner.strip()
    return paragraphs[:-1], author, agency


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


def parse_text(text: str, doc: str, markdown: bool = False) -> Article | None:
    """A .txt/.md article: title from a leading ``# heading`` (Markdown) or the file name."""
    paragraphs = split_paragraphs(text)
    title = None
    if markdown:
        kept = []
        for p in paragraphs:
            lines = p.split("\n")
            m = _MD_HEADING_RE.match(lines[0])
            if m and len(lines) == 1:
                if title is None and len(m.group(1)) == 1:
                    title = m.group(2).strip()
                    continue
                p = m.group(2).strip()
            if p:
                kept.append(p)
        paragraphs = kept
    paragraphs, author, agency = split_byline(paragraphs)
    if not paragraphs:
        return None
    if title is None:
        title = Path(doc).stem
    return Article(
        doc=doc,
        title=title,
        paragraphs=tuple(paragraphs),
        author=author,
        agency=agency,
        content_hash=_hash(text.encode("utf-8")),
    )


def parse_jsonl(text: str, rel: str) -> tuple[list[Article], list[str]]:
    """A .jsonl corpus: one article per line (``id``, ``title``, ``text``, optional meta)."""
    articles: list[Article] = []
    warnings: list[str] = []
    seen: set[str] = set()
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
        paragraphs, author, agency = split_byline(split_paragraphs(body))
        if not paragraphs:
            warnings.append(f"{rel}:{line_no}: empty text, line skipped")
            continue
        title = rec.get("title")
        title = _clean_field(str(title)).strip() if title else ""
        title = title or rid

        def meta(key: str, record: dict = rec) -> str | None:
            value = record.get(key)
            return None if value is None else _clean_field(str(value))

        articles.append(
            Article(
                doc=f"{rel}:{rid}",
                title=title,
                paragraphs=tuple(paragraphs),
                author=author,
                agency=agency,
                date=meta("date"),
                url=meta("url"),
                source=meta("source"),
                content_hash=_hash(line.encode("utf-8")),
            )
        )
    return articles, warnings


def list_seed_files(seeds_dir: Path, on_warning: Callable[[str], None] | None = None) -> list[str]:
    """Relative paths of seed files, sorted. Hidden files and folders are ignored;
    symlinks are followed only when they stay inside the seeds folder (symlinked
    folders are not entered). Walks with a stack, so folder depth has no limit;
    unreadable folders and file names that are not UTF-8 are reported to ``on_warning``;
    an unreadable ``seeds_dir`` itself raises SeedsearchError."""
    root = seeds_dir.resolve()
    found: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
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
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            full = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows a symlink, like os.walk
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    stack.append(full)
                continue
            if not name.lower().endswith(SEED_SUFFIXES):
                continue
            rel = full.relative_to(root).as_posix()
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                if on_warning:
                    shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    on_warning(f"{shown}: file name is not valid UTF-8, skipped (rename it)")
                continue
            if entry.is_symlink():
                try:
                    full.resolve(strict=True).relative_to(root)
                except (OSError, ValueError, RuntimeError):
                    continue
            found.append(rel)
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
    article = parse_text(text, rel, markdown=rel.lower().endswith(".md"))
    if article is None:
        warnings.append(f"{rel}: no paragraphs, skipped")
        return SeedFile(rel, file_hash, (), tuple(warnings))
    return SeedFile(rel, file_hash, (article,), tuple(warnings))


def scan_seeds(
    seeds_dir: Path, on_warning: Callable[[str], None] | None = None
) -> Iterator[SeedFile]:
    """Every seed file under ``seeds_dir``, parsed, in path order."""
    for rel in list_seed_files(seeds_dir, on_warning):
        seed = read_seed_file(seeds_dir, rel)
        if on_warning:
            for w in seed.warnings:
                on_warning(w)
        yield seed


def file_hashes(seeds_dir: Path) -> dict[str, str]:
    """Content hash of every seed file (for staleness checks without parsing)."""
    out = {}
    for rel in list_seed_files(seeds_dir):
        try:
            if stat.S_ISREG((seeds_dir / rel).stat().st_mode):
                out[rel] = _hash((seeds_dir / rel).read_bytes())
        except OSError:
            continue
    return out
