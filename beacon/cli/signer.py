"""The ``jobspec-signer`` command, compatible with the Day-1 plan's invocations."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("jobspec-signer: not implemented yet")
