"""Per-objective gauges on the evaluator's /metrics, for Grafana: SLI, budget, burn rates, alert states.

Each objective is exported by the one evaluator that owns its indicator's partition, so the
deployment exports it once, however many api or evaluator replicas run; when the partition
moves, the old owner stops exporting it (`Engine.forget_partitions`) and the new one starts as
soon as the partition is loaded (its stored reading comes with the partition).

A scrape reads memory only, never Postgres: the latest reading of each objective (written or
waiting for the next checkpoint), rendered as Prometheus text directly. The evaluator renders
on its event loop a slice of objectives at a time (`render_sliced`), letting records be applied
and checkpoints written between slices: 10,000 objectives whose readings all changed take a few
hundred milliseconds, which held every breach event for as long when rendered at once. Each objective's label
strings are built once per objective configuration, and its lines once per reading (an objective
that did not change since the last scrape costs a list extend). prometheus_client's own rendering
escapes a label dict per sample: ≈ 2 s per 10,000 objectives (140,000 samples) here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable

from services.evaluator.engine import Engine, StatusRow, StoredReading
from shared.budget.model import tier_name
from shared.objective_config import ObjectiveConfig


def _num(value: float) -> str:
    """A sample value as Prometheus text: repr, with Go's names for the infinities and NaN."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


LABELS = ("objective_id", "objective", "agreement_id", "agreement", "customer", "provider", "indicator")

FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "accord_objective_target": ("The objective's target (fraction of good events).", ()),
    "accord_objective_sli": ("SLI over the objective's window (good / total); absent without events.", ()),
    "accord_objective_window_good_events": (
        "Good units in the window (events, or slices when slice-budgeted).",
        (),
    ),
    "accord_objective_window_events": ("Units in the window (events, or slices with data).", ()),
    "accord_objective_budget_remaining": ("Error budget left (fraction; negative: overspent).", ()),
    "accord_objective_window_burn_rate": ("Burn rate over the whole window.", ()),
    "accord_objective_burn_rate": ("Burn rate over one window of a burn-rate tier.", ("tier", "window", "span")),
    "accord_objective_alert_firing": ("1 while a burn-rate tier is firing.", ("tier", "severity")),
    "accord_objective_budget_exhausted": ("1 while the error budget is exhausted.", ()),
    "accord_objective_evaluated_timestamp_seconds": ("Event time of the latest evaluation.", ()),
}
"""Family name -> (help, labels besides LABELS), in exposition order."""


SLICE_SECONDS = 0.005
"""Longest `render_sliced` holds the event loop at once (as the runner's `YIELD_EVERY_SECONDS`)."""
_NONE: tuple[list[str], ...] = tuple([] for _ in FAMILIES)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


class _Objective:
    """What an objective's samples need besides its reading: its label strings (built once per configuration)
    and its samples as rendered for the last reading version (an objective nothing changed costs no formatting)."""

    __slots__ = ("config", "labels", "lines", "target", "tiers", "version")

    def __init__(self, o: ObjectiveConfig) -> None:
        self.config = o
        values = (o.id, o.name, o.agreement_id, o.agreement_name, o.customer, o.provider, o.indicator)
        self.labels = _labels(zip(LABELS, values, strict=True))
        self.target = _num(o.terms.target)
        # tier name -> (long burn labels, short burn labels, firing labels), for the tiers of the terms
        self.tiers = {
            t.name: self._tier_labels(t.name, tier_name(t.long_minutes), tier_name(t.short_minutes), t.severity.value)
            for t in o.terms.tiers
        }
        self.version: object | None = None
        self.lines: tuple[list[str], ...] = ()

    def _tier_labels(self, name: str, long: str, short: str, severity: str) -> tuple[str, str, str]:
        tier, lb = _escape(name), self.labels
        return (
            f'{lb},tier="{tier}",window="{_escape(long)}",span="long"',
            f'{lb},tier="{tier}",window="{_escape(short)}",span="short"',
            f'{lb},tier="{tier}",severity="{_escape(severity)}"',
        )

    def tier(self, name: str, severity: str) -> tuple[str, str, str]:
        found = self.tiers.get(name)
        if found is None:  # a reading of terms since changed: its tier's windows are not known here
            found = self.tiers[name] = self._tier_labels(name, name, "", severity)
        return found


class ObjectiveGauges:
    """Renders the gauges of the objectives whose indicators this evaluator holds."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._objectives: dict[str, _Objective] = {}
        self._rendering = asyncio.Lock()

    def _objective(self, o: ObjectiveConfig) -> _Objective:
        found = self._objectives.get(o.id)
        if found is None or found.config is not o:
            found = self._objectives[o.id] = _Objective(o)
        return found

    def render(self) -> bytes:
        """The families of FAMILIES as Prometheus text (0.0.4), each with every objective held here."""
        held = list(self._held())
        return self._finish(held, [self._lines(o, version) for o, version in held])

    async def render_sliced(self, slice_seconds: float = SLICE_SECONDS) -> bytes:
        """As `render`, yielding to the event loop every `slice_seconds`: each objective is rendered from its
        reading at its turn (as a scrape of separate series would see it), and one render runs at a time."""
        async with self._rendering:
            held = list(self._held())
            rendered: list[tuple[list[str], ...]] = []
            engine = self.engine
            yield_at = time.perf_counter() + slice_seconds
            for n, (o, _) in enumerate(held):
                if n % 64 == 0 and time.perf_counter() >= yield_at:
                    await asyncio.sleep(0)
                    yield_at = time.perf_counter() + slice_seconds
                version = engine.reading_version(o.id)  # the reading now, not when the render began
                if version is None:
                    rendered.append(_NONE)  # its partition moved away meanwhile
                    continue
                rendered.append(self._lines(o, version))
            return self._finish(held, rendered)

    def _held(self) -> Iterable[tuple[ObjectiveConfig, object]]:
        engine = self.engine
        for key in engine.indicators:
            for o in engine.objectives.get(key, ()):
                version = engine.reading_version(o.id)
                if version is not None:
                    yield o, version

    def _lines(self, o: ObjectiveConfig, version: object) -> tuple[list[str], ...]:
        obj = self._objective(o)
        if obj.version is not version:
            reading = self.engine.reading(o.id)
            assert reading is not None
            obj.lines, obj.version = _samples(obj, reading), version
        return obj.lines

    def _finish(self, held: list[tuple[ObjectiveConfig, object]], rendered: list[tuple[list[str], ...]]) -> bytes:
        for oid in self._objectives.keys() - {o.id for o, _ in held}:  # objectives gone, or no longer held here
            del self._objectives[oid]
        out: list[str] = []
        for n, (name, (doc, _)) in enumerate(FAMILIES.items()):
            out.append(f"# HELP {name} {doc}")
            out.append(f"# TYPE {name} gauge")
            for lines in rendered:
                out.extend(lines[n])
        return ("\n".join(out) + "\n").encode()


def _samples(obj: _Objective, reading: StatusRow | StoredReading) -> tuple[list[str], ...]:
    """One objective's sample lines, per family of FAMILIES (in its order)."""
    if isinstance(reading, StatusRow):
        ev, state = reading.evaluation, reading.alert_state
        sli, good, total = ev.sli, ev.counts.good, ev.counts.total
        consumed, rate, at_ms = ev.budget_consumed, ev.burn_rate, ev.now_ms
        tiers = [(t.name, t.severity.value, t.long_burn_rate, t.short_burn_rate) for t in ev.tiers]
        firing, exhausted = state.firing, state.exhausted
    else:
        sli, good, total = reading.sli, reading.good, reading.total
        consumed, rate, at_ms = reading.budget_consumed, reading.burn_rate, reading.evaluated_at_ms
        tiers = list(reading.tiers)
        firing, exhausted = reading.firing, reading.exhausted
    lb = obj.labels
    p = "accord_objective_"
    burn: list[str] = []
    on: list[str] = []
    for name, severity, long_rate, short_rate in tiers:
        long_labels, short_labels, firing_labels = obj.tier(name, severity)
        if long_rate is not None:
            burn.append(f"{p}burn_rate{{{long_labels}}} {_num(long_rate)}")
        if short_rate is not None:
            burn.append(f"{p}burn_rate{{{short_labels}}} {_num(short_rate)}")
        on.append(f"{p}alert_firing{{{firing_labels}}} {'1.0' if name in firing else '0.0'}")
    return (
        [f"{p}target{{{lb}}} {obj.target}"],
        [f"{p}sli{{{lb}}} {_num(sli)}"] if sli is not None else [],
        [f"{p}window_good_events{{{lb}}} {good}.0"],
        [f"{p}window_events{{{lb}}} {total}.0"],
        [f"{p}budget_remaining{{{lb}}} {_num(1.0 - consumed)}"],
        [f"{p}window_burn_rate{{{lb}}} {_num(rate)}"] if rate is not None else [],
        burn,
        on,
        [f"{p}budget_exhausted{{{lb}}} {'1.0' if exhausted else '0.0'}"],
        [f"{p}evaluated_timestamp_seconds{{{lb}}} {_num(at_ms / 1000)}"],
    )
