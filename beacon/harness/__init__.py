"""The Day-1 harness: the plan as data, papermill phase runs, phase results and reports.

What a phase notebook uses::

    from beacon.harness import PhaseResults, open_session, require_phases

A phase that needs earlier ones says so in its first cell and, first thing, calls
``require_phases(session.results_dir(results_path), ["t+15"], phase="t+45")``.

What ``beacon day1`` uses: :func:`beacon.harness.plan.load_plan`,
:func:`beacon.harness.runner.run_plan`, :func:`beacon.harness.report.render_report`,
:func:`beacon.harness.attest.verify_report`.
"""

from beacon.harness.results import PhaseResults, load_phase_results
from beacon.harness.session import PhaseOrderError, Session, open_session, require_phases

__all__ = [
    "PhaseOrderError",
    "PhaseResults",
    "Session",
    "load_phase_results",
    "open_session",
    "require_phases",
]
