"""Evaluation: run a workflow over an environment's tasks and report scores, costs and latencies."""
