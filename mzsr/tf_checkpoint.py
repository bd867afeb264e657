"""Read a TensorFlow checkpoint (the "tensor bundle": ``PREFIX.index`` + ``PREFIX.data-*``)
without TensorFlow, as numpy arrays: what ``srlab.mzsr.convert`` reads the official MZSR
checkpoints with.

The format, as TensorFlow's ``tensor_bundle.cc`` writes it:

* ``PREFIX.index`` is a LevelDB-style sorted table (uncompressed): data blocks of prefix-compressed
  ``key -> value`` entries, an index block pointing at them, and a 48-byte footer ending in a
  magic number. The key is the variable's name; the value is a ``BundleEntryProto`` (dtype, shape,
  shard, offset, size, masked CRC32-C of the bytes). The empty key holds the header (number of
  shards, byte order).
* ``PREFIX.data-0000S-of-0000N`` holds the raw little-endian bytes of every tensor.

The protobuf messages are decoded by hand (a dozen lines: only varints, fixed32 and nested
messages occur), so no ``tensorflow`` or ``protobuf`` dependency is needed. Every tensor read
is checked against its CRC. Anything unexpected is a ``UserError`` naming the file.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srlab.errors import UserError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
# TensorFlow's DataType enum values -> numpy dtypes (the ones checkpoints of SR networks hold).
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16, 10: np.bool_}


@dataclass(frozen=True)
class Entry:
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None


# --------------------------------------------------------------------------- protobuf wire format
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message: ints for varint/fixed, bytes for the rest."""
    out, pos = [], 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", message, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", message, pos)[0], pos + 4
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _entry(value: bytes) -> Entry:
    fields = _fields(value)
    get = lambda n, default=0: next((v for f, v in fields if f == n), default)  # noqa: E731
    if any(f == 7 for f, _ in fields):
        raise ValueError("partitioned (sliced) variables are not supported")
    shape_fields = _fields(get(2, b""))
    dims = tuple(next((v for f, v in _fields(d) if f == 1), 0) for f, d in shape_fields if f == 2)
    crc = next((v for f, v in fields if f == 6), None)
    return Entry(get(1), dims, get(3), get(4), get(5), crc)


# --------------------------------------------------------------------------- the sorted table
def _block(data: bytes, handle: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    """The entries of the block at ``(offset, size)``; its trailer byte must say "uncompressed"."""
    offset, size = handle
    if data[offset + size] != 0:
        raise ValueError("compressed table blocks are not supported")
    block = data[offset : offset + size]
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def _handle(value: bytes, pos: int = 0) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(value, pos)
    size, pos = _varint(value, pos)
    return (offset, size), pos


def read_index(path: Path) -> dict[str, Entry]:
    """Every tensor entry of ``PREFIX.index`` (the header excluded)."""
    data = path.read_bytes()
    if len(data) < FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise UserError(f"{path}: not a TensorFlow checkpoint index (no table footer)")
    try:
        footer = data[-FOOTER_SIZE:]
        _, pos = _handle(footer)  # the meta-index block: unused
        index_handle, _ = _handle(footer, pos)
        entries = {}
        for _, block_handle in _block(data, index_handle):
            for key, value in _block(data, _handle(block_handle)[0]):
                if key:  # b"": the BundleHeaderProto
                    entries[key.decode()] = _entry(value)
                elif any(f == 2 and v != 0 for f, v in _fields(value)):
                    raise ValueError("big-endian checkpoints are not supported")
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read this TensorFlow checkpoint index ({exc})") from None
    return entries


# --------------------------------------------------------------------------- CRC32-C (Castagnoli)
def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC32-C of ``data``."""
    crc, table = 0xFFFFFFFF, _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- tensors
def checkpoint_files(prefix: str | Path) -> tuple[Path, list[Path]]:
    """``PREFIX.index`` and its data shards; a missing file is a one-line error."""
    prefix = Path(prefix)
    if prefix.suffix == ".index" or prefix.suffix.startswith(".data-"):
        prefix = prefix.with_suffix("")  # given a file of the checkpoint instead of its prefix
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        raise UserError(f"{prefix}: no {index.name} there; give the checkpoint's prefix (e.g. .../Pretrained for "
                        f"Pretrained.index + Pretrained.data-00000-of-00001)")
    shards = sorted(prefix.parent.glob(prefix.name + ".data-*-of-*"))
    if not shards:
        raise UserError(f"{prefix}: {index.name} is there but no {prefix.name}.data-*-of-* file")
    return index, shards


def read_tensors(prefix: str | Path, names: list[str] | None = None,
                 entries: dict[str, Entry] | None = None) -> dict[str, np.ndarray]:
    """The tensors ``names`` (default: all) of the checkpoint at ``prefix``, CRC-checked.
    ``entries``: its index, when the caller has read it already."""
    index, shards = checkpoint_files(prefix)
    entries = read_index(index) if entries is None else entries
    wanted = list(entries) if names is None else names
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise UserError(f"{index}: no tensor {missing[0]!r} in this checkpoint (it has {len(entries)}, e.g. "
                        f"{', '.join(sorted(entries)[:4])})")
    out = {}
    for name in wanted:
        e = entries[name]
        if e.dtype not in DTYPES:
            raise UserError(f"{index}: tensor {name!r} has TensorFlow dtype {e.dtype}, which this reader does not know")
        shard = next((s for s in shards if s.name.endswith(f".data-{e.shard:05d}-of-{len(shards):05d}")), None)
        if shard is None:
            raise UserError(f"{index}: tensor {name!r} is in shard {e.shard}, which is not there")
        with open(shard, "rb") as f:
            f.seek(e.offset)
            raw = f.read(e.size)
        if len(raw) != e.size:
            raise UserError(f"{shard}: too short for tensor {name!r} (a truncated download?)")
        if e.crc32c is not None and masked_crc32c(raw) != e.crc32c:
            raise UserError(f"{shard}: tensor {name!r} fails its CRC check (a corrupted download?)")
        array = np.frombuffer(raw, dtype=np.dtype(DTYPES[e.dtype]).newbyteorder("<"))
        if array.size != int(np.prod(e.shape)):
            raise UserError(f"{index}: tensor {name!r} holds {array.size} values for shape {e.shape}")
        out[name] = array.reshape(e.shape).astype(DTYPES[e.dtype])
    return out
