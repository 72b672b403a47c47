"""A restarted evaluator loads first the partition whose records waited for it, not the lowest-numbered one:
after a restart the indicators that received records meanwhile are evaluated before the quiet ones are loaded
(issue 10, SIGKILL → first event)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import asyncpg
import pytest
from support import (
    Servers,
    ServiceProcess,
    Topics,
    insert_objectives_per_indicator,
    produce,
    wait_offsets,
)

from shared.measurements import Measurement, encode_record

pytestmark = pytest.mark.slow

INDICATORS = [f"order{n}.availability" for n in range(8)]
START_MS = (int(time.time()) // 60 - 30) * 60_000
POLICY = {"tiers": [], "budget_thresholds": [1.0]}


def record(key: str, minute: int) -> tuple[str, bytes]:
    return key, encode_record(key, [Measurement(key, START_MS + minute * 60_000, 99, 100, id=f"{key}/{minute}")])


async def test_the_partition_with_records_waiting_is_loaded_first(
    launch: Callable[..., ServiceProcess], servers: Servers, topics: Topics, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await insert_objectives_per_indicator(conn, uuid.uuid4(), INDICATORS, POLICY)
    finally:
        await conn.close()
    first = launch("accord-evaluator")
    await first.wait_ready()
    offsets: dict[int, int] = {}
    partition_of: dict[str, int] = {}
    for key in INDICATORS:
        landed: dict[int, int] = {}
        await produce(servers.bootstrap, topics.measurements, [record(key, 0)], landed)
        [partition_of[key]] = landed
        offsets.update(landed)
    await wait_offsets(database_url, topics.group, offsets)
    first.kill()

    busiest = max(partition_of.values())  # not the lowest-numbered partition, which a load in order takes first
    assert busiest > 0, f"every indicator landed on partition 0 ({partition_of}); the test proves nothing"
    key = next(k for k, p in partition_of.items() if p == busiest)
    waiting = [record(key, m) for m in range(1, 40)]
    await produce(servers.bootstrap, topics.measurements, waiting, offsets)

    restarted = launch("accord-evaluator")
    await restarted.wait_ready()
    await wait_offsets(database_url, topics.group, offsets)
    assert restarted.log is not None
    loaded = [int(p) for p in re.findall(r"partition (\d+) loaded", restarted.log.read_text())]
    assert sorted(loaded) == [0, 1, 2, 3], loaded
    assert loaded[0] == busiest, f"loaded in the order {loaded}; partition {busiest} had {len(waiting)} records waiting"
