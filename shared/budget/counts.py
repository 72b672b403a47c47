"""Minute-bucket counts for one series, with range sums that do not walk every minute.

A series is one indicator (and, later, one label set and one threshold predicate).
Counts live in whole-minute buckets aligned to the Unix epoch (DESIGN §3). Hour
and day roll-ups make a 30-day range sum cost about 60 + 24 + 30 lookups instead
of 43,200.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR = 60
DAY = 24 * 60


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


class SeriesCounts:
    """Mutable minute buckets of one series. Pure data structure: no clock, no I/O."""

    __slots__ = ("_days", "_hours", "_minutes", "_ranges")

    # Range sums asked for recently, kept exact by `add`: windows ending at the same minute are
    # asked again and again (every record of the indicator), and a walk costs ~100 lookups.
    RANGE_MEMO = 32

    def __init__(self) -> None:
        self._minutes: dict[int, list[int]] = {}
        self._hours: dict[int, list[int]] = {}
        self._days: dict[int, list[int]] = {}
        self._ranges: dict[tuple[int, int], list[int]] = {}

    def add(self, minute: int, good: int, total: int) -> None:
        """Count `good` of `total` events in bucket `minute`."""
        if not 0 <= good <= total:
            raise ValueError(f"counts need 0 <= good <= total, got good={good} total={total}")
        for (start, end), memo in self._ranges.items():
            if start <= minute < end:
                memo[0] += good
                memo[1] += total
        for level, key in ((self._minutes, minute), (self._hours, minute // HOUR), (self._days, minute // DAY)):
            cell = level.get(key)
            if cell is None:
                level[key] = [good, total]
            else:
                cell[0] += good
                cell[1] += total

    def bucket(self, minute: int) -> Counts:
        cell = self._minutes.get(minute)
        return Counts(cell[0], cell[1]) if cell else ZERO

    def buckets(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        """The non-empty buckets with start <= minute < end, ascending; skips empty days and hours."""
        minutes = self._minutes
        m = start
        while m < end:
            if m % DAY == 0 and m + DAY <= end and m // DAY not in self._days:
                m += DAY
            elif m % HOUR == 0 and m + HOUR <= end and m // HOUR not in self._hours:
                m += HOUR
            else:
                stop = min(end, (m // HOUR + 1) * HOUR)
                for minute in range(m, stop):
                    cell = minutes.get(minute)
                    if cell is not None and cell[1]:
                        yield minute, Counts(cell[0], cell[1])
                m = stop

    def add_slices(self, start: int, end: int, size: int, into: dict[int, list[int]]) -> None:
        """Add the buckets with start <= minute < end into `into[minute // size]` as [good, total] cells.

        The same sums as grouping `buckets()` by slice, without building a Counts per minute.
        """
        minutes = self._minutes
        m = start
        while m < end:
            if m % DAY == 0 and m + DAY <= end and m // DAY not in self._days:
                m += DAY
            elif m % HOUR == 0 and m + HOUR <= end and m // HOUR not in self._hours:
                m += HOUR
            else:
                stop = min(end, (m // HOUR + 1) * HOUR)
                for minute in range(m, stop):
                    cell = minutes.get(minute)
                    if cell is not None:
                        acc = into.get(minute // size)
                        if acc is None:
                            into[minute // size] = [cell[0], cell[1]]
                        else:
                            acc[0] += cell[0]
                            acc[1] += cell[1]
                m = stop

    def minutes(self) -> list[int]:
        """Bucket minutes that hold counts, ascending."""
        return sorted(self._minutes)

    def __len__(self) -> int:
        return len(self._minutes)

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
        good = total = 0
        m = start
        while m < end:
            if m % DAY == 0 and m + DAY <= end:
                cell = self._days.get(m // DAY)
                m += DAY
            elif m % HOUR == 0 and m + HOUR <= end:
                cell = self._hours.get(m // HOUR)
                m += HOUR
            else:
                cell = self._minutes.get(m)
                m += 1
            if cell is not None:
                good += cell[0]
                total += cell[1]
        return Counts(good, total)

    def drop_before(self, minute: int) -> int:
        """Forget buckets older than `minute`; returns how many minute buckets went."""
        self._ranges.clear()
        old = [m for m in self._minutes if m < minute]
        for m in old:
            good, total = self._minutes.pop(m)
            for level, key in ((self._hours, m // HOUR), (self._days, m // DAY)):
                cell = level.get(key)
                if cell is None:
                    continue
                cell[0] -= good
                cell[1] -= total
                if cell[1] == 0 and cell[0] == 0:
                    del level[key]
        return len(old)
