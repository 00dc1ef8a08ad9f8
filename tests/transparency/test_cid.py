"""CIDs equal to ``ipfs add --cid-version=1 --raw-leaves``; where each expected value comes from is noted."""

from __future__ import annotations

import base64
import hashlib

import pytest

from beacon.transparency.cid import (
    CHUNK_SIZE,
    MAX_LINKS,
    CIDError,
    check_cid,
    compute_cid,
    import_file,
    parse_cid,
)


def pattern(n: int) -> bytes:
    """Deterministic, non-repeating test content."""
    return hashlib.shake_256(b"beacon-cid-test").digest(n)


def cidv1_string(codec: int, block: bytes) -> str:
    """CIDv1 base32 written out with the standard library only (no multiformats)."""
    raw = bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(block).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def test_empty_file() -> None:
    # A file of no bytes is one empty raw block: the CIDv1 of SHA-256("") (e3b0c442…), the value kubo
    # prints for `ipfs add --cid-version=1 --raw-leaves` of an empty file.
    assert compute_cid(b"") == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert compute_cid(b"") == cidv1_string(0x55, b"")


def test_hello_world() -> None:
    # The CID kubo documents for a file holding "hello world\n" added with CIDv1 and raw leaves.
    assert compute_cid(b"hello world\n") == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_exactly_one_chunk_is_a_raw_block() -> None:
    data = pattern(CHUNK_SIZE)
    assert compute_cid(data) == cidv1_string(0x55, data)


def test_two_chunks_against_hand_encoded_dag_pb() -> None:
    """The root of a 2-chunk file, encoded byte by byte from the dag-pb and UnixFS specs."""
    data = b"a" * CHUNK_SIZE + b"b"
    leaf1, leaf2 = (
        bytes.fromhex("01551220") + hashlib.sha256(data[:CHUNK_SIZE]).digest(),
        bytes.fromhex("01551220") + hashlib.sha256(b"b").digest(),
    )
    # PBLink: 0a 24 <36-byte CID> | 12 00 (Name "") | 18 <varint Tsize>; 262144 = 80 80 10, 1 = 01
    link1 = b"\x0a\x24" + leaf1 + b"\x12\x00" + b"\x18\x80\x80\x10"
    link2 = b"\x0a\x24" + leaf2 + b"\x12\x00" + b"\x18\x01"
    # UnixFS Data: 08 02 (Type File) | 18 81 80 10 (filesize 262145) | 20 80 80 10 | 20 01 (blocksizes)
    unixfs = bytes.fromhex("0802" + "18818010" + "20808010" + "2001")
    # PBNode: Links (field 2) first, then Data (field 1)
    root = b"\x12" + bytes([len(link1)]) + link1 + b"\x12" + bytes([len(link2)]) + link2
    root += b"\x0a" + bytes([len(unixfs)]) + unixfs
    dag = import_file(data)
    assert dag.blocks[str(dag.cid)] == root
    assert str(dag.cid) == cidv1_string(0x70, root)


# Computed once, independently of this module, with the PyPI package aleph-cid 0.1.0
# (`CidHasher.for_ipfs_v1_raw_leaves()`, a Rust port of kubo's importer; its CIDv0 mode gives kubo's
# well-known QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o for "hello world\n"). Not a dependency.
KUBO_VECTORS = [
    (CHUNK_SIZE + 1, "bafybeicqpr2gbgk6xwkkqtmjijm2hkr56u6bfzoyrd3fuyk2dkxtwswtny"),
    (MAX_LINKS * CHUNK_SIZE, "bafybeid3rtybjzhkcpfj6uyuofvwrrlhdizrtsvtm43eq6dk2wdh2wem5e"),
    (MAX_LINKS * CHUNK_SIZE + 1, "bafybeigbfrso46nt7o5mmyipxw2o3ip5ecxwosx5orghdpgsbykm5zldue"),
    (200 * CHUNK_SIZE + 17, "bafybeigorzhy4rifjhvk3gttqtpbxxgzgdjcsukqi4mstspo5jvrs7q4aq"),
]


@pytest.mark.parametrize(("size", "expected"), KUBO_VECTORS)
def test_multi_chunk_files_match_kubo(size: int, expected: str) -> None:
    assert compute_cid(pattern(size)) == expected


def _decode_links(block: bytes) -> list[tuple[str, int]]:
    """A minimal dag-pb link reader for the structure tests (CID string, Tsize)."""
    links, i = [], 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            byte = block[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(block):
        key = varint()
        length = varint()
        body, i = block[i : i + length], i + length
        if key == (2 << 3 | 2):
            cid_bytes = body[2 : 2 + body[1]]
            tsize_at = 2 + body[1] + 2
            assert body[tsize_at] == 0x18
            j, shift, tsize = tsize_at + 1, 0, 0
            while True:
                tsize |= (body[j] & 0x7F) << shift
                shift += 7
                if not body[j] & 0x80:
                    break
                j += 1
            codec = 0x70 if cid_bytes[1] == 0x70 else 0x55
            digest = cid_bytes[4:]
            raw = bytes([0x01, codec, 0x12, 0x20]) + digest
            links.append(("b" + base64.b32encode(raw).decode().lower().rstrip("="), tsize))
    return links


def test_more_than_174_chunks_make_a_second_level() -> None:
    data = pattern(MAX_LINKS * CHUNK_SIZE + 1)
    dag = import_file(data)
    top = _decode_links(dag.blocks[str(dag.cid)])
    assert len(top) == 2
    first, second = (_decode_links(dag.blocks[cid]) for cid, _ in top)
    assert len(first) == MAX_LINKS and len(second) == 1
    # Tsize of a node = its block + everything below it.
    assert top[1][1] == len(dag.blocks[top[1][0]]) + 1


def _balanced_reference(data: bytes, chunk_size: int, max_links: int) -> str:
    """boxo's balanced.Layout written as it reads (depth-first fillNodeRec), with small parameters."""
    from beacon.transparency.cid import DAG_PB, RAW, dag_pb_node, make_cid, unixfs_file_data

    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    position = 0

    def leaf() -> tuple[bytes, int, int]:
        nonlocal position
        chunk = chunks[position]
        position += 1
        return bytes(make_cid(RAW, chunk)), len(chunk), len(chunk)

    def seal(children: list[tuple[bytes, int, int]]) -> tuple[bytes, int, int]:
        size = sum(c[2] for c in children)
        block = dag_pb_node(
            [(c[0], c[1]) for c in children], unixfs_file_data(size, [c[2] for c in children])
        )
        return bytes(make_cid(DAG_PB, block)), len(block) + sum(c[1] for c in children), size

    def fill(children: list[tuple[bytes, int, int]], depth: int) -> tuple[bytes, int, int]:
        while len(children) < max_links and position < len(chunks):
            children.append(leaf() if depth == 1 else fill([], depth - 1))
        return seal(children)

    root = leaf()
    depth = 1
    while position < len(chunks):
        root = fill([root], depth)
        depth += 1
    from multiformats import CID

    return str(CID.decode(root[0]).set(base="base32"))


@pytest.mark.parametrize("size", [0, 1, 3, 4, 9, 10, 27, 28, 40, 81, 82, 100])
def test_level_by_level_equals_kubos_depth_first_layout(size: int) -> None:
    # Chunks of 1 byte and 3 links per node reach depth 4 with a few dozen bytes.
    data = pattern(size)
    assert str(import_file(data, chunk_size=1, max_links=3).cid) == _balanced_reference(data, 1, 3)


def test_check_cid() -> None:
    data = b"bundle"
    check_cid(compute_cid(data), data)
    with pytest.raises(CIDError, match="does not match"):
        check_cid(compute_cid(data), data + b"!")
    with pytest.raises(CIDError, match="not a CID"):
        parse_cid("not-a-cid")
    with pytest.raises(CIDError, match="CIDv1"):
        parse_cid("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
