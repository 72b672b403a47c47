"""Budget, SLI and burn rates of one objective at one instant, and the alert transitions they cause.

Everything here is a pure function of its arguments (docs/design.md §3.10): the instant is
passed in, counts come from a `CountSource`, state comes in and goes out.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import accumulate
from typing import Any, NamedTuple, Protocol, runtime_checkable

from shared.budget.counts import ZERO, Counts, SeriesCounts, minute_of
from shared.budget.exclusions import Interval, excluded_intervals, included_intervals
from shared.budget.model import (
    SLICE_RATIO_SCALE,
    Budgeting,
    CalendarWindow,
    ObjectiveTerms,
    Severity,
    Window,
    error_budget,
)
from shared.timeutil import MINUTE_MS


@runtime_checkable
class CountSource(Protocol):
    def range(self, start: int, end: int) -> Counts:
        """Sum of the minute buckets with start <= minute < end."""
        ...


@runtime_checkable
class BucketSource(CountSource, Protocol):
    """A count source that can also list its buckets (needed by timeslices objectives)."""

    def buckets(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        """The non-empty buckets with start <= minute < end, ascending."""
        ...


def burn_rate(counts: Counts, target: float) -> float | None:
    """(bad / total) / (1 - target); None when there were no events."""
    if counts.total == 0:
        return None
    return (counts.bad / counts.total) / error_budget(target)


def sli(counts: Counts) -> float | None:
    """good / total; None (never 100 %) when there were no events."""
    return counts.good / counts.total if counts.total else None


def budget_consumed(counts: Counts, target: float) -> float:
    """bad / allowed, allowed = (1 - target) × total; 0 when nothing happened yet."""
    if counts.total == 0:
        return 0.0
    return counts.bad / (error_budget(target) * counts.total)


def slice_is_good(counts: Counts, good_ratio: float) -> bool:
    """A time slice with data is good when good / total >= the slice target."""
    return counts.good / counts.total >= good_ratio


def slice_ratio_units(good: int, total: int) -> int:
    """A RatioTimeslices slice's good units: good / total × SLICE_RATIO_SCALE, rounded half up (total > 0)."""
    return (2 * good * SLICE_RATIO_SCALE + total) // (2 * total)


class TierReading(NamedTuple):
    """One burn-rate tier at one instant; `long_total` counts events (not slices) for the low-traffic guard.

    NamedTuples rather than frozen dataclasses (here and for Evaluation): the evaluator builds
    them for every objective after every record, and tuples are several times cheaper to build.
    """

    name: str
    severity: Severity
    factor: float
    long_burn_rate: float | None
    short_burn_rate: float | None
    long_total: int
    burning: bool
    long_minutes: int = 0


class Evaluation(NamedTuple):
    """One objective's numbers at `now_ms`, over its window [window_start, window_end) in minutes.

    `counts` are the budgeting units: events (occurrences) or good slices / slices with data
    (timeslices), excluded time left out; `events` are always event counts. `budget_allowed`
    is how many bad units the budget allows so far, (1 - target) × counts.total.
    `period_end` is the end of a calendar window's period (None for rolling windows).
    `time_left_minutes` is how long the remaining budget lasts at the burn rate of the
    shortest tier's long window, only when it runs out within the window: within one window
    length for a rolling window, before the period ends for a calendar one (None when not
    burning, nothing is left, or the budget outlasts the window at this rate).
    """

    now_ms: int
    window_start: int
    window_end: int
    counts: Counts
    sli: float | None
    budget_consumed: float
    burn_rate: float | None
    tiers: tuple[TierReading, ...]
    events: Counts = ZERO
    unit: Budgeting = Budgeting.OCCURRENCES
    budget_allowed: float = 0.0
    time_left_minutes: float | None = None
    period_end: int | None = None

    @property
    def budget_remaining(self) -> float:
        return 1.0 - self.budget_consumed

    @property
    def budget_spent(self) -> int:
        """Bad units so far (events or slices)."""
        return self.counts.bad

    @property
    def budget_left(self) -> float:
        """Allowed bad units not yet spent; negative once the budget is overspent."""
        return self.budget_allowed - self.counts.bad


def window_bounds(window: Window, now_ms: int) -> tuple[int, int]:
    """[start, end) in minutes: the buckets whose start lies within the window, current bucket included.

    A calendar window starts at its period's first bucket.
    """
    end = minute_of(now_ms) + 1
    if isinstance(window, CalendarWindow):
        return window.period(now_ms).start, end
    return end - window.minutes, end


def time_left(
    remaining: float, rate: float | None, window_minutes: int, horizon_minutes: float | None = None
) -> float | None:
    """Minutes until the budget is gone at burn rate `rate` (rate 1 spends a whole budget in one window).

    None when nothing burns or nothing is left, and when the answer lies beyond `horizon_minutes`
    (the window: a projection past it is no exhaustion at all, the window moves on first).
    """
    if rate is None or rate <= 0 or remaining <= 0:
        return None
    minutes = remaining * window_minutes / rate
    if horizon_minutes is not None and minutes > horizon_minutes:
        return None
    return minutes


def horizon_minutes(window_minutes: int, now_ms: int, period_end: int | None) -> float:
    """How far ahead a projection of the budget means something: a rolling window's length, or
    the time until a calendar window's period ends (`period_end` in minutes) and the budget resets."""
    if period_end is None:
        return float(window_minutes)
    return max(0.0, (period_end * 60_000 - now_ms) / 60_000)


def thresholds_announced(state: AlertState) -> list[float]:
    """The budget-consumed thresholds the announced alert state stands for, in order: the crossed
    ones, and 1.0 (the whole budget) while exhaustion is announced."""
    return sorted(state.crossed | {1.0} if state.exhausted else state.crossed)


def _sources(source: CountSource | Sequence[CountSource]) -> Sequence[CountSource]:
    # A plain type check: isinstance() against a runtime Protocol is slow on the hot path.
    return source if isinstance(source, list | tuple) else (source,)


class _Units:
    """Budget units of every window ending at `end`, with excluded time left out."""

    def __init__(
        self, terms: ObjectiveTerms, sources: Sequence[CountSource], excluded: list[Interval], lo: int, end: int
    ) -> None:
        self.sources = sources
        self.excluded = excluded
        self.end = end
        self.size = terms.slice_minutes
        self.timeslices = terms.budgeting.sliced
        self.scale = SLICE_RATIO_SCALE if terms.budgeting is Budgeting.RATIO_TIMESLICES else 1
        if not self.timeslices:
            return
        # Slice k covers the buckets [k * size, (k + 1) * size) before `end`; a window counts the slices
        # whose start lies within it. Prefix sums over the sorted slices answer every window in O(log n).
        first = -(-lo // self.size) * self.size
        slices: dict[int, list[int]] = {}
        for src in sources:
            for a, b in included_intervals(first, end, excluded):
                if isinstance(src, SeriesCounts):
                    src.add_slices(a, b, self.size, slices)
                elif isinstance(src, BucketSource):
                    for minute, c in src.buckets(a, b):
                        cell = slices.setdefault(minute // self.size, [0, 0])
                        cell[0] += c.good
                        cell[1] += c.total
                else:
                    raise TypeError("a timeslices objective needs count sources with buckets() (e.g. SeriesCounts)")
        self.keys = sorted(k for k, (_, t) in slices.items() if t)
        if self.scale != 1:  # RatioTimeslices: each slice's ratio in integer units, summed exactly
            self.good_prefix = list(accumulate((slice_ratio_units(*slices[k]) for k in self.keys), initial=0))
            return
        ratio = terms.good_slice_ratio
        self.good_prefix = list(accumulate((slices[k][0] / slices[k][1] >= ratio for k in self.keys), initial=0))

    def events(self, start: int) -> Counts:
        if not self.excluded and len(self.sources) == 1:
            return self.sources[0].range(start, self.end)  # the common case, on the evaluator's hot path
        total = ZERO
        for a, b in included_intervals(start, self.end, self.excluded):
            for src in self.sources:
                total += src.range(a, b)
        return total

    def units(self, start: int, events: Counts) -> Counts:
        if not self.timeslices:
            return events
        lo = bisect.bisect_left(self.keys, -(-start // self.size))
        hi = len(self.keys)
        return Counts(self.good_prefix[hi] - self.good_prefix[lo], (hi - lo) * self.scale)


class Measured(NamedTuple):
    """The counts an evaluation needs, before any target is applied: window and every tier window.

    Objectives that read the same series with the same `shape_of` (window, tier windows,
    exclusions, budgeting) share one `Measured`, and differ only in `judge`'s arithmetic.
    `tiers` holds (long units, long events, short units) per tier, in the terms' order.
    """

    now_ms: int
    window_start: int
    window_end: int
    period_end: int | None
    units: Counts
    events: Counts
    tiers: tuple[tuple[Counts, Counts, Counts], ...]


def shape_of(terms: ObjectiveTerms) -> tuple[object, ...]:
    """What `measure` depends on besides the counts and the instant: equal shapes measure equally."""
    slices = (terms.slice_minutes, terms.good_slice_ratio) if terms.budgeting.sliced else ()
    windows = tuple((t.long_minutes, t.short_minutes) for t in terms.tiers)
    return (terms.window, windows, terms.exclusions, terms.budgeting, slices)


def measure(terms: ObjectiveTerms, source: CountSource | Sequence[CountSource], now_ms: int) -> Measured:
    """Sum the objective's window and tier windows at `now_ms`, excluded time left out."""
    sources = _sources(source)
    start, end = window_bounds(terms.window, now_ms)
    period_end = terms.window.period(now_ms).end if isinstance(terms.window, CalendarWindow) else None
    if len(sources) == 1 and not terms.exclusions and not terms.budgeting.sliced:
        # The evaluator's common case: units are events, and every window is one range of one source
        # (what _Units answers in this case, without building it).
        total = sources[0].range
        sums = tuple(
            (long, long, total(end - tier.short_minutes, end))
            for tier in terms.tiers
            for long in (total(end - tier.long_minutes, end),)
        )
        events = total(start, end)
        return Measured(now_ms, start, end, period_end, events, events, sums)
    lo = min([start, *(end - t.long_minutes for t in terms.tiers)])
    excluded = excluded_intervals(terms.exclusions, lo, end) if terms.exclusions else []
    units = _Units(terms, sources, excluded, lo, end)
    tiers = []
    for tier in terms.tiers:
        long_start, short_start = end - tier.long_minutes, end - tier.short_minutes
        long_events = units.events(long_start)
        tiers.append(
            (units.units(long_start, long_events), long_events, units.units(short_start, units.events(short_start)))
        )
    events = units.events(start)
    return Measured(now_ms, start, end, period_end, units.units(start, events), events, tuple(tiers))


def judge(terms: ObjectiveTerms, m: Measured) -> Evaluation:
    """Apply the objective's target and tiers to what was measured: arithmetic only."""
    readings = []
    budget = error_budget(terms.target)
    shortest: TierReading | None = None  # the first of the shortest long windows
    for tier, (long_units, long_events, short_units) in zip(terms.tiers, m.tiers, strict=True):
        # burn_rate(), written out (the same operations): judge runs for every status written
        long_total, short_total = long_units.total, short_units.total
        long_rate = (long_total - long_units.good) / long_total / budget if long_total else None
        short_rate = (short_total - short_units.good) / short_total / budget if short_total else None
        enough = tier.severity != Severity.PAGE or long_events.total >= terms.min_events
        burning = (
            enough
            and long_rate is not None
            and short_rate is not None
            and (long_rate >= tier.factor if tier.inclusive else long_rate > tier.factor)
            and (short_rate >= tier.factor if tier.inclusive else short_rate > tier.factor)
        )
        reading = TierReading(
            tier.name,
            tier.severity,
            tier.factor,
            long_rate,
            short_rate,
            long_events.total,
            burning,
            tier.long_minutes,
        )
        readings.append(reading)
        if shortest is None or reading.long_minutes < shortest.long_minutes:
            shortest = reading
    counts = m.units
    consumed = budget_consumed(counts, terms.target)
    return Evaluation(
        now_ms=m.now_ms,
        window_start=m.window_start,
        window_end=m.window_end,
        counts=counts,
        sli=sli(counts),
        budget_consumed=consumed,
        burn_rate=burn_rate(counts, terms.target),
        tiers=tuple(readings),
        events=m.events,
        unit=terms.budgeting,
        budget_allowed=error_budget(terms.target) * counts.total,
        time_left_minutes=time_left(
            1.0 - consumed,
            shortest.long_burn_rate if shortest else None,
            terms.window.nominal_minutes,
            horizon_minutes(terms.window.nominal_minutes, m.now_ms, m.period_end),
        ),
        period_end=m.period_end,
    )


def evaluate(terms: ObjectiveTerms, source: CountSource | Sequence[CountSource], now_ms: int) -> Evaluation:
    """Evaluate an objective's window and burn-rate tiers at `now_ms`.

    `source` is one series' counts or a sequence of them (every series the objective's
    matchers select); they are summed. Excluded time is left out of every window.
    """
    return judge(terms, measure(terms, source, now_ms))


class TransitionType(StrEnum):
    BURNRATE_FIRING = "accord.burnrate.firing"
    BURNRATE_RESOLVED = "accord.burnrate.resolved"
    BUDGET_THRESHOLD = "accord.budget.threshold"
    BUDGET_EXHAUSTED = "accord.budget.exhausted"
    BUDGET_RECOVERED = "accord.budget.recovered"


PERIOD_RESET = "period_reset"


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert-worthy change; `seq` numbers an objective's transitions, so ids are deterministic.

    `reason` is "period_reset" on the recovered event a calendar period's start causes.
    """

    type: TransitionType
    seq: int
    tier: str | None = None
    threshold: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AlertState:
    """What has already been announced for an objective.

    `period_start` is the first bucket of the calendar period the budget flags belong to
    (None for rolling windows, or before the first evaluation). `pending` holds, for each tier
    with an `alert_after` whose condition holds but has not held that long yet, since when (ms).
    """

    firing: frozenset[str] = frozenset()
    crossed: frozenset[float] = frozenset()
    exhausted: bool = False
    seq: int = 0
    period_start: int | None = None
    pending: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (sorted lists), for storage next to the objective's status."""
        return {
            "firing": sorted(self.firing),
            "crossed": sorted(self.crossed),
            "exhausted": self.exhausted,
            "seq": self.seq,
            "period_start": self.period_start,
            "pending": {name: since for name, since in self.pending},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AlertState:
        """The inverse of `to_json`; missing keys take their defaults."""
        period_start = doc.get("period_start")
        return cls(
            firing=frozenset(str(t) for t in doc.get("firing", ())),
            crossed=frozenset(float(t) for t in doc.get("crossed", ())),
            exhausted=bool(doc.get("exhausted", False)),
            seq=int(doc.get("seq", 0)),
            period_start=None if period_start is None else int(period_start),
            pending=tuple(sorted((str(k), int(v)) for k, v in dict(doc.get("pending") or {}).items())),
        )


def quiet(terms: ObjectiveTerms, state: AlertState, m: Measured) -> bool:
    """Whether `decide(terms, state, judge(terms, m))` would announce nothing and leave `state` as it is.

    The same arithmetic as `judge` and `decide`, without building readings: the evaluator asks
    this for every objective after every record, and most of the time nothing changes.
    """
    budget = error_budget(terms.target)
    firing = state.firing
    pending = state.pending
    min_events = terms.min_events
    # Written out rather than through burn_rate(): same operations in the same order, so the same
    # floats as judge(), without a call and a property per window.
    for tier, (long_units, long_events, short_units) in zip(terms.tiers, m.tiers, strict=True):
        burning = False
        long_total, short_total = long_units.total, short_units.total
        if long_total and short_total and (not min_events or tier.severity is not Severity.PAGE or
                                           long_events.total >= min_events):  # fmt: skip
            factor = tier.factor
            long_rate = (long_total - long_units.good) / long_total / budget
            if tier.inclusive:  # OpenSLO op gte: at the factor too
                burning = long_rate >= factor and (short_total - short_units.good) / short_total / budget >= factor
            else:
                burning = long_rate > factor and (short_total - short_units.good) / short_total / budget > factor
        if burning:
            if tier.name not in firing:
                # waiting out alert_after changes nothing until it has passed
                since = next((t for name, t in pending if name == tier.name), None) if pending else None
                if since is None or m.now_ms - since >= tier.alert_after_minutes * MINUTE_MS:
                    return False
        elif (firing or pending) and (tier.name in firing or any(name == tier.name for name, _ in pending)):
            return False
    if state.period_start != (m.window_start if isinstance(terms.window, CalendarWindow) else None):
        return False
    units = m.units
    consumed = (units.total - units.good) / (budget * units.total) if units.total else 0.0
    if (consumed >= 1.0) != state.exhausted:
        return False
    crossed = state.crossed
    if crossed:
        for t in crossed:
            if consumed < t:
                return False
    thresholds = terms.budget_thresholds
    if not thresholds or consumed < min(thresholds):
        return True  # the common case: no threshold reached
    return all(t >= 1.0 or consumed < t or t in crossed for t in thresholds)


def decide(terms: ObjectiveTerms, state: AlertState, ev: Evaluation) -> tuple[AlertState, list[Transition]]:
    """The transitions from `state` that `ev` causes, and the state after them.

    A tier fires when both its windows burn over the factor (and have, at every evaluation
    since, for its `alert_after`) and resolves when that clears; a tier that does not announce
    firing or resolving changes state silently; a budget threshold is announced when first crossed and re-armed when
    consumption falls back below it; exhausted at 100 % consumed, recovered below it.

    Budget thresholds and exhaustion belong to a window: when a calendar window's period
    changes, the crossed thresholds are forgotten silently (they were one-off notices),
    and an exhausted budget is announced as recovered with reason "period_reset" (so
    downstream alerting can close the exhausted alert) before the new period is judged.
    Burn-rate alerts are about rates, not periods, and carry over.
    """
    seq = state.seq
    out: list[Transition] = []

    def emit(
        kind: TransitionType, tier: str | None = None, threshold: float | None = None, reason: str | None = None
    ) -> None:
        nonlocal seq
        seq += 1
        out.append(Transition(kind, seq, tier, threshold, reason))

    firing = set(state.firing)
    pending = dict(state.pending)
    for tier, reading in zip(terms.tiers, ev.tiers, strict=True):
        if reading.burning and reading.name not in firing:
            since = pending.setdefault(reading.name, ev.now_ms)
            if ev.now_ms - since >= tier.alert_after_minutes * MINUTE_MS:
                del pending[reading.name]
                firing.add(reading.name)
                if tier.announce_firing:
                    emit(TransitionType.BURNRATE_FIRING, tier=reading.name)
        elif not reading.burning:
            pending.pop(reading.name, None)
            if reading.name in firing:
                firing.discard(reading.name)
                if tier.announce_resolved:
                    emit(TransitionType.BURNRATE_RESOLVED, tier=reading.name)

    previous_crossed = state.crossed
    exhausted = state.exhausted
    period_start = ev.window_start if isinstance(terms.window, CalendarWindow) else None
    if period_start is not None and state.period_start is not None and period_start != state.period_start:
        previous_crossed = frozenset()
        if exhausted:
            exhausted = False
            emit(TransitionType.BUDGET_RECOVERED, reason=PERIOD_RESET)

    consumed = ev.budget_consumed
    crossed = {t for t in previous_crossed if consumed >= t}
    for threshold in sorted(terms.budget_thresholds):
        if threshold < 1.0 and consumed >= threshold and threshold not in previous_crossed:
            crossed.add(threshold)
            emit(TransitionType.BUDGET_THRESHOLD, threshold=threshold)

    if consumed >= 1.0 and not exhausted:
        exhausted = True
        emit(TransitionType.BUDGET_EXHAUSTED)
    elif consumed < 1.0 and exhausted:
        exhausted = False
        emit(TransitionType.BUDGET_RECOVERED)

    new_state = replace(
        state,
        firing=frozenset(firing),
        crossed=frozenset(crossed),
        exhausted=exhausted,
        seq=seq,
        period_start=period_start,
        pending=tuple(sorted(pending.items())),
    )
    return new_state, out
