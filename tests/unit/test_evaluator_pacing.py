"""How the evaluator keeps breach events from waiting: long-lived objects are kept out of Python's collections (yet
cycles among them are collected), and retention deletes run beside the loop."""

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
