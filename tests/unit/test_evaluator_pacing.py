"""How the evaluator keeps breach events from waiting: checkpoints hurried by events carry no batch of quiet
statuses, and long-lived objects are kept out of Python's collections (yet cycles among them are collected)."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from support import engine_for as engine
from support import objective_config as objective

from services.evaluator.checkpoint import Checkpoint, EvaluatorMetrics
from services.evaluator.runner import GcPacer
from services.evaluator.settings import EvaluatorSettings


def test_quiet_statuses_keep_the_interval_and_a_hurried_checkpoint_takes_none() -> None:
    settings = EvaluatorSettings(checkpoint_interval_ms=250, max_statuses_per_checkpoint=7)
    checkpoint = Checkpoint(settings, EvaluatorMetrics(CollectorRegistry()), None, engine(objective("o1")))
    now = checkpoint.last_quiet
    assert checkpoint._quiet_statuses(now + 0.1, all_statuses=False) == 0  # hurried by events: none
    assert checkpoint._quiet_statuses(now + 0.1, all_statuses=True) is None  # before partitions move: all
    assert checkpoint._quiet_statuses(now + 0.25, all_statuses=False) == 7  # the interval is up
    assert checkpoint._quiet_statuses(now + 0.3, all_statuses=False) == 0  # counted from then
    assert checkpoint._quiet_statuses(now + 0.5, all_statuses=False) == 7


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_frozen_objects_wait_for_the_full_collection_and_are_collected_there() -> None:
    pacer = GcPacer(freeze_every=0, full_every=3600)
    node = Node()
    gone = weakref.ref(node)
    pacer.tick()
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert gone() is not None  # frozen: no collection looks at it
    pacer.collected_at = time.monotonic() - 3600
    pacer.tick()
    assert gone() is None  # the hourly collection unfreezes and collects
    assert gc.get_freeze_count() > 0  # and freezes what lives on


@pytest.mark.usefixtures("unfrozen")
def test_young_cycles_are_collected_as_before() -> None:
    pacer = GcPacer(freeze_every=3600, full_every=3600)
    node = Node()
    gone = weakref.ref(node)
    pacer.tick()  # not time to freeze yet
    assert gc.get_freeze_count() == 0
    del node
    gc.collect()
    assert gone() is None


def test_retention_deletes_run_beside_the_loop_one_run_at_a_time() -> None:
    async def scenario() -> None:
        settings = EvaluatorSettings(retention_interval_seconds=600)
        checkpoint = Checkpoint(settings, EvaluatorMetrics(CollectorRegistry()), None, engine(objective("o1")))
        checkpoint.expire_soon()
        assert checkpoint._expiry is None  # not time yet
        checkpoint.last_expiry -= 600
        checkpoint.expire_soon()
        started = checkpoint._expiry
        assert started is not None
        assert not started.done()  # the loop did not wait for it
        checkpoint.expire_soon()
        assert checkpoint._expiry is started  # one run at a time
        await started  # no pool here: the deletes fail, are logged, and wait for the next time
        assert time.monotonic() - checkpoint.last_expiry < 600
        checkpoint.expire_soon()
        assert checkpoint._expiry is started  # not time again yet

    asyncio.run(scenario())
