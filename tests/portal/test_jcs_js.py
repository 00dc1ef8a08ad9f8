"""The portal's RFC 8785 canonicaliser (js/jcs.js) against the shared vectors and beacon.canonical.jcs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from beacon.canonical import CanonicalizationError, jcs
from beacon.portal.browser import Page
from tests.portal.conftest import run_js

VECTORS = json.loads((Path(__file__).parent / "vectors" / "jcs.json").read_text(encoding="utf-8"))["vectors"]

CANONICALIZE_ALL = """
const { canonicalize } = await import('./js/jcs.js');
return inputs.map((text) => {
  try { return { text: canonicalize(JSON.parse(text)) }; } catch (e) { return { error: e.name, message: e.message }; }
});
"""


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_python_jcs_gives_each_vector(vector: dict[str, Any]) -> None:
    document = json.loads(vector["input"])
    if vector.get("error"):
        with pytest.raises(CanonicalizationError):
            jcs(document)
    else:
        assert jcs(document).decode("utf-8") == vector["canonical"]


def test_js_canonicaliser_gives_each_vector(modules: Page) -> None:
    results = run_js(modules, CANONICALIZE_ALL, inputs=[v["input"] for v in VECTORS])
    for vector, result in zip(VECTORS, results, strict=True):
        if vector.get("error"):
            assert result["error"] == "CanonicalizationError", vector["name"]
        else:
            assert result == {"text": vector["canonical"]}, vector["name"]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(
        ["int", "float", "str", "bool", "null", "list", "dict"] if depth < 3 else ["int", "float", "str"]
    )
    if kind == "int":
        return rng.choice([0, 1, -1, rng.randint(-(2**53) + 1, 2**53 - 1), rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice(
            [rng.uniform(-1e6, 1e6), rng.random() * 10 ** rng.randint(-30, 30), 1e21, 1e-7, -0.0, 0.1]
        )
    if kind == "str":
        alphabet = 'aZ09 _-"\\/\n\t\x00\x1f\x7fé€中😀\u2028\ufb33'
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        _random_value(rng, 3) if rng.random() < 0.7 else str(i): _random_value(rng, depth + 1)
        for i in range(rng.randint(0, 5))
    }


def test_js_and_python_agree_on_random_documents(modules: Page) -> None:
    """Beyond the vectors: 300 seeded random documents, the expected bytes from Python at test time."""
    rng = random.Random(8785)
    documents = [json.dumps(_random_value(rng), ensure_ascii=False) for _ in range(300)]
    results = run_js(modules, CANONICALIZE_ALL, inputs=documents)
    for text, result in zip(documents, results, strict=True):
        assert result == {"text": jcs(json.loads(text)).decode("utf-8")}, text
