"""Property-based fuzzing of the seed loader, the splitter, the analyzer and queries."""

from __future__ import annotations

import json
import unicodedata

import pytest
from conftest import FakeEmbedder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.analysis import analyze, tokenize, word_spans
from indexer.errors import QueryError
from indexer.seeds import decode, parse_jsonl, parse_text, split_long, split_passages
from search import SearchEngine

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# German-ish text: letters with umlauts, punctuation, whitespace, markdown, odd code points.
ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzäöüßABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜẞ")
    + list(" \n\n\t.,!?;:()[]#-/\"'«»„“")
    + ["\r", "\u0308", "\u200b", "\x00", "\x1b", "\ufeff", "😀", "д", "中", "١"]
)
german_text = st.text(alphabet=ALPHABET, max_size=400) | st.text(max_size=200)


def check_decode(data):
    text, warnings = decode(data, "f.txt")
    assert isinstance(warnings, list)
    if text is None:
        assert warnings and all(w.startswith("f.txt: ") for w in warnings)
    else:
        assert unicodedata.is_normalized("NFC", text)
        assert all(c in "\n\t" or unicodedata.category(c) != "Cc" for c in text)
        text.encode("utf-8")  # always writable


def check_parse_text(text, markdown):
    article = parse_text(text, "dir/a.md" if markdown else "dir/a.txt", markdown=markdown)
    if article is None:
        return
    assert article.title
    for paragraph in article.paragraphs:
        assert paragraph.strip() == paragraph and paragraph
    for p in split_passages(article, max_words=12):
        assert p.text and p.text in text
        assert p.doc == article.doc and p.id.startswith(article.doc + "#")


def check_split_long(paragraph, max_words):
    paragraph = paragraph.strip()
    parts = split_long(paragraph, max_words)
    pos = 0
    for part in parts:
        at = paragraph.find(part, pos)
        assert at >= 0, (part, paragraph)
        pos = at + len(part)
    words = paragraph.split()
    if len(words) > max_words:
        assert all(len(part.split()) <= max_words for part in parts)
        assert sum(len(part.split()) for part in parts) == len(words)  # nothing lost


# ------------------------------------------------------------ properties
# Plain functions, so that benchmarks/reliability.py can run them with more examples.


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | german_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(german_text, inner, max_size=3),
    max_leaves=8,
)
records = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "text": german_text | json_values,
        "title": json_values,
        "date": json_values,
    },
)
lines = st.lists(
    st.builds(json.dumps, records) | st.text(max_size=80) | st.just("[" * 3000), max_size=8
)


def check_parse_jsonl(rows):
    text = "\n".join(r.replace("\n", " ") for r in rows)
    articles, warnings = parse_jsonl(text, "c.jsonl")
    docs = [a.doc for a in articles]
    assert len(docs) == len(set(docs))
    for a in articles:
        json.dumps([a.doc, a.title, a.paragraphs, a.date], ensure_ascii=False).encode("utf-8")
        assert a.paragraphs and a.title
    for w in warnings:
        assert w.startswith("c.jsonl:")


def check_analyzer(text):
    terms = analyze(text)
    assert terms == analyze(text)
    assert terms == analyze(unicodedata.normalize("NFD", text))
    assert all(t and " " not in t for t in terms)
    assert len(word_spans(text)) == len(list(tokenize_spans(text)))


def tokenize_spans(text):
    # word_spans works on the original string; every span must be a real substring
    for a, b, _ in word_spans(text):
        assert 0 <= a < b <= len(text)
        yield a


@settings(max_examples=20, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöü", min_size=100, max_size=3000))
def test_analyzer_long_words(word):
    assert analyze(word) == analyze(word)
    assert tokenize(word)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from conftest import write_german_seeds

    from indexer import Indexer

    root = tmp_path_factory.mktemp("fuzz")
    seeds = write_german_seeds(root / "seeds")
    Indexer(seeds, root / "index", model=FakeEmbedder()).update()
    with SearchEngine.open(root / "index", model=FakeEmbedder()) as e:
        yield e


def check_search(engine, query, k, mode, alpha):
    try:
        hits = engine.search(query, k=k, mode=mode, alpha=alpha)
    except QueryError as exc:
        assert str(exc)
        return
    assert len(hits) <= k
    assert set(engine.docs.passages(h.id for h in hits)) == {h.id for h in hits}


# ---------------------------------------------------- strategies per property

STRATEGIES = {
    "decode": (check_decode, (st.binary(max_size=600),)),
    "parse_text": (check_parse_text, (german_text, st.booleans())),
    "split_long": (check_split_long, (german_text, st.integers(min_value=1, max_value=30))),
    "parse_jsonl": (check_parse_jsonl, (lines,)),
    "analyzer": (check_analyzer, (german_text,)),
}
QUERY_ARGS = (
    german_text | st.text(max_size=3000),
    st.integers(min_value=-3, max_value=2000),
    st.sampled_from(["hybrid", "bm25", "vector", "HYBRID", "x"]),
    st.none() | st.floats(allow_nan=True, allow_infinity=True),
)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_property(name):
    check, args = STRATEGIES[name]
    FAST(given(*args)(check))()


def test_search_raises_only_query_error(engine):
    def check(query, k, mode, alpha):
        check_search(engine, query, k, mode, alpha)

    FAST(given(*QUERY_ARGS)(check))()
