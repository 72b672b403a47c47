"""Minute-bucket counts for one series, with range sums that do not walk every minute.

A series is one indicator (and, later, one label set and one threshold predicate).
Counts live in whole-minute buckets aligned to the Unix epoch (docs/design.md §3.6), kept per
day: a sparse day as a small dict, a dense one as one int64 array with hour and day
roll-ups, so a 30-day range sum costs about 30 lookups and a few array slices instead
of 43,200 lookups.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY, MINUTES_PER_HOUR

HOUR, DAY = MINUTES_PER_HOUR, MINUTES_PER_DAY  # in minutes: the short names of this module's bucket arithmetic


@dataclass(frozen=True, slots=True)
class Counts:
    """Good and total events; bad = total - good."""

    good: int = 0
    total: int = 0

    @property
    def bad(self) -> int:
        return self.total - self.good

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.good + other.good, self.total + other.total)


ZERO = Counts()


def minute_of(timestamp_ms: int) -> int:
    """The bucket (minutes since the epoch) a timestamp in milliseconds falls in."""
    return timestamp_ms // MINUTE_MS


class _Sparse:
    """A day with few buckets: {minute of day: [good, total]}; sums = [good, total] of the day."""

    __slots__ = ("cells", "sums")

    def __init__(self) -> None:
        self.cells: dict[int, list[int]] = {}
        self.sums = [0, 0]


# A dense day keeps good and total of minute k at minutes[2k] and minutes[2k + 1] (int64), and in
# sums (Python ints, so lists: faster to update than an array) good and total of the day at 0 and 1,
# of hour h at 2 + 2h and 3 + 2h.
_BLANK_MINUTES = array("q", bytes(8 * 2 * DAY))
_BLANK_HOUR = array("q", bytes(8 * 2 * HOUR))
_RUNS_FROM = 5  # add_slices sums the minutes of a slice with sum() from this slice size up (measured)


class _Dense:
    """A day with many buckets, about 25 KB whatever the counts."""

    __slots__ = ("minutes", "sums")

    def __init__(self, sparse: _Sparse | None = None) -> None:
        self.minutes = _BLANK_MINUTES[:]
        self.sums = [0] * (2 + 2 * 24)
        if sparse is not None:
            minutes, sums = self.minutes, self.sums
            for k, (good, total) in sparse.cells.items():
                minutes[2 * k] = good
                minutes[2 * k + 1] = total
                sums[2 + k // HOUR * 2] += good
                sums[3 + k // HOUR * 2] += total
            sums[0], sums[1] = sparse.sums


def _filled(day: _Sparse | _Dense) -> int:
    """How many minute buckets of the day hold events."""
    if isinstance(day, _Sparse):
        return len(day.cells)
    return DAY - day.minutes[1::2].count(0)


def _part(day: _Sparse | _Dense, a: int, b: int) -> tuple[int, int]:
    """(good, total) of the day's minutes a <= k < b, for 0 <= a < b <= DAY."""
    if a == 0 and b == DAY:
        return day.sums[0], day.sums[1]
    if isinstance(day, _Sparse):
        good = total = 0
        for k, cell in day.cells.items():
            if a <= k < b:
                good += cell[0]
                total += cell[1]
        return good, total
    minutes = day.minutes
    ha, hb = -(-a // HOUR), b // HOUR
    if ha > hb:  # within one hour
        return sum(minutes[2 * a : 2 * b : 2]), sum(minutes[2 * a + 1 : 2 * b : 2])
    # minutes up to the first whole hour, whole hours, minutes after the last whole hour
    good = sum(minutes[2 * a : 2 * HOUR * ha : 2]) + sum(minutes[2 * HOUR * hb : 2 * b : 2])
    total = sum(minutes[2 * a + 1 : 2 * HOUR * ha : 2]) + sum(minutes[2 * HOUR * hb + 1 : 2 * b : 2])
    if ha < hb:
        good += sum(day.sums[2 + 2 * ha : 2 + 2 * hb : 2])
        total += sum(day.sums[3 + 2 * ha : 3 + 2 * hb : 2])
    return good, total


class SeriesCounts:
    """Mutable minute buckets of one series. Pure data structure: no clock, no I/O.

    Buckets are kept per day. A day with few buckets keeps them in a dict (`_Sparse`, ~200 B a
    bucket); past `DENSE_AT` buckets it becomes one int64 array of [good, total] per minute plus
    hour and day sums (`_Dense`, ~25 KB), so a dense 30-day series takes ~0.75 MB (it took 5.7 with
    a dict of lists per level). A minute bucket holds fewer than 2**63 events. Buckets added with
    total 0 hold nothing but still count as buckets (`len`, `minutes`): they live in `_zeros`.
    """

    __slots__ = ("_days", "_filled", "_ranges", "_zeros")

    # Range sums asked for recently, kept exact by `add`: windows ending at the same minute are
    # asked again and again (every record of the indicator), and a walk costs a few dozen steps.
    RANGE_MEMO = 32
    # How many buckets a day keeps in a dict before it moves to arrays (~96 × 200 B < 25 KB).
    DENSE_AT = 96

    def __init__(self) -> None:
        self._days: dict[int, _Sparse | _Dense] = {}
        self._zeros: set[int] = set()
        self._filled = 0  # minute buckets with total > 0
        self._ranges: dict[tuple[int, int], list[int]] = {}

    def add(self, minute: int, good: int, total: int) -> None:
        """Count `good` of `total` events in bucket `minute`."""
        if not 0 <= good <= total:
            raise ValueError(f"counts need 0 <= good <= total, got good={good} total={total}")
        d = minute // DAY
        day = self._days.get(d)
        if type(day) is _Dense and total:  # the common case
            k = minute - d * DAY
            i = k + k
            minutes = day.minutes
            was = minutes[i + 1]
            minutes[i + 1] = was + total  # first: an OverflowError leaves everything as it was
            minutes[i] += good
            sums = day.sums
            sums[0] += good
            sums[1] += total
            h = 2 + k // HOUR * 2
            sums[h] += good
            sums[h + 1] += total
            if not was:
                self._filled += 1
                if self._zeros:
                    self._zeros.discard(minute)
        elif not self._add_other(minute, good, total):
            return
        for (start, end), memo in self._ranges.items():
            if start <= minute < end:
                memo[0] += good
                memo[1] += total

    def _add_other(self, minute: int, good: int, total: int) -> bool:
        """`add` to a sparse or new day, or of total 0; False when it changed no sum or already updated the memo."""
        d = minute // DAY
        k = minute - d * DAY
        day = self._days.get(d)
        if not total:
            if day is None or not (k in day.cells if isinstance(day, _Sparse) else day.minutes[2 * k + 1]):
                self._zeros.add(minute)
            return False
        if day is None:
            day = self._days[d] = _Sparse() if self.DENSE_AT else _Dense()
        if isinstance(day, _Sparse):
            cell = day.cells.get(k)
            if cell is None and len(day.cells) >= self.DENSE_AT:
                self._days[d] = _Dense(day)
            else:
                if cell is None:
                    day.cells[k] = [good, total]
                    self._filled += 1
                    if self._zeros:
                        self._zeros.discard(minute)
                else:
                    cell[0] += good
                    cell[1] += total
                day.sums[0] += good
                day.sums[1] += total
                return True
        self.add(minute, good, total)  # to a dense day now
        return False

    def load(self, minutes: Sequence[int], goods: Sequence[int], totals: Sequence[int]) -> None:
        """`add` each (minute, good, total), faster for the days that will be dense (a state load)."""
        if len(minutes) != len(goods) or len(minutes) != len(totals):
            raise ValueError("minutes, goods and totals must have the same length")
        if not self._days and all(map(operator.lt, minutes, itertools.islice(minutes, 1, None))):
            minutes, goods, totals = self._load_full_days(minutes, goods, totals)
        per_day = Counter(m // DAY for m in minutes)
        days = self._days
        for minute, good, total in zip(minutes, goods, totals, strict=True):
            d = minute // DAY
            if not total or per_day[d] <= self.DENSE_AT or not 0 <= good <= total:
                self.add(minute, good, total)  # the general path (and its checks)
                continue
            day = days.get(d)
            if day is None:
                day = days[d] = _Dense()
            elif isinstance(day, _Sparse):
                day = days[d] = _Dense(day)
            k = minute - d * DAY
            cells = day.minutes
            was = cells[2 * k + 1]
            cells[2 * k + 1] = was + total
            cells[2 * k] += good
            sums = day.sums
            sums[0] += good
            sums[1] += total
            h = 2 + k // HOUR * 2
            sums[h] += good
            sums[h + 1] += total
            if not was:
                self._filled += 1
                if self._zeros:
                    self._zeros.discard(minute)
        self._ranges.clear()

    def _load_full_days(
        self, minutes: Sequence[int], goods: Sequence[int], totals: Sequence[int]
    ) -> tuple[Sequence[int], Sequence[int], Sequence[int]]:
        """Load the days whose 1,440 minutes all hold events from ascending `minutes` with array copies
        (C speed, no per-minute Python); return the buckets left for the general path."""
        rest: tuple[list[int], list[int], list[int]] = ([], [], [])
        i, n = 0, len(minutes)
        while i < n:
            d = minutes[i] // DAY
            j = bisect.bisect_left(minutes, (d + 1) * DAY, i)
            gs, ts = goods[i:j], totals[i:j]
            if j - i == DAY and min(gs) >= 0 and 0 not in ts and all(map(operator.le, gs, ts)):
                day = _Dense()
                day.minutes[0::2] = array("q", gs)
                day.minutes[1::2] = array("q", ts)
                sums = day.sums
                for h in range(24):
                    sums[2 + 2 * h] = sum(gs[h * HOUR : (h + 1) * HOUR])
                    sums[3 + 2 * h] = sum(ts[h * HOUR : (h + 1) * HOUR])
                sums[0], sums[1] = sum(sums[2::2]), sum(sums[3::2])
                self._days[d] = day
                self._filled += DAY
            else:
                rest[0].extend(minutes[i:j])
                rest[1].extend(gs)
                rest[2].extend(ts)
            i = j
        return rest

    def bucket(self, minute: int) -> Counts:
        d = minute // DAY
        day = self._days.get(d)
        if day is None:
            return ZERO
        k = minute - d * DAY
        if isinstance(day, _Sparse):
            cell = day.cells.get(k)
            return Counts(cell[0], cell[1]) if cell else ZERO
        total = day.minutes[2 * k + 1]
        return Counts(day.minutes[2 * k], total) if total else ZERO

    def _spanned(self, start: int, end: int) -> list[tuple[int, int, int, _Sparse | _Dense]]:
        """(first minute, a, b, day) of the days with buckets in [start, end), ascending; a <= minute of day < b."""
        if start >= end:
            return []
        first, last = start // DAY, (end - 1) // DAY
        days = self._days
        if last - first < len(days):
            found = [(d, days.get(d)) for d in range(first, last + 1)]
        else:
            found = [(d, days[d]) for d in sorted(days) if first <= d <= last]
        out = []
        for d, day in found:
            if day is not None:
                base = d * DAY
                out.append((base, max(start - base, 0), min(end - base, DAY), day))
        return out

    def buckets(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        """The non-empty buckets with start <= minute < end, ascending; skips empty days and hours."""
        for base, a, b, day in self._spanned(start, end):
            if isinstance(day, _Sparse):
                cells = day.cells
                for k in sorted(cells):
                    if a <= k < b:
                        cell = cells[k]
                        yield base + k, Counts(cell[0], cell[1])
                continue
            minutes, sums = day.minutes, day.sums
            k = a
            while k < b:
                h = k // HOUR
                stop = min(b, (h + 1) * HOUR)
                if sums[3 + 2 * h]:
                    goods, totals = minutes[2 * k : 2 * stop : 2], minutes[2 * k + 1 : 2 * stop : 2]
                    for j, good, total in zip(range(base + k, base + stop), goods, totals, strict=True):
                        if total:
                            yield j, Counts(good, total)
                k = stop

    def add_slices(self, start: int, end: int, size: int, into: dict[int, list[int]]) -> None:
        """Add the buckets with start <= minute < end into `into[minute // size]` as [good, total] cells.

        The same sums as grouping `buckets()` by slice, without building a Counts per minute.
        A bucket added with total 0 gives its slice a cell too (maybe [0, 0]).
        """
        for base, a, b, day in self._spanned(start, end):
            if isinstance(day, _Sparse):
                cells = day.cells
                for k in sorted(cells):
                    if a <= k < b:
                        good, total = cells[k]
                        _add_cell(into, (base + k) // size, good, total)
                continue
            minutes, sums = day.minutes, day.sums
            if a == 0 and b == DAY and base // size == (base + DAY - 1) // size:
                _add_cell(into, base // size, sums[0], sums[1])  # the whole day in one slice
                continue
            k = a
            while k < b:
                h = k // HOUR
                stop = min(b, (h + 1) * HOUR)
                if sums[3 + 2 * h]:
                    first = base + h * HOUR
                    if stop - k == HOUR and first // size == (first + HOUR - 1) // size:
                        _add_cell(into, first // size, sums[2 + 2 * h], sums[3 + 2 * h])  # the hour in one slice
                    elif size < _RUNS_FROM:
                        goods, totals = minutes[2 * k : 2 * stop : 2], minutes[2 * k + 1 : 2 * stop : 2]
                        # _add_cell, inlined: this loop runs per minute of a timeslices window.
                        for j, good, total in zip(range(base + k, base + stop), goods, totals, strict=True):
                            if total:
                                key = j // size
                                acc = into.get(key)
                                if acc is None:
                                    into[key] = [good, total]
                                else:
                                    acc[0] += good
                                    acc[1] += total
                    else:  # slice by slice: the minutes of the hour in one slice, summed in C
                        r = k
                        while r < stop:
                            key = (base + r) // size
                            until = min(stop, (key + 1) * size - base)
                            total = sum(minutes[2 * r + 1 : 2 * until : 2])
                            if total:
                                _add_cell(into, key, sum(minutes[2 * r : 2 * until : 2]), total)
                            r = until
                k = stop
        if self._zeros:
            for minute in self._zeros:
                if start <= minute < end:
                    into.setdefault(minute // size, [0, 0])

    def minutes(self) -> list[int]:
        """Bucket minutes that hold counts, ascending."""
        out = list(self._zeros)
        for d, day in self._days.items():
            base = d * DAY
            if isinstance(day, _Sparse):
                out.extend(base + k for k in day.cells)
            else:
                out.extend(base + k for k, total in enumerate(day.minutes[1::2]) if total)
        out.sort()
        return out

    def __len__(self) -> int:
        return self._filled + len(self._zeros)

    def range(self, start: int, end: int) -> Counts:
        """Sum of the buckets with start <= minute < end."""
        memo = self._ranges.get((start, end))
        if memo is None:
            if len(self._ranges) >= self.RANGE_MEMO:
                self._ranges.clear()
            walked = self._walk(start, end)
            self._ranges[(start, end)] = [walked.good, walked.total]
            return walked
        return Counts(memo[0], memo[1])

    def _walk(self, start: int, end: int) -> Counts:
        if start >= end:
            return ZERO
        first, a = divmod(start, DAY)
        last, b = divmod(end, DAY)
        days = self._days
        if first == last:
            day = days.get(first)
            if day is None:
                return ZERO
            good, total = _part(day, a, b)
            return Counts(good, total)
        good = total = 0
        day = days.get(first)
        if day is not None:
            good, total = _part(day, a, DAY)
        if b:
            day = days.get(last)
            if day is not None:
                g, t = _part(day, 0, b)
                good += g
                total += t
        if last - first - 1 <= len(days):
            for d in range(first + 1, last):
                day = days.get(d)
                if day is not None:
                    sums = day.sums
                    good += sums[0]
                    total += sums[1]
        else:
            for d, day in days.items():
                if first < d < last:
                    sums = day.sums
                    good += sums[0]
                    total += sums[1]
        return Counts(good, total)

    def drop_before(self, minute: int) -> int:
        """Forget buckets older than `minute`; returns how many minute buckets went."""
        self._ranges.clear()
        zeros = [m for m in self._zeros if m < minute] if self._zeros else []
        self._zeros.difference_update(zeros)
        cut, o = divmod(minute, DAY)
        filled = 0
        for d in [d for d in self._days if d < cut]:
            filled += _filled(self._days.pop(d))
        day = self._days.get(cut)
        if day is not None and o:
            sums = day.sums
            if isinstance(day, _Sparse):
                for k in [k for k in day.cells if k < o]:
                    good, total = day.cells.pop(k)
                    sums[0] -= good
                    sums[1] -= total
                    filled += 1
            else:
                minutes = day.minutes
                for h in range(o // HOUR):  # whole hours
                    if sums[3 + 2 * h]:
                        filled += HOUR - minutes[2 * HOUR * h + 1 : 2 * HOUR * (h + 1) : 2].count(0)
                        sums[0] -= sums[2 + 2 * h]
                        sums[1] -= sums[3 + 2 * h]
                        sums[2 + 2 * h] = sums[3 + 2 * h] = 0
                        minutes[2 * HOUR * h : 2 * HOUR * (h + 1)] = _BLANK_HOUR
                h = 2 + o // HOUR * 2
                for k in range(o // HOUR * HOUR, o):  # the rest, in the hour of the cut
                    total = minutes[2 * k + 1]
                    if total:
                        good = minutes[2 * k]
                        sums[0] -= good
                        sums[1] -= total
                        sums[h] -= good
                        sums[h + 1] -= total
                        minutes[2 * k] = minutes[2 * k + 1] = 0
                        filled += 1
            if not sums[1]:
                del self._days[cut]
        self._filled -= filled
        return filled + len(zeros)


def _add_cell(into: dict[int, list[int]], key: int, good: int, total: int) -> None:
    acc = into.get(key)
    if acc is None:
        into[key] = [good, total]
    else:
        acc[0] += good
        acc[1] += total
