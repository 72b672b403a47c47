"""What the evaluator wrote, read for status, history and metrics: statuses, watermarks, minute buckets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.budget.rollups import Columns
from shared.cells import fetch_spans
from shared.series import SeriesKey, series_key
from shared.spec import AgreementSpec, ObjectiveSpec


class StatusAgreement(NamedTuple):
    """An agreement as status shows it."""

    id: uuid.UUID
    name: str
    provider: str
    customer: str
    revision: int
    spec: AgreementSpec


class StatusObjective(NamedTuple):
    """An objective as status reads it."""

    id: uuid.UUID
    agreement_id: uuid.UUID
    name: str
    indicator_key: str
    spec: ObjectiveSpec


class StoredStatus(NamedTuple):
    """What status reads of the evaluator's stored reading of an objective (`objective_status`)."""

    alert_state: dict[str, Any]
    evaluated_at: datetime
    last_measurement_at: datetime | None
    revision: int | None
    """The agreement revision whose terms the reading is under (None: written before migration 0004)."""


class StatusInput(NamedTuple):
    """An objective with its agreement, the evaluator's stored reading, its indicator's watermark (ms) and
    when its budget was announced exhausted (its latest budget exhausted/recovered event is an exhaustion)."""

    agreement: StatusAgreement
    objective: StatusObjective
    status: StoredStatus | None
    watermark_ms: int | None
    exhausted_at: datetime | None


@lru_cache(maxsize=512)
def agreement_spec(stored: str) -> AgreementSpec:
    """The agreement spec stored as this JSON text (jsonb's text is canonical: equal text, equal spec)."""
    return AgreementSpec.model_validate(json.loads(stored))


@lru_cache(maxsize=4096)
def objective_spec(stored: str) -> ObjectiveSpec:
    """The objective spec stored as this JSON text; specs are frozen, so one parse serves every request."""
    return ObjectiveSpec.model_validate(json.loads(stored))


STATUS_INPUTS = """
SELECT a.id, a.name, a.provider, a.customer, a.revision, a.spec::text,
       o.id, o.name, o.indicator_key, o.spec::text,
       s.objective_id IS NOT NULL, s.alert_state::text, s.evaluated_at, s.last_measurement_at, s.revision,
       w.watermark_ms, e.time
FROM agreements a
LEFT JOIN objectives o ON o.agreement_id = a.id
LEFT JOIN objective_status s ON s.objective_id = o.id
LEFT JOIN indicator_state w ON w.indicator_key = o.indicator_key
LEFT JOIN LATERAL (
    SELECT b.type, b.time FROM breach_events b
    WHERE b.objective_id = o.id AND b.type IN ('accord.budget.exhausted', 'accord.budget.recovered')
    ORDER BY b.seq DESC LIMIT 1
) e ON e.type = 'accord.budget.exhausted'
WHERE {where}
ORDER BY a.name, a.id, o.name, o.id
"""


async def status_inputs(
    session: AsyncSession,
    *,
    customer: str | None = None,
    agreement_id: uuid.UUID | None = None,
    objective_id: uuid.UUID | None = None,
) -> tuple[list[StatusAgreement], list[StatusInput]]:
    """The agreements (a customer's not archived, or one by id, or an objective's) by name, and their current
    objectives by name, each with what its status is recomputed from: one statement, the columns status shows.

    Specs are read as their JSON text and parsed once per text (`objective_spec`), so a change is seen at once
    by every process: a changed spec is another text.
    """
    arg: object
    if customer is not None:
        where, arg = "a.customer = :arg AND a.archived_at IS NULL", customer
    elif agreement_id is not None:
        where, arg = "a.id = :arg", agreement_id
    else:
        where, arg = "o.id = :arg", objective_id
    # Through the session, not the driver: its first statement begins the transaction, so this read and the
    # roll-up reads after it (on the driver) are one snapshot (`read_snapshot`).
    rows = (await session.execute(text(STATUS_INPUTS.format(where=where)), {"arg": arg})).all()
    agreements: dict[uuid.UUID, StatusAgreement] = {}
    found = []
    for (
        aid, name, provider, customer_, revision, spec,
        oid, objective_name, indicator, objective_text,
        has_status, alert_state, evaluated_at, last_measurement_at, status_revision,
        watermark, exhausted_at,
    ) in rows:  # fmt: skip
        agreement = agreements.get(aid)
        if agreement is None:
            agreement = agreements[aid] = StatusAgreement(
                aid, name, provider, customer_, revision, agreement_spec(spec)
            )
        if oid is None:  # an agreement without objectives
            continue
        status = (
            StoredStatus(orjson.loads(alert_state), evaluated_at, last_measurement_at, status_revision)
            if has_status
            else None
        )
        objective = StatusObjective(oid, aid, objective_name, indicator, objective_spec(objective_text))
        found.append(StatusInput(agreement, objective, status, watermark, exhausted_at))
    return list(agreements.values()), found


async def series_buckets(session: AsyncSession, indicator: str, start: int, end: int) -> dict[SeriesKey, Columns]:
    """The stored minute buckets of every series of `indicator` with start <= minute < end.

    A 400-day window is over half a million rows per series: each series comes back as three arrays
    (one row), read by asyncpg on the session's own connection (same snapshot) in a fraction of the
    time row-by-row ORM results take, so the event loop is not held for seconds.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    rows = await driver.fetch(
        """
        SELECT series, array_agg(minute ORDER BY minute), array_agg(good ORDER BY minute),
               array_agg(total ORDER BY minute)
        FROM series_buckets
        WHERE indicator_key = $1 AND minute >= $2 AND minute < $3
        GROUP BY series
        """,
        indicator,
        start,
        end,
    )
    return {series_key(name): (minutes, good, total) for name, minutes, good, total in rows}


Cells = dict[str, dict[SeriesKey, Columns]]
"""Per indicator and series: its cells as columns."""


async def rolled_up(
    session: AsyncSession, hours: Sequence[tuple[str, int, int]], minutes: Sequence[tuple[str, int, int]]
) -> tuple[Cells, Cells]:
    """Hour roll-ups in [first, end) hours and minute buckets in [start, end) minute spans of many indicators:
    two statements whatever the number of indicators, each series as one row of arrays (docs/evaluator.md)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection

    hour_cells = await fetch_spans(driver, "series_hours", [(k, None, a, b) for k, a, b in hours])
    # The minutes are fetched per series, so that every primary-key column bounds the index range: without
    # the series, each span would filter every minute of the indicator. A minute at an edge lies in an hour
    # of the hour spans, and its hour row is written with it, so the hours name every series needed.
    minute_cells = await fetch_spans(
        driver, "series_buckets", [(k, name, a, b) for k, a, b in minutes for name in hour_cells.get(k, {})]
    )

    def keyed(cells: dict[str, dict[str, Columns]]) -> Cells:
        return {k: {series_key(name): found for name, found in by_name.items()} for k, by_name in cells.items()}

    return keyed(hour_cells), keyed(minute_cells)
