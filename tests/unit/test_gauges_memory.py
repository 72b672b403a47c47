"""The evaluator's per-objective gauges from memory: a reading waiting for a checkpoint is shown as it will be
written, and an objective leaves the exposition with its partition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families
from support import engine_for as engine
from support import objective_config as objective

from services.evaluator.gauges import ObjectiveGauges
from shared.budget import default_tiers
from shared.measurements import Measurement
from shared.timeutil import MINUTES_PER_DAY

NOW = 1_790_000_000_000


def samples(text: bytes) -> dict[tuple[str, str], float]:
    """(sample name, objective id or objective id/tier/span) -> value."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            extra = "/".join(s.labels[k] for k in ("tier", "span") if k in s.labels)
            out[(s.name, s.labels["objective_id"] + (f"/{extra}" if extra else ""))] = s.value
    return out


def test_a_reading_waiting_for_its_checkpoint_renders_as_it_will_be_written() -> None:
    tiers = default_tiers(30 * MINUTES_PER_DAY)
    e = engine(objective("o1", tiers=tiers), objective("o2", indicator="other", tiers=tiers))
    gauges = ObjectiveGauges(e)
    e.apply(0, "api.availability", [Measurement("api.availability", NOW, 999, 1000)])
    e.apply(1, "other", [Measurement("other", NOW, 10, 10)])
    before = samples(gauges.render())  # quiet readings: judged at scrape time, nothing drained yet
    assert before[("accord_objective_window_events", "o1")] == 1000
    assert before[("accord_objective_sli", "o1")] == 0.999
    assert before[("accord_objective_target", "o2")] == 0.99
    assert before[("accord_objective_alert_firing", "o1/1h")] == 0.0
    e.drain()
    assert samples(gauges.render()) == before  # the same reading, now as written

    e.apply(0, "api.availability", [Measurement("api.availability", NOW + 1000, 0, 1000)])
    after = samples(gauges.render())
    assert after[("accord_objective_window_events", "o1")] == 2000
    assert after[("accord_objective_budget_exhausted", "o1")] == 1.0
    assert after[("accord_objective_alert_firing", "o1/1h")] == 1.0

    e.forget_partitions({0})  # revoked: o1 goes, o2 (partition 1) stays
    assert {oid for _, oid in samples(gauges.render())} == {"o2", "o2/1h/long", "o2/1h/short", "o2/1h",
                                                              "o2/6h/long", "o2/6h/short", "o2/6h",
                                                              "o2/1d/long", "o2/1d/short", "o2/1d",
                                                              "o2/3d/long", "o2/3d/short", "o2/3d"}  # fmt: skip


def test_a_sliced_render_is_the_render_and_reads_each_objective_at_its_turn() -> None:
    """The evaluator renders between records (`render_sliced`): the same text as in one go; an objective whose
    partition moves away while the render waits for its turn is left out, as a render after the move would."""
    many = [objective(f"o{n:03d}", indicator=f"i{n:03d}") for n in range(200)]
    e = engine(*many)
    for n in range(200):
        e.apply(n % 2, f"i{n:03d}", [Measurement(f"i{n:03d}", NOW, 990 + n % 10, 1000)])
    gauges = ObjectiveGauges(e)

    async def sliced(between: Callable[[], None] = lambda: None) -> bytes:
        task = asyncio.create_task(gauges.render_sliced(slice_seconds=0))
        await asyncio.sleep(0)  # the render took its list and waits for its first turn
        between()
        return await task

    assert asyncio.run(sliced()) == gauges.render()
    e.drain()
    assert asyncio.run(sliced()) == gauges.render()  # the same readings, as written

    moved = asyncio.run(sliced(lambda: e.forget_partitions({0})))
    assert moved == gauges.render()
    assert {oid for _, oid in samples(moved)} == {f"o{n:03d}" for n in range(1, 200, 2)}
