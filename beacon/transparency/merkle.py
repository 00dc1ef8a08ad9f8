"""RFC 6962 Merkle tree hashing and proofs, with the verification algorithms of RFC 9162.

Terms follow the RFCs. ``D[n]`` is a list of ``n`` leaves; ``MTH(D[n])`` its Merkle Tree Hash:

* the empty tree hashes to SHA-256 of nothing,
* a leaf hashes to ``SHA-256(0x00 || data)`` (:func:`leaf_hash`),
* ``n > 1`` leaves split at ``k``, the largest power of two smaller than ``n``, and hash to
  ``SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` (:func:`node_hash`).

Proof *generation* is expressed once, as the list of leaf ranges whose subtree hashes make up a
proof (:func:`inclusion_path` for RFC 6962 ``PATH``, :func:`consistency_path` for ``PROOF``). Every
range splits into at most ``log2(n)`` *perfect* subtrees (:func:`perfect_subtrees`), whose hashes an
implementation can store once and never recompute: :class:`InMemoryTree` keeps them in lists, the
persistent log (``beacon.transparency.log``) keeps them in the database. Both produce the same
proofs through the same functions.

Proof *verification* (:func:`verify_inclusion`, :func:`verify_consistency`) is RFC 9162 §2.1.3.2 and
§2.1.4.2, step by step. They return None and raise :class:`ProofError` on any failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from beacon.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

Range = tuple[int, int]
"""Leaves ``[begin, end)`` of the tree."""

Node = tuple[int, int]
"""A perfect subtree ``(level, index)``: the ``2**level`` leaves starting at ``index * 2**level``."""


class ProofError(VerificationError):
    """A proof did not verify; the message says which check failed."""

    code = "bad_merkle_proof"


# --- hashing ------------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """MTH of one leaf: SHA-256(0x00 || data)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """``k``: the largest power of two strictly smaller than ``n`` (for ``n > 1``)."""
    if n < 2:
        raise ValueError(f"a tree of {n} leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves whose hashes are given."""
    return InMemoryTree(leaf_hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 ``PATH(index, D[n])``: the audit path of leaf ``index``, leaf side first."""
    return InMemoryTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 6962 ``PROOF(old_size, D[n])``: proves the first ``old_size`` leaves are the old tree."""
    return InMemoryTree(leaf_hashes).consistency_proof(old_size)


# --- which subtrees make up a proof ---------------------------------------------------------------------


def inclusion_path(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form ``PATH(index, D[size])``, in proof order (RFC 6962 §2.1.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[Range] = []
    begin, end = 0, size
    while end - begin > 1:
        k = split_point(end - begin)
        if index < begin + k:
            path.append((begin + k, end))
            end = begin + k
        else:
            path.append((begin, begin + k))
            begin += k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int) -> list[Range]:
    """The ranges whose hashes form ``PROOF(old_size, D[new_size])`` (RFC 6962 §2.1.2)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    path: list[Range] = []
    # SUBPROOF(m, D[begin:end], b), unrolled: the recursion only ever continues into one side.
    m, begin, end, complete = old_size, 0, new_size, True
    while m != end - begin:
        k = split_point(end - begin)
        if m <= k:
            path.append((begin + k, end))
            end = begin + k
        else:
            path.append((begin, begin + k))
            m -= k
            begin += k
            complete = False
    if not complete:
        path.append((begin, end))
    path.reverse()
    return path


def perfect_subtrees(begin: int, end: int) -> list[Node]:
    """Split a range of a proof into perfect subtrees, largest (leftmost) first.

    The ranges of :func:`inclusion_path` and :func:`consistency_path` always start at a multiple of
    a power of two at least as large as themselves; their MTH is then the right fold of
    :func:`node_hash` over these subtrees' hashes (see :func:`fold_subtrees`).
    """
    if not 0 <= begin < end:
        raise ValueError(f"empty or negative range [{begin}, {end})")
    nodes: list[Node] = []
    size = end - begin
    while size:
        level = size.bit_length() - 1
        if begin % (1 << level):
            raise ValueError(f"range [{begin}, {end}) is not aligned to its subtrees")
        nodes.append((level, begin >> level))
        begin += 1 << level
        size -= 1 << level
    return nodes


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from the hashes of its :func:`perfect_subtrees` (the right fold)."""
    if not hashes:
        raise ValueError("no subtrees to fold")
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def nodes_for(ranges: Iterable[Range]) -> list[Node]:
    """Every perfect subtree needed to hash the given ranges (what a store has to read)."""
    return [node for begin, end in ranges for node in perfect_subtrees(begin, end)]


def hash_ranges(ranges: Sequence[Range], node: Callable[[Node], bytes]) -> list[bytes]:
    """The hashes of ``ranges``, given a function that returns the hash of a perfect subtree."""
    return [fold_subtrees([node(n) for n in perfect_subtrees(begin, end)]) for begin, end in ranges]


def parent_nodes(index: int) -> list[Node]:
    """The perfect subtrees completed by appending leaf ``index`` (excluding the leaf itself).

    Leaf ``index`` completes the node at level ``l`` for every ``l`` such that the lowest ``l`` bits
    of ``index`` are all ones: appending is O(log n) and amortised O(1).
    """
    nodes: list[Node] = []
    level, i = 0, index
    while i & 1:
        i >>= 1
        level += 1
        nodes.append((level, i))
    return nodes


def frontier(size: int) -> list[Node]:
    """The perfect subtrees that make up a tree of ``size`` leaves, largest first (its compact range)."""
    return perfect_subtrees(0, size) if size else []


# --- an in-memory tree ----------------------------------------------------------------------------------


class InMemoryTree:
    """All perfect-subtree hashes of a list of leaves, level by level (the reference store).

    Building it is O(n); any proof for any tree size up to ``n`` then costs O(log n).
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for value in leaf_hashes:
            self.append_hash(value)

    @classmethod
    def from_entries(cls, entries: Iterable[bytes]) -> InMemoryTree:
        return cls(leaf_hash(entry) for entry in entries)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append_hash(self, value: bytes) -> int:
        """Append a leaf by its hash; return its index."""
        if len(value) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(value)}")
        index = self.size
        self.levels[0].append(value)
        for level, i in parent_nodes(index):
            if level == len(self.levels):
                self.levels.append([])
            below = self.levels[level - 1]
            self.levels[level].append(node_hash(below[2 * i], below[2 * i + 1]))
        return index

    def node(self, node: Node) -> bytes:
        level, index = node
        return self.levels[level][index]

    def _checked_size(self, size: int | None) -> int:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside the tree (0..{self.size})")
        return size

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all)."""
        size = self._checked_size(size)
        if size == 0:
            return EMPTY_ROOT
        return hash_ranges([(0, size)], self.node)[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """``PATH(index, D[size])``."""
        return hash_ranges(inclusion_path(index, self._checked_size(size)), self.node)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """``PROOF(old_size, D[new_size])``."""
        return hash_ranges(consistency_path(old_size, self._checked_size(new_size)), self.node)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ------------------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}")


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with this ``root``."""
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    _check_hash(leaf_hash, "the leaf hash")
    _check_hash(root, "the root hash")
    for position, element in enumerate(proof):
        _check_hash(element, f"proof element {position}")
    # 1. the leaf index must lie in the tree
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    # 2.-3.
    fn, sn, r = index, size - 1, leaf_hash
    # 4.
    for p in proof:
        if sn == 0:
            raise ProofError("the proof has more elements than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 5.
    if sn != 0:
        raise ProofError("the proof is missing elements for this tree size")
    if r != root:
        raise ProofError("the computed root does not match the expected root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size`` leaves."""
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    _check_hash(old_root, "the old root")
    _check_hash(new_root, "the new root")
    for position, element in enumerate(proof):
        _check_hash(element, f"proof element {position}")
    if old_size == 0:
        raise ProofError("there is no consistency proof from the empty tree")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("equal sizes but different roots")
        return
    # 1.
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    # 2.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof has more elements than the trees have levels")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise ProofError("the proof is missing elements for these sizes")
    if fr != old_root:
        raise ProofError("the proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new root")
