"""The Day-1 harness: the plan as data, papermill phase runs, phase results and reports.

What a phase notebook uses::

    from beacon.harness import PhaseResults, open_session

What ``beacon day1`` uses: :func:`beacon.harness.plan.load_plan`,
:func:`beacon.harness.runner.run_plan`, :func:`beacon.harness.report.render_report`,
:func:`beacon.harness.attest.verify_report`.
"""

from beacon.harness.results import PhaseResults, load_phase_results
from beacon.harness.session import Session, open_session

__all__ = ["PhaseResults", "Session", "load_phase_results", "open_session"]
