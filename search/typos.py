"""Typo tolerance: correct mistyped query words against the index's own vocabulary.

Pure logic (no disk): the vocabulary is built from word counts that the indexer keeps
per passage (:class:`WordStats`, added and subtracted like
``indexer.bm25stats.CollectionStats``), and a question is checked word by word
(:func:`check_question`).

Where it sits in the query path
-------------------------------
Correction works on **surface words before analysis**: the words of the question as
:func:`indexer.analysis.tokenize` folds them (NFC, casefold, ß -> ss, umlauts folded,
and whatever else ``fold()`` does), looked up in a vocabulary of the corpus's surface
words folded the same way. A corrected word is then analysed like any other word, so
its stem and its compound parts are what BM25 searches: ``Literauturströmung`` is
corrected to ``literaturstromung`` and then splits into ``literatur`` + ``stromung``;
``Hauptsatd`` becomes ``hauptstadt``, whose stem ``hauptstadt`` and parts
``haupt`` + ``stadt`` are the terms. Fuzzing stems or compound parts instead would
compare fragments (``stromung`` vs ``stromen``) and correct across word boundaries
that the analysis invented; fuzzing the whole surface word keeps the correction to
what the user typed. Because both sides go through the same ``fold()``, a spelling
rule added to the analysis (e.g. ``ae``/``oe``/``ue`` -> ``a``/``o``/``u``) changes
both the vocabulary and the query word and the lookup stays consistent:
``Strasse``/``Straße`` fold to the same word, and ``Muenchen`` is either equal to
``munchen`` (with that rule) or one deletion away from it (without).

Rules (Meilisearch-like)
------------------------
* Words shorter than ``min_length_one`` (5) letters are never changed, from
  ``min_length_one`` one edit is allowed, from ``min_length_two`` (9) two.
* The first letter is never changed (it is also the first key of the lookup).
* Edit distance is the optimal string alignment distance (restricted
  Damerau-Levenshtein: insertion, deletion, substitution and the transposition of two
  adjacent letters each count as one edit; no substring is edited twice), computed by
  ``rapidfuzz.distance.OSA``. True Damerau-Levenshtein differs only for edits on
  top of a transposition (``ca`` -> ``abc`` is 2 there, 3 here), which is not how
  people mistype, and it measured 5x slower (benchmarks/typos.py).
* Words with a digit, words inside double quotes (a phrase: ``"..."``, ``„...“``,
  ``“...”``) and stopwords are never changed.
* A word the vocabulary does not know gets candidates within the allowed edits,
  unless its stem is an index term (when the caller passes the index's terms):
  ``Aufzügen`` next to the corpus's ``Aufzüge`` already matches as typed. A
  known word gets candidates only when a one-edit neighbour is ``rare_ratio`` (50)
  times more frequent (by document frequency): the user probably meant the frequent
  word, and the corpus holds a rare variant (often a typo in the corpus itself).
* Candidates rank by a prior ``df * edit_prior ** edits`` (a two-edit candidate
  needs ``1 / edit_prior`` times the documents of a one-edit candidate to rank
  above it), ties by document frequency, then alphabetically. A candidate's
  ``confidence`` is its share of the prior of all candidates (and of the typed
  word itself when it is known).
* A typo match scores lower than an exact match: a candidate's ``weight`` is
  ``score_penalty ** edits`` (default 0.5 per edit), the factor for its BM25
  contribution.
* A correction is *confident* when the typed word is unknown and its best
  candidate holds at least ``confident_share`` of the prior; the vector side embeds
  the question with confident corrections applied.

The lookup
----------
Vocabulary words are grouped by first letter and sorted by length, so a query word of
length ``L`` with ``k`` allowed edits is compared only with words of its first letter
and length ``L-k .. L+k``. Within that slice a 64-bit letter-occurrence signature
(numpy) drops words that differ in more than ``k`` letter occurrences, which no
``k`` edits can bridge (each edit adds and removes at most one occurrence), and
rapidfuzz computes the distance of the few survivors.
"""

from __future__ import annotations

import bisect
import math
import re
from array import array
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from indexer.analysis import STOPWORDS, analyze, tokenize
from indexer.errors import QueryError

# Same pattern as the analysis's tokenizer, applied to the text as typed, so that
# each word keeps its original spelling and offsets; every such word is then folded
# with ``tokenize`` itself (a test checks that both give the same words).
_WORD_RE = re.compile(r"[^\W_]+")
#: Double-quote marks that delimit a phrase; they pair up in order (1st with 2nd ...).
QUOTE_MARKS = '"„“”'
_DIGIT_RE = re.compile(r"\d")


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class TypoSettings:
    """How mistyped words are corrected (see the module docstring for the rules).

    ``enabled``: off means no word is ever changed.
    ``min_length_one``/``min_length_two``: shortest word (in folded letters) that
    may have one / two edits.
    ``score_penalty``: factor per edit on a typo match's BM25 score (0 < x < 1), so
    a typo match always scores lower than an exact match of the same word.
    ``edit_prior``: factor per edit on a candidate's document frequency when
    candidates are ranked (0 < x <= 1).
    ``rare_ratio``: a known word gets candidates only when a one-edit neighbour has
    this many times its document frequency (``math.inf``: never).
    ``max_candidates``: candidates kept per word.
    ``confident_share``: share of the candidates' prior the best one needs for a
    confident correction (0.5 < x <= 1).
    ``max_lookups``: words looked up per question at most (unknown words first), so
    a pasted text cannot make a query slow.
    """

    enabled: bool = True
    min_length_one: int = 5
    min_length_two: int = 9
    score_penalty: float = 0.5
    edit_prior: float = 0.02
    rare_ratio: float = 50.0
    max_candidates: int = 3
    confident_share: float = 0.9
    max_lookups: int = 16

    def __post_init__(self) -> None:
        def whole(name: str, low: int) -> int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise QueryError(
                    f"typo setting {name}={value!r} is invalid: use a whole number >= {low}"
                )
            return value

        if not isinstance(self.enabled, bool):
            raise QueryError(f"typo setting enabled={self.enabled!r} is invalid: use True or False")
        one = whole("min_length_one", 2)
        if whole("min_length_two", 2) < one:
            raise QueryError(
                f"typo setting min_length_two={self.min_length_two} is below "
                f"min_length_one={one}: use a value >= {one}"
            )
        whole("max_candidates", 1)
        whole("max_lookups", 1)
        checks = (
            ("score_penalty", 0.0, 1.0, False, "a number between 0 and 1 (exclusive)"),
            ("edit_prior", 0.0, 1.0, True, "a number above 0 and at most 1"),
            ("confident_share", 0.5, 1.0, True, "a number above 0.5 and at most 1"),
        )
        for name, low, high, high_ok, what in checks:
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and low < value and (value <= high if high_ok else value < high)
            if not ok:
                raise QueryError(f"typo setting {name}={value!r} is invalid: use {what}")
        r = self.rare_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or math.isnan(r) or r < 1:
            raise QueryError(
                f"typo setting rare_ratio={r!r} is invalid: use a number >= 1 (inf: never)"
            )

    def allowed_edits(self, word: str) -> int:
        """Edits allowed in a (folded) word: 0, 1 or 2 by its length."""
        n = len(word)
        return 2 if n >= self.min_length_two else 1 if n >= self.min_length_one else 0


# ------------------------------------------------------------ word counting


@lru_cache(maxsize=262144)
def _fold_word(token: str) -> tuple[str, ...]:
    return tuple(tokenize(token))


def surface_words(text: str) -> Iterator[tuple[int, int, str, str | None]]:
    """``(start, end, as typed, folded word)`` for each word of ``text``.

    The folded word is None when folding splits the typed word into several
    (rare: e.g. a capital dotted I, whose folded dot is no letter).
    """
    for m in _WORD_RE.finditer(text):
        parts = _fold_word(m.group())
        yield m.start(), m.end(), m.group(), parts[0] if len(parts) == 1 else None


def passage_spellings(text: str) -> dict[str, set[str]]:
    """Folded word -> the spellings it has in ``text`` (each counts once per passage)."""
    out: dict[str, set[str]] = {}
    for token in set(_WORD_RE.findall(text)):
        parts = _fold_word(token)
        if len(parts) == 1:
            out.setdefault(parts[0], set()).add(token)
        else:
            for p in parts:
                out.setdefault(p, set()).add(p)
    return out


@dataclass
class WordStats:
    """Document frequency of each folded surface word, and of each of its spellings.

    ``df[word]``: passages containing the word; ``spellings[word][spelling]``:
    passages containing that spelling. Kept exact under :meth:`add` with
    ``sign=-1`` (a removed passage), like ``CollectionStats``, so an updated index
    has the same vocabulary as a fresh build.
    """

    df: dict[str, int] = field(default_factory=dict)
    spellings: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, text: str, sign: int = 1) -> None:
        """Count one passage's text (``sign=1``) or remove it (``sign=-1``)."""
        for word, spells in passage_spellings(text).items():
            n = self.df.get(word, 0) + sign
            if n > 0:
                self.df[word] = n
            else:
                self.df.pop(word, None)
                self.spellings.pop(word, None)
                continue
            counts = self.spellings.setdefault(word, {})
            for s in spells:
                c = counts.get(s, 0) + sign
                if c > 0:
                    counts[s] = c
                else:
                    counts.pop(s, None)

    def add_all(self, texts: Iterable[str], sign: int = 1) -> None:
        for text in texts:
            self.add(text, sign)

    def display(self, word: str) -> str:
        """The most frequent spelling of ``word`` (ties: the first in code point
        order, so ``Hauptstadt`` before ``hauptstadt``); the word itself if unseen."""
        counts = self.spellings.get(word)
        if not counts:
            return word
        return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    def to_json(self) -> dict:
        return {"df": self.df, "spellings": self.spellings}

    @classmethod
    def from_json(cls, data: dict) -> WordStats:
        return cls(
            {str(k): int(v) for k, v in data["df"].items()},
            {str(k): {str(s): int(c) for s, c in v.items()} for k, v in data["spellings"].items()},
        )


def word_document_counts(texts: Iterable[str]) -> dict[str, int]:
    """Folded word -> number of ``texts`` that contain it."""
    stats = WordStats()
    stats.add_all(texts)
    return stats.df


# ---------------------------------------------------------------- signatures


def _signature_bit(ch: str, occurrence: int) -> int:
    """Bit of the ``occurrence``-th (0-based) copy of ``ch`` in a signature.

    a-z get their own bit for the first and second copy (52 bits); their third copy
    and anything else share the remaining 12 bits. Sharing bits never drops a true
    candidate (see :func:`signature`)."""
    o = ord(ch) - 97
    if 0 <= o < 26 and occurrence < 2:
        return o + 26 * occurrence
    return 52 + (ord(ch) * 7 + occurrence) % 12


def signature(word: str) -> int:
    """64-bit set of (letter, occurrence) pairs of ``word``.

    One edit removes at most one occurrence and adds at most one, so it clears at
    most one bit and sets at most one: words within ``k`` edits differ in at most
    ``k`` bits each way.
    """
    seen: dict[str, int] = {}
    bits = 0
    for ch in word:
        n = seen.get(ch, 0)
        seen[ch] = n + 1
        bits |= 1 << _signature_bit(ch, n)
    return bits


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(a: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(a)
    return _POP8[a.view(np.uint8).reshape(-1, 8)].sum(axis=1)  # pragma: no cover


# ---------------------------------------------------------------- vocabulary


def _offsets(values) -> array:
    out = array("q")
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
    return out


class _Group:
    """The words of one first letter, sorted by (length, word), as flat arrays."""

    __slots__ = ("blob", "ends", "df", "sig", "starts", "shown", "shown_ends")

    def __init__(self, blob, ends, df, sig, starts, shown, shown_ends) -> None:
        self.blob: bytes = blob  # UTF-8 words back to back
        # end offset of word i in blob; an array.array: indexing it is 3x faster than
        # numpy's, and bisect reads it ~17 times per exact lookup
        self.ends: array = _offsets(ends)
        self.df: np.ndarray = df  # int64 document frequencies
        self.sig: np.ndarray = sig  # uint64 signatures of the words
        self.starts: np.ndarray = starts  # int64: starts[L] = first word of length >= L
        self.shown: bytes = shown  # UTF-8 display forms ("" = the word itself)
        self.shown_ends: array = _offsets(shown_ends)

    def word(self, i: int) -> str:
        return self.blob[self.ends[i - 1] if i else 0 : self.ends[i]].decode("utf-8")

    def display(self, i: int) -> str:
        ends = self.shown_ends
        text = self.shown[ends[i - 1] if i else 0 : ends[i]].decode("utf-8")
        return text or self.word(i)

    def span(self, low: int, high: int) -> tuple[int, int]:
        """Index range of the words with length in ``low .. high``."""
        top = len(self.starts) - 1
        return int(self.starts[min(max(low, 0), top)]), int(self.starts[min(high + 1, top)])


class _Words(Sequence):
    """Words ``lo .. hi`` of a group as a sequence, for bisect."""

    def __init__(self, group: _Group, lo: int, hi: int) -> None:
        self.group, self.lo, self.hi = group, lo, hi

    def __len__(self) -> int:
        return self.hi - self.lo

    def __getitem__(self, i):  # type: ignore[override]
        return self.group.word(self.lo + i)


class Vocabulary:
    """Folded surface words of an index with their document frequency, and a display
    spelling for each; immutable. Build with :meth:`from_counts` or
    :meth:`from_stats`; :meth:`to_arrays`/:meth:`from_arrays` store it as numpy
    arrays (so an index can keep it next to its other files and open it without
    rebuilding).
    """

    def __init__(self, groups: dict[str, _Group]) -> None:
        self._groups = groups
        self._size = sum(len(g.df) for g in groups.values())

    # ------------------------------------------------------------ building

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], display: Mapping[str, str] | None = None
    ) -> Vocabulary:
        """From ``{folded word: document frequency}`` (entries <= 0 are dropped) and
        optionally ``{folded word: spelling to show}``."""
        display = display or {}
        by_first: dict[str, list[str]] = {}
        for w, n in counts.items():
            if not isinstance(w, str) or not w:
                raise QueryError(f"vocabulary word {w!r} is invalid: use non-empty text")
            if n > 0:
                by_first.setdefault(w[0], []).append(w)
        groups: dict[str, _Group] = {}
        for first, words in by_first.items():
            words.sort(key=lambda w: (len(w), w))
            encoded = [w.encode("utf-8") for w in words]
            shown = [b"" if (d := display.get(w, w)) == w else d.encode("utf-8") for w in words]
            lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
            starts = np.searchsorted(lengths, np.arange(int(lengths[-1]) + 2), side="left")
            groups[first] = _Group(
                b"".join(encoded),
                np.cumsum([len(e) for e in encoded], dtype=np.int64),
                np.fromiter((counts[w] for w in words), dtype=np.int64, count=len(words)),
                np.fromiter((signature(w[1:]) for w in words), dtype=np.uint64, count=len(words)),
                starts.astype(np.int64),
                b"".join(shown),
                np.cumsum([len(s) for s in shown], dtype=np.int64),
            )
        return cls(groups)

    @classmethod
    def from_stats(cls, stats: WordStats) -> Vocabulary:
        return cls.from_counts(stats.df, {w: stats.display(w) for w in stats.spellings})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The vocabulary as named numpy arrays (e.g. for ``np.savez``)."""
        out: dict[str, np.ndarray] = {"firsts": np.array(list(self._groups), dtype=str)}
        for i, g in enumerate(self._groups.values()):
            out[f"{i}.blob"] = np.frombuffer(g.blob, dtype=np.uint8)
            out[f"{i}.shown"] = np.frombuffer(g.shown, dtype=np.uint8)
            for name in ("df", "sig", "starts"):
                out[f"{i}.{name}"] = getattr(g, name)
            for name in ("ends", "shown_ends"):
                out[f"{i}.{name}"] = np.frombuffer(getattr(g, name), dtype=np.int64)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Vocabulary:
        groups = {}
        for i, first in enumerate(arrays["firsts"].tolist()):
            a = {n: np.asarray(arrays[f"{i}.{n}"]) for n in ("ends", "df", "sig", "starts")}
            groups[str(first)] = _Group(
                np.asarray(arrays[f"{i}.blob"], dtype=np.uint8).tobytes(),
                a["ends"].astype(np.int64),
                a["df"].astype(np.int64),
                a["sig"].astype(np.uint64),
                a["starts"].astype(np.int64),
                np.asarray(arrays[f"{i}.shown"], dtype=np.uint8).tobytes(),
                np.asarray(arrays[f"{i}.shown_ends"]).astype(np.int64),
            )
        return cls(groups)

    # ------------------------------------------------------------- lookups

    def __len__(self) -> int:
        return self._size

    def _find(self, word: str) -> tuple[_Group, int] | None:
        g = self._groups.get(word[:1])
        if g is None:
            return None
        lo, hi = g.span(len(word), len(word))
        i = bisect.bisect_left(_Words(g, lo, hi), word)
        if i < hi - lo and g.word(lo + i) == word:
            return g, lo + i
        return None

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._find(word) is not None

    def df(self, word: str) -> int:
        """Document frequency of a folded word (0 if unknown)."""
        found = self._find(word)
        return int(found[0].df[found[1]]) if found else 0

    def display(self, word: str) -> str:
        """The spelling to show for a folded word (the word itself if unknown)."""
        found = self._find(word)
        return found[0].display(found[1]) if found else word

    def neighbours(self, word: str, edits: int, min_df: int = 1) -> list[tuple[str, int, int]]:
        """``(word, edits, df)`` of the vocabulary words with the same first letter
        within ``edits`` (>= 1) of ``word`` and at least ``min_df`` documents,
        ``word`` itself excluded; in no particular order."""
        g = self._groups.get(word[:1])
        if g is None or edits < 1:
            return []
        lo, hi = g.span(len(word) - edits, len(word) + edits)
        if hi <= lo:
            return []
        q = np.uint64(signature(word[1:]))
        # words differing in at most 2k bits in all, then at most k each way
        idx = np.flatnonzero(_popcount(g.sig[lo:hi] ^ q) <= 2 * edits) + lo
        if min_df > 1 and len(idx):
            idx = idx[g.df[idx] >= min_df]
        if len(idx):
            sig = g.sig[idx]
            idx = idx[(_popcount(sig & ~q) <= edits) & (_popcount(q & ~sig) <= edits)]
        if not len(idx):
            return []
        choices = [g.word(i) for i in idx.tolist()]
        found = process.extract(word, choices, scorer=OSA.distance, score_cutoff=edits, limit=None)
        return [(w, int(d), int(g.df[idx[j]])) for w, d, j in found if d > 0]

    def max_df(self, first: str, low: int, high: int) -> int:
        """Highest document frequency among words of a first letter and length range."""
        g = self._groups.get(first)
        if g is None:
            return 0
        lo, hi = g.span(low, high)
        return int(g.df[lo:hi].max()) if hi > lo else 0


# ------------------------------------------------------------------- results


class Skip(str, Enum):
    """Why a word was not looked up."""

    DISABLED = "disabled"
    SHORT = "short"
    NUMBER = "number"
    PHRASE = "phrase"
    STOPWORD = "stopword"
    FORM = "form"  # folding splits the typed word
    STEM = "stem"  # unknown, but its stem is an index term: BM25 matches it as typed
    FREQUENT = "frequent"  # known, and no one-edit neighbour can be rare_ratio times as frequent
    LIMIT = "limit"  # over max_lookups


@dataclass(frozen=True)
class Correction:
    """A vocabulary word that a typed word may stand for.

    ``from_word``/``to_word``: folded forms; ``display``: how to show ``to_word``;
    ``edits``: OSA distance; ``df``: documents containing ``to_word``; ``weight``:
    factor for its BM25 score (``score_penalty ** edits``, < 1); ``confidence``:
    its share of the candidates' prior.
    """

    from_word: str
    to_word: str
    display: str
    edits: int
    df: int
    weight: float
    confidence: float


@dataclass(frozen=True)
class WordCheck:
    """One word of a question: where it is, what it folds to, and its candidates.

    ``df``: documents containing the typed word (0: unknown). ``skip``: why it was
    not looked up (None: it was). ``confident``: the first candidate is a confident
    correction.
    """

    text: str
    start: int
    end: int
    word: str | None
    df: int
    skip: Skip | None
    candidates: tuple[Correction, ...] = ()
    confident: bool = False

    @property
    def known(self) -> bool:
        return self.df > 0

    @property
    def correction(self) -> Correction | None:
        """The best candidate of an unknown word (what the engine understood)."""
        return self.candidates[0] if self.candidates and not self.known else None


@dataclass(frozen=True)
class TypoCheck:
    """All words of a question with their checks."""

    question: str
    words: tuple[WordCheck, ...]

    @property
    def corrections(self) -> tuple[WordCheck, ...]:
        """Words replaced by their best candidate (unknown words that have one)."""
        return tuple(w for w in self.words if w.correction is not None)

    @property
    def confident(self) -> tuple[WordCheck, ...]:
        return tuple(w for w in self.words if w.correction is not None and w.confident)

    def corrected(self, confident_only: bool = False) -> str:
        """The question with corrections applied (all, or the confident ones: the
        text the vector side embeds)."""
        return render_question(
            self.question, self.confident if confident_only else self.corrections
        )

    def to_json(self) -> list[dict[str, str]]:
        """``[{"from": as typed, "to": as shown}]`` for ``--json``."""
        return [{"from": w.text, "to": w.correction.display} for w in self.corrections]


def render_question(question: str, words: Iterable[WordCheck]) -> str:
    """``question`` with each given word replaced by its correction's display form;
    everything else (casing, spacing, punctuation) exactly as typed.

    The display form is the vocabulary's most frequent spelling of the corrected
    word (``großbritanniens`` -> ``Großbritanniens``), kept per folded word.
    """
    out: list[str] = []
    pos = 0
    for w in sorted(words, key=lambda w: w.start):
        c = w.correction
        if c is None or w.start < pos:
            continue
        out += [question[pos : w.start], c.display]
        pos = w.end
    out.append(question[pos:])
    return "".join(out)


# ------------------------------------------------------------------ checking


def quoted_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each double-quoted phrase, quotes included.

    Quote marks (``"``, ``„``, ``“``, ``”``) pair up in order; an unpaired last one
    is plain text (as issue 12 specifies for phrases).
    """
    marks = [i for i, ch in enumerate(text) if ch in QUOTE_MARKS]
    return [(marks[i], marks[i + 1] + 1) for i in range(0, len(marks) - 1, 2)]


def _ranked(
    word: str, known_df: int, found: list[tuple[str, int, int]], vocab: Vocabulary, s: TypoSettings
) -> tuple[Correction, ...]:
    prior = {w: df * s.edit_prior**e for w, e, df in found}
    total = sum(prior.values()) + known_df
    order = sorted(found, key=lambda t: (-prior[t[0]], -t[2], t[0]))[: s.max_candidates]
    return tuple(
        Correction(word, w, vocab.display(w), e, df, s.score_penalty**e, prior[w] / total)
        for w, e, df in order
    )


def check_word(
    word: str,
    vocab: Vocabulary,
    settings: TypoSettings | None = None,
    terms: Container[str] | None = None,
) -> WordCheck:
    """Candidates for one folded word (see :func:`check_question`; no phrase or
    lookup limit applied)."""
    return _check(word, word, 0, len(word), vocab, settings or TypoSettings(), False, terms)


def _precheck(word: str | None, in_phrase: bool, s: TypoSettings) -> Skip | None:
    if not s.enabled:
        return Skip.DISABLED
    if word is None:
        return Skip.FORM
    if in_phrase:
        return Skip.PHRASE
    if _DIGIT_RE.search(word):
        return Skip.NUMBER
    if len(word) < s.min_length_one:
        return Skip.SHORT
    if word in STOPWORDS:
        return Skip.STOPWORD
    return None


def _check(
    text: str,
    word: str | None,
    start: int,
    end: int,
    vocab: Vocabulary,
    s: TypoSettings,
    in_phrase: bool,
    terms: Container[str] | None,
    allow_lookup: bool = True,
    df: int | None = None,
) -> WordCheck:
    if df is None:
        df = vocab.df(word) if word else 0
    skip = _precheck(word, in_phrase, s)
    if skip is not None:
        return WordCheck(text, start, end, word, df, skip)
    assert word is not None
    if df:  # known: only a far more frequent one-edit neighbour is a candidate
        edits, min_df = 1, math.ceil(df * s.rare_ratio) if math.isfinite(s.rare_ratio) else 0
        if not min_df or vocab.max_df(word[0], len(word) - 1, len(word) + 1) < min_df:
            return WordCheck(text, start, end, word, df, Skip.FREQUENT)
    else:
        if terms is not None:
            stems = analyze(word)
            if stems and stems[0] in terms:
                return WordCheck(text, start, end, word, df, Skip.STEM)
        edits, min_df = s.allowed_edits(word), 1
    if not allow_lookup:
        return WordCheck(text, start, end, word, df, Skip.LIMIT)
    found = vocab.neighbours(word, edits, min_df)
    ranked = _ranked(word, df, found, vocab, s)
    confident = bool(ranked) and not df and ranked[0].confidence >= s.confident_share
    return WordCheck(text, start, end, word, df, None, ranked, confident)


def check_question(
    question: str,
    vocab: Vocabulary,
    settings: TypoSettings | None = None,
    terms: Container[str] | None = None,
) -> TypoCheck:
    """Check every word of ``question``: which are unknown, and what they may mean.

    ``terms``: the index's analysed terms (BM25 vocabulary). When given, a word the
    vocabulary lacks but whose stem is an index term (``Aufzügen`` when the corpus
    has ``Aufzüge``) is left alone: BM25 already matches it as typed, and its
    closest surface word is more often another inflection or another word than the
    intended one (measured: benchmarks/typos.py).

    Unknown words are looked up before known ones, at most ``max_lookups`` in all;
    a word repeated in the question is looked up once.
    """
    s = settings or TypoSettings()
    phrases = quoted_spans(question)
    words = list(surface_words(question))
    inside = [any(a <= start and end <= b for a, b in phrases) for start, end, _, _ in words]
    dfs = {w: vocab.df(w) for _, _, _, w in words if w is not None}
    # unknown words first, then known ones, each in question order
    order = sorted(range(len(words)), key=lambda i: (dfs.get(words[i][3], 0) > 0, i))
    checks: dict[int, WordCheck] = {}
    done: dict[str, WordCheck] = {}
    lookups = 0
    for i in order:
        start, end, text, word = words[i]
        if word is not None and word in done and _precheck(word, inside[i], s) is None:
            prev = done[word]
            checks[i] = WordCheck(
                text, start, end, word, prev.df, prev.skip, prev.candidates, prev.confident
            )
            continue
        c = _check(
            text,
            word,
            start,
            end,
            vocab,
            s,
            inside[i],
            terms,
            allow_lookup=lookups < s.max_lookups,
            df=dfs.get(word, 0),
        )
        if c.skip is None:
            lookups += 1
        if word is not None and c.skip in (None, Skip.FREQUENT, Skip.STEM):
            done[word] = c
        checks[i] = c
    return TypoCheck(question, tuple(checks[i] for i in range(len(words))))
