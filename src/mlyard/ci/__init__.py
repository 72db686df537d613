"""Run orchestration: states and their transitions, triggers, the job queue, logs."""
