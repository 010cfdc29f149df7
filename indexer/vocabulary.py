"""The index's surface-word vocabulary: document frequencies for typo correction.

Pure data (no disk; :mod:`indexer.store.words` saves it): :class:`WordStats` counts
each folded surface word of the passages (and each spelling of it), added and
subtracted per passage like :class:`indexer.bm25stats.CollectionStats`, so an updated
index has the vocabulary of a fresh build. :class:`Vocabulary` is its immutable,
array-backed lookup structure (grouped by first letter, sorted by length, with
letter-occurrence signatures), which ``search.typos`` queries for candidates.

Words are folded with :func:`indexer.analysis.tokenize` (NFC, casefold, ß -> ss,
umlauts and ae/oe/ue folded): the same folding as the query words, so the lookup
stays consistent with the analysis.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from indexer.analysis import tokenize
from indexer.errors import QueryError

# Same pattern as the analysis's tokenizer, applied to the text as typed, so that
# each word keeps its original spelling and offsets; every such word is then folded
# with ``tokenize`` itself (a test checks that both give the same words).
_WORD_RE = re.compile(r"[^\W_]+")

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

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The counts as flat numpy arrays (words sorted; for ``np.savez``)."""
        words = sorted(self.df)
        spelt = [
            (i, sp, c)
            for i, w in enumerate(words)
            for sp, c in sorted(self.spellings.get(w, {}).items())
        ]
        return {
            "words": _text_array(words),
            "df": np.fromiter((self.df[w] for w in words), dtype=np.int64, count=len(words)),
            "spelling_word": np.fromiter(
                (i for i, _, _ in spelt), dtype=np.int64, count=len(spelt)
            ),
            "spellings": _text_array([sp for _, sp, _ in spelt]),
            "spelling_df": np.fromiter((c for _, _, c in spelt), dtype=np.int64, count=len(spelt)),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> WordStats:
        words = _array_text(arrays["words"])
        df = dict(zip(words, np.asarray(arrays["df"]).tolist(), strict=True))
        spellings: dict[str, dict[str, int]] = {}
        owners = np.asarray(arrays["spelling_word"]).tolist()
        counts = np.asarray(arrays["spelling_df"]).tolist()
        for i, sp, c in zip(owners, _array_text(arrays["spellings"]), counts, strict=True):
            spellings.setdefault(words[i], {})[sp] = c
        return cls(df, spellings)


def _text_array(texts: Sequence[str]) -> np.ndarray:
    """Texts as one uint8 array: UTF-8, each followed by a NUL (no word holds one)."""
    return np.frombuffer("".join(t + "\0" for t in texts).encode("utf-8"), dtype=np.uint8)


def _array_text(a: np.ndarray) -> list[str]:
    data = np.asarray(a, dtype=np.uint8).tobytes().decode("utf-8")
    return data.split("\0")[:-1] if data else []


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
