"""The submission path: bytes in, a durable planned job (or a precise refusal) out.

Order matters (reference §9, failure modes 2 and 5): the signature is verified on the document
exactly as parsed, *then* the document is normalised and validated, then planned, and only then
is anything written — atomically: the job, its events, the nonce, the idempotency record, every
planned execution and one outbox row per execution (beacon.intake.writer, which lets concurrent
submissions share a transaction without sharing their fate).
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from pydantic import ValidationError

from beacon.admin_config import AdminConfig
from beacon.canonical import sha256_hex
from beacon.clock import iso_time
from beacon.executors.registry import region_isolates_containers
from beacon.intake import idempotency
from beacon.intake.document import parse_document
from beacon.intake.errors import IntakeError
from beacon.intake.planner import (
    ContainerCapability,
    PlannedExecution,
    UnplannableJobSpec,
    plan,
    retry_budget,
)
from beacon.intake.replay import check_freshness, purge_expired_nonces
from beacon.intake.signatures import Scheme, Verification, verify_jobspec
from beacon.intake.trust import TrustDecision, evaluate_trust
from beacon.intake.writer import PreparedJob, SubmissionWriter
from beacon.metrics import JOBS_ACCEPTED, JOBS_REJECTED
from beacon.models import field_errors
from beacon.models.dialects import DialectError
from beacon.models.jobspec import ID_PATTERN, JobSpec
from beacon.queue.message import Message, outbox_row
from beacon.runtime import Runtime
from beacon.store import now

log = logging.getLogger("beacon.intake")

MAX_EXECUTIONS_PER_JOB = 1000
IDEMPOTENCY_TTL_S = 24 * 3600.0
IDEMPOTENCY_LOCK_S = 30.0
"""A claim older than this whose request never finished (its process died) can be taken over."""
PURGE_INTERVAL_S = 60.0


@dataclass(frozen=True)
class IntakeResponse:
    """What the route answers: a fresh 202, or the stored response of an idempotent replay."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


def job_path(job_id: str) -> str:
    return f"/api/v1/jobs/{quote(job_id, safe='')}"


def _spec_error(exc: ValidationError) -> IntakeError:
    errors = field_errors(exc)
    unknown = [e["path"] for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return IntakeError(
            "unknown_fields",
            f"fields the runner does not understand (free-form data belongs in metadata): {', '.join(unknown)}",
            errors=errors,
        )
    if any(e["message"].startswith("unknown region") for e in errors):
        return IntakeError("unknown_region", "; ".join(e["message"] for e in errors), errors=errors)
    summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
    return IntakeError("invalid_jobspec", summary, errors=errors)


def new_job_id() -> str:
    """A job id the runner chose (``job-<32 hex>``)."""
    return f"job-{uuid.uuid4().hex}"


def unsigned_label(document: dict[str, Any], verification: Verification) -> str | None:
    """The client's ``id`` when the signature does not cover it (portal-v1): a label, never the job id."""
    if "id" not in verification.unsigned_fields:
        return None
    value = document.get("id")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.fullmatch(ID_PATTERN, value):
        raise IntakeError(
            "invalid_jobspec",
            "id: expected at most 128 letters, digits and ._:@+- (not starting with punctuation)",
            errors=[{"path": "id", "message": "not a valid job id", "type": "string_pattern_mismatch"}],
        )
    return value


def normalise(document: dict[str, Any], verification: Verification) -> JobSpec:
    """The verified document in the full JobSpec shape (the Day-1 minimal form is expanded here).

    The runner names the job when the document has no id, and whenever the id is not signed
    (portal-v1): an id anyone could have added must not decide which job this is.
    """
    data = dict(document)
    if verification.scheme is Scheme.PORTAL_V1:
        data.pop("created_at", None)  # not covered by a portal-v1 signature: not to be believed
        data["id"] = new_job_id()
    if not data.get("id") and not data.get("jobspec_id"):
        data["id"] = new_job_id()
    try:
        return JobSpec.from_document(data)  # an original dialect is read field by field (models.dialects)
    except DialectError as exc:
        raise IntakeError(
            exc.code, str(exc), errors=[{"path": exc.path, "message": str(exc), "type": exc.code}]
        ) from None
    except ValidationError as exc:
        raise _spec_error(exc) from None


def apply_admin_limits(spec: JobSpec, document: dict[str, Any], config: AdminConfig) -> JobSpec:
    """Refuse what exceeds the runner's limits; clamp a default timeout to ``max_duration``."""
    limits = config.constraints
    if spec.constraints.max_cost is not None and spec.constraints.max_cost > limits.max_cost:
        raise IntakeError(
            "exceeds_max_cost",
            f"constraints.max_cost is {spec.constraints.max_cost}; this runner allows at most {limits.max_cost}",
            errors=[{"path": "constraints.max_cost", "message": "above the limit", "type": "limit"}],
        )
    max_duration = timedelta(seconds=limits.max_duration)
    if spec.constraints.timeout > max_duration:
        raw_constraints = document.get("constraints")
        if isinstance(raw_constraints, dict) and "timeout" in raw_constraints:
            raise IntakeError(
                "exceeds_max_duration",
                f"constraints.timeout is {spec.constraints.timeout.total_seconds():g}s; "
                f"this runner allows at most {limits.max_duration}s (the admin setting "
                f"constraints.max_duration: PUT /admin/config "
                f'{{"constraints": {{"max_duration": {math.ceil(spec.constraints.timeout.total_seconds())}}}}} '
                "would allow it)",
                setting="constraints.max_duration",
                errors=[{"path": "constraints.timeout", "message": "above the limit", "type": "limit"}],
            )
        constraints = spec.constraints.model_copy(update={"timeout": max_duration})
        spec = spec.model_copy(update={"constraints": constraints})
    return spec


def plan_job(
    spec: JobSpec,
    config: AdminConfig,
    default_models: list[str],
    container_capability: ContainerCapability | None = None,
) -> list[PlannedExecution]:
    try:
        planned = plan(
            spec,
            default_regions=[config.constraints.default_region],
            default_models=default_models,
            container_capability=container_capability,
        )
    except UnplannableJobSpec as exc:
        raise IntakeError(
            exc.code, str(exc), errors=[{"path": exc.path, "message": str(exc), "type": exc.code}]
        ) from None
    if len(planned) > MAX_EXECUTIONS_PER_JOB:
        raise IntakeError(
            "too_many_executions",
            f"the job plans {len(planned)} executions (regions × models × questions × prompt variants); "
            f"the limit is {MAX_EXECUTIONS_PER_JOB}",
        )
    return planned


class Intake:
    """Accepts signed JobSpecs for one runtime. Stateless but for housekeeping timestamps."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.writer = SubmissionWriter(runtime.db)
        self.claims = idempotency.IdempotencyClaims(
            runtime.db, ttl_s=IDEMPOTENCY_TTL_S, lock_s=IDEMPOTENCY_LOCK_S
        )
        self._last_purge = time.monotonic()

    async def submit(
        self, body: bytes, *, idempotency_key: str | None = None, request_id: str | None = None
    ) -> IntakeResponse:
        """Accept ``body`` (a signed JobSpec) or raise IntakeError."""
        try:
            key = idempotency.parse_idempotency_key(idempotency_key)
            body_hash = sha256_hex(body)  # the job's spec_hash, and what an Idempotency-Key is bound to
            if key is None:
                return await self._accept(body, body_hash, None, request_id)
            outcome = await self.claims.claim(key, body_hash)
            if isinstance(outcome, idempotency.StoredResponse):
                return IntakeResponse(
                    outcome.status, outcome.body, {**outcome.headers, "Idempotent-Replayed": "true"}, True
                )
            try:
                return await self._accept(body, body_hash, outcome, request_id)
            except BaseException:
                try:
                    await self.claims.release(outcome)
                except Exception:  # the original error matters more; a stale claim is taken over after 30 s
                    log.warning("could not release Idempotency-Key %r", outcome.key, exc_info=True)
                raise
        except IntakeError as exc:
            JOBS_REJECTED.labels(exc.code).inc()
            raise
        finally:
            await self._housekeeping()

    async def _accept(
        self, body: bytes, body_hash: str, claim: idempotency.Claim | None, request_id: str | None
    ) -> IntakeResponse:
        runtime = self.runtime
        settings = runtime.settings
        config = (await runtime.admin_config.current()).config
        if config.submissions_paused:
            raise IntakeError(
                "submissions_paused",
                "an operator paused submissions; running jobs continue",
                status=503,
                headers={"Retry-After": "60"},
            )
        document = parse_document(body)
        verification = verify_jobspec(
            document, accept_go_strip=settings.accept_go_strip, accept_portal_v1=settings.accept_portal_v1
        )
        trust = evaluate_trust(
            runtime.trusted_keys,
            verification.public_key,
            require_trusted=settings.require_trusted_key,
            allowed_submitters=config.security.allowed_submitter_keys,
        )
        started = now()
        freshness = check_freshness(
            document,
            now=started,
            max_skew_s=settings.timestamp_max_skew_s,
            max_age_s=settings.timestamp_max_age_s,
        )
        label = unsigned_label(document, verification)
        spec = apply_admin_limits(normalise(document, verification), document, config)
        planned = plan_job(
            spec, config, settings.default_models, partial(region_isolates_containers, settings)
        )
        regions = list(dict.fromkeys(p.region for p in planned))
        accepted_at = now()
        response = self._response(
            spec, verification, trust, body_hash, regions, len(planned), accepted_at, label
        )

        job_id = spec.id
        created_detail: dict[str, Any] = {"scheme": str(verification.scheme), "kid": trust.kid}
        if verification.unsigned_fields:
            created_detail["unsigned_fields"] = list(verification.unsigned_fields)
        if label is not None:
            created_detail["label"] = label
        prepared = PreparedJob(
            job={
                "id": job_id,
                "status": "enqueued",
                "benchmark": spec.benchmark.name,
                "spec": spec.model_dump(mode="json"),
                "raw": body.decode("utf-8"),
                "spec_hash": body_hash,
                "signature_scheme": str(verification.scheme),
                "public_key": verification.public_key_b64,
                "kid": trust.kid,
                "regions": regions,
                "total_executions": len(planned),
                "request_id": request_id,
                "created_at": accepted_at,
                "enqueued_at": accepted_at,
                "updated_at": accepted_at,
            },
            events=[
                {"job_id": job_id, "status": "created", "at": accepted_at, "detail": created_detail},
                {
                    "job_id": job_id,
                    "status": "enqueued",
                    "at": accepted_at,
                    "detail": {"executions": len(planned), "regions": regions},
                },
            ],
            executions=[
                {
                    "id": p.id,
                    "job_id": job_id,
                    "region": p.region,
                    "model": p.model,
                    "question_id": p.question_id,
                    "variant": p.variant,
                    "status": "queued",
                    "attempt": 0,
                    "queued_at": accepted_at,
                    "created_at": accepted_at,
                    "updated_at": accepted_at,
                }
                for p in planned
            ],
            outbox=[
                outbox_row(
                    Message(p.id, job_id, p.region, enqueued_at=accepted_at, max_attempts=retry_budget(spec))
                )
                for p in planned
            ],
            nonce={
                "public_key": verification.public_key_b64,
                "nonce": freshness.nonce,
                "expires_at": freshness.expires_at,
            },
            idempotency=(
                (claim, idempotency.StoredResponse(response.status, response.body, response.headers))
                if claim is not None
                else None
            ),
        )
        await self.writer.write(prepared)
        JOBS_ACCEPTED.labels(str(verification.scheme)).inc()
        log.debug(  # the access log, the job's events and beacon_jobs_accepted_total already record it
            "job accepted",
            extra={
                "job_id": spec.id,
                "scheme": str(verification.scheme),
                "kid": trust.kid,
                "executions": len(planned),
                "regions": regions,
            },
        )
        return response

    @staticmethod
    def _response(
        spec: JobSpec,
        verification: Verification,
        trust: TrustDecision,
        spec_hash: str,
        regions: list[str],
        planned: int,
        accepted_at: float,
        label: str | None,
    ) -> IntakeResponse:
        location = job_path(spec.id)
        payload: dict[str, Any] = {
            "id": spec.id,
            "job_id": spec.id,
            "status": "enqueued",
            "scheme": str(verification.scheme),
            "kid": trust.kid,
            "key_status": str(trust.status),
            "spec_hash": spec_hash,
            "regions": regions,
            "executions": planned,
            "created_at": iso_time(accepted_at),
            "links": {"self": location, "executions": f"{location}?include=executions"},
        }
        if verification.unsigned_fields:
            payload["unsigned_fields"] = list(verification.unsigned_fields)
        if label is not None:
            payload["label"] = label
        return IntakeResponse(202, orjson.dumps(payload), {"Location": location})

    async def aclose(self) -> None:
        await self.claims.aclose()
        await self.writer.aclose()

    async def _housekeeping(self) -> None:
        """Forget expired nonces and idempotency keys, at most once a minute per process."""
        if time.monotonic() - self._last_purge < PURGE_INTERVAL_S:
            return
        self._last_purge = time.monotonic()
        try:
            async with self.runtime.db.begin() as conn:
                current = now()
                nonces_gone = await purge_expired_nonces(conn, now=current)
                keys_gone = await idempotency.purge_expired(conn, now=current)
            if nonces_gone or keys_gone:
                log.info(
                    "purged expired nonces and idempotency keys",
                    extra={"nonces": nonces_gone, "keys": keys_gone},
                )
        except Exception:
            log.warning("could not purge expired nonces/idempotency keys; will retry", exc_info=True)
