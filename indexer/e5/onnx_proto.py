"""Just enough of the ONNX protobuf format to write the e5 graph, without ``onnx``.

The ``onnx`` package would add about 35 MB to the install and, here, 4.5 s to the
first graph build (its ``ml_dtypes`` import); ONNX Runtime only needs the bytes.
The messages below follow ``onnx.proto`` (field numbers in the comments); fields
are written in field-number order and repeated scalars unpacked, which is what
protobuf itself does for these proto2 messages, so the output is canonical: the
test suite checks that ``onnx`` parses it and re-serialises it to the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np

# TensorProto.DataType
FLOAT, UINT8, INT8, INT32, INT64 = 1, 2, 3, 6, 7
_DTYPES = {
    np.dtype(np.float32): FLOAT,
    np.dtype(np.uint8): UINT8,
    np.dtype(np.int8): INT8,
    np.dtype(np.int32): INT32,
    np.dtype(np.int64): INT64,
}
# AttributeProto.AttributeType
_ATTR_FLOAT, _ATTR_INT, _ATTR_TENSOR, _ATTR_INTS = 1, 2, 4, 7


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 two's complement, ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def _str(field: int, value: str) -> bytes:
    return _bytes(field, value.encode("utf-8"))


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims (1), data_type (2), name (8), raw_data (9)."""
    a = np.ascontiguousarray(array)
    dtype = _DTYPES.get(a.dtype)
    if dtype is None:
        raise TypeError(f"tensor {name}: unsupported dtype {a.dtype}")
    out = b"".join(_int(1, d) for d in a.shape) + _int(2, dtype) + _str(8, name)
    return out + _bytes(9, a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def attribute(name: str, value: int | float | Sequence[int] | np.ndarray) -> bytes:
    """AttributeProto: name (1), f (2) | i (3) | t (5) | ints (8), type (20)."""
    head = _str(1, name)
    if isinstance(value, bool):
        raise TypeError(f"attribute {name}: use an int, not a bool")
    if isinstance(value, int):
        return head + _int(3, value) + _int(20, _ATTR_INT)
    if isinstance(value, float):
        return head + _float(2, value) + _int(20, _ATTR_FLOAT)
    if isinstance(value, np.ndarray):
        return head + _bytes(5, tensor("", value)) + _int(20, _ATTR_TENSOR)
    if isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
        return head + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)
    raise TypeError(f"attribute {name}: unsupported value {value!r}")


def node(
    op: str, inputs: Sequence[str], outputs: Sequence[str], name: str, domain: str = "", **attrs
) -> bytes:
    """NodeProto: input (1), output (2), name (3), op_type (4), attribute (5, sorted by
    name like onnx.helper.make_node), domain (7, only when not the default)."""
    out = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    out += _str(3, name) + _str(4, op)
    out += b"".join(_bytes(5, attribute(k, v)) for k, v in sorted(attrs.items()))
    return out + (_str(7, domain) if domain else b"")


def value_info(name: str, elem_type: int, dims: Iterable[int | str]) -> bytes:
    """ValueInfoProto name (1), type (2) = TypeProto.tensor_type (1) = {elem_type (1),
    shape (2) = TensorShapeProto {dim (1) = {dim_value (1) | dim_param (2)}}}."""
    shape = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, elem_type) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def graph(
    nodes: Iterable[bytes],
    name: str,
    inputs: Iterable[bytes],
    outputs: Iterable[bytes],
    initializers: Iterable[bytes],
) -> bytes:
    """GraphProto: node (1), name (2), initializer (5), input (11), output (12)."""
    out = b"".join(_bytes(1, n) for n in nodes) + _str(2, name)
    out += b"".join(_bytes(5, t) for t in initializers)
    out += b"".join(_bytes(11, i) for i in inputs)
    return out + b"".join(_bytes(12, o) for o in outputs)


def model(
    graph_bytes: bytes, opsets: Sequence[tuple[str, int]], ir_version: int, producer: str
) -> bytes:
    """ModelProto: ir_version (1), producer_name (2), graph (7), opset_import (8) =
    OperatorSetIdProto {domain (1), version (2)}."""
    out = _int(1, ir_version) + _str(2, producer) + _bytes(7, graph_bytes)
    return out + b"".join(_bytes(8, _str(1, d) + _int(2, v)) for d, v in opsets)
