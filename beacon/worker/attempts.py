"""Policy for one attempt: deadlines, cancellation, and what an error means (retry, fail, give up).

The worker loop (``beacon.worker.loop``) is the mechanism — read, claim, run, commit, acknowledge.
This module decides, for one claimed execution, how its attempt ends:

* the deadline is the sooner of ``provider_timeout`` from this attempt's start and the job's
  ``timeout`` from the job's first start — time spent waiting in the queue never counts;
* a transient error (or a provider timeout) is retried with backoff while the budget and the job's
  time allow; a permanent error fails at once; an unexpected exception counts as transient;
* a cancelled job's attempt stops where it is (the backend call is cancelled) and ends ``cancelled``;
* a backend that served another region than the one asked fails the execution (failure mode 37).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from beacon import __version__
from beacon.benchmark.registry import NO_BACKEND, definition_for
from beacon.executors.base import (
    ExecutionRequest,
    ExecutionResult,
    Executor,
    ExecutorError,
    PermanentExecutorError,
)
from beacon.failpoints import failpoint
from beacon.queue.retry import RetryPolicy
from beacon.worker.claims import Claim
from beacon.worker.endings import Ending
from beacon.worker.lifecycle import JOB_CANCELLED, JOB_DEADLINE_EXCEEDED, ExecutionStatus
from beacon.worker.requests import build_request

log = logging.getLogger("beacon.worker")


@dataclass
class AttemptControl:
    """Why the worker interrupted an attempt, if it did."""

    reason: str | None = None
    """``cancelled`` (the job was cancelled), ``lease_lost`` (another worker took it), ``shutdown``."""


class Attempts:
    def __init__(
        self, executor: Executor | None, *, region: str, worker_id: str, policy: RetryPolicy
    ) -> None:
        self.executor = executor
        self.region = region
        self.worker_id = worker_id
        self.policy = policy

    async def run(self, claim: Claim, control: AttemptControl) -> Ending:
        """Run one attempt to its ending, which carries the request sent (for the receipt).

        Re-raises CancelledError unless the job was cancelled.
        """
        sent: list[ExecutionRequest] = []
        ending = await self._run(claim, control, sent)
        return replace(ending, request=sent[-1]) if sent else ending

    async def _run(self, claim: Claim, control: AttemptControl, sent: list[ExecutionRequest]) -> Ending:
        try:
            async with asyncio.timeout(max(0.0, claim.deadline - time.time())):
                await failpoint("worker.mid_execution")
                result = await self._execute(claim, sent)
        except asyncio.CancelledError:
            if control.reason != "cancelled":
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return Ending(
                ExecutionStatus.CANCELLED,
                time.time(),
                error_code=JOB_CANCELLED,
                error_message="the job was cancelled while this execution ran; the backend call was stopped",
            )
        except TimeoutError:
            at = time.time()
            if claim.deadline >= claim.job_deadline:
                return Ending(
                    ExecutionStatus.TIMED_OUT,
                    at,
                    error_code=JOB_DEADLINE_EXCEEDED,
                    error_message=f"the job's execution budget of {claim.terms.timeout_s:g}s ran out",
                )
            return self._after_failure(
                claim,
                "provider_timeout",
                f"no answer within the provider timeout of {claim.terms.provider_timeout_s:g}s",
                at,
                timed_out=True,
            )
        except ExecutorError as exc:  # the subclasses, or its own flag
            evidence = dict(exc.details.get("provider_info") or {})
            if exc.transient:
                return self._after_failure(claim, exc.code, exc.message, time.time(), provider_info=evidence)
            return Ending(
                ExecutionStatus.FAILED,
                time.time(),
                error_code=exc.code,
                error_message=exc.message,
                provider_info=evidence,
            )
        except Exception as exc:
            log.exception("executor raised an unexpected error on %s", claim.execution_id)
            return self._after_failure(claim, "executor_error", f"{type(exc).__name__}: {exc}", time.time())
        if result.served_region != claim.row.region:
            return Ending(
                ExecutionStatus.FAILED,
                time.time(),
                result=result,
                error_code="region_mismatch",
                error_message=f"requested {claim.row.region} but the backend served it in {result.served_region}",
            )
        return Ending(ExecutionStatus.COMPLETED, time.time(), result=result)

    async def _execute(self, claim: Claim, sent: list[ExecutionRequest]) -> ExecutionResult:
        """The backend's answer; the request, once built, goes into ``sent`` even if the call then fails."""
        if not definition_for(claim.terms.benchmark).calls_model:  # ends here, executor or not
            return ExecutionResult(
                text="",
                tokens_in=0,
                tokens_out=0,
                timings={"total": 0.0},
                model_digest="",
                backend=NO_BACKEND,
                backend_version=__version__,
                provider_id=self.worker_id,
                served_region=self.region,
            )
        if self.executor is None:
            raise PermanentExecutorError("backend_not_configured", f"worker {self.worker_id} has no executor")
        request = build_request(
            execution_id=claim.execution_id,
            benchmark=claim.terms.benchmark,
            question_id=claim.row.question_id,
            variant=claim.row.variant,
            model=claim.row.model,
            region=claim.row.region,
            options=claim.terms.options,
            deadline=claim.deadline,
        )
        sent.append(request)
        return await self.executor.execute(request)

    def _after_failure(
        self,
        claim: Claim,
        code: str,
        message: str,
        at: float,
        *,
        timed_out: bool = False,
        provider_info: dict[str, Any] | None = None,
    ) -> Ending:
        """Retry later if the budget and the job's time allow; otherwise end the execution."""
        final = ExecutionStatus.TIMED_OUT if timed_out else ExecutionStatus.FAILED
        max_attempts = claim.message.max_attempts or claim.terms.max_attempts
        budget = self.policy.budget(max_attempts)
        if self.policy.exhausted(claim.attempt, max_attempts):
            return Ending(
                final,
                at,
                error_code=code,
                error_message=f"{message} (attempt {claim.attempt} of {budget}: retry budget exhausted)",
                dead_letter=True,
                provider_info=provider_info or {},
            )
        delay = self.policy.delay(claim.attempt)
        if at + delay >= claim.job_deadline:
            return Ending(
                final,
                at,
                error_code=code,
                error_message=f"{message} (no time left in the job's budget to retry)",
                provider_info=provider_info or {},
            )
        return Ending(ExecutionStatus.QUEUED, at, error_code=code, error_message=message, retry_in=delay)
