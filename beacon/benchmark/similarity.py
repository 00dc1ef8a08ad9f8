"""How alike two answers are: semantic (embeddings), lexical (tokens, edit ratio) and a readable diff.

Every measure here is symmetric, lies in [0, 1] and gives exactly 1 for identical texts; the
property tests in ``tests/benchmark/test_similarity.py`` hold each of them to that.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# A word is a run of letters/digits; a CJK ideograph, kana or hangul syllable is a word on its own
# (those scripts do not separate words with spaces, and one character often carries a word's meaning).
_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs
    "\uac00-\ud7af"  # hangul syllables
    "\U00020000-\U0002ffff"
)
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form in which "the same answer" is judged."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def tokens(text: str) -> list[str]:
    """Word tokens of ``text`` (NFKC, case-folded; CJK characters one by one)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def numbers(text: str) -> frozenset[str]:
    """The numbers a text states (years, counts, dates): a change in them is a change of content."""
    return frozenset(
        m.group(0).replace(",", "") for m in _NUMBER.finditer(unicodedata.normalize("NFKC", text))
    )


def sentences(text: str) -> list[str]:
    """Sentences and lines of ``text``, stripped, empty ones dropped."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def token_jaccard(a: str, b: str) -> float:
    """|A ∩ B| / |A ∪ B| over the sets of word tokens (1.0 when both have none)."""
    set_a, set_b = set(tokens(a)), set(tokens(b))
    if not set_a and not set_b:
        return 1.0
    return len(set_a & set_b) / len(set_a | set_b)


def diff_ratio(a: str, b: str) -> float:
    """difflib's ratio 2·M/T over the token sequences, made symmetric.

    ``SequenceMatcher`` can give ratio(a, b) ≠ ratio(b, a) (its longest-match search breaks ties by
    position), so the pair is put in a canonical order first. Junk heuristics are off: they would
    make the score depend on how often a word occurs.
    """
    seq_a, seq_b = tokens(a), tokens(b)
    if seq_a == seq_b:
        return 1.0
    first, second = sorted((seq_a, seq_b))
    return difflib.SequenceMatcher(None, first, second, autojunk=False).ratio()


def cosine_similarity(u: NDArray[np.float32], v: NDArray[np.float32]) -> float:
    """Cosine of two embeddings mapped to [0, 1] by clipping: orthogonal or opposed = unrelated = 0.

    For this model unrelated texts score around 0–0.2 and negative cosines are rare and carry no
    "opposite meaning", so clipping keeps the scale the model documents instead of compressing it
    into [0.5, 1] as (1 + cos)/2 would (decision 0051).
    """
    nu = float(np.linalg.norm(u))
    nv = float(np.linalg.norm(v))
    if nu == 0.0 or nv == 0.0:
        return 0.0
    # float64 sum in a fixed order: the same value whichever argument comes first.
    cos = float(np.dot(u.astype(np.float64), v.astype(np.float64)) / (nu * nv))
    return min(1.0, max(0.0, cos))


def similarity_matrix(vectors: NDArray[np.float32]) -> NDArray[np.float64]:
    """Pairwise clipped cosines of unit vectors; symmetric with an exact unit diagonal."""
    v = vectors.astype(np.float64)
    matrix = np.clip(v @ v.T, 0.0, 1.0)
    matrix = (matrix + matrix.T) / 2.0
    np.fill_diagonal(matrix, 1.0)
    return matrix


@dataclass(frozen=True)
class PairSimilarity:
    """All the measures for one pair of answers."""

    semantic: float
    jaccard: float
    diff_ratio: float
    identical: bool
    """Byte-identical outputs."""
    same_normalised: bool
    """Identical after NFKC, case folding and whitespace collapsing."""
    numbers_differ: bool
    """One answer states a number (year, count, date) the other does not."""

    def as_dict(self, digits: int = 4) -> dict[str, float | bool]:
        return {
            "semantic": round(self.semantic, digits),
            "jaccard": round(self.jaccard, digits),
            "diff_ratio": round(self.diff_ratio, digits),
            "identical": self.identical,
            "same_normalised": self.same_normalised,
            "numbers_differ": self.numbers_differ,
        }


def compare(a: str, b: str, vec_a: NDArray[np.float32], vec_b: NDArray[np.float32]) -> PairSimilarity:
    """Every measure for the pair (a, b) given their embeddings."""
    identical = a == b
    same = identical or normalise(a) == normalise(b)
    return PairSimilarity(
        semantic=1.0 if same else cosine_similarity(vec_a, vec_b),
        jaccard=1.0 if same else token_jaccard(a, b),
        diff_ratio=1.0 if same else diff_ratio(a, b),
        identical=identical,
        same_normalised=same,
        numbers_differ=numbers(a) != numbers(b),
    )


def diff_fragment(
    a: str,
    b: str,
    *,
    lhs_label: str = "lhs",
    rhs_label: str = "rhs",
    context: int = 1,
    max_chars: int = 2000,
) -> str:
    """A unified diff of the two answers, one sentence per line, at most ``max_chars`` long.

    Answers are usually one paragraph, so a line diff would replace everything; sentence lines show
    which statements changed. When the diff is longer than ``max_chars`` it is cut at a line
    boundary and ends with a marker saying how many lines were left out. Identical → "".
    """
    if a == b:
        return ""
    lines = list(
        difflib.unified_diff(
            sentences(a), sentences(b), fromfile=lhs_label, tofile=rhs_label, n=context, lineterm=""
        )
    )
    full = "\n".join(lines)
    if len(full) <= max_chars:
        return full
    marker_room = len(f"\n… ({len(lines)} more diff lines not shown)")
    out: list[str] = []
    used = 0
    for line in lines:
        budget = max_chars - marker_room - used - (1 if out else 0)
        if len(line) <= budget:
            out.append(line)
            used += len(line) + (1 if len(out) > 1 else 0)
            continue
        if budget > 40:  # a long sentence is shortened rather than dropped
            out.append(line[: budget - 1] + "…")
        break
    hidden = len(lines) - len(out)
    return "\n".join([*out, f"… ({hidden} more diff lines not shown)"])
