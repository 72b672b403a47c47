"""Time units and conversions, defined once: epoch milliseconds <-> datetime, minutes, durations.

Measurements and the evaluator count in epoch milliseconds and whole minutes (integers); the api
and the stored contract speak RFC 3339 and durations such as `90m` or `30s`. The conversions
here are exact: integer arithmetic on `timedelta`, never through a float of seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
MINUTES_PER_HOUR = 60
MINUTES_PER_DAY = 24 * MINUTES_PER_HOUR
DAY_MS = MINUTES_PER_DAY * MINUTE_MS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(instant: datetime) -> int:
    """Milliseconds since the epoch of an aware instant, exactly (floored to the millisecond)."""
    return (instant - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    """The UTC instant `ms` milliseconds after the epoch."""
    return EPOCH + timedelta(milliseconds=ms)


def from_minute(minute: int) -> datetime:
    """The UTC instant at the start of epoch minute `minute`."""
    return EPOCH + timedelta(minutes=minute)


# ASCII digits only (no `３0d`), and few enough of them that no later arithmetic can overflow.
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")
UNIT_MS = {
    "s": SECOND_MS,
    "m": MINUTE_MS,
    "h": MINUTES_PER_HOUR * MINUTE_MS,
    "d": DAY_MS,
    "w": 7 * DAY_MS,
}


def duration_ms(text: str, units: str = "mhd") -> int | None:
    """Milliseconds in `30s`, `90m`, `6h`, `30d`, `2w` (0 allowed), None when `text` is no duration in `units`.

    The one duration syntax of Accord: a count of ASCII digits (at most 9) and one unit letter
    (s, m, h, d, w; which ones a caller accepts is `units`). Callers bound and name the result.
    """
    match = _DURATION.fullmatch(text)
    if match is None or match.group(2) not in units:
        return None
    return int(match.group(1)) * UNIT_MS[match.group(2)]
