"""History series of an objective: SLI, budget and burn rates over a time range at a chosen step."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.api import repository as repo
from services.api.deps import Session, State
from services.api.params import INSTANT
from services.api.readings import objective_history
from services.api.schemas import HistoryOut, QueryInstant
from shared.errors import Invalid
from shared.timeutil import duration_ms, from_ms, to_ms

router = APIRouter(tags=["status"])


def parse_step(text: str) -> int:
    """`30s`, `5m`, `1h`, `1d` or plain seconds, in milliseconds; 422 naming `step` otherwise."""
    spec = text.strip().lower()
    step = duration_ms(f"{spec}s" if spec.isascii() and spec.isdigit() else spec, "smhd")
    if step is None:
        raise Invalid(
            "Invalid step.", [{"field": "query.step", "reason": f"{text!r} is not a duration such as 30s, 5m or 1h"}]
        )
    if step <= 0:
        raise Invalid("Invalid step.", [{"field": "query.step", "reason": "the step must be positive"}])
    return step


def default_start(created_ms: int, to_ms_: int, step_ms: int, limit: int) -> int:
    """The default `from`: the objective's life on a grid that ends at `to` (so the last point is `to`,
    with the newest numbers), at most `limit` points; `to` itself for an objective created after it."""
    steps = max(0, min((to_ms_ - created_ms) // step_ms, limit - 1))
    return to_ms_ - steps * step_ms


@router.get("/v1/objectives/{objective_id}/history", summary="SLI, budget and burn-rate series of an objective")
async def objective_history_route(
    objective_id: uuid.UUID,
    session: Session,
    state: State,
    start: Annotated[
        QueryInstant | None,
        Query(
            alias="from",
            description="First instant; default the objective's life: the earliest instant after its creation "
            "on the grid of `step` ending at `to` (or the earliest the points limit allows). The answer's `start` "
            f"says which was chosen. {INSTANT}",
        ),
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
    limit = state.settings.max_history_points
    to_ms_ = to_ms(end)
    # By default the objective's life, as far back as the points limit reaches; `start` says which.
    from_ms_ = to_ms(start) if start is not None else default_start(to_ms(objective.created_at), to_ms_, step_ms, limit)
    if start is not None and to_ms_ <= from_ms_:
        raise Invalid("Invalid range.", [{"field": "query.to", "reason": "must be later than from"}])
    count = (to_ms_ - from_ms_) // step_ms + 1
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
