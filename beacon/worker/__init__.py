"""Region workers: the planner (JobSpec → executions), the worker loop, the job state machine, the sweeper."""
