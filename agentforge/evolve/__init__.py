"""The evaluate-and-evolve loop: splits, parent selection, cascade, paired acceptance, budgets, run store,
lineage, events and report. The only layer that writes run state."""
