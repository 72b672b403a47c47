"""The evaluator's Postgres side: load objectives and partition state, write checkpoints atomically."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import orjson

from services.evaluator.engine import Changes, Engine, StoredReading
from shared.budget import AlertState, TierReading
from shared.cells import COLUMN, Table, fetch_spans
from shared.contract import objective_terms
from shared.objective_config import ObjectiveConfig
from shared.spec import AgreementSpec, ObjectiveSpec
from shared.timeutil import MINUTE_MS, from_ms, to_ms

log = logging.getLogger("accord.evaluator.store")


MAX_DEAD_LETTER_BYTES = 64 * 1024
"""How much of a refused record (or measurement) a dead-letter row keeps."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record (measurement_index None) or one measurement of it that the evaluator could not apply."""

    partition: int
    offset: int
    measurement_index: int | None
    reason: str
    value: bytes | None

    @classmethod
    def of(cls, partition: int, offset: int, index: int | None, reason: str, value: bytes | None) -> DeadLetter:
        reason = reason.replace("\x00", "\\x00")[:1000]  # text columns take no NUL; reasons stay short
        return cls(partition, offset, index, reason, None if value is None else value[:MAX_DEAD_LETTER_BYTES])


ParsedObjectives = dict[str, tuple[tuple[object, ...], ObjectiveConfig]]
"""objective id -> (its row as read, its configuration): `load_objectives` parses only rows that changed."""


async def load_objectives(conn: asyncpg.Connection, parsed: ParsedObjectives | None = None) -> list[ObjectiveConfig]:
    """Every objective of every agreement that is not archived, under its current terms.

    A malformed one is logged and skipped rather than stopping every other objective. With `parsed`
    (kept by the caller from one call to the next), a row read exactly as before gives the same
    configuration object without parsing its specs again (10,000 objectives take ≈ 1 s to parse, on
    the evaluator's loop); `parsed` is left holding the rows of this read.
    """
    rows = await conn.fetch(
        """
        SELECT o.id, o.name, o.indicator_key, o.spec AS objective_spec,
               a.id AS agreement_id, a.name AS agreement_name, a.customer, a.provider, a.spec AS agreement_spec,
               a.revision
        FROM objectives o JOIN agreements a ON a.id = o.agreement_id
        WHERE a.archived_at IS NULL
        """
    )
    previous = {} if parsed is None else parsed
    current: ParsedObjectives = {}
    out = []
    for r in rows:
        oid = str(r["id"])
        row = tuple(r.values())
        known = previous.get(oid)
        if known is not None and known[0] == row:
            current[oid] = known
            out.append(known[1])
            continue
        try:
            agreement = AgreementSpec.model_validate_json(r["agreement_spec"])
            objective = ObjectiveSpec.model_validate_json(r["objective_spec"])
            terms = objective_terms(agreement, objective)
            config = ObjectiveConfig(
                id=oid,
                name=r["name"],
                agreement_id=str(r["agreement_id"]),
                agreement_name=r["agreement_name"],
                customer=r["customer"],
                provider=r["provider"],
                indicator=r["indicator_key"],
                window=objective.window,
                terms=terms,
                reporting_period=agreement.reporting_period,
                timezone=agreement.timezone,
                credit_tiers=tuple((t.below, t.credit_percent) for t in agreement.credit_tiers),
                revision=r["revision"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.error("objective %s cannot be evaluated and is skipped: %s", r["id"], exc)
            continue
        current[oid] = (row, config)
        out.append(config)
    if parsed is not None:
        parsed.clear()
        parsed.update(current)
    return out


async def stored_offsets(conn: asyncpg.Connection, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """The stored next offset of each of `partitions` that has one."""
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2"
        " AND partition = ANY($3::int[])",
        group,
        topic,
        partitions,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


SeriesColumns = tuple[str, Sequence[int], Sequence[int], Sequence[int]]
"""(series, minutes or hours, goods, totals) of one series of an indicator."""


@dataclass(frozen=True)
class PartitionLoad:
    next_offset: int | None
    indicators: int
    buckets: int


async def load_partition(
    conn: asyncpg.Connection, engine: Engine, *, group: str, topic: str, partition: int
) -> PartitionLoad:
    """Load the state of every indicator seen on `partition` into `engine`; return the stored next offset."""
    next_offset = await conn.fetchval(
        "SELECT next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3",
        group,
        topic,
        partition,
    )
    indicators = await conn.fetch(
        "SELECT indicator_key, watermark_ms FROM indicator_state WHERE topic = $1 AND partition = $2", topic, partition
    )
    # A few statements per partition, not a few per indicator and one per objective: buckets come as one
    # array triple per series (decoded in C), not as a row object per minute. No ORDER BY (a third of the
    # query's time): the primary-key scan yields minutes in order, which SeriesCounts.load copies a whole
    # day at a time; in any other order it adds them one by one, with the same result.
    keys = [ind["indicator_key"] for ind in indicators]
    watermarks = {ind["indicator_key"]: ind["watermark_ms"] for ind in indicators}
    horizons = [watermarks[k] // MINUTE_MS - engine.dedup_horizon_minutes for k in keys]
    # Every minute of the history, or (ACCORD_EVALUATOR_MINUTE_BAND_MINUTES) hour cells for it and the minutes
    # of the spans evaluations read one by one up to a band ahead (`Engine.load_plan`).
    plans = {k: engine.load_plan(k, watermarks[k]) for k in keys}
    oldest = {k: watermarks[k] // MINUTE_MS - engine.history_minutes(k) for k in keys}
    everything = [k for k in keys if plans[k][0] is None]
    banded = [k for k in keys if plans[k][0] is not None]
    series_of = await _everything_since(conn, "series_buckets", everything, [oldest[k] for k in everything])
    span_keys, span_starts, span_ends = [], [], []
    for k in banded:
        for a, b in plans[k][0] or ():
            if b > oldest[k]:
                span_keys.append(k)
                span_starts.append(max(a, oldest[k]))
                span_ends.append(b)
    banded_minutes = await fetch_minutes(conn, span_keys, span_starts, span_ends)
    hours_of = await _everything_since(conn, "series_hours", banded, [oldest[k] // 60 for k in banded])
    seen_rows = await conn.fetch(
        """
        SELECT s.indicator_key, array_agg(s.measurement_id) AS ids, array_agg(s.minute) AS minutes
        FROM unnest($1::text[], $2::bigint[]) AS u(k, since)
        JOIN seen_measurements s ON s.indicator_key = u.k AND s.minute >= u.since
        GROUP BY 1
        """,
        keys,
        horizons,
    )
    seen_of = {r["indicator_key"]: zip(r["ids"], r["minutes"], strict=True) for r in seen_rows}
    total_buckets = 0
    for key in keys:
        spans, ready = plans[key]
        if spans is None or ready is None:
            loaded = series_of.get(key, [])
            engine.load_indicator_series(key, partition, watermarks[key], loaded, seen_of.get(key, ()))
        else:
            loaded = banded_minutes.get(key, [])
            engine.load_indicator_held(
                key, partition, watermarks[key], loaded, hours_of.get(key, []), spans, ready, seen_of.get(key, ())
            )
        total_buckets += sum(len(minutes) for _, minutes, _, _ in loaded)
    objective_ids = [o.id for key in keys for o in engine.objectives.get(key, ())]
    for r in await conn.fetch(
        """
        SELECT objective_id::text AS id, alert_state, good, total, sli, budget_consumed, burn_rate, tiers,
               evaluated_at
        FROM objective_status WHERE objective_id = ANY($1::uuid[])
        """,
        objective_ids,
    ):
        state = AlertState.from_json(orjson.loads(r["alert_state"]))
        engine.load_alert_state(r["id"], state)
        engine.load_reading(r["id"], _stored_reading(r, state))
    return PartitionLoad(next_offset, len(indicators), total_buckets)


async def _everything_since(
    conn: asyncpg.Connection, table: Table, keys: list[str], since: list[int]
) -> dict[str, list[SeriesColumns]]:
    """Every stored cell of indicator keys[i] from since[i] on (minutes or hours, by `table`), unordered: a plain
    join, as most of the table is read (the spans of `fetch_spans` are narrow)."""
    if not keys:
        return {}
    column = COLUMN[table]
    rows = await conn.fetch(
        f"""
        SELECT t.indicator_key, t.series, array_agg(t.{column}), array_agg(t.good), array_agg(t.total)
        FROM unnest($1::text[], $2::bigint[]) AS u(k, since)
        JOIN {table} t ON t.indicator_key = u.k AND t.{column} >= u.since
        GROUP BY 1, 2
        """,
        keys,
        since,
    )
    out: dict[str, list[SeriesColumns]] = {}
    for key, name, at, good, total in rows:
        out.setdefault(key, []).append((name, at, good, total))
    return out


async def fetch_minutes(
    conn: asyncpg.Connection, keys: list[str], starts: list[int], ends: list[int]
) -> dict[str, list[SeriesColumns]]:
    """The stored minute buckets of the spans [starts[i], ends[i]) of indicator keys[i], as (series, minutes,
    goods, totals) per indicator, unordered: `SeriesCounts.load_held` and `fill` take them in any order."""
    spans = [(k, None, a, z) for k, a, z in zip(keys, starts, ends, strict=True)]
    found = await fetch_spans(conn, "series_buckets", spans, ordered=False)
    return {k: [(name, *columns) for name, columns in by_series.items()] for k, by_series in found.items()}


RETENTION_BATCH = 50_000
"""Most rows one retention statement deletes: each batch is its own short transaction."""


async def delete_expired(
    conn: asyncpg.Connection, cutoffs: list[tuple[str, int, int]], *, batch: int = RETENTION_BATCH
) -> tuple[int, int]:
    """Delete minute buckets and hour roll-ups past retention, `batch` rows at a time; returns how many of each went.

    Outside the checkpoint transaction: nothing deleted is read again (loads and late data stay
    inside the indicator's history, which retention always keeps), so it cannot race a checkpoint.
    The first run on a large table takes many batches; an interrupted run resumes the next time.
    """
    if not cutoffs:
        return 0, 0
    keys, minutes, hours = (list(c) for c in zip(*cutoffs, strict=True))
    gone = []
    for table, column, cuts in (("series_buckets", "minute", minutes), ("series_hours", "hour", hours)):
        total = 0
        while True:
            status = await conn.execute(
                f"""
                DELETE FROM {table} WHERE ctid IN (
                    SELECT t.ctid FROM unnest($1::text[], $2::bigint[]) AS u(k, cut)
                    JOIN {table} t ON t.indicator_key = u.k AND t.{column} < u.cut
                    LIMIT $3
                )
                """,
                keys,
                cuts,
                batch,
            )
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < batch:
                break
        gone.append(total)
    return gone[0], gone[1]


def _stored_reading(r: asyncpg.Record, state: AlertState) -> StoredReading:
    tiers = orjson.loads(r["tiers"])
    return StoredReading(
        sli=r["sli"],
        good=r["good"],
        total=r["total"],
        budget_consumed=r["budget_consumed"],
        burn_rate=r["burn_rate"],
        evaluated_at_ms=to_ms(r["evaluated_at"]),
        tiers=tuple(
            (str(t["name"]), str(t.get("severity", "")), t.get("long_burn_rate"), t.get("short_burn_rate"))
            for t in tiers
        ),
        firing=state.firing,
        exhausted=state.exhausted,
    )


def _tier_json(r: TierReading, state: AlertState) -> dict[str, object]:
    return {
        "name": r.name,
        "severity": r.severity.value,
        "factor": r.factor,
        "long_burn_rate": r.long_burn_rate,
        "short_burn_rate": r.short_burn_rate,
        "firing": r.name in state.firing,
    }


async def write_checkpoint(
    conn: asyncpg.Connection,
    changes: Changes,
    *,
    group: str,
    topic: str,
    offsets: dict[int, int],
    prune: list[tuple[str, int]] | None = None,
    dead_letters: list[DeadLetter] | None = None,
) -> None:
    """State changes, dead letters, offsets and new breach events in ONE transaction: all or nothing."""
    async with conn.transaction():
        if changes.buckets:
            cols = list(zip(*changes.buckets, strict=True))
            await conn.execute(
                """
                INSERT INTO series_buckets (indicator_key, series, minute, good, total)
                SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
                ON CONFLICT (indicator_key, series, minute)
                DO UPDATE SET good = EXCLUDED.good, total = EXCLUDED.total
                """,
                *cols,
            )
        if changes.hours:
            # Deltas, not absolute values: the engine may not hold every minute of an hour (pruned past its
            # windows). Exactly once because the offsets past the records that added them move in this
            # transaction; a failed one adds nothing and the records are applied again.
            cols = list(zip(*changes.hours, strict=True))
            await conn.execute(
                """
                INSERT INTO series_hours (indicator_key, series, hour, good, total)
                SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
                ON CONFLICT (indicator_key, series, hour)
                DO UPDATE SET good = series_hours.good + EXCLUDED.good, total = series_hours.total + EXCLUDED.total
                """,
                *cols,
            )
        if changes.bucket_deltas:
            # Late counts for minutes memory holds only as part of an hour cell: added, exactly once like the hours.
            cols = list(zip(*changes.bucket_deltas, strict=True))
            await conn.execute(
                """
                INSERT INTO series_buckets (indicator_key, series, minute, good, total)
                SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
                ON CONFLICT (indicator_key, series, minute)
                DO UPDATE SET good = series_buckets.good + EXCLUDED.good, total = series_buckets.total + EXCLUDED.total
                """,
                *cols,
            )
        if changes.seen:
            cols = list(zip(*changes.seen, strict=True))
            await conn.execute(
                """
                INSERT INTO seen_measurements (indicator_key, measurement_id, minute)
                SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
                ON CONFLICT (indicator_key, measurement_id) DO UPDATE SET minute = EXCLUDED.minute
                """,
                *cols,
            )
        if changes.indicators:
            keys, partitions, watermarks = zip(*changes.indicators, strict=True)
            await conn.execute(
                """
                INSERT INTO indicator_state (indicator_key, topic, partition, watermark_ms)
                SELECT k, $2, p, w FROM unnest($1::text[], $3::int[], $4::bigint[]) AS u(k, p, w)
                ON CONFLICT (indicator_key)
                DO UPDATE SET topic = EXCLUDED.topic, partition = EXCLUDED.partition,
                              watermark_ms = EXCLUDED.watermark_ms
                """,
                list(keys),
                topic,
                list(partitions),
                list(watermarks),
            )
        if changes.statuses:
            rows = [
                (
                    s.objective_id,
                    s.evaluation.counts.good,
                    s.evaluation.counts.total,
                    s.evaluation.sli,
                    s.evaluation.budget_consumed,
                    s.evaluation.burn_rate,
                    orjson.dumps([_tier_json(r, s.alert_state) for r in s.evaluation.tiers]).decode(),
                    orjson.dumps(s.alert_state.to_json()).decode(),
                    from_ms(s.last_measurement_ms),
                    from_ms(s.evaluation.now_ms),
                    s.revision,
                )
                for s in changes.statuses
            ]
            # One statement for all rows (unnest), not one round trip per objective. Objectives deleted
            # meanwhile are skipped by the join rather than failing the whole checkpoint.
            await conn.execute(
                """
                INSERT INTO objective_status (objective_id, good, total, sli, budget_consumed, burn_rate, tiers,
                                              alert_state, last_measurement_at, evaluated_at, revision)
                SELECT u.* FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[],
                                       $6::float8[], $7::jsonb[], $8::jsonb[], $9::timestamptz[], $10::timestamptz[],
                                       $11::int[])
                     AS u(objective_id, good, total, sli, budget_consumed, burn_rate, tiers, alert_state,
                          last_measurement_at, evaluated_at, revision)
                JOIN objectives o ON o.id = u.objective_id
                ON CONFLICT (objective_id) DO UPDATE SET
                    good = EXCLUDED.good, total = EXCLUDED.total, sli = EXCLUDED.sli,
                    budget_consumed = EXCLUDED.budget_consumed, burn_rate = EXCLUDED.burn_rate,
                    tiers = EXCLUDED.tiers, alert_state = EXCLUDED.alert_state,
                    last_measurement_at = EXCLUDED.last_measurement_at, evaluated_at = EXCLUDED.evaluated_at,
                    revision = EXCLUDED.revision
                """,
                *(list(col) for col in zip(*rows, strict=True)),
            )
        if changes.events:
            # One statement (unnest), not one per event: a checkpoint made at once for events holds many
            # under load. Duplicate ids are skipped (a replay decides the same events again).
            await conn.execute(
                """
                INSERT INTO breach_events (id, objective_id, agreement_id, customer, type, seq, time, event)
                SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int[],
                                     $7::timestamptz[], $8::jsonb[])
                ON CONFLICT (id) DO NOTHING
                """,
                [e.id for e in changes.events],
                [e.objective_id for e in changes.events],
                [e.agreement_id for e in changes.events],
                [e.customer for e in changes.events],
                [e.type for e in changes.events],
                [e.seq for e in changes.events],
                [from_ms(e.time_ms) for e in changes.events],
                [orjson.dumps(e.event).decode() for e in changes.events],
            )
        if dead_letters:
            # A replay after a crash before this commit finds the same positions: nothing twice.
            await conn.executemany(
                """
                INSERT INTO dead_letters (topic, partition, "offset", measurement_index, reason, value)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (topic, partition, "offset", measurement_index) DO NOTHING
                """,
                [(topic, d.partition, d.offset, d.measurement_index, d.reason, d.value) for d in dead_letters],
            )
        if offsets:
            parts, nexts = zip(*sorted(offsets.items()), strict=True)
            await conn.execute(
                """
                INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, updated_at)
                SELECT $1, $2, p, o, now() FROM unnest($3::int[], $4::bigint[]) AS u(p, o)
                ON CONFLICT (group_id, topic, partition)
                DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
                """,
                group,
                topic,
                list(parts),
                list(nexts),
            )
        if prune:
            # One statement for every indicator held (not one round trip each: a thousand every minute).
            keys, horizons = zip(*prune, strict=True)
            await conn.execute(
                """
                DELETE FROM seen_measurements s USING unnest($1::text[], $2::bigint[]) AS u(k, horizon)
                WHERE s.indicator_key = u.k AND s.minute < u.horizon
                """,
                list(keys),
                list(horizons),
            )
