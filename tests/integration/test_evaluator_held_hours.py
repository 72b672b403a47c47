"""A restarted evaluator that holds old hours as cells only, on the real embedded PostgreSQL: `load_partition`
loads hour cells and the minutes evaluations read, `Checkpoint.refill` fetches the minutes the rolling windows'
start edges reach as the watermark moves into hours held as cells (with late adds not checkpointed yet), and
checkpoints add late counts to the stored minutes. Events and readings equal those of an engine loaded with
every minute."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
from prometheus_client import CollectorRegistry
from support import objective_config

from services.evaluator.checkpoint import Checkpoint, EvaluatorMetrics
from services.evaluator.engine import Engine
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.store import load_partition
from shared.budget import RollingWindow, default_tiers
from shared.measurements import Measurement
from shared.series import series_key
from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY

IND = "held.hours"
TOPIC = "held.measurements"
DAY = RollingWindow(MINUTES_PER_DAY)
T0 = 20_600 * MINUTES_PER_DAY  # minutes; history starts here, three days of it


def objectives() -> list:  # type: ignore[type-arg]
    oid = str(uuid.uuid5(uuid.NAMESPACE_URL, "held-hours"))
    config = objective_config(oid, IND, window=DAY, tiers=default_tiers(MINUTES_PER_DAY))
    return [dataclasses.replace(config, agreement_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "held-hours-agreement")))]


async def test_a_restart_with_hour_cells_fetches_ahead_and_matches_every_minute(database_url: str) -> None:
    dsn = database_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        minutes = list(range(T0, T0 + 3 * MINUTES_PER_DAY))
        goods = [9 if (m // 60) % 7 == 0 else 10 for m in minutes]  # a bad hour now and then
        await conn.execute(
            """
            INSERT INTO series_buckets (indicator_key, series, minute, good, total)
            SELECT $1, '{}|', m, g, 10 FROM unnest($2::bigint[], $3::bigint[]) AS u(m, g)
            """,
            IND,
            minutes,
            goods,
        )
        await conn.execute(
            """
            INSERT INTO series_hours (indicator_key, series, hour, good, total)
            SELECT indicator_key, series, minute / 60, sum(good), sum(total) FROM series_buckets
            WHERE indicator_key = $1 GROUP BY 1, 2, 3
            """,
            IND,
        )
        watermark = (T0 + 3 * MINUTES_PER_DAY - 1) * MINUTE_MS + 30_000
        await conn.execute(
            "INSERT INTO indicator_state (indicator_key, topic, partition, watermark_ms) VALUES ($1, $2, 0, $3)",
            IND,
            TOPIC,
            watermark,
        )
        full = Engine(objectives(), dedup_horizon_minutes=1440, max_age_minutes=576_000)
        held = Engine(
            objectives(),
            dedup_horizon_minutes=1440,
            max_age_minutes=576_000,
            minute_band_minutes=90,
            recent_minutes=60,
        )
        await load_partition(conn, full, group="g", topic=TOPIC, partition=0)
        loaded = await load_partition(conn, held, group="g", topic=TOPIC, partition=0)
        everything = sum(len(c) for c in full.indicators[IND].series.values())
        assert everything >= 2 * MINUTES_PER_DAY
        assert loaded.buckets < everything / 5  # hour cells for most of the history

        settings = EvaluatorSettings(measurements_topic=TOPIC, group_id="g")
        checkpoint = Checkpoint(settings, EvaluatorMetrics(CollectorRegistry()), pool, held)
        events_full: list[str] = []
        fetches = 0
        late_minutes = set()
        now = watermark
        for step in range(60):  # ten hours, 10 minutes a step: the day window's start sweeps ten old hours
            now += 10 * MINUTE_MS
            batch = [Measurement(IND, now, 3 if step % 9 == 4 else 10, 10)]
            if step % 4 == 1:  # late data into an hour held as a cell only, not checkpointed before the fetch
                late = now - 20 * 60 * MINUTE_MS - 7 * MINUTE_MS
                batch.append(Measurement(IND, late, 0, 5))
                late_minutes.add(late // MINUTE_MS)
            full.apply(0, IND, batch)
            events_full.extend(e.id for e in full.drain().events)
            if not held.covers(IND, batch):
                fetches += 1
                checkpoint.blocked[IND] = now
                await checkpoint.refill()
                assert held.covers(IND, batch)
            held.apply(0, IND, batch)
            checkpoint.positions[0] = step + 1
            if step % 2:
                assert await checkpoint.commit()
        assert await checkpoint.commit()
        stored = [r["id"] for r in await conn.fetch("SELECT id::text FROM breach_events ORDER BY time, seq")]
        assert fetches > 0
        assert events_full
        assert sorted(stored) == sorted(events_full)
        for o in objectives():
            mine, theirs = held.reading(o.id), full.reading(o.id)
            assert mine is not None
            assert theirs is not None
            assert mine.evaluation == theirs.evaluation  # type: ignore[union-attr]
        # late counts reached the stored minutes: the same as the engine that held every minute
        counts = full.indicators[IND].series[series_key("{}|")]
        rows = await conn.fetch(
            "SELECT minute, good, total FROM series_buckets WHERE indicator_key = $1 AND minute = ANY($2::bigint[])",
            IND,
            sorted(late_minutes),
        )
        assert len(rows) == len(late_minutes)
        for r in rows:
            c = counts.bucket(r["minute"])
            assert (r["good"], r["total"]) == (c.good, c.total)
    finally:
        await pool.close()
        await conn.close()
