"""A restarted evaluator loads first the partition whose records waited for it, not the lowest-numbered one,
applies those records and stores their breach events before it loads the next partition: after a restart the
indicators that received records meanwhile are evaluated first (issue 10, SIGKILL → first event)."""

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


def record(key: str, minute: int, good: int = 99) -> tuple[str, bytes]:
    return key, encode_record(key, [Measurement(key, START_MS + minute * 60_000, good, 100, id=f"{key}/{minute}")])


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
    waiting = [record(key, m, good=0) for m in range(1, 40)]  # exhausts its objectives' budgets
    await produce(servers.bootstrap, topics.measurements, waiting, offsets)

    restarted = launch("accord-evaluator")
    await restarted.wait_ready()
    await wait_offsets(database_url, topics.group, offsets)
    assert restarted.log is not None
    lines = restarted.log.read_text().splitlines()
    loads = [
        (n, int(found[1])) for n, line in enumerate(lines) if (found := re.search(r"partition (\d+) loaded", line))
    ]
    assert sorted(p for _, p in loads) == [0, 1, 2, 3], loads
    assert loads[0][1] == busiest, (
        f"loaded in the order {loads}; partition {busiest} had {len(waiting)} records waiting"
    )
    events = [n for n, line in enumerate(lines) if "breach event" in line]
    assert events, "the waiting records exhaust budgets: breach events were expected"
    assert events[0] < loads[1][0], "the waiting records' events were stored only after the next partition loaded"
