"""Transparency log API: root, proofs, checkpoints, entries, log keys, bundles by CID, attestations.

Reads need no token. Every proof is bound to a signed checkpoint of the same size (the latest by
default; one is published on demand when the leaf is newer than the latest checkpoint).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from beacon.api.auth import Principal, Role, require
from beacon.api.deps import get_runtime
from beacon.api.openapi import problem_responses
from beacon.api.params import Cid
from beacon.api.problems import Problem
from beacon.canonical import CanonicalizationError
from beacon.clock import iso_time
from beacon.receipts import issue_harness_receipt, log_harness_receipt
from beacon.runtime import Runtime
from beacon.store.db import now
from beacon.transparency.cid import CIDError, canonical_cid
from beacon.transparency.ipfs import ContentIntegrityError, ContentNotFound
from beacon.transparency.log import InclusionProof, LogCorruption, NotFound, StoredCheckpoint, TransparencyLog

router = APIRouter(prefix="/api/v1/transparency", tags=["transparency"])

MAX_INDEX = (1 << 63) - 1
"""Indices and sizes beyond a 64-bit database integer cannot be in the log (404, never a 500)."""
MAX_ATTESTATION_BYTES = 256 << 10


def _bad_param(name: str, detail: str, kind: str = "value_error") -> Problem:
    return Problem(
        400,
        "invalid_parameter",
        "Invalid query parameter",
        detail,
        errors=[{"path": name, "message": detail, "type": kind}],
    )


def _require_index(value: int, name: str) -> int:
    # Negative values are refused by the parameter's declared minimum (400 invalid_request).
    if value > MAX_INDEX:
        raise _not_in_log(f"{name} {value} is beyond any log")
    return value


def _not_in_log(detail: str) -> Problem:
    return Problem(404, "not_in_log", "Not in the log", detail)


def _inconsistent(exc: LogCorruption) -> Problem:
    return Problem(
        503,
        "log_inconsistent",
        "The transparency log failed its own consistency check",
        f"{exc}; nothing is signed until an operator has looked",
    )


def _checkpoint_body(checkpoint: StoredCheckpoint) -> dict[str, Any]:
    return {
        "size": checkpoint.size,
        "root": checkpoint.root.hex(),
        "timestamp": iso_time(checkpoint.created_at),
        "checkpoint": checkpoint.note,
    }


async def _latest(tlog: TransparencyLog) -> StoredCheckpoint:
    """The latest checkpoint; a log that has none yet signs one now (the empty tree included)."""
    try:
        return await tlog.checkpoint_for()
    except LogCorruption as exc:
        raise _inconsistent(exc) from exc


def _proof_body(proof: InclusionProof) -> dict[str, Any]:
    return {
        "index": proof.index,
        "size": proof.size,
        "leaf_hash": proof.leaf_hash.hex(),
        "proof": [h.hex() for h in proof.proof],
        "root": proof.checkpoint.root.hex(),
        "checkpoint": proof.checkpoint.note,
        "tlog_proof": proof.tlog_proof(),
    }


@router.get("/root", summary="The latest signed tree head")
async def root(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    """``{root (hex), size, timestamp, checkpoint}`` of the latest checkpoint, plus the log's origin."""
    tlog = runtime.tlog
    return {**_checkpoint_body(await _latest(tlog)), "origin": tlog.origin}


@router.get(
    "/proof",
    summary="Inclusion proof of a leaf, bound to a signed checkpoint",
    responses=problem_responses(400, 404),
)
async def proof(
    index: Annotated[int, Query(description="Leaf index (0-based)", ge=0)],
    size: Annotated[
        int | None, Query(description="Tree size of an existing checkpoint (default: latest)", ge=1)
    ] = None,
    runtime: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    leaf = _require_index(index, "index")
    if size is not None and size > MAX_INDEX:
        raise _not_in_log(f"no checkpoint of size {size}")
    try:
        return _proof_body(await runtime.tlog.prove(leaf, size))
    except NotFound as exc:
        raise Problem(404, "not_in_log", "No such leaf or checkpoint", str(exc)) from exc
    except LogCorruption as exc:
        raise _inconsistent(exc) from exc


@router.get(
    "/consistency", summary="Consistency proof between two tree sizes", responses=problem_responses(400, 404)
)
async def consistency(
    first: Annotated[int, Query(description="The older tree size: every tree extends the empty one", ge=1)],
    second: Annotated[
        int | None, Query(description="The newer tree size, ≥ first (default: latest checkpoint)", ge=1)
    ] = None,
    runtime: Runtime = Depends(get_runtime),
) -> dict[str, Any]:
    tlog = runtime.tlog
    if second is None:
        second = (await _latest(tlog)).size
    if second < first:
        raise _bad_param("second", f"'second' ({second}) must not be smaller than 'first' ({first})")
    try:
        async with runtime.db.connect() as conn:
            size = await tlog.size(conn)
            if second > size:
                raise Problem(404, "not_in_log", "Tree size beyond the log", f"the log has {size} leaves")
            hashes = await tlog.consistency_proof(conn, first, second) if first < second else []
            first_root, second_root = await tlog.root(conn, first), await tlog.root(conn, second)
            first_cp = await tlog.checkpoint_of_size(conn, first)
            second_cp = await tlog.checkpoint_of_size(conn, second)
    except LogCorruption as exc:
        raise _inconsistent(exc) from exc
    return {
        "first": first,
        "second": second,
        "first_root": first_root.hex(),
        "second_root": second_root.hex(),
        "proof": [h.hex() for h in hashes],
        "first_checkpoint": first_cp.note if first_cp else None,
        "second_checkpoint": second_cp.note if second_cp else None,
    }


@router.get(
    "/checkpoint",
    summary="The latest signed checkpoint (C2SP tlog-checkpoint signed note)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **problem_responses(400, 404)},
)
async def checkpoint(
    size: Annotated[
        int | None, Query(description="A past checkpoint's tree size (default: latest)", ge=0)
    ] = None,
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    tlog = runtime.tlog
    if size is None:
        found = await _latest(tlog)
    else:
        if size > MAX_INDEX:
            raise _not_in_log(f"no checkpoint of size {size}")
        async with runtime.db.connect() as conn:
            stored = await tlog.checkpoint_of_size(conn, size)
        if stored is None:
            raise Problem(404, "not_in_log", "No checkpoint of that size", f"no checkpoint of size {size}")
        found = stored
    return Response(found.note, media_type="text/plain; charset=utf-8")


@router.get(
    "/entries/{index}",
    summary="A leaf's entry (the logged receipt, its exact bytes)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **problem_responses(400, 404)},
)
async def entry(
    index: Annotated[int, Path(description="Leaf index (0-based)", ge=0)],
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    _require_index(index, "index")
    tlog = runtime.tlog
    async with runtime.db.connect() as conn:
        leaf = await tlog.leaf(conn, index)
    if leaf is None:
        raise Problem(404, "not_in_log", "No such leaf", f"leaf {index} is not in the log")
    return Response(
        leaf.entry,
        media_type="application/json",
        headers={
            "Beacon-Leaf-Index": str(leaf.index),
            "Beacon-Leaf-Hash": leaf.leaf_hash.hex(),
            "Beacon-Entry-Kind": leaf.kind,
        },
    )


@router.get("/keys", summary="The log's verifier keys (C2SP vkey format)")
async def keys(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    tlog = runtime.tlog
    verifier = tlog.verifier
    return {
        "origin": tlog.origin,
        "keys": [
            {
                "vkey": verifier.vkey,
                "name": verifier.name,
                "key_id": verifier.key_id.hex(),
                "algorithm": "ed25519",
                "public_key": runtime.runner_key.public_key_b64,
            }
        ],
    }


@router.get(
    "/bundles/{cid}",
    summary="A job bundle by CID (its CID re-checked on the way out)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **problem_responses(400, 404)},
)
async def bundle(
    cid: Cid,
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    try:
        cid = canonical_cid(cid)  # the same CID in another multibase or case names the same bundle
    except CIDError as exc:
        raise Problem(400, "invalid_cid", "Not a CID this runner serves", str(exc)) from exc
    try:
        data = await runtime.content.get(cid)
    except ContentNotFound as exc:
        raise Problem(404, "not_found", "No content with this CID", str(exc)) from exc
    except ContentIntegrityError as exc:
        raise Problem(500, "content_integrity", "Stored content does not match its CID", str(exc)) from exc
    return Response(
        data,
        media_type="application/json",
        headers={"Beacon-CID": cid, "Cache-Control": "public, max-age=31536000, immutable"},
    )


@router.post(
    "/attestations",
    summary="Sign and log a harness attestation (a JSON document of hashes)",
    status_code=201,
    responses={
        200: {"description": "The same attestation was logged before: its leaf, receipt and proof again"},
        **problem_responses(400, 401, 403),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": f"The attestation: a non-empty JSON object (RFC 8785-canonicalisable), at most "
            f"{MAX_ATTESTATION_BYTES} bytes",
            "content": {
                "application/json": {
                    "schema": {"type": "object", "minProperties": 1, "additionalProperties": True}
                }
            },
        }
    },
)
async def attest(
    request: Request,
    runtime: Runtime = Depends(get_runtime),
    principal: Principal = Depends(require(Role.OPERATOR)),
) -> JSONResponse:
    """The runner signs ``{kind: harness-receipt, attestation: <body>, …}``, appends it and returns
    ``{leaf_index, receipt, checkpoint, proof}`` (``proof`` is c2sp.org/tlog-proof@v1 text).

    The same attestation twice gets the same leaf (200 instead of 201).
    """
    body = await request.body()
    if len(body) > MAX_ATTESTATION_BYTES:
        raise Problem(
            413, "payload_too_large", "Attestation too large", f"at most {MAX_ATTESTATION_BYTES} bytes"
        )
    try:
        attestation = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid_json", "The body is not JSON", str(exc)) from exc
    if not isinstance(attestation, dict) or not attestation:
        raise Problem(
            400, "invalid_attestation", "Invalid attestation", "the body must be a non-empty JSON object"
        )
    tlog = runtime.tlog
    try:
        receipt = issue_harness_receipt(
            attestation,
            runtime.runner_key,
            log_origin=tlog.origin,
            issued_to=principal.role.label,
            issued_at=now(),
        )
    except CanonicalizationError as exc:
        raise Problem(400, "invalid_attestation", "Invalid attestation", str(exc)) from exc
    async with runtime.db.begin() as conn:
        index, receipt, created = await log_harness_receipt(conn, tlog, receipt)
    try:
        inclusion = await tlog.prove(index)
    except LogCorruption as exc:
        raise _inconsistent(exc) from exc
    return JSONResponse(
        {
            "leaf_index": index,
            "leaf_hash": inclusion.leaf_hash.hex(),
            "receipt": receipt,
            "checkpoint": inclusion.checkpoint.note,
            "proof": inclusion.tlog_proof(),
            "vkey": tlog.verifier.vkey,
        },
        status_code=201 if created else 200,
    )
