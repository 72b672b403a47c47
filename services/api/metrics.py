"""Per-objective gauges on the api's /metrics, for Grafana: SLI, budget, burn rates, alert states.

The gauges come from the evaluator's stored readings (`objective_status`), read at scrape time:
`refresh` runs in the async /metrics handler before the registry is rendered and replaces the
collector's snapshot in one assignment; `collect` (called synchronously by prometheus_client)
only reads that snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.api import repository as repo
from services.api.readings import to_ms
from shared.budget.model import tier_name
from shared.contract import objective_window, tiers_of
from shared.db import Agreement, Objective, ObjectiveStatus

log = logging.getLogger("accord.api.metrics")

LABELS = ("objective_id", "objective", "agreement_id", "agreement", "customer", "provider", "indicator")


@dataclass(frozen=True, slots=True)
class TierGauge:
    name: str
    severity: str
    long_window: str
    short_window: str
    long_burn_rate: float | None
    short_burn_rate: float | None
    firing: bool


@dataclass(frozen=True, slots=True)
class ObjectiveGauge:
    labels: tuple[str, ...]
    target: float
    sli: float | None
    good: int
    total: int
    budget_remaining: float
    burn_rate: float | None
    exhausted: bool
    evaluated_at_ms: int
    tiers: tuple[TierGauge, ...]


def _windows(objective: Objective, agreement: Agreement) -> dict[str, tuple[str, str]]:
    """Tier name -> (long window, short window) of the objective's current terms."""
    try:
        window = objective_window(agreement.spec, objective.spec)
        tiers = tiers_of(window, objective.spec.get("alert_policy") or {})
    except (ValueError, KeyError, TypeError):
        return {}
    return {t.name: (tier_name(t.long_minutes), tier_name(t.short_minutes)) for t in tiers}


def gauge_of(status: ObjectiveStatus, objective: Objective, agreement: Agreement) -> ObjectiveGauge:
    """One objective's stored reading as gauge values."""
    windows = _windows(objective, agreement)
    tiers = []
    for t in status.tiers:
        long_window, short_window = windows.get(str(t["name"]), (str(t["name"]), ""))
        tiers.append(
            TierGauge(
                name=str(t["name"]),
                severity=str(t.get("severity", "")),
                long_window=long_window,
                short_window=short_window,
                long_burn_rate=t.get("long_burn_rate"),
                short_burn_rate=t.get("short_burn_rate"),
                firing=bool(t.get("firing")),
            )
        )
    labels = (
        str(objective.id),
        objective.name,
        str(agreement.id),
        agreement.name,
        agreement.customer,
        agreement.provider,
        objective.indicator_key,
    )
    return ObjectiveGauge(
        labels=labels,
        target=objective.target,
        sli=status.sli,
        good=status.good,
        total=status.total,
        budget_remaining=1.0 - status.budget_consumed,
        burn_rate=status.burn_rate,
        exhausted=bool(status.alert_state.get("exhausted")),
        evaluated_at_ms=to_ms(status.evaluated_at),
        tiers=tuple(tiers),
    )


class ObjectiveCollector(Collector):
    """Gauges per objective from the latest snapshot of stored readings."""

    def __init__(self) -> None:
        self._snapshot: tuple[ObjectiveGauge, ...] = ()

    def replace(self, gauges: Sequence[ObjectiveGauge]) -> None:
        self._snapshot = tuple(gauges)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._snapshot

        def family(name: str, doc: str, extra: Sequence[str] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*LABELS, *extra])

        target = family("accord_objective_target", "The objective's target (fraction of good events).")
        sli = family("accord_objective_sli", "SLI over the objective's window (good / total); absent without events.")
        good = family(
            "accord_objective_window_good_events", "Good units in the window (events, or slices when slice-budgeted)."
        )
        total = family("accord_objective_window_events", "Units in the window (events, or slices with data).")
        remaining = family("accord_objective_budget_remaining", "Error budget left (fraction; negative: overspent).")
        window_burn = family("accord_objective_window_burn_rate", "Burn rate over the whole window.")
        burn = family(
            "accord_objective_burn_rate", "Burn rate over one window of a burn-rate tier.", ("tier", "window", "span")
        )
        firing = family("accord_objective_alert_firing", "1 while a burn-rate tier is firing.", ("tier", "severity"))
        exhausted = family("accord_objective_budget_exhausted", "1 while the error budget is exhausted.")
        evaluated = family("accord_objective_evaluated_timestamp_seconds", "Event time of the latest evaluation.")
        for g in snapshot:
            target.add_metric(g.labels, g.target)
            if g.sli is not None:
                sli.add_metric(g.labels, g.sli)
            good.add_metric(g.labels, g.good)
            total.add_metric(g.labels, g.total)
            remaining.add_metric(g.labels, g.budget_remaining)
            if g.burn_rate is not None:
                window_burn.add_metric(g.labels, g.burn_rate)
            exhausted.add_metric(g.labels, 1.0 if g.exhausted else 0.0)
            evaluated.add_metric(g.labels, g.evaluated_at_ms / 1000)
            for t in g.tiers:
                if t.long_burn_rate is not None:
                    burn.add_metric([*g.labels, t.name, t.long_window, "long"], t.long_burn_rate)
                if t.short_burn_rate is not None:
                    burn.add_metric([*g.labels, t.name, t.short_window, "short"], t.short_burn_rate)
                firing.add_metric([*g.labels, t.name, t.severity], 1.0 if t.firing else 0.0)
        yield from (target, sli, good, total, remaining, window_burn, burn, firing, exhausted, evaluated)


class ObjectiveMetrics:
    """The collector registered on the api's registry, and the scrape-time refresh that feeds it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.collector = ObjectiveCollector()
        registry.register(self.collector)
        self.failures = Counter(
            "accord_api_status_scrape_failures", "Scrapes that could not read objective readings.", registry=registry
        )

    async def refresh(self, sessionmaker: async_sessionmaker[Any]) -> None:
        """Read every stored objective reading and replace the snapshot; on a database error, an empty one."""
        try:
            async with sessionmaker() as session:
                rows = await repo.live_statuses(session)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("objective gauges unavailable for this scrape: %r", exc)
            self.failures.inc()
            self.collector.replace(())
            return
        self.collector.replace([gauge_of(s, o, a) for s, o, a in rows])
