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


ALL_HOURS = (1 << 24) - 1


class _Hours:
    """A day held as hour cells: `sums` laid out as a dense day's (day, then hour h at 2 + 2h and 3 + 2h), and
    the minutes ([good, total] int64 pairs) only of the hours whose bit is set in `held`; an hour without
    events needs no array. About 0.5 KB a day, plus 1 KB per held hour with events."""

    __slots__ = ("held", "minutes", "sums")

    def __init__(self, day: _Sparse | _Dense | None = None, mask: int = ALL_HOURS) -> None:
        """Empty, or `day` with the minutes of the hours in `mask` (the others held as cells only)."""
        self.sums = array("q", bytes(8 * (2 + 2 * 24)))
        self.minutes: dict[int, array[int]] = {}
        self.held = 0 if day is None else mask
        if isinstance(day, _Dense):
            self.sums[:] = array("q", day.sums)
            for h in range(24):
                if day.sums[3 + 2 * h] and mask >> h & 1:
                    self.minutes[h] = day.minutes[2 * HOUR * h : 2 * HOUR * (h + 1)]
        elif day is not None:
            sums = self.sums
            for k, (good, total) in day.cells.items():
                h = k // HOUR
                sums[2 + 2 * h] += good
                sums[3 + 2 * h] += total
                if not mask >> h & 1:
                    continue
                arr = self.minutes.get(h)
                if arr is None:
                    arr = self.minutes[h] = _BLANK_HOUR[:]
                i = 2 * (k - h * HOUR)
                arr[i] += good
                arr[i + 1] += total
            sums[0], sums[1] = day.sums


def _filled(day: _Sparse | _Dense | _Hours) -> int:
    """How many minute buckets of the day hold events."""
    if isinstance(day, _Sparse):
        return len(day.cells)
    if isinstance(day, _Hours):
        return sum(HOUR - arr[1::2].count(0) for arr in day.minutes.values())
    return DAY - day.minutes[1::2].count(0)


def _hour_part(day: _Hours, h: int, a: int, b: int) -> tuple[int, int]:
    """(good, total) of minutes a <= k < b of hour h of an hour-celled day (0 <= a < b <= HOUR)."""
    if a == 0 and b == HOUR:
        return day.sums[2 + 2 * h], day.sums[3 + 2 * h]
    arr = day.minutes.get(h)
    if arr is None:
        if day.held >> h & 1 or not day.sums[3 + 2 * h]:
            return 0, 0  # no events in the hour: none in any part of it
        raise LookupError(f"the minutes of hour {h} of the day are held as an hour cell only")
    return sum(arr[2 * a : 2 * b : 2]), sum(arr[2 * a + 1 : 2 * b : 2])


def _hours_part(day: _Hours, a: int, b: int) -> tuple[int, int]:
    ha, hb = -(-a // HOUR), b // HOUR
    if ha > hb:  # within one hour
        h = a // HOUR
        return _hour_part(day, h, a - h * HOUR, b - h * HOUR)
    sums = day.sums
    good = sum(sums[2 + 2 * ha : 2 + 2 * hb : 2])
    total = sum(sums[3 + 2 * ha : 3 + 2 * hb : 2])
    if a < ha * HOUR:
        g, t = _hour_part(day, ha - 1, a - (ha - 1) * HOUR, HOUR)
        good += g
        total += t
    if hb * HOUR < b:
        g, t = _hour_part(day, hb, 0, b - hb * HOUR)
        good += g
        total += t
    return good, total


def _part(day: _Sparse | _Dense | _Hours, a: int, b: int) -> tuple[int, int]:
    """(good, total) of the day's minutes a <= k < b, for 0 <= a < b <= DAY."""
    if a == 0 and b == DAY:
        return day.sums[0], day.sums[1]
    if isinstance(day, _Hours):
        return _hours_part(day, a, b)
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

    __slots__ = ("_days", "_filled", "_late", "_ranges", "_recent", "_zeros")

    # Range sums asked for recently, kept exact by `add`: windows ending at the same minute are
    # asked again and again (every record of the indicator), and a walk costs a few dozen steps.
    # What is added to one minute (the latest, in the common case) is held apart in `_recent`, [minute,
    # good, total], until a minute other than it is added to: each remembered range is then the sum of
    # its memo and of `_recent` when the range holds its minute, and an add to that minute updates one
    # cell instead of every memo.
    RANGE_MEMO = 32
    # How many buckets a day keeps in a dict before it moves to arrays (~96 × 200 B < 25 KB).
    DENSE_AT = 96

    def __init__(self) -> None:
        self._days: dict[int, _Sparse | _Dense | _Hours] = {}
        self._zeros: set[int] = set()
        # Added to minutes whose hour is held as a cell only, since `take_late` last took them: what the next
        # checkpoint adds to the stored minute rows (memory cannot know their absolute values).
        self._late: dict[int, list[int]] = {}
        self._filled = 0  # minute buckets with total > 0
        self._ranges: dict[tuple[int, int], list[int]] = {}
        self._recent = [0, 0, 0]

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
        elif type(day) is _Hours and total and (arr := day.minutes.get(h := (k := minute % DAY) // HOUR)) is not None:
            # the common case after a state load: a minute of an hour held with its minutes (`_add_hours`, inlined)
            i = 2 * (k - h * HOUR)
            was = arr[i + 1]
            arr[i + 1] = was + total
            arr[i] += good
            _add_to_hour(day, h, good, total)
            if not was:
                self._filled += 1
                if self._zeros:
                    self._zeros.discard(minute)
        elif not self._add_other(minute, good, total):
            return
        if self._ranges:
            recent = self._recent
            if recent[0] == minute:
                recent[1] += good
                recent[2] += total
            else:
                self._settle(minute, good, total)

    def _settle(self, minute: int, good: int, total: int) -> None:
        """Move what `_recent` holds into the memos of the ranges holding its minute; hold (minute, good, total)."""
        recent = self._recent
        held, held_good, held_total = recent
        if held_total or held_good:
            for (start, end), memo in self._ranges.items():
                if start <= held < end:
                    memo[0] += held_good
                    memo[1] += held_total
        recent[0], recent[1], recent[2] = minute, good, total

    def _forget_ranges(self) -> None:
        self._ranges.clear()
        self._recent = [0, 0, 0]
        self._recent = [0, 0, 0]

    def _add_other(self, minute: int, good: int, total: int) -> bool:
        """`add` to a sparse or new day, or of total 0; False when it changed no sum or already updated the memo."""
        d = minute // DAY
        k = minute - d * DAY
        day = self._days.get(d)
        if type(day) is _Hours:
            return self._add_hours(day, minute, k, good, total)
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

    def _add_hours(self, day: _Hours, minute: int, k: int, good: int, total: int) -> bool:
        h = k // HOUR
        if day.held >> h & 1:
            arr = day.minutes.get(h)
            if arr is None:
                if not total:
                    self._zeros.add(minute)
                    return False
                arr = day.minutes[h] = _BLANK_HOUR[:]
            i = 2 * (k - h * HOUR)
            was = arr[i + 1]
            arr[i + 1] = was + total
            arr[i] += good
            if not total:
                if not was:
                    self._zeros.add(minute)
                return False
            if not was:
                self._filled += 1
                if self._zeros:
                    self._zeros.discard(minute)
        elif not day.sums[3 + 2 * h]:
            # An hour without events is known minute by minute (none): held from now on.
            day.held |= 1 << h
            first = minute - k % HOUR
            for m in [m for m in self._late if first <= m < first + HOUR] if self._late else ():
                del self._late[m]  # only zeros
            return self._add_hours(day, minute, k, good, total)
        else:
            late = self._late.get(minute)
            if late is None:
                self._late[minute] = [good, total]
            else:
                late[0] += good
                late[1] += total
            if not total:
                return False
        _add_to_hour(day, h, good, total)
        return True

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
            elif isinstance(day, _Hours):
                self.add(minute, good, total)
                continue
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
        self._forget_ranges()

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
        if isinstance(day, _Hours):
            good, total = _hour_part(day, k // HOUR, k % HOUR, k % HOUR + 1)
            return Counts(good, total) if total else ZERO
        total = day.minutes[2 * k + 1]
        return Counts(day.minutes[2 * k], total) if total else ZERO

    def _spanned(self, start: int, end: int) -> list[tuple[int, int, int, _Sparse | _Dense | _Hours]]:
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
            if isinstance(day, _Hours):
                day = _held_day(day, a, b)
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
            if isinstance(day, _Hours):
                day = _held_day(day, a, b)
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
            elif isinstance(day, _Hours):
                for h, arr in day.minutes.items():
                    out.extend(base + h * HOUR + k for k, total in enumerate(arr[1::2]) if total)
            else:
                out.extend(base + k for k, total in enumerate(day.minutes[1::2]) if total)
        out.sort()
        return out

    def __len__(self) -> int:
        return self._filled + len(self._zeros)

    def range(self, start: int, end: int) -> Counts:
        """Sum of the buckets with start <= minute < end."""
        ranges = self._ranges
        memo = ranges.get((start, end))
        minute, good, total = self._recent
        if memo is None:
            if len(ranges) >= self.RANGE_MEMO:
                self._forget_ranges()
                minute = good = total = 0
            walked = self._walk(start, end)
            if start <= minute < end:
                ranges[(start, end)] = [walked.good - good, walked.total - total]
            else:
                ranges[(start, end)] = [walked.good, walked.total]
            return walked
        if start <= minute < end:
            return Counts(memo[0] + good, memo[1] + total)
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
        self._forget_ranges()
        zeros = [m for m in self._zeros if m < minute] if self._zeros else []
        self._zeros.difference_update(zeros)
        cut, o = divmod(minute, DAY)
        filled = 0
        for d in [d for d in self._days if d < cut]:
            filled += _filled(self._days.pop(d))
        day = self._days.get(cut)
        if isinstance(day, _Hours):
            if o:
                filled += _drop_hours_before(day, o)
                if not day.sums[1]:
                    del self._days[cut]
        elif day is not None and o:
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

    # --- hours held as cells only ------------------------------------------------------------------
    # Old history can be held as hour cells, with the minutes only of the hours an evaluation reads one by
    # one (rollups.held_minutes). Sums over whole hours come from the cells; asking for part of an hour held
    # only as a cell (and not empty) raises LookupError, never a wrong sum. `add` to such an hour adds to its
    # cell and to `_late` (the delta the checkpoint adds to the stored minute).

    def holds(self, minute: int) -> bool:
        """Whether the minute's own bucket is held (False: only its hour's cell is)."""
        day = self._days.get(minute // DAY)
        return not isinstance(day, _Hours) or bool(day.held >> (minute % DAY // HOUR) & 1)

    def take_late(self, minute: int) -> Counts | None:
        """What was added to `minute` while its hour was held as a cell only, since the last take (forgotten)."""
        late = self._late.pop(minute, None)
        return None if late is None else Counts(late[0], late[1])

    def load_held(
        self,
        spans: Sequence[tuple[int, int]],
        minutes: Sequence[int],
        goods: Sequence[int],
        totals: Sequence[int],
        hours: Sequence[int],
        hour_goods: Sequence[int],
        hour_totals: Sequence[int],
    ) -> None:
        """An empty series from stored rows: the minute buckets of the sorted whole-hour minute `spans` (`minutes`
        all within the spans; ascending is fastest) and hour cells for the other hours (cells of hours in the
        spans are left out: their minutes are the truth). A whole hour of minutes is copied as arrays."""
        if self._days or self._zeros:
            raise ValueError("load_held loads an empty series")
        if not all(map(operator.lt, minutes, itertools.islice(minutes, 1, None))):
            merged: dict[int, list[int]] = {}
            for minute, good, total in zip(minutes, goods, totals, strict=True):
                cell = merged.setdefault(minute, [0, 0])
                cell[0] += good
                cell[1] += total
            minutes = sorted(merged)
            goods, totals = [merged[m][0] for m in minutes], [merged[m][1] for m in minutes]
        days: dict[int, _Hours] = {}
        # the hours of the spans that rows can fall in (the last span is open-ended: "from here on")
        last = [minutes[-1] // HOUR] if len(minutes) else []
        top = max([*last, *hours], default=0) + 1
        held_hours = {h for a, b in spans for h in range(a // HOUR, min(-(-b // HOUR), top))}

        def day_of(d: int) -> _Hours:
            day = days.get(d)
            if day is None:
                day = days[d] = _Hours()
                day.held = sum(1 << h for h in range(24) if d * 24 + h in held_hours)
            return day

        if len(hours) != len(hour_goods) or len(hours) != len(hour_totals):
            raise ValueError("hours, goods and totals must have the same length")
        ascending = all(map(operator.lt, hours, itertools.islice(hours, 1, None)))
        i, n = 0, len(hours)
        while i < n:
            d = hours[i] // 24
            j = bisect.bisect_left(hours, (d + 1) * 24, i) if ascending else n
            gs, ts = hour_goods[i:j], hour_totals[i:j]
            if (
                ascending
                and j - i == 24
                and d not in days
                and min(gs) >= 0
                and all(map(operator.le, gs, ts))
                and not any(d * 24 + h in held_hours for h in range(24))
            ):  # a whole day of cells, none held: copied as arrays
                day = days[d] = _Hours()
                day.sums[2::2] = array("q", gs)
                day.sums[3::2] = array("q", ts)
                day.sums[0], day.sums[1] = sum(gs), sum(ts)
                i = j
                continue
            for hour, good, total in zip(hours[i:j], gs, ts, strict=True):
                if hour in held_hours:
                    continue
                if not 0 <= good <= total:
                    raise ValueError(f"counts need 0 <= good <= total, got good={good} total={total}")
                dd, h = divmod(hour, 24)
                _add_to_hour(days.get(dd) or day_of(dd), h, good, total)
            i = j
        filled = 0
        i, n = 0, len(minutes)
        while i < n:
            hour = minutes[i] // HOUR
            j = bisect.bisect_left(minutes, (hour + 1) * HOUR, i)
            gs, ts = goods[i:j], totals[i:j]
            if min(gs) < 0 or not all(map(operator.le, gs, ts)):
                raise ValueError("counts need 0 <= good <= total")
            d, h = divmod(hour, 24)
            day = day_of(d)
            if not day.held >> h & 1:
                raise ValueError(f"minutes of hour {hour} are outside the spans")
            arr = _BLANK_HOUR[:]
            if j - i == HOUR:
                arr[0::2] = array("q", gs)
                arr[1::2] = array("q", ts)
            else:
                for minute, good, total in zip(minutes[i:j], gs, ts, strict=True):
                    k = 2 * (minute - hour * HOUR)
                    arr[k] = good
                    arr[k + 1] = total
            good, total = sum(gs), sum(ts)
            nonzero = HOUR - arr[1::2].count(0)
            if nonzero < j - i:  # buckets stored with total 0
                self._zeros.update(m for m, t in zip(minutes[i:j], ts, strict=True) if not t)
            if total:
                day.minutes[h] = arr
                filled += nonzero
                _add_to_hour(day, h, good, total)
            i = j
        self._days.update(days)
        self._filled = filled
        self._forget_ranges()

    def add_cells(self, hours: Sequence[int], goods: Sequence[int], totals: Sequence[int]) -> None:
        """Hold hour cells (hour = minute // 60) for hours whose minutes are not held (a state load): each
        hour's minutes must hold nothing yet. Hours never given, and without minutes, hold no events."""
        days = self._days
        for hour, good, total in zip(hours, goods, totals, strict=True):
            if not 0 <= good <= total:
                raise ValueError(f"counts need 0 <= good <= total, got good={good} total={total}")
            d, h = divmod(hour, 24)
            day = days.get(d)
            if not isinstance(day, _Hours):
                day = days[d] = _Hours(day)
            sums = day.sums
            if h in day.minutes or sums[3 + 2 * h]:
                raise ValueError(f"hour {hour} already holds counts")
            day.held &= ~(1 << h)
            sums[2 + 2 * h] = good
            sums[3 + 2 * h] = total
            sums[0] += good
            sums[1] += total
        self._forget_ranges()

    def coarsen(self, keep: Sequence[tuple[int, int]], before: int) -> int:
        """Hold as hour cells only the hours before minute `before` that meet none of the sorted, disjoint
        minute spans `keep`; returns how many minute buckets went. Sums do not change."""
        dropped = 0
        spans = list(keep)
        for d in sorted(self._days):
            if d * DAY >= before:
                break
            mask = 0
            day = self._days[d]
            if (d + 1) * DAY > before or _meets(spans, d * DAY, (d + 1) * DAY):  # else no hour of it is kept
                for h in range(24):
                    first = d * DAY + h * HOUR
                    if first + HOUR > before or _meets(spans, first, first + HOUR):
                        mask |= 1 << h
                if mask == ALL_HOURS:
                    continue
            elif type(day) is _Hours and not day.held:
                continue  # already hour cells only (most of a long history, after the first time)
            if not isinstance(day, _Hours):
                self._days[d] = _Hours(day, mask)
                dropped += _filled(day) - _filled(self._days[d])
                continue
            if day.held & ~mask:
                for h in range(24):
                    if day.held >> h & 1 and not mask >> h & 1:
                        arr = day.minutes.pop(h, None)
                        if arr is not None:
                            dropped += HOUR - arr[1::2].count(0)
                day.minutes = dict(day.minutes)  # a dict does not shrink when emptied
                day.held &= mask
        self._filled -= dropped
        return dropped

    def coarse_hours(self, spans: Sequence[tuple[int, int]]) -> list[int]:
        """The hours meeting the minute `spans` that are held as cells only and hold events (to fetch)."""
        out: list[int] = []
        merged = sorted(spans)
        for d, day in self._days.items():
            if not isinstance(day, _Hours) or day.held == ALL_HOURS:
                continue
            for h in range(24):
                first = d * DAY + h * HOUR
                if not day.held >> h & 1 and day.sums[3 + 2 * h] and _meets(merged, first, first + HOUR):
                    out.append(d * 24 + h)
        return sorted(out)

    def fill(self, hours: Sequence[int], minutes: Sequence[int], goods: Sequence[int], totals: Sequence[int]) -> int:
        """Hold the minutes of `hours` (held as cells only) from stored buckets, plus what `_late` added since
        (not stored yet); hours already held are left alone (memory is ahead). Returns how many hours' stored
        minutes did not sum to the cell (the cell is then set to the minutes' sum)."""
        wanted = {}
        for hour in hours:
            day = self._days.get(hour // 24)
            if isinstance(day, _Hours) and not day.held >> (hour % 24) & 1:
                wanted[hour] = _BLANK_HOUR[:]
        for minute, good, total in zip(minutes, goods, totals, strict=True):
            arr = wanted.get(minute // HOUR)
            if arr is not None:
                i = 2 * (minute % HOUR)
                arr[i] += good
                arr[i + 1] += total
        mismatched = 0
        for hour, arr in wanted.items():
            first = hour * HOUR
            for minute in [m for m in self._late if first <= m < first + HOUR] if self._late else ():
                good, total = self._late.pop(minute)
                i = 2 * (minute - first)
                arr[i] += good
                arr[i + 1] += total
            d, h = divmod(hour, 24)
            day = self._days[d]
            assert isinstance(day, _Hours)
            good, total = sum(arr[0::2]), sum(arr[1::2])
            sums = day.sums
            if (good, total) != (sums[2 + 2 * h], sums[3 + 2 * h]):
                mismatched += 1
                sums[0] += good - sums[2 + 2 * h]
                sums[1] += total - sums[3 + 2 * h]
                sums[2 + 2 * h], sums[3 + 2 * h] = good, total
                self._forget_ranges()
            day.held |= 1 << h
            if total:
                day.minutes[h] = arr
                self._filled += HOUR - arr[1::2].count(0)
        return mismatched


def _add_to_hour(day: _Hours, h: int, good: int, total: int) -> None:
    """Count `good` of `total` events in hour h of an hour-celled day's sums (the hour's cell and the day's)."""
    sums = day.sums
    sums[2 + 2 * h] += good
    sums[3 + 2 * h] += total
    sums[0] += good
    sums[1] += total


def _add_cell(into: dict[int, list[int]], key: int, good: int, total: int) -> None:
    acc = into.get(key)
    if acc is None:
        into[key] = [good, total]
    else:
        acc[0] += good
        acc[1] += total


def _meets(spans: Sequence[tuple[int, int]], a: int, b: int) -> bool:
    """Whether [a, b) meets one of the sorted, disjoint `spans`."""
    i = bisect.bisect_right(spans, (a, 1 << 62)) - 1
    if i >= 0 and spans[i][1] > a:
        return True
    return i + 1 < len(spans) and spans[i + 1][0] < b


def _held_day(day: _Hours, a: int, b: int) -> _Dense:
    """The minutes a <= k < b of an hour-celled day as a dense day; LookupError when one of them is not held."""
    dense = _Dense()
    for h in range(a // HOUR, (b - 1) // HOUR + 1):
        if not day.held >> h & 1 and day.sums[3 + 2 * h]:
            raise LookupError(f"the minutes of hour {h} of the day are held as an hour cell only")
        arr = day.minutes.get(h)
        if arr is not None:
            dense.minutes[2 * HOUR * h : 2 * HOUR * (h + 1)] = arr
            dense.sums[2 + 2 * h] = day.sums[2 + 2 * h]
            dense.sums[3 + 2 * h] = day.sums[3 + 2 * h]
    dense.sums[0], dense.sums[1] = sum(dense.sums[2::2]), sum(dense.sums[3::2])
    return dense


def _drop_hours_before(day: _Hours, o: int) -> int:
    """Forget an hour-celled day's minutes before minute of day `o`: whole hours, and the held minutes of the
    hour of `o` (an hour held only as a cell stays whole: nothing reads before the cut); buckets dropped."""
    sums, filled = day.sums, 0
    for h in range(o // HOUR):
        arr = day.minutes.pop(h, None)
        if arr is not None:
            filled += HOUR - arr[1::2].count(0)
        sums[0] -= sums[2 + 2 * h]
        sums[1] -= sums[3 + 2 * h]
        sums[2 + 2 * h] = sums[3 + 2 * h] = 0
        day.held |= 1 << h  # empty now
    h = o // HOUR
    arr = day.minutes.get(h)
    if arr is not None:
        for k in range(o - h * HOUR):
            good, total = arr[2 * k], arr[2 * k + 1]
            if total:
                filled += 1
            sums[0] -= good
            sums[1] -= total
            sums[2 + 2 * h] -= good
            sums[3 + 2 * h] -= total
            arr[2 * k] = arr[2 * k + 1] = 0
    return filled
