"""The evaluator's Kafka side: consume, apply, checkpoint to Postgres; and the outbox relay.

Kafka semantics, visibly (STYLE):
- auto-commit is off; the next offset of each partition is stored in Postgres in the
  same transaction as the state it produced (`offset + 1` of the last record applied);
- on assignment, state is loaded and the consumer seeks to the stored offset
  (the beginning when none is stored);
- before partitions move (revocation), everything applied is checkpointed;
- a record that cannot be decoded is logged with topic, partition and offset, counted
  and skipped (its offset still advances), so one poison record cannot stall a partition;
- a failed checkpoint ends the process: memory is ahead of Postgres, and a restart
  resumes from what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.evaluator.engine import Engine
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.store import load_objectives, load_partition, write_checkpoint
from shared.kafka import make_consumer, make_producer
from shared.measurements import PoisonRecord, decode_record

log = logging.getLogger("accord.evaluator")

PRUNE_EVERY_SECONDS = 60.0
"""How often memory past every window (buckets) and past the dedup horizon (ids) is let go."""


@dataclass
class EvaluatorMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r = self.registry
        self.records = Counter("accord_evaluator_records", "Kafka records applied.", registry=r)
        self.measurements = Counter(
            "accord_evaluator_measurements", "Measurements by outcome.", ["outcome"], registry=r
        )
        self.poison = Counter("accord_evaluator_poison_records", "Records skipped as undecodable.", registry=r)
        self.checkpoints = Histogram(
            "accord_evaluator_checkpoint_seconds",
            "Checkpoint transaction duration.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.events = Counter("accord_evaluator_breach_events", "Breach events decided.", ["type"], registry=r)
        self.published = Counter("accord_evaluator_events_published", "Breach events relayed.", registry=r)
        self.partitions = Gauge("accord_evaluator_partitions", "Partitions owned.", registry=r)
        self.buckets = Gauge("accord_evaluator_buckets", "Minute buckets held in memory.", registry=r)
        self.seen_ids = Gauge("accord_evaluator_seen_ids", "Measurement ids remembered for dedup.", registry=r)
        self.record_age = Histogram(
            "accord_evaluator_record_age_seconds",
            "Wall-clock age of a record (since its Kafka timestamp) when the evaluator applies it.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.lag_ms = Gauge(
            "accord_evaluator_checkpoint_age_seconds", "Seconds since the last committed checkpoint.", registry=r
        )


@dataclass
class Evaluator:
    settings: EvaluatorSettings
    metrics: EvaluatorMetrics
    pool: asyncpg.Pool
    engine: Engine
    consumer: AIOKafkaConsumer | None = None
    positions: dict[int, int] = field(default_factory=dict)  # applied, not yet checkpointed
    expected: dict[int, int] = field(default_factory=dict)  # next offset each owned partition may apply
    owned: set[int] = field(default_factory=set)
    last_checkpoint: float = field(default_factory=time.monotonic)
    last_prune: float = field(default_factory=time.monotonic)
    events_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    # Checkpoints and partition moves never interleave: a partition is reloaded only after
    # every checkpoint that touched it has committed.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: bool = False

    @classmethod
    async def create(cls, settings: EvaluatorSettings, metrics: EvaluatorMetrics) -> Evaluator:
        pool = await asyncpg.create_pool(settings.asyncpg_dsn, min_size=1, max_size=4)
        async with pool.acquire() as conn:
            objectives = await load_objectives(conn)
        engine = Engine(
            objectives,
            dedup_horizon_minutes=settings.dedup_horizon_minutes,
            max_age_minutes=settings.max_age_minutes,
        )
        log.info("loaded %d objectives", len(objectives))
        return cls(settings, metrics, pool, engine)

    async def reload_objectives(self) -> None:
        async with self.pool.acquire() as conn:
            objectives = await load_objectives(conn)
        self.engine.set_objectives(objectives)
        log.info("objectives reloaded: %d", len(objectives))

    # --- partitions ----------------------------------------------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self.lock:
            await self._assign(assigned)

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        assert self.consumer is not None
        topic = self.settings.measurements_topic
        for tp in sorted(assigned, key=lambda t: t.partition):
            if tp.topic != topic or tp.partition in self.owned:
                continue
            async with self.pool.acquire() as conn:
                loaded = await load_partition(
                    conn,
                    self.engine,
                    group=self.settings.group_id,
                    topic=topic,
                    partition=tp.partition,
                )
            self.expected[tp.partition] = loaded.next_offset or 0
            if loaded.next_offset is None:
                await self.consumer.seek_to_beginning(tp)
                log.info("partition %d assigned: no stored offset, reading from the beginning", tp.partition)
            else:
                self.consumer.seek(tp, loaded.next_offset)
                log.info(
                    "partition %d assigned: resuming at offset %d (%d indicators, %d buckets loaded)",
                    tp.partition,
                    loaded.next_offset,
                    loaded.indicators,
                    loaded.buckets,
                )
            self.owned.add(tp.partition)
        self.metrics.partitions.set(len(self.owned))
        self.ready = True

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            await self._checkpoint(all_statuses=True)  # the next owner starts from what is stored
            self._forget(revoked)

    def _forget(self, revoked: set[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.settings.measurements_topic}
        self.engine.forget_partitions(gone)
        self.owned -= gone
        for p in gone:
            self.positions.pop(p, None)
            self.expected.pop(p, None)
        self.metrics.partitions.set(len(self.owned))
        if gone:
            log.info("partitions %s revoked after a checkpoint", sorted(gone))

    # --- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.settings
        consumer = make_consumer(
            settings.kafka_bootstrap_servers,
            group_id=settings.group_id,
            client_id="accord-evaluator",
            session_timeout_ms=settings.session_timeout_ms,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        self.consumer = consumer
        await consumer.start()
        consumer.subscribe([settings.measurements_topic], listener=_Listener(self))
        interval = settings.checkpoint_interval_ms / 1000
        try:
            while True:
                try:
                    batches = await consumer.getmany(
                        timeout_ms=settings.checkpoint_interval_ms, max_records=settings.max_batch
                    )
                except OffsetOutOfRangeError as exc:
                    await self._rebase(exc)
                    continue
                except NoOffsetForPartitionError as exc:
                    # The fetcher looked for a Kafka-committed offset (there never is one) before our
                    # seek landed; seek again. Only partitions with no stored offset get here.
                    tp = exc.args[0] if exc.args else None
                    if isinstance(tp, TopicPartition) and tp.partition in self.owned:
                        await consumer.seek_to_beginning(tp)
                    continue
                for tp, records in batches.items():
                    self._apply(tp, records)
                # A breach event waits for no interval: its checkpoint goes now (events are rare, and
                # alerting wants them within a second); everything else is batched per interval.
                if self.engine.has_events() or time.monotonic() - self.last_checkpoint >= interval:
                    await self.checkpoint()
        finally:
            with contextlib.suppress(Exception):
                await self.checkpoint(all_statuses=True)
            await consumer.stop()

    async def _rebase(self, exc: OffsetOutOfRangeError) -> None:
        """A stored offset is outside the log (topic recreated, data lost to retention): read what the log has.

        Counts already stored stay; measurement ids already seen still count once.
        """
        assert self.consumer is not None
        lost: dict[TopicPartition, int] = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        async with self.lock:
            for tp, offset in lost.items():
                log.warning(
                    "partition %d: stored offset %d is outside the log; reading the log from its beginning",
                    tp.partition,
                    offset,
                )
                await self.consumer.seek_to_beginning(tp)
                self.expected[tp.partition] = 0

    def _apply(self, tp: TopicPartition, records: list) -> None:  # type: ignore[type-arg]
        expected = self.expected.get(tp.partition)
        if expected is None:
            return  # fetched before the partition moved away: its new owner applies it
        if records:
            self.metrics.record_age.observe(max(0.0, time.time() - records[-1].timestamp / 1000))
        for record in records:
            if record.offset < expected:
                continue  # offsets only move forward: never apply a record twice
            try:
                measurements = decode_record(record.value)
                indicator = measurements[0].indicator if measurements else ""
            except PoisonRecord as exc:
                log.error(
                    "poison record skipped: topic=%s partition=%d offset=%d: %s",
                    tp.topic,
                    tp.partition,
                    record.offset,
                    exc,
                )
                self.metrics.poison.inc()
            else:
                if measurements:
                    result = self.engine.apply(tp.partition, indicator, measurements)
                    self.metrics.measurements.labels("applied").inc(result.applied)
                    if result.duplicates:
                        self.metrics.measurements.labels("duplicate").inc(result.duplicates)
                    if result.too_late:
                        self.metrics.measurements.labels("too_late").inc(result.too_late)
            expected = self.positions[tp.partition] = self.expected[tp.partition] = record.offset + 1
            self.metrics.records.inc()

    async def checkpoint(self, *, all_statuses: bool = False) -> None:
        """Write every change since the last checkpoint, with the offsets, in one transaction."""
        async with self.lock:
            await self._checkpoint(all_statuses=all_statuses)

    async def _checkpoint(self, *, all_statuses: bool = False) -> None:
        changes = self.engine.drain(quiet_statuses=None if all_statuses else self.settings.max_statuses_per_checkpoint)
        offsets = dict(self.positions)
        self.last_checkpoint = time.monotonic()
        prune = None
        if time.monotonic() - self.last_prune >= PRUNE_EVERY_SECONDS:
            prune = self.engine.prune()
            self.last_prune = time.monotonic()
            stats = self.engine.stats()
            self.metrics.buckets.set(stats["buckets"])
            self.metrics.seen_ids.set(stats["seen_ids"])
        if not changes and not offsets and not prune:
            return
        started = time.perf_counter()
        try:
            async with self.pool.acquire() as conn:
                await write_checkpoint(
                    conn,
                    changes,
                    group=self.settings.group_id,
                    topic=self.settings.measurements_topic,
                    offsets=offsets,
                    prune=prune,
                )
        except asyncio.CancelledError:
            raise  # shutting down: the transaction rolls back, and a restart resumes from what is stored
        except BaseException:
            log.critical("checkpoint failed; exiting so that a restart resumes from the stored state")
            raise
        self.positions.clear()
        self.metrics.checkpoints.observe(time.perf_counter() - started)
        for e in changes.events:
            self.metrics.events.labels(e.type).inc()
            log.info("breach event %s %s for objective %s", e.id, e.type, e.objective_id)
        if changes.events:
            self.events_waiting.set()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Flush before partitions move, load after they arrive.

    aiokafka logs and swallows a listener's exception, which would leave this process
    consuming partitions it failed to load or flush: any failure here ends the process,
    and a restart resumes from what Postgres holds.
    """

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.evaluator.on_revoked(revoked)
        except Exception:
            log.critical("flushing before a rebalance failed; exiting", exc_info=True)
            os._exit(70)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.evaluator.on_assigned(assigned)
        except Exception:
            log.critical("loading assigned partitions failed; exiting", exc_info=True)
            os._exit(70)


async def relay_outbox(
    settings: EvaluatorSettings, pool: asyncpg.Pool, wake: asyncio.Event, metrics: EvaluatorMetrics
) -> None:
    """Publish unpublished breach events at least once, with their stable ids, keyed by objective."""
    producer: AIOKafkaProducer = make_producer(settings.kafka_bootstrap_servers, client_id="accord-outbox")
    await producer.start()
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=settings.relay_interval_ms / 1000)
            wake.clear()
            try:
                while await _relay_batch(settings, pool, producer, metrics):
                    pass
            except (KafkaError, TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox relay failed, will retry: %r", exc)
    finally:
        await producer.stop()


async def _relay_batch(
    settings: EvaluatorSettings, pool: asyncpg.Pool, producer: AIOKafkaProducer, metrics: EvaluatorMetrics
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """
            SELECT id, objective_id, event FROM breach_events
            WHERE published_at IS NULL
            ORDER BY created_at, objective_id, seq
            LIMIT 500
            FOR UPDATE SKIP LOCKED
            """
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
