"""The local model's thread count when the settings leave it unset: from the measured figures, the usable
cores up to 2; the process executor gives each worker its share."""

from __future__ import annotations

import pytest

from agentforge.config import LocalModelSettings, Settings
from agentforge.evaluation.executors.processes import _threads_shared
from agentforge.evaluation.job import EvalJob
from agentforge.llm import local


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 2), (16, 2)])
def test_unset_threads_are_the_usable_cores_up_to_two(monkeypatch: pytest.MonkeyPatch, cores: int,
                                                       threads: int) -> None:
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert local.default_threads() == threads


def job(local_settings: LocalModelSettings) -> EvalJob:
    return EvalJob(specs={}, default="x", settings=Settings(local=local_settings).model_dump(mode="json"))


@pytest.mark.parametrize(("cores", "workers", "share"), [(2, 2, 1), (8, 2, 4), (2, 4, 1)])
def test_each_worker_gets_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch, cores: int, workers: int,
                                                  share: int) -> None:
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(cores)))
    shared = _threads_shared(job(LocalModelSettings()), workers)
    assert Settings.model_validate(shared.settings).local.n_threads == share
    assert Settings.model_validate(shared.settings).local.n_ctx == LocalModelSettings().n_ctx  # the rest kept


def test_a_thread_count_the_user_chose_is_kept_for_every_worker() -> None:
    chosen = job(LocalModelSettings(n_threads=3))
    assert _threads_shared(chosen, 2) is chosen
