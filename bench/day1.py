"""Day-1 benchmark: the whole plan against an embedded runner, against its 3-minute target.

    .venv/bin/python bench/day1.py                    # test_plans/day1.yaml, reports under a temp folder
    .venv/bin/python bench/day1.py --plan test_plans/smoke.yaml

The peer, measured in the same run, is the work the notebooks themselves did: the sum of every
cell's time from papermill's metadata. The rest — the embedded runner's start, a Python process
and a kernel per phase, HTML copies, attestation, the report — is the harness's overhead, printed
as a ratio. Goal (issue 6): the whole plan in under 180 s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from beacon.harness.runner import RunOptions, run_plan

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plan", type=Path, default=ROOT / "test_plans" / "day1.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-day1-") as tmp:
        started = time.perf_counter()
        outcome = run_plan(
            RunOptions(plan_path=args.plan, out_dir=Path(tmp)), Console(stderr=True, quiet=True)
        )
        wall = time.perf_counter() - started
        summary = outcome.summary
    target = float(summary.get("target_duration_s") or 180.0)
    cells = sum(c.get("duration_s") or 0.0 for p in summary["phases"] for c in p.get("cells", []))
    phases = sum(p.get("duration_s") or 0.0 for p in summary["phases"])
    print(f"plan {summary['plan']['name']}: {summary['status']}, {len(summary['phases'])} phases")
    print(f"{'phase':<10} {'status':<8} {'phase s':>8} {'cells s':>8} {'overhead s':>10}")
    for phase in summary["phases"]:
        spent = sum(c.get("duration_s") or 0.0 for c in phase.get("cells", []))
        duration = phase.get("duration_s") or 0.0
        print(f"{phase['id']:<10} {phase['status']:<8} {duration:8.1f} {spent:8.1f} {duration - spent:10.1f}")
    print(f"whole plan (wall, including runner start, attestation, report): {wall:.1f} s")
    print(
        f"target: {target:.0f} s → {wall / target:.2f}× of the target ({'met' if wall < target else 'MISSED'})"
    )
    print(
        f"peer: the notebooks' own cell time {cells:.1f} s; phases {phases:.1f} s; wall/cells = {wall / max(cells, 1e-9):.2f}×"
    )
    return 0 if summary["status"] == "passed" and wall < target else 1


if __name__ == "__main__":
    sys.exit(main())
