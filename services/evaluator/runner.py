"""The evaluator's consumer loop and rebalance listener.

Kafka semantics, visibly (STYLE; the checkpoint side is in checkpoint.py):
- auto-commit is off; offsets live in Postgres, written by `Checkpoint.commit` with the state
  they produced;
- on assignment, state is loaded and the consumer seeks to the stored offset; before
  partitions move, everything applied is committed (`_Listener`);
- a record that cannot be applied goes to `dead_letters` with topic, partition, offset and
  reason, in the same checkpoint as the offset that moves past it; a bad measurement takes
  only itself there, the rest of its record is counted;
- Postgres failing never ends the process: the loop keeps polling Kafka (which keeps this
  member in its group), reloads the state it had to throw away when Postgres answers
  again, and resumes from the stored offsets.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from dataclasses import dataclass, field

import asyncpg
import orjson
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import NoOffsetForPartitionError, OffsetOutOfRangeError
from aiokafka.structs import ConsumerRecord

from services.evaluator.checkpoint import RETRY_MAX_SECONDS, Checkpoint, EvaluatorMetrics
from services.evaluator.engine import Engine
from services.evaluator.gauges import ObjectiveGauges
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.store import DeadLetter, ParsedObjectives, load_objectives
from shared.kafka import make_consumer
from shared.measurements import PoisonRecord, Rejected, decode_record

log = logging.getLogger("accord.evaluator")

__all__ = ["Evaluator", "EvaluatorMetrics"]

APPLY_SLICE = 16
"""Records applied between two looks at the clock (16 records of 500 measurements take ≈ 30 ms)."""
YIELD_EVERY_SECONDS = 0.005
"""Longest the loop applies records without letting other tasks run (see `Evaluator._apply_all`)."""
YIELD_WRITING_SECONDS = 0.001
"""The same while a checkpoint is written: its statements (about ten) each wait for a turn of the loop."""
GC_FREEZE_EVERY_SECONDS = 1.0
GC_FULL_EVERY_SECONDS = 3600.0
"""Python's full collections scan every object the engine holds (0.2-0.5 s at 10,000 objectives, longer as the
history grows), every few seconds under load, holding the loop and every breach event. Objects that lived
through `GC_FREEZE_EVERY_SECONDS` are frozen out of them (`gc.freeze`): young cycles are collected as before,
and cycles among frozen objects wait for the hourly unfrozen full collection (`GcPacer`)."""


class GcPacer:
    """Keeps the engine's long-lived objects out of Python's collections, at one full collection an hour."""

    def __init__(
        self, freeze_every: float = GC_FREEZE_EVERY_SECONDS, full_every: float = GC_FULL_EVERY_SECONDS
    ) -> None:
        self.freeze_every, self.full_every = freeze_every, full_every
        now = time.monotonic()
        self.frozen_at = self.collected_at = now

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.collected_at >= self.full_every:
            gc.unfreeze()
            started = time.perf_counter()
            found = gc.collect()
            log.info("full garbage collection: %d objects in %.0f ms", found, (time.perf_counter() - started) * 1000)
            self.collected_at = now
        elif now - self.frozen_at < self.freeze_every:
            return
        gc.freeze()
        self.frozen_at = now


@dataclass
class Evaluator:
    settings: EvaluatorSettings
    metrics: EvaluatorMetrics
    pool: asyncpg.Pool
    engine: Engine
    checkpoint: Checkpoint = field(init=False)
    gauges: ObjectiveGauges = field(init=False)
    gc_pacer: GcPacer = field(default_factory=GcPacer)
    objectives_loaded: bool = False
    parsed: ParsedObjectives = field(default_factory=dict)  # rows of the last objectives read, parsed

    def __post_init__(self) -> None:
        self.checkpoint = Checkpoint(self.settings, self.metrics, self.pool, self.engine)
        self.gauges = ObjectiveGauges(self.engine)

    @classmethod
    async def create(cls, settings: EvaluatorSettings, metrics: EvaluatorMetrics) -> Evaluator:
        """No connection is made here (min_size=0): the loop waits for Postgres itself, /readyz answers meanwhile."""
        pool = await asyncpg.create_pool(settings.asyncpg_dsn, min_size=0, max_size=4, timeout=5)
        engine = Engine(
            (),
            dedup_horizon_minutes=settings.dedup_horizon_minutes,
            max_age_minutes=settings.max_age_minutes,
            minute_band_minutes=settings.minute_band_minutes or None,
            recent_minutes=settings.recent_minutes,
        )
        return cls(settings, metrics, pool, engine)

    @property
    def events_waiting(self) -> asyncio.Event:
        return self.checkpoint.events_waiting

    async def reload_objectives(self) -> None:
        """Take the current objectives; raises when Postgres cannot be read (the caller retries)."""
        async with self.pool.acquire(timeout=10) as conn:
            # Rows read as before are not parsed again: the periodic fallback mostly finds nothing new.
            objectives = await load_objectives(conn, self.parsed)
        current = {o.id: o for objs in self.engine.objectives.values() for o in objs}
        changed = not self.objectives_loaded or current != {o.id: o for o in objectives}
        if changed:
            # Only on a change: setting them resets the engine's caches and the cadence, and the gauges
            # rebuild every objective's label strings (a second for 10,000), all on the event loop. The
            # reload after the listener connects and the periodic fallback mostly find nothing new.
            self.engine.set_objectives(objectives)
        self.objectives_loaded = True
        log.log(logging.INFO if changed else logging.DEBUG, "objectives loaded: %d", len(objectives))

    async def _load_objectives_patiently(self) -> None:
        """The first load: partitions are not taken before the objectives are known."""
        delay, failing = 0.5, False
        while True:
            try:
                await self.reload_objectives()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.error("cannot load objectives, retrying until Postgres answers: %r", exc)
                failing = True
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_SECONDS, delay * 2)

    def not_ready(self) -> str | None:
        if not self.objectives_loaded:
            return "objectives not loaded yet"
        return self.checkpoint.not_ready()

    # --- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        settings, checkpoint = self.settings, self.checkpoint
        await self._load_objectives_patiently()
        consumer = make_consumer(
            settings.kafka,
            group_id=settings.group_id,
            client_id="accord-evaluator",
            session_timeout_ms=settings.session_timeout_ms,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            group_instance_id=settings.group_instance_id or None,
        )
        checkpoint.consumer = consumer
        await consumer.start()
        consumer.subscribe([settings.measurements_topic], listener=_Listener(checkpoint))
        try:
            while True:
                # Reloading after a failed commit happens here, between polls: the loop never stops
                # polling for long, so the consumer's membership in its group stays healthy.
                await checkpoint.recover()
                await checkpoint.refill()  # minutes ahead of rolling windows' start edges (docs/evaluator.md)
                try:
                    batches = await consumer.getmany(
                        timeout_ms=settings.checkpoint_interval_ms, max_records=settings.max_batch
                    )
                except OffsetOutOfRangeError as exc:
                    await self._rebase(exc)
                    continue
                except NoOffsetForPartitionError as exc:
                    # The fetcher looked for a Kafka-committed offset (there never is one) before our
                    # seek landed; seek again. Only partitions with no stored offset (or not loaded yet,
                    # and paused) get here.
                    tp = exc.args[0] if exc.args else None
                    if isinstance(tp, TopicPartition) and tp.partition in checkpoint.owned:
                        await consumer.seek_to_beginning(tp)
                    continue
                await self._apply_all(batches)
                self.gc_pacer.tick()
                checkpoint.raise_writer_error()
                if checkpoint.due() and not checkpoint.writing:
                    # Written while the loop applies the next records: Postgres' time is not the loop's.
                    checkpoint.commit_soon()
                    checkpoint.expire_soon()
        finally:
            checkpoint.stop_expiry()  # an interrupted run of deletes resumes the next time
            # Shutting down: commit what was applied (after the background commit, if one is written); if
            # that fails nothing moves, and the next owner replays from the stored offsets.
            try:
                await asyncio.wait_for(checkpoint.commit(all_statuses=True), timeout=10)
            except Exception as exc:
                log.warning("final checkpoint skipped: %r", exc)
            await consumer.stop()

    async def _rebase(self, exc: OffsetOutOfRangeError) -> None:
        """A stored offset is outside the log (topic recreated, data lost to retention): read what the log has.

        Counts already stored stay; measurement ids already seen still count once.
        """
        consumer = self.checkpoint.consumer
        assert consumer is not None
        lost: dict[TopicPartition, int] = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        async with self.checkpoint.lock:
            for tp, offset in lost.items():
                log.warning(
                    "partition %d: stored offset %d is outside the log; reading the log from its beginning",
                    tp.partition,
                    offset,
                )
                await consumer.seek_to_beginning(tp)
                self.checkpoint.rebase(tp.partition)

    async def _apply_all(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Apply a poll's records, letting the other tasks run every few milliseconds: the checkpoint being
        written in the background, the outbox relay and /metrics each need a turn of the event loop per
        statement or send, and a poll's records can take a few hundred milliseconds.

        Safe to pause between slices: a slice applies only to a partition that is still loaded here
        (a revocation or a failed commit in between drops the rest, replayed later), and everything
        applied is marked with its offset before the pause."""
        checkpoint = self.checkpoint
        yield_at = time.perf_counter() + YIELD_EVERY_SECONDS
        for tp, records in batches.items():
            for start in range(0, len(records), APPLY_SLICE):
                if tp.partition in checkpoint.held_back:
                    break  # paused and sought back to the record that waits for its minutes
                self._apply(tp, records[start : start + APPLY_SLICE])
                if time.perf_counter() >= yield_at:
                    await asyncio.sleep(0)
                    # While a checkpoint is written, each of its statements waits for a turn: more turns.
                    every = YIELD_WRITING_SECONDS if checkpoint.writing else YIELD_EVERY_SECONDS
                    yield_at = time.perf_counter() + every

    def _apply(self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        checkpoint = self.checkpoint
        expected = checkpoint.next_offset(tp.partition)
        if expected is None:
            return  # fetched before the partition moved away or its state was thrown away: replayed later
        if records:
            self.metrics.record_age.observe(max(0.0, time.time() - records[-1].timestamp / 1000))
        # Counted per batch, not per record: a labelled counter costs microseconds, a record little more.
        applied = duplicates = too_late = n = 0
        engine, partition = self.engine, tp.partition
        try:
            for record in records:
                if record.offset < expected:
                    continue  # offsets only move forward: never apply a record twice
                try:
                    decoded = decode_record(record.value)
                except PoisonRecord as exc:
                    log.error(
                        "dead letter: topic=%s partition=%d offset=%d record: %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        exc,
                    )
                    letter = DeadLetter.of(tp.partition, record.offset, None, str(exc), record.value)
                    checkpoint.dead_letter(letter, exc.kind)
                else:
                    if decoded.measurements and not engine.covers(decoded.indicator, decoded.measurements):
                        # Its evaluation would read minutes held only as hour cells: fetch them, then read it again.
                        newest = max(m.timestamp_ms for m in decoded.measurements)
                        checkpoint.hold_back(partition, record.offset, decoded.indicator, newest)
                        return  # nothing of this record applied; `finally` marks the records before it
                    if decoded.rejected:
                        self._dead_letters(tp, record.offset, decoded.rejected)
                    if decoded.measurements:
                        result = engine.apply(partition, decoded.indicator, decoded.measurements)
                        applied += result.applied
                        duplicates += result.duplicates
                        too_late += result.too_late
                expected = record.offset + 1
                n += 1
        finally:
            if n:  # what was applied is marked applied, even when a record fails in a bug
                checkpoint.applied(partition, expected - 1)
        if n:
            measurements = self.metrics.measurements
            measurements.labels("applied").inc(applied)
            if duplicates:
                measurements.labels("duplicate").inc(duplicates)
            if too_late:
                measurements.labels("too_late").inc(too_late)
            self.metrics.records.inc(n)

    def _dead_letters(self, tp: TopicPartition, offset: int, rejected: list[Rejected]) -> None:
        """One log line per record however many of its measurements are refused; one row each."""
        first = rejected[0]
        log.error(
            "dead letters: topic=%s partition=%d offset=%d: %d measurement(s) refused, first %d: %s",
            tp.topic,
            tp.partition,
            offset,
            len(rejected),
            first.index,
            first.reason[:300],
        )
        for bad in rejected:
            letter = DeadLetter.of(tp.partition, offset, bad.index, bad.reason, _encode(bad.item))
            self.checkpoint.dead_letter(letter, bad.kind)


def _encode(item: object) -> bytes | None:
    try:
        return orjson.dumps(item)
    except TypeError:
        return None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commit before partitions move, load after they arrive.

    Postgres failing is no error here: a commit that fails before
    a revocation stores nothing (the next owner replays from the stored offsets); a load that
    fails leaves the partition paused and stale, and the loop retries it. Anything else ends
    the process (aiokafka would log and swallow it, leaving partitions half taken).
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.checkpoint.revoke(revoked)
        except Exception:
            # Not Postgres (that is handled inside): a bug. Never linger consuming half-flushed partitions.
            log.critical("revoking partitions failed; exiting", exc_info=True)
            os._exit(70)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.checkpoint.assign(assigned)
        except Exception:
            log.critical("taking assigned partitions failed; exiting", exc_info=True)
            os._exit(70)
