"""Results as safetensors files, written and read with the standard library.

The relay answers `GET /jobs/<id>/result` with a safetensors file (PROTOCOL.md): an 8-byte little-endian header
length, a JSON header naming each tensor's dtype, shape and byte range, then the raw little-endian data. Only two
dtypes occur: F32 (activations, logits) and I32 (token ids). `__metadata__` holds one key, "lmw", the result's
non-tensor fields as a JSON string.

An `Array` is the relay's tensor: a dtype, a shape and the values flat in row-major order. The nnsight step turns
what NDIF saved into Arrays; everything after it (shapes, packing) works on Arrays, so it is tested without torch.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

DTYPES = {"F32": "f", "I32": "i"}


@dataclass
class Array:
    dtype: str  # "F32" or "I32"
    shape: List[int]
    data: List[float]  # flat, row-major; ints for I32

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype}: only F32 and I32 are written")
        if any(not isinstance(n, int) or n < 0 for n in self.shape):
            raise ValueError(f"shape {self.shape}: dimensions must be non-negative integers")
        if math.prod(self.shape) != len(self.data):
            raise ValueError(f"shape {self.shape} holds {math.prod(self.shape)} values, not {len(self.data)}")


def pack(tensors: Dict[str, Array], header: dict) -> bytes:
    """A safetensors file of these tensors (in name order), `header` as the JSON string `__metadata__["lmw"]`."""
    meta: dict = {"__metadata__": {"lmw": json.dumps(header, separators=(",", ":"))}}
    chunks: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        array = tensors[name]
        raw = struct.pack(f"<{len(array.data)}{DTYPES[array.dtype]}", *array.data)
        meta[name] = {"dtype": array.dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    # The format asks for the data to start 8-byte aligned: pad the header with spaces.
    head += b" " * (-(8 + len(head)) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def unpack(blob: bytes) -> Tuple[Dict[str, Array], dict]:
    """The tensors and the "lmw" header of a file `pack` wrote (the tests read results with it)."""
    if len(blob) < 8:
        raise ValueError(f"a safetensors file has at least 8 bytes; this one has {len(blob)}")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"the header claims {n} bytes but the file has {len(blob) - 8} after the length")
    meta = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = blob[8 + n :]
    header = json.loads(meta.pop("__metadata__", {}).get("lmw", "{}"))
    tensors: Dict[str, Array] = {}
    for name, info in meta.items():
        dtype = info["dtype"]
        if dtype not in DTYPES:
            raise ValueError(f"tensor {name}: dtype {dtype} is not one the relay writes")
        start, end = info["data_offsets"]
        count = (end - start) // 4
        values = list(struct.unpack(f"<{count}{DTYPES[dtype]}", data[start:end]))
        tensors[name] = Array(dtype, list(info["shape"]), values)
    return tensors, header


def reshape(array: Array, shape: Sequence[int], what: str) -> Array:
    """The same values under another shape; a count that does not fit is an error naming `what` (NDIF's answer)."""
    if math.prod(shape) != len(array.data):
        raise ValueError(
            f"{what}: NDIF sent {len(array.data)} values (shape {array.shape}), expected {'×'.join(map(str, shape))}"
        )
    return Array(array.dtype, list(shape), array.data)


def with_batch(array: Array, rank: int, what: str) -> Array:
    """Put back a leading batch axis of 1 where NDIF dropped it (nnsight #581); any other rank is an error."""
    if len(array.shape) == rank:
        return array
    if len(array.shape) == rank - 1:
        return Array(array.dtype, [1, *array.shape], array.data)
    raise ValueError(f"{what}: NDIF sent shape {array.shape}, expected {rank} axes (batch first)")
