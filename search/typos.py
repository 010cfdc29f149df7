"""Typo tolerance: correct mistyped query words against the index's own vocabulary.

Pure logic (no disk): the vocabulary (:class:`indexer.vocabulary.Vocabulary`) is built
from word counts that the indexer keeps per passage (:class:`WordStats`, added and
subtracted like ``indexer.bm25stats.CollectionStats``) and stores with every generation
(``words.npz``, :mod:`indexer.store.words`). A question is checked word by word
(:func:`check_question`), and :func:`plan_query` turns the checks into what the engine
searches: BM25 concepts with weights, the text to embed, and the corrections to report
(:class:`Correction`, ``{"from", "to"}``).

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
  ``score_penalty ** edits``, the factor on its BM25 contribution, while the word as
  typed keeps its own terms at weight 1 (:func:`plan_query`). BM25 searches the best
  candidate and any other with at least ``min_share`` of the prior.
* A correction is *confident* when the typed word is unknown and its best
  candidate holds at least ``confident_share`` of the prior; the vector side embeds
  the question with confident corrections applied.

The lookup (:mod:`indexer.vocabulary`)
--------------------------------------
Vocabulary words are grouped by first letter and sorted by length, so a query word of
length ``L`` with ``k`` allowed edits is compared only with words of its first letter
and length ``L-k .. L+k``. Within that slice a 64-bit letter-occurrence signature
(numpy) drops words that differ in more than ``k`` letter occurrences, which no
``k`` edits can bridge (each edit adds and removes at most one occurrence), and
rapidfuzz computes the distance of the few survivors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass
from enum import Enum

from indexer.analysis import STOPWORDS, analyze, analyze_query, analyze_word
from indexer.errors import QueryError
from indexer.vocabulary import (  # noqa: F401  (re-exported: the vocabulary used here)
    Vocabulary,
    WordStats,
    passage_spellings,
    signature,
    surface_words,
    word_document_counts,
)

_DIGIT_RE = re.compile(r"\d")


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class TypoSettings:
    """How mistyped words are corrected (see the module docstring for the rules).

    ``enabled``: off means no word is ever changed.
    ``min_length_one``/``min_length_two``: shortest word (in folded letters) that
    may have one / two edits.
    ``score_penalty``: factor per edit on a typo match's BM25 score (0 < x < 1), so
    a typo match always scores lower than an exact match of the same word. 0.8:
    measured on typo'd xquad-de / GermanQuAD questions, BM25 MRR@10 0.920 / 0.891 at
    0.5, 0.938 / 0.914 at 0.8, 0.938 / 0.916 at 0.9, clean questions equal
    (benchmarks/results/typos.md).
    ``edit_prior``: factor per edit on a candidate's document frequency when
    candidates are ranked (0 < x <= 1).
    ``rare_ratio``: a known word gets candidates only when a one-edit neighbour has
    this many times its document frequency (``math.inf``: never).
    ``max_candidates``: candidates kept per word.
    ``confident_share``: share of the candidates' prior the best one needs for a
    confident correction (0.5 < x <= 1).
    ``max_lookups``: words looked up per question at most (unknown words first), so
    a pasted text cannot make a query slow.
    ``min_share``: BM25 also searches a word's further candidates whose share of the
    prior is at least this (the best candidate always): rarer look-alikes would
    otherwise score by their higher idf (0 <= x <= 1).
    """

    enabled: bool = True
    min_length_one: int = 5
    min_length_two: int = 9
    score_penalty: float = 0.8
    edit_prior: float = 0.02
    rare_ratio: float = 50.0
    max_candidates: int = 3
    confident_share: float = 0.9
    max_lookups: int = 16
    min_share: float = 0.1

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
        m = self.min_share
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0 <= m <= 1:
            raise QueryError(f"typo setting min_share={m!r} is invalid: use a number from 0 to 1")
        r = self.rare_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or math.isnan(r) or r < 1:
            raise QueryError(
                f"typo setting rare_ratio={r!r} is invalid: use a number >= 1 (inf: never)"
            )

    def allowed_edits(self, word: str) -> int:
        """Edits allowed in a (folded) word: 0, 1 or 2 by its length."""
        n = len(word)
        return 2 if n >= self.min_length_two else 1 if n >= self.min_length_one else 0


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
class Candidate:
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
    candidates: tuple[Candidate, ...] = ()
    confident: bool = False

    @property
    def known(self) -> bool:
        return self.df > 0

    @property
    def correction(self) -> Candidate | None:
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

    def applied(self, confident_only: bool = False) -> tuple[Correction, ...]:
        """What the user is told was corrected (all, or the confident corrections)."""
        words = self.confident if confident_only else self.corrections
        return tuple(Correction(w.text, w.correction.display) for w in words)

    def to_json(self) -> list[dict[str, str]]:
        """``[{"from": as typed, "to": as shown}]`` for ``--json``."""
        return [c.to_dict() for c in self.applied()]


@dataclass(frozen=True)
class Correction:
    """A word of the query as typed (``from_``) and the word searched for it (``to``,
    as the corpus spells it): what ``SearchResult.corrections`` reports."""

    from_: str
    to: str

    def __post_init__(self) -> None:
        for name in ("from_", "to"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise QueryError(f"correction {name}={value!r} is invalid: use a non-empty word")

    def to_dict(self) -> dict[str, str]:
        return {"from": self.from_, "to": self.to}


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


def apply_corrections(question: str, corrections: Iterable[Correction]) -> str:
    """``question`` with every word typed as a correction's ``from_`` (outside quoted
    phrases, which are never corrected) replaced by its ``to``; the rest as typed.
    For showing what a :class:`Correction` list means (``Suche nach: ...``)."""
    to = {c.from_: c.to for c in corrections}
    if not to:
        return question
    phrases = quoted_spans(question)
    out: list[str] = []
    pos = 0
    for start, end, typed, _ in surface_words(question):
        if typed in to and not any(a <= start and end <= b for a, b in phrases):
            out += [question[pos:start], to[typed]]
            pos = end
    out.append(question[pos:])
    return "".join(out)


# ------------------------------------------------------------------ checking


def quoted_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each double-quoted phrase, quotes included: the phrase
    syntax of the search (:mod:`search.archive`: ``"..."``, ``„...“``, ``“...”``,
    ``»...«``); an unpaired quote is plain text."""
    from search.archive import phrase_spans

    return phrase_spans(text)


def _ranked(
    word: str, known_df: int, found: list[tuple[str, int, int]], vocab: Vocabulary, s: TypoSettings
) -> tuple[Candidate, ...]:
    prior = {w: df * s.edit_prior**e for w, e, df in found}
    total = sum(prior.values()) + known_df
    order = sorted(found, key=lambda t: (-prior[t[0]], -t[2], t[0]))[: s.max_candidates]
    return tuple(
        Candidate(word, w, vocab.display(w), e, df, s.score_penalty**e, prior[w] / total)
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


# ------------------------------------------------------------ query plan


@dataclass(frozen=True)
class TypoQuery:
    """How one query is searched with typo tolerance (:func:`plan_query`).

    ``concepts``/``factors``: the BM25 query, one factor per concept: the query's own
    concepts (``analyze_query`` of the text as typed) weigh 1, each candidate's
    concept ``score_penalty ** edits``, so an exact match of a word always scores
    more than a typo match of it (same passage statistics). ``vector_text``: the
    text the vector side embeds (confident corrections applied; the text itself when
    there are none). ``corrections``: every corrected word (what BM25 searched
    for); ``confident``: those the vector side used. ``shown``: the query with all
    corrections applied (``Suche nach: ...``).
    """

    text: str
    concepts: tuple[tuple[str, ...], ...]
    factors: tuple[float, ...]
    vector_text: str
    corrections: tuple[Correction, ...]
    confident: tuple[Correction, ...]
    shown: str


def plan_query(
    text: str,
    vocab: Vocabulary | None,
    settings: TypoSettings | None = None,
    terms: Container[str] | None = None,
) -> TypoQuery:
    """The BM25 concepts with their weights, the text to embed, and the corrections
    for a (cleaned) query.

    Each looked-up word keeps its own terms (weight 1) and gains the terms of its
    candidates (see :func:`check_question`) whose share of the prior is at least
    ``min_share`` (the best one always), each weighted ``score_penalty ** edits``.
    A candidate term the query already holds is not added again (the exact term
    already counts in full). Words inside quotes, short words, numbers and known
    words without a far more frequent neighbour add nothing: a query without typos
    searches exactly as with typo tolerance off. ``vocab`` None: typo tolerance off.
    """
    s = settings or TypoSettings()
    own = analyze_query(text)
    if not s.enabled or vocab is None:
        return TypoQuery(text, tuple(own), (1.0,) * len(own), text, (), (), text)
    check = check_question(text, vocab, s, terms)
    seen = {t for concept in own for t in concept}
    concepts, factors = list(own), [1.0] * len(own)
    for w in check.words:
        for i, c in enumerate(w.candidates):
            if i and c.confidence < s.min_share:
                break
            concept = tuple(t for t in analyze_word(c.to_word) if t not in seen)
            if concept:
                concepts.append(concept)
                factors.append(c.weight)
    return TypoQuery(
        text,
        tuple(concepts),
        tuple(factors),
        check.corrected(confident_only=True),
        check.applied(),
        check.applied(confident_only=True),
        check.corrected(),
    )
