"""The evaluator's in-memory state and what one Kafka record does to it. No I/O here.

Counts are kept per indicator in minute buckets (docs/design.md §6): a measurement costs
the same whatever the number of objectives. After each record, the objectives of
that record's indicator are evaluated at the indicator's event-time watermark (the
newest measurement time seen), so results depend only on the records and their
order within a partition, never on batching, timing or crashes: a replay from
stored offsets reproduces the same numbers and the same event ids.

Series: counts are kept per (label set, threshold rule) of an indicator. A ratio
measurement adds to one series; a threshold measurement adds to one series per distinct
threshold rule among the indicator's objectives (work grows with distinct rules, never
with objectives). An objective sums the series whose labels its matchers accept.

Everything changed since the last checkpoint is tracked, so `drain()` returns
exactly what the next Postgres transaction must write.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from shared.budget import (
    ZERO,
    AlertState,
    CalendarWindow,
    Counts,
    Evaluation,
    Measured,
    ObjectiveTerms,
    Period,
    PeriodKind,
    SeriesCounts,
    ThresholdRule,
    Transition,
    classify,
    decide,
    judge,
    measure,
    minute_of,
    period_bounds,
    quiet,
    shape_of,
)
from shared.budget.periods import Calendar
from shared.budget.reports import judge_period, period_terms
from shared.budget.rollups import FAR_MINUTE, held_minutes, retention_cutoffs, summed, whole_hours
from shared.events import period_breached_event, transition_event
from shared.measurements import Measurement
from shared.objective_config import ObjectiveConfig
from shared.series import Labels, SeriesGroup, SeriesKey, selects, series_group, series_key, series_name
from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY

NO_ALERTS = AlertState()  # an objective nothing has been announced for (built once: hot path)


@dataclass
class IndicatorCounts:
    partition: int
    series: dict[SeriesKey, SeriesCounts] = field(default_factory=dict)
    watermark_ms: int | None = None
    seen: dict[str, int] = field(default_factory=dict)
    # Evaluations at watermarks up to here read only minutes held in memory (older hours may be held as hour
    # cells only: `Engine.covers`); None: every minute of the history is held.
    ready_until_ms: int | None = None
    coarsened_ms: int | None = None  # the watermark of the last `_coarsen`; None: minutes came in since

    def counts(self, key: SeriesKey) -> SeriesCounts:
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = SeriesCounts()
        return found


class SharedSums:
    """Range sums over a group of series, remembered for one evaluation instant."""

    __slots__ = ("_cache", "measured", "series")

    def __init__(self, series: list[SeriesCounts]) -> None:
        self.series = series
        self._cache: dict[tuple[int, int], Counts] = {}
        # Objectives of one shape (window, tier windows, exclusions, budgeting) measure the same counts.
        self.measured: dict[tuple[object, ...], Measured] = {}

    def source_for(self, terms: ObjectiveTerms) -> SharedSums | SeriesCounts:
        # A lone series goes as itself: the same sums (SeriesCounts remembers its recent ranges), and
        # timeslices walk its buckets on SeriesCounts' fast path.
        if len(self.series) == 1:
            return self.series[0]
        return self

    def range(self, start: int, end: int) -> Counts:
        found = self._cache.get((start, end))
        if found is None:
            found = ZERO
            for counts in self.series:
                found = found + counts.range(start, end)
            self._cache[(start, end)] = found
        return found

    def buckets(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        merged: dict[int, Counts] = {}
        for counts in self.series:
            for minute, c in counts.buckets(start, end):
                merged[minute] = merged.get(minute, ZERO) + c
        return iter(sorted(merged.items()))


@dataclass(frozen=True, slots=True)
class StatusRow:
    objective_id: str
    evaluation: Evaluation
    alert_state: AlertState
    last_measurement_ms: int
    revision: int | None = None  # the agreement revision whose terms `evaluation` used


class StoredReading(NamedTuple):
    """An objective's reading as stored in `objective_status`, loaded with its partition: what the gauges show
    until the objective is next evaluated here. `tiers`: (name, severity, long burn rate, short burn rate)."""

    sli: float | None
    good: int
    total: int
    budget_consumed: float
    burn_rate: float | None
    evaluated_at_ms: int
    tiers: tuple[tuple[str, str, float | None, float | None], ...]
    firing: frozenset[str]
    exhausted: bool


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    objective_id: str
    agreement_id: str
    customer: str
    type: str
    seq: int
    time_ms: int
    event: dict[str, Any]


@dataclass
class Changes:
    """What the next checkpoint writes; all of it or none of it."""

    buckets: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # (indicator, series, hour, good added, total added) since the last drain: added to series_hours
    # in the same transaction as the minutes and offsets, so each delta is stored exactly once.
    hours: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # (indicator, series, minute, good added, total added): counts added to minutes whose hour memory holds
    # as a cell only (late data), added to series_buckets like the hours (memory does not know the minute).
    bucket_deltas: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    indicators: list[tuple[str, int, int]] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.buckets
            or self.hours
            or self.bucket_deltas
            or self.seen
            or self.indicators
            or self.statuses
            or self.events
        )


@dataclass(slots=True)
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    too_late: int = 0
    events: int = 0


class Engine:
    """Counts, dedup, watermarks and alert states of the indicators on the partitions this process owns."""

    def __init__(
        self,
        objectives: Iterable[ObjectiveConfig],
        *,
        dedup_horizon_minutes: int,
        max_age_minutes: int,
        minute_band_minutes: int | None = None,
        recent_minutes: int = 120,
    ):
        self.dedup_horizon_minutes = dedup_horizon_minutes
        self.max_age_minutes = max_age_minutes
        # Old hours held as cells only, minutes where evaluations read them, for watermarks up to
        # `minute_band_minutes` ahead (docs/evaluator.md "What is held"); None: every minute held.
        self.minute_band_minutes = minute_band_minutes
        self.recent_minutes = recent_minutes
        self.indicators: dict[str, IndicatorCounts] = {}
        self.alert_states: dict[str, AlertState] = {}
        self.objectives: dict[str, list[ObjectiveConfig]] = {}
        self.rules: dict[str, list[ThresholdRule]] = {}
        # The latest reading of each objective held here, as last drained (or loaded): for the gauges.
        self._latest: dict[str, StatusRow | StoredReading] = {}
        self.set_objectives(objectives)
        # (indicator, series, minute) -> [good, total] added since the last drain: the minute buckets the next
        # checkpoint writes, and the deltas of their hour roll-ups (summed by hour when drained).
        self._deltas: dict[tuple[str, SeriesKey, int], list[int]] = {}
        self._names: dict[SeriesKey, str] = {}  # series_name, remembered
        # One entry per (indicator, id): an id repeated past the dedup horizon within one drain is
        # written once, with the minute memory holds (the last one counted), never twice in one upsert.
        self._new_seen: dict[tuple[str, str], int] = {}
        self._dirty_indicators: set[str] = set()
        self._statuses: dict[str, StatusRow] = {}
        self._quiet: dict[str, tuple[ObjectiveConfig, Measured, int]] = {}
        self._events: list[EventRow] = []
        # The cadence: the event-time second of each indicator's last evaluation (see `_must_evaluate`), and
        # the objectives holding an alert state that good events could end, as of that evaluation.
        self._evaluated_second: dict[str, int] = {}
        self._held: dict[str, _Held] = {}

    # --- configuration -------------------------------------------------------------------------

    def set_objectives(self, objectives: Iterable[ObjectiveConfig]) -> None:
        objectives = list(objectives)
        before = getattr(self, "objectives", {})
        by_indicator: dict[str, list[ObjectiveConfig]] = {}
        rules: dict[str, dict[str, ThresholdRule]] = {}
        for o in objectives:
            by_indicator.setdefault(o.indicator, []).append(o)
            if o.terms.threshold is not None:
                rules.setdefault(o.indicator, {})[o.terms.threshold.key] = o.terms.threshold
        self.objectives = by_indicator
        self._shapes = {o.id: shape_of(o.terms) for objs in by_indicator.values() for o in objs}
        self._plans: dict[str, _Plan] = {}
        self._period_spans: dict[str, tuple[int, int]] = {}
        # Objectives with equal terms (fifty customers, one availability target) in the same alert state,
        # measured alike, are quiet alike: `_evaluate` asks once per (terms, measured, state).
        canonical: dict[ObjectiveTerms, int] = {}
        self._terms_id = {o.id: canonical.setdefault(o.terms, len(canonical)) for o in objectives_of(by_indicator)}
        self._history: dict[str, int] = {}
        self._periods: dict[tuple[PeriodKind | Calendar, str], Period] = {}
        self._reporting: dict[str, set[tuple[PeriodKind | Calendar, str]]] = {}
        self.rules = {k: sorted(v.values(), key=lambda r: r.key) for k, v in rules.items()}
        # Indicators where good events alone can start an alert: a page tier waits for enough events.
        self._eager = {k for k, objs in by_indicator.items() if any(o.terms.min_events > 0 for o in objs)}
        self._evaluated_second = {}
        self._held = {}
        self._latest = {oid: r for oid, r in self._latest.items() if oid in self._shapes}
        self._held_terms: dict[str, list[ObjectiveTerms]] = {}
        # `held_spans` per (the shapes an indicator's evaluations read, numbered; first minute; last minute): a
        # thousand indicators with the same objectives, at watermarks in the same minute, plan their minutes once.
        self._read_ids: dict[str, int] = {}
        self._read_shapes: dict[tuple[tuple[object, ...], ...], int] = {}
        self._spans: dict[tuple[int, int, int], list[tuple[int, int]] | None] = {}
        for key, state in getattr(self, "indicators", {}).items():
            if state.ready_until_ms is not None and before.get(key) != by_indicator.get(key):
                state.ready_until_ms = -1  # other terms may read other minutes: fetched before the next record

    def history_minutes(self, indicator: str) -> int:
        """Minutes of history any objective of `indicator` can still look at."""
        found = self._history.get(indicator)
        if found is None:
            windows = [o.terms.window.max_minutes for o in self.objectives.get(indicator, ())]
            windows += [CalendarWindow(o.reporting_period).max_minutes for o in self.objectives.get(indicator, ())]
            tiers = [t.long_minutes for o in self.objectives.get(indicator, ()) for t in o.terms.tiers]
            found = self._history[indicator] = max([*windows, *tiers], default=self.max_age_minutes)
        return found

    # --- what is held: hour cells, and minutes where evaluations read them --------------------------

    def _terms_read(self, indicator: str) -> list[ObjectiveTerms]:
        """The distinct terms whose evaluations read the indicator's counts: objectives, and their reporting
        periods (closing one judges the whole period)."""
        found = self._held_terms.get(indicator)
        if found is None:
            shapes: dict[tuple[object, ...], ObjectiveTerms] = {}
            for o in self.objectives.get(indicator, ()):
                for terms in (o.terms, period_terms(o.terms, o.reporting_period, o.timezone)):
                    shapes.setdefault(shape_of(terms), terms)
            found = self._held_terms[indicator] = list(shapes.values())
            self._read_ids[indicator] = self._read_shapes.setdefault(tuple(shapes), len(self._read_shapes))
        return found

    def held_spans(self, indicator: str, from_ms: int, to_ms: int) -> list[tuple[int, int]] | None:
        """Whole-hour minute spans holding every minute the indicator's evaluations read one by one at
        watermarks in [from_ms, to_ms] (`rollups.held_minutes`); None when every minute is read."""
        if not self.objectives.get(indicator):
            return None  # no objective yet: nothing says what will be read
        terms_read = self._terms_read(indicator)
        # held_minutes depends on the instants only through their minutes (windows and periods are minute-aligned)
        key = (self._read_ids[indicator], from_ms // MINUTE_MS, to_ms // MINUTE_MS)
        if key in self._spans:
            found = self._spans[key]
            return None if found is None else list(found)
        spans: list[tuple[int, int]] | None = []
        for terms in terms_read:
            held = held_minutes(terms, from_ms, to_ms, self.recent_minutes)
            if held is None or spans is None:
                spans = None
                continue
            spans.extend(held)
        found = None if spans is None else whole_hours(spans)
        if len(self._spans) >= 1024:
            self._spans.clear()
        self._spans[key] = found
        return None if found is None else list(found)

    def load_plan(self, indicator: str, watermark_ms: int) -> tuple[list[tuple[int, int]] | None, int | None]:
        """(minute spans to load, ready until) for loading the indicator at `watermark_ms`: (None, None) when
        every minute of its history is loaded."""
        if self.minute_band_minutes is None:
            return None, None
        ready = watermark_ms + self.minute_band_minutes * MINUTE_MS
        spans = self.held_spans(indicator, watermark_ms, ready)
        return (None, None) if spans is None else (spans, ready)

    def covers(self, indicator: str, measurements: Sequence[Measurement]) -> bool:
        """Whether applying these measurements evaluates only on minutes held; False: fetch first (`wants`)."""
        state = self.indicators.get(indicator)
        if state is None or state.ready_until_ms is None or not measurements:
            return True
        newest = measurements[0].timestamp_ms if len(measurements) == 1 else max(m.timestamp_ms for m in measurements)
        return max(newest, state.watermark_ms or newest) <= state.ready_until_ms

    def refills(self, blocked: Mapping[str, int]) -> list[tuple[str, int]]:
        """(indicator, watermark to be ready until) for the indicators whose held minutes must be fetched: the
        `blocked` ones (indicator -> newest timestamp waiting), and those within half a band of its end."""
        band = self.minute_band_minutes
        if band is None:
            return []
        out: list[tuple[str, int]] = []
        for key, state in self.indicators.items():
            ready, watermark = state.ready_until_ms, state.watermark_ms
            if ready is None or watermark is None:
                continue
            waiting = blocked.get(key)
            if waiting is not None or ready - watermark < band * MINUTE_MS // 2:
                out.append((key, max(watermark, waiting or watermark) + band * MINUTE_MS))
        return out

    def hours_to_fetch(self, indicator: str, until_ms: int) -> list[int]:
        """The hours (minute // 60) whose stored minutes must be fetched before evaluating up to `until_ms`."""
        state = self.indicators[indicator]
        assert state.watermark_ms is not None
        spans = self.held_spans(indicator, state.watermark_ms, until_ms)
        everything = [(-FAR_MINUTE, FAR_MINUTE)]
        hours: set[int] = set()
        for counts in state.series.values():
            hours.update(counts.coarse_hours(everything if spans is None else spans))
        return sorted(hours)

    def fill(
        self,
        indicator: str,
        until_ms: int,
        hours: Sequence[int],
        series: Iterable[tuple[str, Sequence[int], Sequence[int], Sequence[int]]],
    ) -> int:
        """Hold the stored minutes of `hours` (from `hours_to_fetch`, read since: nothing was checkpointed in
        between) for each series; the indicator is then ready up to `until_ms`. Returns the hours whose stored
        minutes did not sum to their cell."""
        state = self.indicators[indicator]
        rows = {name: (minutes, goods, totals) for name, minutes, goods, totals in series}
        mismatched = 0
        for key, counts in state.series.items():
            minutes, goods, totals = rows.get(series_name(key), ((), (), ()))
            mismatched += counts.fill(hours, minutes, goods, totals)
        assert state.watermark_ms is not None
        spans = self.held_spans(indicator, state.watermark_ms, until_ms)
        state.ready_until_ms = None if spans is None else until_ms
        state.coarsened_ms = None
        return mismatched

    def _coarsen(self, key: str, state: IndicatorCounts) -> None:
        """Hold as hour cells only what no evaluation up to the indicator's ready watermark reads minute by
        minute (never a timeslices series: it reads every minute)."""
        band, watermark = self.minute_band_minutes, state.watermark_ms
        if band is None or watermark is None:
            return
        last = state.coarsened_ms
        if last is not None and watermark - last < self.recent_minutes * MINUTE_MS // 2:
            return  # nothing new to let go of yet: a few hundred steps per indicator saved every minute
        ready = state.ready_until_ms
        if ready is None:
            ready = watermark + band * MINUTE_MS
        spans = self.held_spans(key, watermark, ready)
        if spans is None:
            state.ready_until_ms = None
            return
        for counts in state.series.values():
            counts.coarsen(spans, FAR_MINUTE)
        state.ready_until_ms = ready
        state.coarsened_ms = watermark

    # --- ownership -------------------------------------------------------------------------------

    def load_indicator(
        self,
        key: str,
        partition: int,
        watermark_ms: int,
        buckets: Iterable[tuple[str, int, int, int]],
        seen: Iterable[tuple[str, int]],
    ) -> None:
        state = IndicatorCounts(partition=partition, watermark_ms=watermark_ms)
        for name, minute, good, total in buckets:
            state.counts(series_key(name)).add(minute, good, total)
        state.seen = dict(seen)
        self.indicators[key] = state

    def load_indicator_series(
        self,
        key: str,
        partition: int,
        watermark_ms: int,
        series: Iterable[tuple[str, Sequence[int], Sequence[int], Sequence[int]]],
        seen: Iterable[tuple[str, int]],
    ) -> None:
        """`load_indicator` from (series name, minutes, goods, totals) columns, as the store reads them."""
        state = IndicatorCounts(partition=partition, watermark_ms=watermark_ms)
        for name, minutes, goods, totals in series:
            state.counts(series_key(name)).load(minutes, goods, totals)
        state.seen = dict(seen)
        self.indicators[key] = state

    def load_indicator_held(
        self,
        key: str,
        partition: int,
        watermark_ms: int,
        minutes: Iterable[tuple[str, Sequence[int], Sequence[int], Sequence[int]]],
        hours: Iterable[tuple[str, Sequence[int], Sequence[int], Sequence[int]]],
        spans: Sequence[tuple[int, int]],
        ready_until_ms: int,
        seen: Iterable[tuple[str, int]],
    ) -> None:
        """Load the indicator with the stored minutes of the whole-hour `spans` (`load_plan`) and hour cells for
        the other hours; hour rows meeting the spans are ignored (their minutes are loaded instead)."""
        state = IndicatorCounts(partition=partition, watermark_ms=watermark_ms, ready_until_ms=ready_until_ms)
        empty: tuple[Sequence[int], Sequence[int], Sequence[int]] = ((), (), ())
        by_minutes = {name: (ms, goods, totals) for name, ms, goods, totals in minutes}
        by_hours = {name: (hs, goods, totals) for name, hs, goods, totals in hours}
        for name in by_minutes.keys() | by_hours.keys():
            state.counts(series_key(name)).load_held(spans, *by_minutes.get(name, empty), *by_hours.get(name, empty))
        state.seen = dict(seen)
        self.indicators[key] = state

    def load_alert_state(self, objective_id: str, state: AlertState) -> None:
        self.alert_states[objective_id] = state

    def load_reading(self, objective_id: str, reading: StoredReading) -> None:
        self._latest[objective_id] = reading

    def reading_version(self, objective_id: str) -> object | None:
        """An object that stays the same (`is`) as long as `reading(objective_id)` would answer the same."""
        return self._quiet.get(objective_id) or self._statuses.get(objective_id) or self._latest.get(objective_id)

    def reading(self, objective_id: str) -> StatusRow | StoredReading | None:
        """The objective's latest reading held here: waiting for a checkpoint, or as last written or loaded."""
        waiting = self._quiet.get(objective_id)
        if waiting is not None:
            objective, measured, last_ms = waiting
            alert = self.alert_states.get(objective_id, NO_ALERTS)
            return StatusRow(objective_id, judge(objective.terms, measured), alert, last_ms, objective.revision)
        return self._statuses.get(objective_id) or self._latest.get(objective_id)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Drop the state of the indicators on `partitions`, and whatever of theirs waits for a checkpoint.

        After a checkpoint nothing of theirs waits; when Postgres could not be written, what
        waits is dropped too: their next owner (or this process, reloading) replays it from
        the stored offsets, and no later checkpoint may write part of it.
        """
        gone = {k for k, s in self.indicators.items() if s.partition in partitions}
        objectives = {o.id for key in gone for o in self.objectives.get(key, ())}
        for key in gone:
            del self.indicators[key]
            self._evaluated_second.pop(key, None)
            self._held.pop(key, None)
        for oid in objectives:
            self.alert_states.pop(oid, None)
            self._quiet.pop(oid, None)
            self._statuses.pop(oid, None)
            self._latest.pop(oid, None)
        if gone:
            self._deltas = {d: v for d, v in self._deltas.items() if d[0] not in gone}
            self._new_seen = {k: m for k, m in self._new_seen.items() if k[0] not in gone}
            self._dirty_indicators -= gone
            self._events = [e for e in self._events if e.objective_id not in objectives]

    def pending(self) -> bool:
        """Whether anything waits for a checkpoint (tests and assertions)."""
        return bool(self._deltas or self._new_seen or self._dirty_indicators or self._statuses or self._events)

    # --- the hot path ----------------------------------------------------------------------------

    def apply(self, partition: int, indicator: str, measurements: list[Measurement]) -> ApplyResult:
        """Count one record's measurements of `indicator`, then evaluate its objectives."""
        result = ApplyResult()
        state = self.indicators.get(indicator)
        if state is None:
            state = self.indicators[indicator] = IndicatorCounts(partition=partition)
        state.partition = partition
        before_ms = watermark = state.watermark_ms
        if len(measurements) == 1:  # the common record: no generator for one timestamp
            newest: int | None = measurements[0].timestamp_ms
        else:
            newest = max(m.timestamp_ms for m in measurements) if measurements else None
        if newest is not None and (watermark is None or newest > watermark):
            watermark = state.watermark_ms = newest
        assert watermark is not None or not measurements
        now_minute = (watermark or 0) // MINUTE_MS
        history = self._history.get(indicator)
        oldest_minute = now_minute - (self.history_minutes(indicator) if history is None else history)
        # An id is remembered for the dedup horizon behind the watermark, whether or not prune() has
        # forgotten it yet: what counts never depends on when memory was tidied.
        dedup_from = now_minute - self.dedup_horizon_minutes
        # Sum the record per (series, minute) first: one bucket update per pair, not per measurement.
        sums: dict[tuple[Labels, int], list[int]] = {}
        bad = False
        added = 0  # events this record adds to any one series (for the cadence's bound)
        seen = state.seen
        rules = self.rules.get(indicator, ())
        for m in measurements:
            minute = m.timestamp_ms // MINUTE_MS
            if minute < oldest_minute:
                result.too_late += 1
                continue
            mid = m.id
            if mid is not None:
                first = seen.get(mid)
                if first is not None and first >= dedup_from:
                    result.duplicates += 1
                    continue
                seen[mid] = minute
                self._new_seen[(indicator, mid)] = minute
            if m.value is None and len(measurements) == 1:  # the common record: nothing to sum first
                good, total = m.good or 0, m.total or 0
                bad = good < total
                added = total
                self._count(indicator, state, (m.labels, ""), minute, good, total)
            elif m.value is None:
                cell = sums.get((m.labels, minute))
                if cell is None:
                    sums[(m.labels, minute)] = [m.good or 0, m.total or 0]
                else:
                    cell[0] += m.good or 0
                    cell[1] += m.total or 0
            else:
                added += m.weight
                for rule in rules:
                    c = classify(rule, m.value, m.weight)
                    bad = bad or c.good < c.total
                    self._count(indicator, state, (m.labels, rule.key), minute, c.good, c.total)
            result.applied += 1
        for (labels, minute), (good, total) in sums.items():
            bad = bad or good < total
            added += total
            self._count(indicator, state, (labels, ""), minute, good, total)
        self._dirty_indicators.add(indicator)
        if result.applied and watermark is not None and self._must_evaluate(indicator, state, bad, added):
            last = newest if newest is not None else watermark
            result.events = self._evaluate(indicator, state, last, before_ms)
            self._evaluated_second[indicator] = watermark // 1000
        return result

    def _count(
        self, indicator: str, state: IndicatorCounts, key: SeriesKey, minute: int, good: int, total: int
    ) -> None:
        """Add to a series' minute bucket, and to what the next checkpoint writes of it."""
        counts = state.series.get(key)
        if counts is None:
            counts = state.counts(key)
        counts.add(minute, good, total)
        cell = (indicator, key, minute)
        acc = self._deltas.get(cell)
        if acc is None:
            self._deltas[cell] = [good, total]
        else:
            acc[0] += good
            acc[1] += total

    def _must_evaluate(self, indicator: str, state: IndicatorCounts, bad: bool, added: int) -> bool:
        """Whether this record's evaluation could differ from skipping it: evaluate at most once per second of
        the indicator's event time, plus every record that could change an alert state.

        A record counted but not evaluated has only good events and arrived within the second of the last
        evaluation (same watermark second, so the same windows and period), and no objective of the indicator
        pages only above a minimum of events. Good events only lower burn rates and the budget consumed, so
        no alert can start and no threshold be crossed. What they can do is end something: resolve a firing
        tier, re-arm a crossed budget threshold, recover an exhausted budget, clear a pending tier. An
        indicator with none of these held (`_held`) skips freely. Otherwise the record is skipped only when
        the objectives holding one would keep their state even if every one of their windows had received
        all the good events skipped since the last evaluation (`quiet` on those counts): each window got at
        most that many, and burn rates and consumption only fall as good events are added (the same float
        operations, monotonic), so the real counts keep the state too. A pending tier (its `alert_after`
        clock depends on the instant) or a slice-budgeted objective (slices are not events) is never skipped.
        So the alert transitions, and the events and their ids, are those of evaluating every record; only
        the stored status numbers may lag, by less than one second of event time.
        """
        assert state.watermark_ms is not None
        if bad or indicator in self._eager or self._evaluated_second.get(indicator) != state.watermark_ms // 1000:
            return True
        held = self._held.get(indicator)
        if held is None:
            return False
        if held.pinned:
            return True
        held.added += added
        if held.added <= held.safe:
            return False
        # Try a bound four times what was skipped so far, so the next few records need no check at all.
        for bound in (4 * held.added, held.added):
            if self._quiet_with(held, bound):
                held.safe = bound
                return False
        return True

    def _quiet_with(self, held: _Held, more: int) -> bool:
        """Whether every held objective would stay quiet with `more` good events in each of its windows."""
        plus: dict[int, Measured] = {}  # objectives of one shape measured alike: one `_plus` each
        verdicts: set[tuple[int, int, AlertState]] = set()
        for o, m, alert in held.objectives:
            key = (self._terms_id[o.id], id(m), alert)
            if key in verdicts:
                continue
            more_m = plus.get(id(m))
            if more_m is None:
                more_m = plus[id(m)] = _plus(m, more)
            if not quiet(o.terms, alert, more_m):
                return False
            verdicts.add(key)
        return True

    def _plan(self, indicator: str) -> _Plan:
        """How `_evaluate` walks the indicator's objectives (built once per set of objectives)."""
        plan = self._plans.get(indicator)
        if plan is None:
            groups: dict[SeriesGroup, int] = {}
            shapes: dict[tuple[int, tuple[object, ...]], int] = {}
            plan = self._plans[indicator] = _Plan([], [], [])
            for o in self.objectives.get(indicator, ()):
                g = groups.get(key := series_group(o.terms))
                if g is None:
                    g = groups[key] = len(plan.groups)
                    plan.groups.append(key)
                m = shapes.get((g, self._shapes[o.id]))
                if m is None:
                    m = shapes[(g, self._shapes[o.id])] = len(plan.shapes)
                    plan.shapes.append((g, o.terms))
                plan.objectives.append((o, g, m, self._terms_id[o.id]))
        return plan

    def _evaluate(self, indicator: str, state: IndicatorCounts, last_measurement_ms: int, before_ms: int | None) -> int:
        """Evaluate `indicator`'s objectives at its watermark; close reporting periods it moved past."""
        assert state.watermark_ms is not None
        now = state.watermark_ms
        emitted = 0
        if before_ms is not None and not self._left_a_period(indicator, before_ms, now):
            before_ms = None  # the watermark is still in every reporting period it was in
        # Objectives of one indicator mostly share their series and windows (fifty customers, one
        # availability): range sums are computed once per group and instant, and objectives of one shape
        # (`shape_of`) share one `measure()` of them, each then only applying its target.
        plan = self._plan(indicator)
        series = state.series
        groups = [SharedSums([c for k, c in series.items() if selects(key, k)]) for key in plan.groups]
        measured = [measure(terms, groups[g].source_for(terms), now) for g, terms in plan.shapes]
        # Objectives with equal terms in the same alert state, measured alike, are quiet alike: asked once.
        # (No state at all keys as None: hashing an AlertState's fields costs a third of asking.)
        verdicts: dict[tuple[int, int, AlertState | None], bool] = {}
        held: list[tuple[ObjectiveConfig, Measured, AlertState]] = []
        pinned = False
        alert_states, waiting = self.alert_states, self._quiet
        for objective, g, si, tid in plan.objectives:
            m = measured[si]
            oid = objective.id
            alert = alert_states.get(oid, NO_ALERTS)
            verdict_key = (tid, si, None if alert is NO_ALERTS else alert)
            silent = verdicts.get(verdict_key)
            if silent is None:
                silent = verdicts[verdict_key] = quiet(objective.terms, alert, m)
            if silent:
                # Nothing to announce: the status row is worked out when it is next written.
                waiting[oid] = (objective, m, last_measurement_ms)
            else:
                terms = objective.terms
                ev = judge(terms, m)
                alert, transitions = decide(terms, alert, ev)
                alert_states[oid] = alert
                waiting.pop(oid, None)
                self._statuses[oid] = StatusRow(oid, ev, alert, last_measurement_ms, objective.revision)
                for t in transitions:
                    self._events.append(_event_row(objective, t, ev))
                    emitted += 1
            if before_ms is not None:
                emitted += self._close_period(objective, groups[g], before_ms, now)
            if alert is not NO_ALERTS and (alert.firing or alert.exhausted or alert.crossed or alert.pending):
                # Good events alone could end this state: `_must_evaluate` checks it before skipping a record.
                held.append((objective, m, alert))
                pinned = pinned or bool(alert.pending) or objective.terms.budgeting.sliced
        if held:
            self._held[indicator] = _Held(held, pinned)
        else:
            self._held.pop(indicator, None)
        return emitted

    def _left_a_period(self, indicator: str, before_ms: int, now_ms: int) -> bool:
        """Whether moving the watermark from `before_ms` to `now_ms` left any reporting period of the indicator."""
        # The periods of the indicator's kinds holding `before_ms` all hold [start, end) (their latest start, their
        # earliest end): the watermark left one of them exactly when it reached that end.
        span = self._period_spans.get(indicator)
        if span is None or not span[0] <= before_ms < span[1]:
            kinds = self._reporting.get(indicator)
            if kinds is None:
                kinds = self._reporting[indicator] = {
                    (o.reporting_period, o.timezone) for o in self.objectives.get(indicator, ())
                }
            periods = [self._period(kind, tz, before_ms) for kind, tz in kinds]
            if not periods:
                return False
            span = self._period_spans[indicator] = (max(p.start_ms for p in periods), min(p.end_ms for p in periods))
        return now_ms >= span[1]

    def _period(self, kind: PeriodKind | Calendar, tz: str, instant_ms: int) -> Period:
        """period_bounds, remembered: every record asks, and the answer changes once a period."""
        known = self._periods.get((kind, tz))
        if known is None or not known.start_ms <= instant_ms < known.end_ms:
            known = self._periods[(kind, tz)] = period_bounds(kind, tz, instant_ms)
        return known

    def _close_period(self, objective: ObjectiveConfig, group: SharedSums, before_ms: int, now_ms: int) -> int:
        """`accord.sla.breached` when the watermark left a reporting period whose compliance is below target.

        The period is judged on what had arrived when the first measurement of the next
        period came in (event time); its id is derived from objective and period, so a
        replay finds the same id.
        """
        closed = self._period(objective.reporting_period, objective.timezone, before_ms)
        if now_ms < closed.end_ms:
            return 0
        terms = period_terms(objective.terms, objective.reporting_period, objective.timezone)
        judged = judge_period(terms, group.source_for(terms), closed, closed.end_ms - 1, objective.credit_tiers)
        if judged.met is not False:
            return 0
        ev, credit = judged.evaluation, judged.credit_percent
        kind = "accord.sla.breached"
        event = period_breached_event(objective, ev, closed, credit, now_ms)
        self._events.append(
            EventRow(event["id"], objective.id, objective.agreement_id, objective.customer, kind, 0, now_ms, event)
        )
        return 1

    # --- checkpoints -----------------------------------------------------------------------------

    def has_events(self) -> bool:
        """Whether breach events wait for the next checkpoint."""
        return bool(self._events)

    def drain(self, *, quiet_statuses: int | None = None) -> Changes:
        """Everything changed since the last drain; the caller writes it in one transaction.

        Statuses whose alert state changed always come along (their transitions' sequence
        numbers must be stored with the events). Of the others, at most `quiet_statuses`
        (None: all), those waiting longest first, so one checkpoint never has to rewrite every
        objective: under load they are refreshed in turn over a few checkpoints.
        """
        changes = Changes()
        # islice, not list(...)[:n]: a checkpoint takes a few of many, and must not copy them all.
        taken = list(self._quiet) if quiet_statuses is None else list(itertools.islice(self._quiet, quiet_statuses))
        # Objectives with equal terms measured alike (one `Measured`, kept alive by `waiting`) read alike.
        judged: dict[tuple[int, int], Evaluation] = {}
        waiting = [(oid, self._quiet.pop(oid)) for oid in taken]
        for oid, (objective, measured, last_ms) in waiting:
            tid = self._terms_id.get(oid)  # None: an objective removed since (judged on its own)
            alike = (-1 if tid is None else tid, id(measured))
            ev = None if tid is None else judged.get(alike)
            if ev is None:
                ev = judged[alike] = judge(objective.terms, measured)
            alert = self.alert_states.get(oid, NO_ALERTS)
            self._statuses[oid] = StatusRow(oid, ev, alert, last_ms, objective.revision)
        names = self._names
        for indicator, key, minute in self._deltas:
            state = self.indicators.get(indicator)
            if state is None:
                continue
            name = names.get(key)
            if name is None:
                name = names[key] = series_name(key)
            counts = state.counts(key)
            if counts.holds(minute):
                c = counts.bucket(minute)
                changes.buckets.append((indicator, name, minute, c.good, c.total))
            else:
                late = counts.take_late(minute)
                if late is not None:
                    changes.bucket_deltas.append((indicator, name, minute, late.good, late.total))
        hours = summed(
            ((indicator, key, minute // 60), good, total)
            for (indicator, key, minute), (good, total) in self._deltas.items()
            if indicator in self.indicators
        )
        changes.hours = [(i, names[key], hour, good, total) for (i, key, hour), (good, total) in hours.items()]
        changes.seen = [(indicator, mid, minute) for (indicator, mid), minute in self._new_seen.items()]
        for indicator in self._dirty_indicators:
            state = self.indicators.get(indicator)
            if state is not None and state.watermark_ms is not None:
                changes.indicators.append((indicator, state.partition, state.watermark_ms))
        changes.statuses = list(self._statuses.values())
        self._latest.update(self._statuses)
        changes.events = self._events
        self._deltas = {}
        self._new_seen = {}
        self._dirty_indicators = set()
        self._statuses = {}
        self._events = []
        return changes

    def prune(self) -> list[tuple[str, int]]:
        """Forget buckets no window can reach any more and ids past the dedup horizon.

        Returns (indicator, oldest id minute kept), for the checkpoint to delete the same ids.
        """
        cut: list[tuple[str, int]] = []
        # A minute waiting for the checkpoint is written with its absolute value: its hour keeps its minutes
        # until then (the checkpoint drains before it prunes, so this is only ever a guard).
        dirty = {indicator for indicator, _, _ in self._deltas}
        for key, state in self.indicators.items():
            if state.watermark_ms is None:
                continue
            now_minute = minute_of(state.watermark_ms)
            for counts in state.series.values():
                counts.drop_before(now_minute - self.history_minutes(key))
            if key not in dirty:
                self._coarsen(key, state)
            horizon = now_minute - self.dedup_horizon_minutes
            state.seen = {i: m for i, m in state.seen.items() if m >= horizon}
            cut.append((key, horizon))
        return cut

    def retention(self, minute_days: int, hour_days: int) -> list[tuple[str, int, int]]:
        """(indicator, first minute kept, first hour kept) for the stored buckets and roll-ups of the indicators
        held here: minutes for `minute_days` but never less than the indicator's history plus a day (its windows
        slide minute by minute, so a restart loads their minutes), hours for `hour_days` and at least as long."""
        out: list[tuple[str, int, int]] = []
        for key, state in self.indicators.items():
            if state.watermark_ms is None:
                continue
            need = -(-(self.history_minutes(key) + MINUTES_PER_DAY) // MINUTES_PER_DAY)
            minutes = max(minute_days, need)
            first_minute, first_hour = retention_cutoffs(
                minute_of(state.watermark_ms), minutes, max(hour_days, minutes)
            )
            out.append((key, first_minute, first_hour))
        return out

    def stats(self) -> Mapping[str, int]:
        return {
            "indicators": len(self.indicators),
            "buckets": sum(len(c) for s in self.indicators.values() for c in s.series.values()),
            "seen_ids": sum(len(s.seen) for s in self.indicators.values()),
        }


def _event_row(objective: ObjectiveConfig, t: Transition, ev: Evaluation) -> EventRow:
    event = transition_event(objective, t, ev)
    return EventRow(
        id=event["id"],
        objective_id=objective.id,
        agreement_id=objective.agreement_id,
        customer=objective.customer,
        type=t.type.value,
        seq=t.seq,
        time_ms=ev.now_ms,
        event=event,
    )


class _Plan(NamedTuple):
    """An indicator's objectives for `_evaluate`: the series groups they read, the distinct (group, terms of
    one shape) to measure, and per objective, in order, (objective, group, shape, `_terms_id`)."""

    groups: list[SeriesGroup]
    shapes: list[tuple[int, ObjectiveTerms]]
    objectives: list[tuple[ObjectiveConfig, int, int, int]]


class _Held:
    """Objectives of one indicator holding an alert state that good events could end, with what they measured
    at the indicator's last evaluation; the good events skipped since, and a bound known to change nothing."""

    __slots__ = ("added", "objectives", "pinned", "safe")

    def __init__(self, objectives: list[tuple[ObjectiveConfig, Measured, AlertState]], pinned: bool) -> None:
        self.objectives = objectives
        self.pinned = pinned  # a pending tier or slice budgeting: every record is evaluated
        self.added = 0
        self.safe = 0


def _plus(m: Measured, n: int) -> Measured:
    """`m` as if each of its windows had `n` more good events."""
    tiers = tuple(
        (Counts(long.good + n, long.total + n), events, Counts(short.good + n, short.total + n))
        for long, events, short in m.tiers
    )
    return m._replace(units=Counts(m.units.good + n, m.units.total + n), tiers=tiers)


def objectives_of(by_indicator: Mapping[str, list[ObjectiveConfig]]) -> Iterator[ObjectiveConfig]:
    for objectives in by_indicator.values():
        yield from objectives
