"""A child process for the kill-and-resume test: one evolve run (or its resumption) with the scripted
executor, its calls logged to a file, its memory kept in the run folder. Usage:
``python -m tests.unit.evolve_child RUNS_DIR CALL_LOG [RESUME_FOLDER]``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agentforge.evolve.config import BudgetConfig, EvolveConfig
from agentforge.evolve.loop import aevolve
from agentforge.llm.scripted import register_script
from agentforge.memory.config import MemoryConfig, open_memory
from agentforge.workflow.loader import spec_from_text
from tests.unit.sample_evolve import SEED_WORKFLOW, AddEnv, executor

CONFIG = EvolveConfig(optimizers=("menu-test",), model="scripted/child", optimizer_model="scripted/child", seed=5,
                      minibatch=6, concurrency=2, patience=6, novelty_distance=0.0, budget=BudgetConfig(generations=6),
                      optimizer_options={"menu-test": {"numbered": True, "per_call": 2,
                                                        "menu": ["Answer. TWEAK", "Answer. CAREFUL", "Answer. WORSE"]}})


def main() -> None:
    runs, log = Path(sys.argv[1]), Path(sys.argv[2])
    resume = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    model = executor(log)
    model.latency_s = 0.02
    register_script("child", model)
    folder = resume
    if folder is None:
        config = CONFIG.model_copy(update={"runs_dir": runs})
    memory = open_memory(MemoryConfig(embedder="hashing", path=runs / "memory"))
    result = asyncio.run(aevolve(None if resume else spec_from_text(SEED_WORKFLOW), AddEnv(),
                                 None if resume else config, resume=folder, memory=memory))
    print(result.folder, result.best.hash, result.best_test, result.seed_test, flush=True)


if __name__ == "__main__":
    main()
