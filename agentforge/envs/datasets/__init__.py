"""Single-turn datasets: JSONL tasks, BIG-bench tasks, and the metrics that score them."""
