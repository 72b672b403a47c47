"""Breach events as CloudEvents 1.0 (structured JSON mode), with deterministic ids (docs/records.md)."""

from __future__ import annotations

import uuid
from typing import Any

from shared.budget import Evaluation, Period, Transition
from shared.objective_config import ObjectiveConfig
from shared.timeutil import from_ms

EVENT_NAMESPACE = uuid.UUID("6f1d7d4e-58a6-4c36-9f5e-0a0c5d6b2a11")
SOURCE = "urn:accord:evaluator"


def event_id(objective_id: str, event_type: str, transition: int | str) -> str:
    """The same objective, type and transition (a sequence number, or a period label) always give the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{objective_id}/{event_type}/{transition}"))


def iso_ms(timestamp_ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision."""
    return from_ms(timestamp_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


REPORTS_SOURCE = "urn:accord:api"
SLA_MET = "accord.sla.met"
SLA_BREACHED = "accord.sla.breached"
REPORT_REVISED = "accord.report.revised"


def period_judged_event(report: dict[str, Any], objective: dict[str, Any], time_ms: int) -> dict[str, Any]:
    """`accord.sla.met` or `accord.sla.breached` for one objective of a closed period's frozen report.

    The id comes from objective, type and period label, like the evaluator's `accord.sla.breached`
    (`period_breached_event`): the two are one event, stored once (docs/reports.md).
    """
    event_type = SLA_BREACHED if objective["met"] is False else SLA_MET
    summary, agreement, period = report["summary"], report["agreement"], report["period"]
    data = {
        "objective": {"id": objective["id"], "name": objective["name"], "indicator": objective["indicator"]},
        "agreement": {"id": agreement["id"], "name": agreement["name"]},
        "customer": agreement["customer"],
        "provider": agreement["provider"],
        "period": {"label": period["label"], "start": period["start"], "end": period["end"]},
        "target": objective["target"],
        "compliance": objective["compliance"],
        "met": objective["met"],
        "good": objective["good"],
        "total": objective["total"],
        "credit_percent": objective["credit_percent"],
        "agreement_credit_percent": summary["credit_percent"],
        "credit_amount": summary["credit_amount"],
        "currency": summary["currency"],
        "report_version": report["version"],
        "terms_revision": report["terms"]["revision"],
    }
    event = cloud_event(
        objective_id=objective["id"], event_type=event_type, seq=period["label"], time_ms=time_ms, data=data
    )
    return event | {"source": REPORTS_SOURCE}


def report_revised_event(
    report: dict[str, Any], changes: list[dict[str, Any]], author: str, reason: str, time_ms: int
) -> dict[str, Any]:
    """`accord.report.revised`: version N + 1 of a period's report, with every figure that changed (old → new).

    Its subject is the agreement; the id comes from agreement, period label and version."""
    agreement, period = report["agreement"], report["period"]
    data = {
        "agreement": {"id": agreement["id"], "name": agreement["name"]},
        "customer": agreement["customer"],
        "period": {"label": period["label"], "start": period["start"], "end": period["end"]},
        "version": report["version"],
        "previous_version": report["version"] - 1,
        "author": author,
        "reason": reason,
        "changes": changes,
    }
    event = cloud_event(
        objective_id=agreement["id"],
        event_type=REPORT_REVISED,
        seq=f"{period['label']}/v{report['version']}",
        time_ms=time_ms,
        data=data,
    )
    return event | {"source": REPORTS_SOURCE}
