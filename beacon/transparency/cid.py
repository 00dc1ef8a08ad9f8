"""Content identifiers: the CID ``ipfs add --cid-version=1 --raw-leaves`` gives a file, computed locally.

kubo's importer (boxo ``ipld/unixfs/importer/balanced``) with these options:

* the file is cut into chunks of 256 KiB (``size-262144``);
* each chunk is a *raw* block: CIDv1, codec ``raw`` (0x55), multihash sha2-256;
* a file of at most one chunk (the empty file included) *is* that raw block;
* otherwise chunks are linked from dag-pb (0x70) nodes of at most 174 links, filled left to right,
  level by level, until one root remains — the balanced layout, all leaves at the same depth.

A dag-pb node is the protobuf ``PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }``,
links serialised first; each ``PBLink { Hash = 1 (CID bytes); Name = 2 (""); Tsize = 3 }`` where
``Tsize`` is the child's block size plus all of its descendants' (kubo always writes the empty
name and the size). ``Data`` is the UnixFS message ``{Type = 1: File (2); filesize = 3;
repeated blocksizes = 4 (unpacked)}``: the file bytes below the node and below each child.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from multiformats import CID, multihash

from beacon.errors import VerificationError

CHUNK_SIZE = 262_144
MAX_LINKS = 174
RAW = "raw"
DAG_PB = "dag-pb"
UNIXFS_FILE = 2


class CIDError(VerificationError):
    """A string is not a CID this module can check, or content does not match its CID."""

    code = "bad_cid"


# --- protobuf, the four encodings dag-pb and UnixFS need -------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3 | 0) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def unixfs_file_data(filesize: int, blocksizes: list[int]) -> bytes:
    """The UnixFS ``Data`` message of a file node without inline data."""
    out = _field_varint(1, UNIXFS_FILE) + _field_varint(3, filesize)
    return out + b"".join(_field_varint(4, size) for size in blocksizes)


def dag_pb_node(links: list[tuple[bytes, int]], data: bytes) -> bytes:
    """A dag-pb ``PBNode`` with unnamed links ``(cid bytes, tsize)`` and ``data``."""
    encoded = [_field_bytes(1, cid) + _field_bytes(2, b"") + _field_varint(3, tsize) for cid, tsize in links]
    return b"".join(_field_bytes(2, link) for link in encoded) + _field_bytes(1, data)


# --- the importer --------------------------------------------------------------------------------------


def make_cid(codec: str, block: bytes) -> CID:
    """CIDv1 (base32) of a block with sha2-256."""
    return CID("base32", 1, codec, multihash.wrap(hashlib.sha256(block).digest(), "sha2-256"))


@dataclass(frozen=True)
class _Child:
    cid: CID
    tsize: int
    """Block size plus every descendant's (what the parent's link records)."""
    filesize: int
    """File bytes under this node."""


@dataclass
class UnixFSFile:
    """A file imported as a UnixFS DAG: its root CID and every block, keyed by CID string."""

    cid: CID
    size: int
    blocks: dict[str, bytes] = field(default_factory=dict)
    tsize: int = 0
    """The DAG's cumulative size (what ``ipfs add`` reports as ``Size``)."""

    def __str__(self) -> str:
        return str(self.cid)


def _chunks(data: bytes, chunk_size: int) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])


def import_file(
    data: bytes, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS, keep_blocks: bool = True
) -> UnixFSFile:
    """Import ``data`` like ``ipfs add --cid-version=1 --raw-leaves`` (see the module docstring)."""
    if chunk_size < 1 or max_links < 2:
        raise ValueError("chunk_size must be >= 1 and max_links >= 2")
    blocks: dict[str, bytes] = {}
    level: list[_Child] = []
    for chunk in _chunks(data, chunk_size) if data else iter([b""]):
        cid = make_cid(RAW, chunk)
        if keep_blocks:
            blocks[str(cid)] = chunk
        level.append(_Child(cid, len(chunk), len(chunk)))
    while len(level) > 1:
        parents: list[_Child] = []
        for start in range(0, len(level), max_links):
            group = level[start : start + max_links]
            filesize = sum(child.filesize for child in group)
            block = dag_pb_node(
                [(bytes(child.cid), child.tsize) for child in group],
                unixfs_file_data(filesize, [child.filesize for child in group]),
            )
            cid = make_cid(DAG_PB, block)
            if keep_blocks:
                blocks[str(cid)] = block
            parents.append(_Child(cid, len(block) + sum(child.tsize for child in group), filesize))
        level = parents
    return UnixFSFile(level[0].cid, len(data), blocks, level[0].tsize)


def compute_cid(data: bytes) -> str:
    """The CIDv1 string of ``data`` as ``ipfs add --cid-version=1 --raw-leaves`` reports it."""
    return str(import_file(data, keep_blocks=False).cid)


def parse_cid(text: str) -> CID:
    """Parse a CID string this module can re-check (CIDv1, sha2-256, raw or dag-pb); CIDError otherwise."""
    try:
        cid = CID.decode(text.strip())
    except Exception as exc:  # multiformats raises several unrelated types
        raise CIDError(f"not a CID: {text[:80]!r}") from exc
    if cid.version != 1:
        raise CIDError("only CIDv1 content identifiers are accepted")
    if cid.hashfun.name != "sha2-256" or cid.codec.name not in (RAW, DAG_PB):
        raise CIDError("only sha2-256 CIDs of raw or dag-pb blocks are accepted")
    return cid


def canonical_cid(text: str) -> str:
    """``text`` as the one string a CID is stored and computed under: CIDv1 in lower-case base32.

    The same CID in another multibase (``z…`` base58btc, ``B…`` upper-case base32, …) names the same
    content; CIDError for what :func:`parse_cid` refuses.
    """
    return str(parse_cid(text).set(base="base32"))


def check_cid(cid: str, data: bytes) -> None:
    """Raise CIDError unless ``data`` imports to exactly ``cid``."""
    expected = canonical_cid(cid)
    actual = compute_cid(data)
    if expected != actual:
        raise CIDError(f"content does not match its CID: expected {expected}, computed {actual}")


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if at >= len(data) or shift > 63:
            raise CIDError("truncated or oversized protobuf varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _read_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(data, at)
            yield number, wire, value
        elif wire == 2:
            length, at = _read_varint(data, at)
            if at + length > len(data):
                raise CIDError("truncated protobuf field")
            yield number, wire, data[at : at + length]
            at += length
        else:
            raise CIDError(f"unexpected protobuf wire type {wire}")


def dag_pb_links(block: bytes) -> list[CID]:
    """The CIDs a dag-pb block links to, in order (for walking a file's DAG)."""
    links: list[CID] = []
    for number, wire, value in _read_fields(block):
        if number == 2 and wire == 2 and isinstance(value, bytes):
            for inner, inner_wire, field_value in _read_fields(value):
                if inner == 1 and inner_wire == 2 and isinstance(field_value, bytes):
                    links.append(CID.decode(field_value).set(base="base32"))
    return links


def read_file(root: str, blocks: dict[str, bytes]) -> bytes:
    """Reassemble a file from its blocks (raw leaves and dag-pb nodes); KeyError if one is missing."""
    out = bytearray()
    stack = [parse_cid(root)]
    while stack:
        cid = stack.pop()
        block = blocks[str(cid)]
        if cid.codec.name == RAW:
            out += block
        else:
            stack.extend(reversed(dag_pb_links(block)))
    return bytes(out)
