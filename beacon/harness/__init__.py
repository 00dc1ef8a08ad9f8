"""The Day-1 harness: the plan as data, papermill phase runs, phase results and reports."""
