"""The benchmark runner inside a Golem VM image: one request in (argv), one JSON line out (stdout), then exit.

The Golem executor runs ``<GOLEM_VM_ENTRYPOINT> <request>`` on the provider, where ``<request>`` is the
base64 of a JSON object ``{prompt, system_prompt, model, options{temperature, seed, max_tokens, top_p},
deadline}``. This module is that entrypoint (``python -m beacon.executors.golem_vm``): it answers with the
embedded llamacpp backend and prints exactly one JSON line — the result fields, or ``{"error": {code,
message, transient}}`` — and exits, unlike the original image, which never exited (reference §9, #39).
The image recipe is in docs/executors.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

from beacon.executors.base import DecodingOptions, ExecutionRequest, ExecutorError
from beacon.executors.llamacpp import SMOLLM2_MODEL_ID, LlamaCppExecutor, smollm2_gguf_path

VM_REGION = "golem-vm"


def encode_request(request: ExecutionRequest) -> str:
    """The argument the executor passes to the entrypoint."""
    body = {
        "prompt": request.prompt,
        "system_prompt": request.system_prompt,
        "model": request.model,
        "options": request.options.as_dict(),
        "deadline": request.deadline,
    }
    return base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def _models() -> dict[str, Path]:
    """Models in the image: ``BEACON_VM_MODELS`` (JSON id → GGUF path), else the bundled SmolLM2."""
    configured = os.environ.get("BEACON_VM_MODELS")
    if configured:
        return {key: Path(value) for key, value in json.loads(configured).items()}
    bundled = smollm2_gguf_path()
    return {SMOLLM2_MODEL_ID: bundled} if bundled else {}


async def run(argument: str) -> dict[str, Any]:
    try:
        body = json.loads(base64.b64decode(argument, validate=True))
        options = DecodingOptions(**body.get("options", {}))
        request = ExecutionRequest(
            prompt=str(body["prompt"]),
            system_prompt=str(body.get("system_prompt", "")),
            model=str(body["model"]),
            region=VM_REGION,
            options=options,
            deadline=body.get("deadline"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        return {"error": {"code": "vm_bad_request", "message": str(exc), "transient": False}}
    executor = LlamaCppExecutor(region=VM_REGION, models=_models(), provider_id="golem-vm")
    try:
        result = await executor.execute(request)
    except ExecutorError as exc:
        return {"error": {"code": exc.code, "message": exc.message, "transient": exc.transient}}
    finally:
        await executor.aclose()
    return {
        "text": result.text,
        "tokens_in": result.tokens_in,
        "tokens_out": result.tokens_out,
        "timings": result.timings,
        "model_digest": result.model_digest,
        "backend": result.backend,
        "backend_version": result.backend_version,
        "vm": result.provider_info,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            json.dumps(
                {"error": {"code": "vm_bad_request", "message": "usage: run <request>", "transient": False}}
            )
        )
        return 2
    outcome = asyncio.run(run(args[0]))
    print(json.dumps(outcome, separators=(",", ":")))
    return 0  # errors travel in the JSON line: a failed exit would hide them behind yapapi's command error


if __name__ == "__main__":
    sys.exit(main())
