"""Region workers: the planner (JobSpec → executions), the worker loop and the job state machine."""
