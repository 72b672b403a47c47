"""The checkpoint: what was applied since it last committed, and the one transaction that stores it.

Kafka semantics, visibly:
- a partition is *loaded* once its state came from Postgres and the consumer was moved to the
  stored next offset (the log's beginning when none is stored); only loaded partitions apply
  records, and only records at or after their next expected offset (never one twice);
- `positions` holds `offset + 1` of the last record applied per partition since the last
  commit; it is written in the same transaction as the buckets, ids, statuses, events and
  dead letters those records produced, and nowhere else: an offset never moves without them;
- a commit that fails (any error: Postgres down, a connection cut, a statement refused) changes
  nothing. Memory is then ahead of Postgres, so the state of every owned partition is thrown
  away and the partitions are paused, to be reloaded exactly as on assignment. The records are
  still in Kafka: what the failed commit held is applied again. Reloading is retried with
  capped exponential backoff while Postgres is unreachable; the process stays up, keeps
  polling Kafka (so it stays in its consumer group) and reports not ready meanwhile;
- commits and partition moves never interleave (`lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.evaluator.engine import Engine
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.store import (
    DeadLetter,
    delete_expired,
    fetch_minutes,
    load_partition,
    stored_offsets,
    write_checkpoint,
)
from shared.budget.evaluate import TransitionType

log = logging.getLogger("accord.evaluator")

PRUNE_EVERY_SECONDS = 60.0
"""How often memory past every window (buckets) and past the dedup horizon (ids) is let go."""
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
"""Reloading after a failure is retried after 0.5 s, 1 s, 2 s, 4 s, then every 5 s."""
ATTEMPT_TIMEOUT_SECONDS = 60.0
"""Longest a commit or a reload may take before it counts as failed (a hung connection)."""
CATCH_UP_SECONDS = 5.0
"""Longest the records waiting in a newly loaded partition hold back the load of the next one (`recover`)."""


MEASUREMENT_OUTCOMES = ("applied", "duplicate", "too_late")
DEAD_LETTER_REASONS = (
    # a whole record (shared.measurements.PoisonRecord.kind)
    "no_value", "malformed", "schema", "indicator",
    # one measurement of a record (shared.measurements.Rejected.kind)
    "id", "labels", "timestamp", "counts", "value",
)  # fmt: skip
BREACH_EVENT_TYPES = (*(t.value for t in TransitionType), "accord.sla.breached")


class EvaluatorMetrics:
    """Everything the evaluator exports on /metrics (names in docs/evaluator.md).

    Labelled counters start at 0 for every label value they can take, so that `rate()` and
    `increase()` see the first occurrence (a series born at 1 has no increase to show).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        self.records = Counter("accord_evaluator_records", "Kafka records applied.", registry=r)
        self.measurements = Counter(
            "accord_evaluator_measurements", "Measurements by outcome.", ["outcome"], registry=r
        )
        for outcome in MEASUREMENT_OUTCOMES:
            self.measurements.labels(outcome)
        self.dead_letters = Counter(
            "accord_evaluator_dead_letters",
            "Records (or measurements of them) that could not be applied, stored in dead_letters.",
            ["reason"],
            registry=r,
        )
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        self.checkpoints = Histogram(
            "accord_evaluator_checkpoint_seconds",
            "Checkpoint transaction duration.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "accord_evaluator_checkpoint_failures", "Checkpoints that failed and were rolled back.", registry=r
        )
        self.postgres_up = Gauge(
            "accord_evaluator_postgres_up",
            "1 when the last checkpoint or state load reached Postgres, 0 when it failed.",
            registry=r,
        )
        self.events = Counter("accord_evaluator_breach_events", "Breach events decided.", ["type"], registry=r)
        for event_type in BREACH_EVENT_TYPES:
            self.events.labels(event_type)
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
        self.checkpoint_age = Gauge(
            "accord_evaluator_checkpoint_age_seconds",
            "Seconds since Postgres last held everything this evaluator had applied.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "accord_evaluator_consumer_lag_records",
            "Per owned partition: the broker's high watermark last seen by the consumer minus the next offset "
            "to apply (set on scrape; absent until the partition's first fetch).",
            ["partition"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "accord_outbox_backlog_events",
            "Breach events stored and not yet published to the breach topic (counted once per relay pass).",
            registry=r,
        )
        self.outbox_oldest_created: float | None = None  # epoch seconds, set by the relay
        self.outbox_age = Gauge(
            "accord_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished breach event, as of the last relay pass; 0 when none waits.",
            registry=r,
        )
        self.outbox_age.set_function(self._outbox_age)

    def _outbox_age(self) -> float:
        oldest = self.outbox_oldest_created
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)


class Checkpoint:
    """Owned partitions, what was applied since the last commit, and the commit itself."""

    def __init__(
        self, settings: EvaluatorSettings, metrics: EvaluatorMetrics, pool: asyncpg.Pool, engine: Engine
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pool = pool
        self.engine = engine
        self.topic = settings.measurements_topic
        self.consumer: AIOKafkaConsumer | None = None  # set by the runner before it subscribes
        self.owned: set[int] = set()  # assigned to this process
        self.expected: dict[int, int] = {}  # loaded partitions: the next offset each may apply
        self.positions: dict[int, int] = {}  # applied since the last commit: offset + 1 of the last record
        self.dead_letters: list[DeadLetter] = []  # found since the last commit
        self.lock = asyncio.Lock()
        self.assigned = False  # an assignment (possibly empty) has arrived
        self.healthy = True  # the last commit or load reached Postgres
        self.failures = 0  # consecutive failed commits or loads, for the backoff
        self.retry_at = 0.0
        now = time.monotonic()
        self.last_attempt = now
        self.last_prune = now
        self.last_expiry = now
        self.stored_at = now  # when Postgres last held everything applied
        self.events_waiting = asyncio.Event()  # set after a commit that stored breach events
        self.lag_partitions: set[int] = set()  # partitions with a consumer lag sample
        self._writer: asyncio.Task[None] | None = None  # the background commit (`commit_soon`)
        self._expiry: asyncio.Task[None] | None = None  # the background retention deletes (`expire_soon`)
        # Minutes to fetch before applying (`hold_back`): indicator -> newest timestamp waiting, and the paused
        # partitions to resume once fetched.
        self.blocked: dict[str, int] = {}
        self.held_back: set[int] = set()
        # The partition loaded last with records waiting: (partition, its end offset then, until when they go
        # before the next load).
        self.catch_up: tuple[int, int, float] | None = None
        metrics.postgres_up.set(1)

    # --- what the loop asks ----------------------------------------------------------------------

    @property
    def stale(self) -> set[int]:
        """Owned partitions whose state must be (re)loaded from Postgres before they apply anything."""
        return self.owned - self.expected.keys()

    def next_offset(self, partition: int) -> int | None:
        """The next offset `partition` may apply; None when it is not loaded here."""
        return self.expected.get(partition)

    def applied(self, partition: int, offset: int) -> None:
        self.positions[partition] = self.expected[partition] = offset + 1

    def dead_letter(self, letter: DeadLetter, kind: str) -> None:
        self.dead_letters.append(letter)
        self.metrics.dead_letters.labels(kind).inc()

    def due(self) -> bool:
        """A breach event waits for no interval (alerting wants it within a second); the rest is batched."""
        interval = self.settings.checkpoint_interval_ms / 1000
        return self.engine.has_events() or time.monotonic() - self.last_attempt >= interval

    def not_ready(self) -> str | None:
        """Why this evaluator is not ready; None when it is."""
        if not self.assigned:
            return "no partition assignment yet"
        if stale := self.stale:
            return f"partitions {sorted(stale)} wait for their state from Postgres"
        if not self.healthy:
            return "the last checkpoint failed"
        return None

    def refresh_metrics(self) -> None:
        self.metrics.checkpoint_age.set(time.monotonic() - self.stored_at)
        self._refresh_lag()

    def _refresh_lag(self) -> None:
        """Lag per owned partition: the high watermark from the consumer's last fetch minus the next offset
        to apply. Partitions not fetched yet (no high watermark) or not loaded have no sample."""
        gauge = self.metrics.consumer_lag
        lags: dict[int, int] = {}
        if self.consumer is not None:
            for p in self.owned:
                expected = self.expected.get(p)
                try:
                    highwater = self.consumer.highwater(TopicPartition(self.topic, p))
                except (IllegalStateError, AssertionError):  # not assigned any more: the group rebalances
                    continue
                if expected is not None and highwater is not None:
                    lags[p] = max(0, highwater - expected)
        for p in self.lag_partitions - lags.keys():  # moved away, or not loaded any more
            gauge.remove(str(p))
        for p, lag in lags.items():
            gauge.labels(str(p)).set(lag)
        self.lag_partitions = set(lags)

    # --- commits ---------------------------------------------------------------------------------

    async def commit(self, *, all_statuses: bool = False) -> bool:
        """Write every change since the last commit, with its offsets, in one transaction; False if it failed."""
        async with self.lock:
            return await self._commit(all_statuses=all_statuses)

    @property
    def writing(self) -> bool:
        """A checkpoint started by `commit_soon` is being written."""
        return self._writer is not None and not self._writer.done()

    def commit_soon(self) -> None:
        """Commit in the background while the loop goes on applying records; at most one at a time.

        What was applied until the commit drains the engine goes into it; what is applied while it is
        written goes into the next one. A failure throws away the memory of every owned partition,
        the records applied meanwhile included, exactly as when the loop waits for the commit. Breach
        events decided while it was written get their own commit at once after it, not at the next poll.
        """
        self.raise_writer_error()
        if self.writing:
            return
        self._writer = asyncio.create_task(self._commit_chain(), name="checkpoint")

    def raise_writer_error(self) -> None:
        """A bug in a background commit (not Postgres failing: that is handled inside) ends the loop too."""
        writer = self._writer
        if writer is not None and writer.done():
            self._writer = None
            if not writer.cancelled() and (exc := writer.exception()) is not None:
                raise exc

    async def wait_written(self) -> None:
        """Until the background commit, if any, is over."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait([writer])

    async def _commit_chain(self) -> None:
        async with self.lock:
            while await self._commit() and self.engine.has_events():
                pass

    async def _commit(self, *, all_statuses: bool = False) -> bool:
        now = time.monotonic()
        changes = self.engine.drain(quiet_statuses=None if all_statuses else self.settings.max_statuses_per_checkpoint)
        # Taken now, not after the commit: records applied while it is written go into the next one.
        offsets, self.positions = self.positions, {}
        dead_letters, self.dead_letters = self.dead_letters, []
        self.last_attempt = now
        prune = None
        if self.last_attempt - self.last_prune >= PRUNE_EVERY_SECONDS:
            prune = self.engine.prune()
            self.last_prune = self.last_attempt
            stats = self.engine.stats()
            self.metrics.buckets.set(stats["buckets"])
            self.metrics.seen_ids.set(stats["seen_ids"])
        if not changes and not offsets and not prune and not dead_letters:
            if not self.stale:  # everything applied is stored; while state waits for Postgres, the age grows
                self.stored_at = self.last_attempt
            return True
        started = time.perf_counter()
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS), self.pool.acquire() as conn:
                await write_checkpoint(
                    conn,
                    changes,
                    group=self.settings.group_id,
                    topic=self.topic,
                    offsets=offsets,
                    prune=prune,
                    dead_letters=dead_letters,
                )
        except asyncio.CancelledError:
            # Shutting down: the transaction rolls back, and a restart resumes from what is stored. What was
            # drained is gone from memory, so nothing applied after it may be committed either (not even by
            # the final commit).
            self._discard(set(self.owned))
            raise
        except Exception as exc:
            # Whether or not the transaction reached Postgres, reloading takes whatever it holds.
            self._failed("checkpoint", exc)
            self.metrics.checkpoint_failures.inc()
            self._discard(set(self.owned))
            return False
        self.stored_at = time.monotonic()
        self._succeeded()
        self.metrics.checkpoints.observe(time.perf_counter() - started)
        for e in changes.events:
            self.metrics.events.labels(e.type).inc()
            log.info("breach event %s %s for objective %s", e.id, e.type, e.objective_id)
        if changes.events:
            self.events_waiting.set()
        return True

    def expire_soon(self) -> None:
        """`expire` in the background when it is time, at most one at a time: the loop goes on applying records
        (it used to wait for the checkpoint being written, then for every batch of deletes)."""
        if self._expiry is not None and not self._expiry.done():
            return
        if time.monotonic() - self.last_expiry < self.settings.retention_interval_seconds or not self.healthy:
            return
        self._expiry = asyncio.create_task(self.expire(), name="retention")
        self._expiry.add_done_callback(_log_failure)

    def stop_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()

    async def expire(self) -> None:
        """Delete stored buckets and roll-ups past retention for the indicators held here, when it is time."""
        now = time.monotonic()
        if now - self.last_expiry < self.settings.retention_interval_seconds or not self.healthy:
            return
        self.last_expiry = now
        async with self.lock:
            cutoffs = self.engine.retention(self.settings.minute_retention_days, self.settings.hour_retention_days)
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS), self.pool.acquire() as conn:
                minutes, hours = await delete_expired(conn, cutoffs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retried next time; checkpoints notice a Postgres outage themselves
            log.warning("deleting buckets past retention failed: %r", exc)
            return
        if minutes or hours:
            log.info("retention: deleted %d minute buckets and %d hour roll-ups", minutes, hours)

    # --- minutes fetched ahead of the watermark ------------------------------------------------------

    def hold_back(self, partition: int, offset: int, indicator: str, newest_ms: int) -> None:
        """A record at `offset` would evaluate on minutes not held: pause the partition and read it again from
        that record once `refill` fetched them (nothing of it was applied)."""
        assert self.consumer is not None
        tp = TopicPartition(self.topic, partition)
        self.blocked[indicator] = max(newest_ms, self.blocked.get(indicator, newest_ms))
        self.held_back.add(partition)
        with contextlib.suppress(IllegalStateError, AssertionError):
            self.consumer.seek(tp, offset)
        self._pause([tp])

    async def refill(self) -> None:
        """Fetch the stored minutes each held indicator needs next (its rolling windows' start edges move into
        hours held as cells only), for the blocked ones and those within half a band of the end of what they
        hold, in one statement; then resume the partitions held back. Under the lock: no checkpoint runs in
        between, so stored minutes plus what memory added since (late adds) are exactly the minutes."""
        if not self.blocked and not self.held_back and self.engine.minute_band_minutes is None:
            return
        if self.blocked and time.monotonic() < self.retry_at:
            return
        if not self.held_back and not self.engine.refills(self.blocked):
            # Nothing to fetch: return without the lock. Waiting for it here would hold the loop behind the
            # background checkpoint on every poll (apply and commit taking turns instead of overlapping, so
            # records waited in Kafka). The look is repeated under the lock; one that missed a change fetches at
            # the next poll.
            self.blocked.clear()  # indicators no longer held here
            return
        async with self.lock:
            targets = self.engine.refills(self.blocked)
            if not targets and not self.held_back:
                self.blocked.clear()  # indicators no longer held here
                return
            wanted = [(key, until, self.engine.hours_to_fetch(key, until)) for key, until in targets]
            keys, starts, ends = [], [], []
            for key, _, hours in wanted:
                for first, last in _runs(hours):
                    keys.append(key)
                    starts.append(first * 60)
                    ends.append((last + 1) * 60)
            if keys:
                try:
                    async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS), self.pool.acquire() as conn:
                        fetched = await fetch_minutes(conn, keys, starts, ends)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # retried after the backoff; the held-back partitions stay paused
                    self._failed("fetching minutes ahead of the watermark", exc)
                    return
                self._reached_postgres()
            else:
                fetched = {}
            for key, until, hours in wanted:
                if key in self.engine.indicators:
                    mismatched = self.engine.fill(key, until, hours, fetched.get(key, []))
                    if mismatched:
                        log.warning("indicator %s: %d stored hours did not sum their minutes", key, mismatched)
            fetched_hours = sum(len(h) for _, _, h in wanted)
            if self.held_back:
                log.info(
                    "partitions %s held back until %d hours of minutes were fetched for %d indicators",
                    sorted(self.held_back),
                    fetched_hours,
                    len(wanted),
                )
            elif fetched_hours:
                log.debug("fetched %d hours of minutes ahead for %d indicators", fetched_hours, len(wanted))
            self.blocked.clear()
            for p in sorted(self.held_back):
                if p in self.expected and self.consumer is not None:
                    with contextlib.suppress(IllegalStateError, AssertionError):
                        self.consumer.resume(TopicPartition(self.topic, p))
            self.held_back.clear()

    # --- partitions ------------------------------------------------------------------------------

    async def assign(self, assigned: Iterable[TopicPartition]) -> None:
        """Take newly assigned partitions, paused: the loop loads them one at a time (`recover`), and each
        is consumed as soon as its own state is loaded, not after every partition's."""
        async with self.lock:
            new = {tp.partition for tp in assigned if tp.topic == self.topic} - self.owned
            self.owned |= new
            self.assigned = True
            self.metrics.partitions.set(len(self.owned))
            if new:
                log.info("partitions %s assigned", sorted(new))
                self._pause(TopicPartition(self.topic, p) for p in new)

    async def revoke(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what was applied, then forget the partitions that move away.

        When the commit fails, nothing was stored and every owned partition's memory is thrown
        away: the next owner resumes from the stored offsets, which never passed unstored changes.
        """
        async with self.lock:
            gone = {tp.partition for tp in revoked if tp.topic == self.topic} & self.owned
            stored = await self._commit(all_statuses=True)
            self.engine.forget_partitions(gone)
            for p in gone:
                self.expected.pop(p, None)
                self.positions.pop(p, None)
            self.dead_letters = [d for d in self.dead_letters if d.partition not in gone]
            self.owned -= gone
            self.metrics.partitions.set(len(self.owned))
            if gone:
                how = "after a checkpoint" if stored else "without a checkpoint (Postgres failed)"
                log.info("partitions %s revoked %s", sorted(gone), how)

    async def recover(self) -> None:
        """Load one partition that waits for its state (newly assigned, or thrown away after a failure), once
        the backoff is over; the loop polls between two loads, so loaded partitions are consumed meanwhile.

        Served before the next load (which holds the lock, and the loop, for a while): a checkpoint being
        written (it may hold breach events), and the records that waited in the last loaded partition's log
        when it was chosen, if no other partition had any (for at most CATCH_UP_SECONDS, so a busy partition
        cannot keep the others out)."""
        if not self.stale or time.monotonic() < self.retry_at or self._catching_up():
            return
        if self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})  # its failure is raised by the loop (`raise_writer_error`)
        async with self.lock:
            if stale := self.stale:
                partition, end = await self._most_waiting(stale)
                await self._load({partition})
                if end is not None and partition in self.expected:
                    self.catch_up = (partition, end, time.monotonic() + CATCH_UP_SECONDS)

    def _catching_up(self) -> bool:
        if self.catch_up is None:
            return False
        partition, end, until = self.catch_up
        if partition in self.expected and self.expected[partition] < end and time.monotonic() < until:
            return True
        self.catch_up = None
        return False

    async def _most_waiting(self, stale: set[int]) -> tuple[int, int | None]:
        """Of the partitions waiting for their state, the one with the most records waiting in the log (its end
        offset minus the stored one; ties and any failure to ask: the lowest number), and its end offset when
        records wait there and nowhere else. After a restart the partition that received records meanwhile is
        loaded and caught up first, not after every quieter one is loaded."""
        if len(stale) == 1 or self.consumer is None:
            return min(stale), None
        tps = [TopicPartition(self.topic, p) for p in sorted(stale)]
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS):
                found = await self.consumer.end_offsets(tps)
                async with self.pool.acquire() as conn:
                    stored = await stored_offsets(conn, self.settings.group_id, self.topic, sorted(stale))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the load that follows meets the same failure and backs off
            log.debug("could not order the partitions to load: %r", exc)
            return min(stale), None
        ends = {tp.partition: end for tp, end in found.items()}
        first, *others = waiting_order(ends, stored)
        waiting = ends[first] - stored.get(first, 0)
        if waiting <= 0:
            return first, None
        alone = all(ends[p] <= stored.get(p, 0) for p in others)
        log.info("partition %d first: %d records wait in its log%s", first, waiting, " (only there)" if alone else "")
        # Caught up before the next load only when no other partition has records waiting: when several have,
        # catching up one at a time would leave the process idle while each newly resumed partition's first
        # fetch is answered (measured: a backlog on every partition took twice as long); the loop interleaves
        # their polls with the loads instead.
        return first, ends[first] if alone else None

    def rebase(self, partition: int) -> None:
        """The stored offset is outside the log: the partition reads the log from its beginning."""
        if partition in self.expected:
            self.expected[partition] = 0

    async def _load(self, partitions: set[int]) -> None:
        """Load `partitions` from Postgres and seek to their stored offsets; on failure, leave them stale."""
        assert self.consumer is not None
        consumer = self.consumer
        tps = {p: TopicPartition(self.topic, p) for p in partitions}
        self._pause(tps.values())  # nothing is fetched for them until they are loaded
        current: int | None = None
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS), self.pool.acquire() as conn:
                for p in sorted(partitions):
                    current = p
                    loaded = await load_partition(
                        conn, self.engine, group=self.settings.group_id, topic=self.topic, partition=p
                    )
                    tp = tps[p]
                    if loaded.next_offset is None:
                        await consumer.seek_to_beginning(tp)
                        log.info("partition %d loaded: no stored offset, reading from the beginning", p)
                    else:
                        consumer.seek(tp, loaded.next_offset)
                        log.info(
                            "partition %d loaded: resuming at offset %d (%d indicators, %d buckets)",
                            p,
                            loaded.next_offset,
                            loaded.indicators,
                            loaded.buckets,
                        )
                    self.expected[p] = loaded.next_offset or 0
                    consumer.resume(tp)
                    current = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if current is not None:
                self.engine.forget_partitions({current})  # it may be half loaded
            self._failed("loading partition state", exc)
            return
        self._reached_postgres()

    def _discard(self, partitions: set[int]) -> None:
        """Throw away the memory of `partitions` and pause them until they are loaded again."""
        self.engine.forget_partitions(partitions)
        for p in partitions:
            self.expected.pop(p, None)
            self.positions.pop(p, None)
        self.dead_letters = [d for d in self.dead_letters if d.partition not in partitions]
        if partitions >= self.owned:
            self.engine.drain()  # nothing pending can be written any more, of any indicator
        self._pause(TopicPartition(self.topic, p) for p in partitions)

    def _pause(self, tps: Iterable[TopicPartition]) -> None:
        if self.consumer is None:
            return  # not consuming yet (or a test without a consumer): nothing is fetched
        for tp in tps:
            # Not assigned any more (the group is rebalancing): the revocation forgets it anyway.
            with contextlib.suppress(IllegalStateError, AssertionError):
                self.consumer.pause(tp)

    def _failed(self, what: str, exc: Exception) -> None:
        """Log once per change of state, not once per retry; back off 0.5 s, 1 s, 2 s, 4 s, 5 s, 5 s, ..."""
        self.failures += 1
        delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** min(self.failures - 1, 16))
        self.retry_at = time.monotonic() + delay
        self.metrics.postgres_up.set(0)
        if self.healthy:
            log.error("%s failed, state is reloaded from Postgres when it answers: %r", what, exc)
        else:
            log.debug("%s failed again: %r", what, exc)
        self.healthy = False

    def _reached_postgres(self) -> None:
        if not self.healthy:
            log.warning("Postgres answers again; partition state reloaded, resuming from the stored offsets")
        self.healthy = True
        self.metrics.postgres_up.set(1)

    def _succeeded(self) -> None:
        """A commit went through: the backoff starts over at the next failure."""
        self._reached_postgres()
        self.failures = 0
        self.retry_at = 0.0


def waiting_order(ends: dict[int, int], stored: dict[int, int]) -> list[int]:
    """Partitions by records waiting (log end offset minus stored next offset; nothing stored: the whole log,
    approximately), most first, then by number."""
    return sorted(ends, key=lambda p: (-(ends[p] - stored.get(p, 0)), p))


def _log_failure(task: asyncio.Task[None]) -> None:
    """A bug in a background task that the loop does not await (Postgres failing is handled inside)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s failed: %r", task.get_name(), exc, exc_info=exc)


def _runs(hours: list[int]) -> list[tuple[int, int]]:
    """Sorted hours as (first, last) runs of consecutive hours."""
    out: list[tuple[int, int]] = []
    for h in hours:
        if out and h == out[-1][1] + 1:
            out[-1] = (out[-1][0], h)
        else:
            out.append((h, h))
    return out
