"""History series of an objective: SLI, budget and burn rates over a time range at a chosen step."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from services.api import repository as repo
from services.api.deps import Session, State
from services.api.params import INSTANT
from services.api.readings import from_ms, objective_history, to_ms
from services.api.schemas import HistoryOut, QueryInstant
from shared.errors import Invalid

router = APIRouter(tags=["status"])

_STEP = re.compile(r"^([0-9]{1,9})([smhd]?)$")
_STEP_MS = {"": 1000, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DEFAULT_RANGE = timedelta(days=1)


def parse_step(text: str) -> int:
    """`30s`, `5m`, `1h`, `1d` or plain seconds, in milliseconds; 422 naming `step` otherwise."""
    match = _STEP.match(text.strip().lower())
    if match is None:
        raise Invalid(
            "Invalid step.", [{"field": "query.step", "reason": f"{text!r} is not a duration such as 30s, 5m or 1h"}]
        )
    step = int(match.group(1)) * _STEP_MS[match.group(2)]
    if step <= 0:
        raise Invalid("Invalid step.", [{"field": "query.step", "reason": "the step must be positive"}])
    return step


@router.get("/v1/objectives/{objective_id}/history", summary="SLI, budget and burn-rate series of an objective")
async def objective_history_route(
    objective_id: uuid.UUID,
    session: Session,
    state: State,
    start: Annotated[
        QueryInstant | None, Query(alias="from", description=f"First instant; default to - 1 d. {INSTANT}")
    ] = None,
    end: Annotated[
        QueryInstant | None,
        Query(alias="to", description=f"Last instant (inclusive when on the grid); default now. {INSTANT}"),
    ] = None,
    step: Annotated[
        str,
        Query(max_length=20, description="Distance between points: `30s`, `5m`, `1h`, `1d` or seconds (ASCII digits)."),
    ] = "5m",
) -> HistoryOut:
    """Points at from, from + step, ... up to `to`, each computed from the evaluator's stored counts under
    the agreement revision in force at that instant (a changed target applies from its revision on).

    A point's numbers are what the evaluator computes live when its watermark is at that instant.
    """
    step_ms = parse_step(step)
    await repo.read_snapshot(session)
    objective, agreement = await repo.get_objective(session, objective_id)
    end = end or await repo.now(session)
    start = start or end - DEFAULT_RANGE
    from_ms_, to_ms_ = to_ms(start), to_ms(end)
    if to_ms_ <= from_ms_:
        raise Invalid("Invalid range.", [{"field": "query.to", "reason": "must be later than from"}])
    count = (to_ms_ - from_ms_) // step_ms + 1
    limit = state.settings.max_history_points
    if count > limit:
        raise Invalid(
            "Too many points.",
            [
                {
                    "field": "query.step",
                    "reason": f"{count} points from `from` to `to`, at most {limit}: use a larger step",
                }
            ],
        )
    points = await objective_history(
        session, objective.id, agreement.id, from_ms_, to_ms_, step_ms, state.settings.max_history_work
    )
    return HistoryOut(
        objective_id=objective.id,
        agreement_id=agreement.id,
        start=from_ms(from_ms_),
        end=from_ms(to_ms_),
        step_seconds=step_ms / 1000,
        points=points,
    )
