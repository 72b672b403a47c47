"""Breach events as CloudEvents 1.0 (structured JSON mode), with deterministic ids (docs/records.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.budget import Evaluation, Period, Transition
from shared.objective_config import ObjectiveConfig

EVENT_NAMESPACE = uuid.UUID("6f1d7d4e-58a6-4c36-9f5e-0a0c5d6b2a11")
SOURCE = "urn:accord:evaluator"


def event_id(objective_id: str, event_type: str, transition: int | str) -> str:
    """The same objective, type and transition (a sequence number, or a period label) always give the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{objective_id}/{event_type}/{transition}"))


def iso_ms(timestamp_ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision."""
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloud_event(
    *, objective_id: str, event_type: str, seq: int | str, time_ms: int, data: dict[str, Any]
) -> dict[str, Any]:
    """A structured-mode CloudEvent; `time` is the measurement time that triggered it."""
    return {
        "specversion": "1.0",
        "id": event_id(objective_id, event_type, seq),
        "source": SOURCE,
        "type": event_type,
        "subject": objective_id,
        "time": iso_ms(time_ms),
        "datacontenttype": "application/json",
        "data": data,
    }


def breach_data(objective: ObjectiveConfig, ev: Evaluation) -> dict[str, Any]:
    """What every breach event says about its objective and the evaluation that caused it."""
    terms = objective.terms
    return {
        "objective": {"id": objective.id, "name": objective.name, "indicator": objective.indicator},
        "agreement": {"id": objective.agreement_id, "name": objective.agreement_name},
        "customer": objective.customer,
        "provider": objective.provider,
        "target": terms.target,
        "window": objective.window,
        "sli": ev.sli,
        "good": ev.counts.good,
        "total": ev.counts.total,
        "budgeting": ev.unit.value,
        "budget_remaining": ev.budget_remaining,
        "budget_allowed": ev.budget_allowed,
        "budget_spent": ev.budget_spent,
        "burn_rates": {r.name: r.long_burn_rate for r in ev.tiers},
        "measurement_time": iso_ms(ev.now_ms),
    }


def transition_event(objective: ObjectiveConfig, t: Transition, ev: Evaluation) -> dict[str, Any]:
    """The CloudEvent of one alert transition (burn rate firing/resolved, budget threshold, ...)."""
    data = breach_data(objective, ev)
    if t.tier is not None:
        data["tier"] = t.tier
    if t.threshold is not None:
        data["threshold"] = t.threshold
    if t.reason:
        data["reason"] = t.reason
    return cloud_event(objective_id=objective.id, event_type=t.type.value, seq=t.seq, time_ms=ev.now_ms, data=data)


def period_breached_event(
    objective: ObjectiveConfig, ev: Evaluation, closed: Period, credit_percent: float, time_ms: int
) -> dict[str, Any]:
    """`accord.sla.breached`: a reporting period closed below target; its id comes from the period label."""
    data = breach_data(objective, ev) | {
        "period": {"label": closed.label, "start": iso_ms(closed.start_ms), "end": iso_ms(closed.end_ms)},
        "compliance": ev.sli,
        "credit_percent": credit_percent,
    }
    return cloud_event(
        objective_id=objective.id, event_type="accord.sla.breached", seq=closed.label, time_ms=time_ms, data=data
    )
