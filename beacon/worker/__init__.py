"""Region workers: the worker loop, the job state machine, the sweeper."""
