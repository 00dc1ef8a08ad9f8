"""The one root of "this evidence does not verify", and the exit codes of every verifying command.

This module imports nothing from Beacon: the error types of the pure layers (``transparency.merkle``,
``transparency.note``, ``signing``…) subclass :class:`VerificationError`, and
:mod:`beacon.verify` — which uses those layers — re-exports both names (decision 1502).
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Exit status of the commands that verify evidence (``beacon verify``, ``jobspec-signer verify``,
    ``beacon verify-receipt``, ``verify-bundle``, ``verify-report``, ``tlog verify-note``, ``tlog monitor``)."""

    VERIFIED = 0
    """Every check passed."""
    NOT_VERIFIED = 1
    """A check failed: a signature, hash, id, CID or proof does not match what the evidence claims."""
    UNTRUSTED = 2
    """The evidence is intact but its signer is not one to trust: a JobSpec key the trusted keys do not
    accept (unknown, revoked, expired, not yet valid), or a log that signed two histories (a fork)."""
    UNREADABLE = 3
    """No verdict: the input cannot be read, a key is missing or malformed, or the runner is unreachable."""


class VerificationError(ValueError):
    """Evidence (a receipt, signature, note, checkpoint, proof, CID, bundle) does not verify.

    ``code`` names the kind of failure, stable across releases; the message says what failed and why.
    A ValueError, as every one of its subclasses was before they shared this root.
    """

    code: ClassVar[str] = "not_verified"
    exit_code: ClassVar[ExitCode] = ExitCode.NOT_VERIFIED


__all__ = ["ExitCode", "VerificationError"]
