"""The outbox relay: breach events stored by checkpoints reach the breach topic at least once.

Unpublished `breach_events` rows are published oldest first, keyed by objective, and marked
published after the broker's acknowledgement; a relay that stops between the two publishes
them again with the same ids, and consumers dedupe on the CloudEvent `id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from services.evaluator.checkpoint import EvaluatorMetrics
from services.evaluator.settings import EvaluatorSettings
from shared.kafka import make_producer

log = logging.getLogger("accord.evaluator")

BATCH = 500


async def relay_outbox(
    settings: EvaluatorSettings, pool: asyncpg.Pool, wake: asyncio.Event, metrics: EvaluatorMetrics
) -> None:
    """Publish unpublished breach events at least once, with their stable ids, keyed by objective.

    Survives Postgres and broker outages: a failed round is retried at the next wake-up or
    poll period, and logged once per outage.
    """
    # Batches large enough for a whole relay batch (BATCH events of ≈ 1 KB): with the default 16 KB, `send`
    # waited for the sender every few events, each wait a turn of an event loop busy applying records.
    producer: AIOKafkaProducer = make_producer(settings.kafka, client_id="accord-outbox", max_batch_size=1024 * 1024)
    await producer.start()
    failing = False
    try:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that races the wake-up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.relay_interval_ms / 1000):
                    await wake.wait()
            wake.clear()
            try:
                while await _relay_batch(settings, pool, producer, metrics):
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("outbox relay failed, retrying every %d ms: %r", settings.relay_interval_ms, exc)
                failing = True
            else:
                if failing:
                    log.info("outbox relay works again")
                failing = False
            # After every pass, published or not: a broker outage shows as a growing backlog. Any failure
            # (asyncpg raises InternalClientError too when the server cuts a connection mid-statement) keeps
            # the last values; it never stops the relay.
            try:
                await _measure_backlog(pool, metrics)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("outbox backlog not measured: %r", exc)
    finally:
        await producer.stop()


async def _relay_batch(
    settings: EvaluatorSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer, metrics: EvaluatorMetrics
) -> int:
    async with pool.acquire(timeout=10) as conn, conn.transaction():
        rows = await conn.fetch(
            """
            SELECT id, objective_id, event FROM breach_events
            WHERE published_at IS NULL
            ORDER BY created_at, objective_id, seq
            LIMIT $1
            FOR UPDATE SKIP LOCKED
            """,
            BATCH,
        )
        if not rows:
            return 0
        futures = [
            await producer.send(
                settings.breaches_topic,
                key=str(r["objective_id"]).encode(),
                value=r["event"].encode() if isinstance(r["event"], str) else orjson.dumps(r["event"]),
                headers=[("content-type", b"application/cloudevents+json")],
            )
            for r in rows
        ]
        async with asyncio.timeout(30):
            await asyncio.gather(*futures)
        await conn.execute(
            "UPDATE breach_events SET published_at = now() WHERE id = ANY($1::text[])", [r["id"] for r in rows]
        )
    metrics.published.inc(len(rows))
    log.info("relayed %d breach events to %s", len(rows), settings.breaches_topic)
    return len(rows)


async def _measure_backlog(pool: asyncpg.Pool, metrics: EvaluatorMetrics) -> None:
    """Outbox gauges, once per relay pass: one query on the partial index of unpublished events.

    Normally 0 right after a pass; a backlog that stays means the broker does not acknowledge.
    While Postgres is away the gauges keep their last values, and the age keeps growing from the
    oldest event seen (it is computed at scrape time).
    """
    async with pool.acquire(timeout=10) as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM min(created_at))::float8 AS oldest "
            "FROM breach_events WHERE published_at IS NULL"
        )
    assert row is not None
    metrics.outbox_backlog.set(row["n"])
    metrics.outbox_oldest_created = row["oldest"]
