"""Signed JobSpec intake: parse, verify (three schemes), trust, replay protection, one transaction.

Where a JobSpec is verified: :func:`verify_jobspec` (signatures), :func:`evaluate_trust` (the
trusted-key allowlist), :func:`check_freshness` (replay; the nonce is claimed in the job's own
transaction, beacon.intake.writer), and :class:`Intake`, which runs them in order, plans the job's
executions (beacon.intake.planner) and writes the job, its plan and its outbox rows atomically.
"""

from beacon.intake.document import parse_document
from beacon.intake.errors import IntakeError
from beacon.intake.replay import Freshness, check_freshness, stamp
from beacon.intake.service import Intake, IntakeResponse, job_path
from beacon.intake.signatures import (
    JOBSPEC_CONTEXT,
    Scheme,
    Verification,
    legacy_shape_problem,
    portal_v1_prune,
    prunable_paths,
    sign_jobspec,
    signing_message,
    verify_jobspec,
)
from beacon.intake.trust import TrustDecision, evaluate_trust
from beacon.intake.verdict import Verdict, check_document

__all__ = [
    "JOBSPEC_CONTEXT",
    "Freshness",
    "Intake",
    "IntakeError",
    "IntakeResponse",
    "Scheme",
    "TrustDecision",
    "Verdict",
    "Verification",
    "check_document",
    "check_freshness",
    "evaluate_trust",
    "job_path",
    "legacy_shape_problem",
    "parse_document",
    "portal_v1_prune",
    "prunable_paths",
    "sign_jobspec",
    "signing_message",
    "stamp",
    "verify_jobspec",
]
