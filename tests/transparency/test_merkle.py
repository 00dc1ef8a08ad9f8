"""RFC 6962 / RFC 9162 conformance of ``beacon.transparency.merkle``.

Known answers are transparency-dev/merkle's golden 8-leaf data (``testonly/constants.go``: the leaf
inputs, the root of every prefix, and its inclusion and consistency proofs). Every proof for every
tree up to a few hundred leaves is checked against a naive recursive implementation written straight
from RFC 6962 §2.1, and mutated proofs are rejected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.transparency.merkle import (
    EMPTY_ROOT,
    InMemoryTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# --- transparency-dev/merkle testonly/constants.go --------------------------------------------------

LEAF_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
ROOTS = [  # root of the first n leaves, n = 1..8
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION_PROOFS = [  # (leaf index, tree size, proof)
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY_PROOFS = [  # (old size, new size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def _hashes(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


GOLDEN = [leaf_hash(data) for data in LEAF_INPUTS]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_golden_leaf_hashes_and_roots() -> None:
    assert [h.hex() for h in GOLDEN] == LEAF_HASHES
    for size, expected in enumerate(ROOTS, start=1):
        assert root_hash(GOLDEN[:size]).hex() == expected


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_golden_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    assert inclusion_proof(GOLDEN[:size], index) == _hashes(proof)
    verify_inclusion(GOLDEN[index], index, size, _hashes(proof), bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS)
def test_golden_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    assert consistency_proof(GOLDEN[:new], old) == _hashes(proof)
    verify_consistency(old, new, bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1]), _hashes(proof))


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    # A two-leaf tree's root must not be reachable as the hash of a leaf whose data is l || r.
    left, right = leaf_hash(b"L"), leaf_hash(b"R")
    assert node_hash(left, right) != leaf_hash(left + right)
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


# --- naive recursive reference, straight from RFC 6962 §2.1 ----------------------------------------------


class Reference:
    """MTH, PATH and PROOF as the RFC writes them (memoised so that whole trees stay cheap)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.mth: Callable[[int, int], bytes] = lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return hashlib.sha256(b"\x00" + self.leaves[lo]).digest()
        k = 1
        while k * 2 < n:
            k *= 2
        return hashlib.sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi)).digest()

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def _entries(n: int, salt: bytes = b"") -> list[bytes]:
    return [salt + i.to_bytes(4, "big") for i in range(n)]


MAX_EXHAUSTIVE = 260


def test_every_proof_of_every_tree_matches_the_reference() -> None:
    """All trees of 1..MAX_EXHAUSTIVE leaves: every root, every inclusion proof, every consistency proof."""
    entries = _entries(MAX_EXHAUSTIVE)
    ref = Reference(entries)
    tree = InMemoryTree.from_entries(entries)
    for size in range(1, MAX_EXHAUSTIVE + 1):
        root = ref.mth(0, size)
        assert tree.root(size) == root
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            assert proof == ref.path(index, 0, size)
            verify_inclusion(tree.levels[0][index], index, size, proof, root)
        for old in range(1, size + 1):
            proof = tree.consistency_proof(old, size)
            assert proof == ref.subproof(old, 0, size, True)
            verify_consistency(old, size, ref.mth(0, old), root, proof)


def test_list_functions_agree_with_the_tree() -> None:
    hashes = [leaf_hash(e) for e in _entries(37)]
    tree = InMemoryTree(hashes)
    assert root_hash(hashes) == tree.root()
    assert inclusion_proof(hashes, 20) == tree.inclusion_proof(20)
    assert consistency_proof(hashes, 13) == tree.consistency_proof(13)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 5000), data=st.data())
def test_random_large_trees_match_the_reference(size: int, data: st.DataObject) -> None:
    entries = _entries(size, b"r")
    ref = Reference(entries)
    tree = InMemoryTree.from_entries(entries)
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(1, size))
    assert tree.inclusion_proof(index) == ref.path(index, 0, size)
    assert tree.consistency_proof(old) == ref.subproof(old, 0, size, True)


# --- rejection of everything that is not exactly the proof ---------------------------------------------


def _flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def _inclusion_mutations(
    tree: InMemoryTree, index: int, size: int
) -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    leaf, proof, root = tree.levels[0][index], tree.inclusion_proof(index, size), tree.root(size)
    out = [
        ("leaf bit flip", _flip(leaf, 7), index, size, proof, root),
        ("root bit flip", leaf, index, size, proof, _flip(root, 100)),
        ("extra element", leaf, index, size, [*proof, leaf], root),
        ("extra element first", leaf, index, size, [leaf, *proof], root),
        ("index + 1", leaf, index + 1, size, proof, root),
        ("index = size", leaf, size, size, proof, root),
        ("size * 2", leaf, index, size * 2, proof, root),
        ("leaf hash as root", leaf, index, size, proof, leaf),
    ]
    if index > 0:
        out.append(("index - 1", leaf, index - 1, size, proof, root))
    for i in range(len(proof)):
        out.append(
            (
                f"element {i} bit flip",
                leaf,
                index,
                size,
                [*proof[:i], _flip(proof[i], i), *proof[i + 1 :]],
                root,
            )
        )
        out.append((f"element {i} dropped", leaf, index, size, proof[:i] + proof[i + 1 :], root))
    if len(proof) > 1:
        out.append(("swapped elements", leaf, index, size, [proof[1], proof[0], *proof[2:]], root))
    if proof:
        out.append(("truncated", leaf, index, size, proof[:-1], root))
        out.append(("element not 32 bytes", leaf, index, size, [proof[0][:31], *proof[1:]], root))
    # The same proof presented for the neighbouring trees, against those trees' real roots.
    for other in (size - 1, size + 1):
        if 0 < other <= tree.size and index < other:
            out.append((f"size {other}", leaf, index, other, proof, tree.root(other)))
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 63, 64, 100])
def test_mutated_inclusion_proofs_are_rejected(size: int) -> None:
    tree = InMemoryTree.from_entries(_entries(size + 1))
    for index in range(size):
        for name, leaf, i, n, proof, root in _inclusion_mutations(tree, index, size):
            genuine = 0 <= i < n <= tree.size and tree.inclusion_proof(i, n) == proof and tree.root(n) == root
            if genuine and tree.levels[0][i] == leaf:
                continue  # the mutation happens to describe another true statement
            with pytest.raises(ProofError):
                verify_inclusion(leaf, i, n, proof, root)
                pytest.fail(f"accepted mutation {name!r} of leaf {index} in size {size}")


@pytest.mark.parametrize("size", [2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64])
def test_mutated_consistency_proofs_are_rejected(size: int) -> None:
    tree = InMemoryTree.from_entries(_entries(size + 1))
    new_root = tree.root(size)
    for old in range(1, size):
        old_root, proof = tree.root(old), tree.consistency_proof(old, size)
        cases: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
            ("swapped roots", old, size, new_root, old_root, proof),
            ("old root bit flip", old, size, _flip(old_root, 3), new_root, proof),
            ("new root bit flip", old, size, old_root, _flip(new_root, 200), proof),
            ("extra element", old, size, old_root, new_root, [*proof, old_root]),
            ("truncated", old, size, old_root, new_root, proof[:-1]),
            ("empty", old, size, old_root, new_root, []),
            ("from size 0", 0, size, EMPTY_ROOT, new_root, proof),
            ("sizes reversed", size, old, new_root, old_root, proof),
        ]
        for i in range(len(proof)):
            cases.append(
                ("bit flip", old, size, old_root, new_root, [*proof[:i], _flip(proof[i], 9), *proof[i + 1 :]])
            )
        for o, n in ((old - 1, size), (old + 1, size), (old, size - 1), (old, size + 1)):
            if 0 < o <= n <= tree.size and (o, n) != (old, size):
                cases.append((f"sizes {o},{n}", o, n, tree.root(o), tree.root(n), proof))
        for name, o, n, r1, r2, p in cases:
            true_roots = 0 < o <= n <= tree.size and tree.root(o) == r1 and tree.root(n) == r2
            if true_roots and ((o == n and not p) or (o < n and tree.consistency_proof(o, n) == p)):
                continue  # a true statement, not a mutation
            with pytest.raises(ProofError):
                verify_consistency(o, n, r1, r2, p)
                pytest.fail(f"accepted mutation {name!r} of {old}->{size}")


def test_degenerate_inputs_are_proof_errors_not_crashes() -> None:
    leaf = leaf_hash(b"x")
    with pytest.raises(ProofError, match="not in a tree"):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, -1, 3, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(leaf[:5], 0, 1, [], leaf)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="equal sizes"):
        verify_consistency(3, 3, leaf, EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(3, 3, leaf, leaf, [leaf])
    verify_consistency(3, 3, leaf, leaf, [])
    verify_inclusion(leaf, 0, 1, [], leaf)


def test_sizes_beyond_64_bits_are_plain_integers() -> None:
    huge = 1 << 70
    with pytest.raises(ProofError, match="missing elements"):
        verify_inclusion(leaf_hash(b"x"), huge - 1, huge, [], EMPTY_ROOT)
    proof = [leaf_hash(bytes([i])) for i in range(70)]
    with pytest.raises(ProofError, match="computed root"):
        verify_inclusion(leaf_hash(b"x"), huge - 1, huge, proof, EMPTY_ROOT)
