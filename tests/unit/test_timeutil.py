"""shared.timeutil: exact epoch conversions and the one duration syntax."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.timeutil import DAY_MS, MINUTE_MS, duration_ms, from_minute, from_ms, to_ms


@given(st.integers(0, 253_402_300_799_999))  # up to the last millisecond of the year 9999
def test_epoch_milliseconds_round_trip_exactly(ms: int) -> None:
    assert to_ms(from_ms(ms)) == ms


def test_conversions_need_no_float_and_read_any_offset() -> None:
    late = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    assert to_ms(late) == 253_402_300_799_999  # a float of seconds loses the last millisecond up here
    berlin = datetime(2030, 3, 29, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert to_ms(berlin) == to_ms(datetime(2030, 3, 29, 12, 0, tzinfo=UTC))
    assert to_ms(datetime(2030, 1, 1, 0, 0, 0, 999, tzinfo=UTC)) % 1000 == 0  # floored to the millisecond
    assert from_minute(1) == from_ms(MINUTE_MS)


@pytest.mark.parametrize(
    ("text", "units", "expected"),
    [
        ("30s", "smhd", 30_000),
        ("90m", "mhd", 90 * MINUTE_MS),
        ("6h", "mhd", 6 * 60 * MINUTE_MS),
        ("30d", "mhd", 30 * DAY_MS),
        ("2w", "smhdw", 14 * DAY_MS),
        ("0m", "mhd", 0),
        ("30s", "mhd", None),  # a unit the caller does not take
        ("３0d", "mhd", None),  # ASCII digits only
        ("1234567890m", "mhd", None),  # at most 9 digits: no later overflow
        ("5 m", "mhd", None),
        ("m", "mhd", None),
        ("1M", "smhdw", None),
    ],
)
def test_one_duration_syntax(text: str, units: str, expected: int | None) -> None:
    assert duration_ms(text, units) == expected
