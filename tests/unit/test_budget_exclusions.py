"""Excluded time by table: one-off and RRULE maintenance windows, business hours with holidays."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from shared.budget import (
    BusinessHours,
    Counts,
    MaintenanceWindow,
    ObjectiveTerms,
    RecurringMaintenance,
    RollingWindow,
    SeriesCounts,
    default_tiers,
    evaluate,
    excluded_intervals,
    included_intervals,
    merge_intervals,
    minute_of,
)

DAY = 24 * 60


def minute(text: str) -> int:
    return minute_of(int(datetime.fromisoformat(text).timestamp() * 1000))


def span(start: str, end: str) -> tuple[int, int]:
    return minute(start), minute(end)


@pytest.mark.parametrize(
    ("intervals", "merged"),
    [
        ([], []),
        ([(5, 10), (0, 3)], [(0, 3), (5, 10)]),
        ([(0, 5), (5, 10)], [(0, 10)]),
        ([(0, 10), (2, 3), (9, 12), (20, 20)], [(0, 12)]),
    ],
)
def test_intervals_merge_sorted_and_joined(intervals: list[tuple[int, int]], merged: list[tuple[int, int]]) -> None:
    assert merge_intervals(intervals) == merged


@pytest.mark.parametrize(
    ("excluded", "included"),
    [([], [(0, 100)]), ([(0, 100)], []), ([(-5, 10), (50, 60), (90, 200)], [(10, 50), (60, 90)])],
)
def test_included_time_is_the_complement_of_excluded_time(
    excluded: list[tuple[int, int]], included: list[tuple[int, int]]
) -> None:
    assert included_intervals(0, 100, excluded) == included


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "interval"),
    [
        (60_000, 180_000, (1, 3)),
        (60_001, 180_000, (2, 3)),  # bucket 1 starts before the window: not excluded
        (59_999, 120_001, (1, 3)),  # bucket 2 starts inside the window: excluded
    ],
)
def test_a_one_off_window_excludes_the_buckets_starting_inside_it(
    start_ms: int, end_ms: int, interval: tuple[int, int]
) -> None:
    assert list(MaintenanceWindow(start_ms, end_ms).excluded(0, 100)) == [interval]


@pytest.mark.parametrize(
    ("rule", "duration", "tz", "start", "end", "expected"),
    [
        (
            "DTSTART:20250328T020000\nRRULE:FREQ=DAILY",
            90,
            "Europe/Berlin",
            "2025-03-29T00:00:00+00:00",
            "2025-04-01T00:00:00+00:00",
            [
                span("2025-03-29T01:00:00+00:00", "2025-03-29T02:30:00+00:00"),
                # 02:00 does not exist on the 30th in Berlin: the occurrence falls at the instant of the gap
                span("2025-03-30T01:00:00+00:00", "2025-03-30T02:30:00+00:00"),
                span("2025-03-31T00:00:00+00:00", "2025-03-31T01:30:00+00:00"),  # 02:00 CEST
            ],
        ),
        (
            "DTSTART:20250105T230000\nRRULE:FREQ=WEEKLY;BYDAY=SU",
            120,
            "America/New_York",
            "2025-03-01T00:00:00+00:00",
            "2025-03-17T00:00:00+00:00",
            [
                span("2025-03-03T04:00:00+00:00", "2025-03-03T06:00:00+00:00"),
                span("2025-03-10T03:00:00+00:00", "2025-03-10T05:00:00+00:00"),  # EDT now
            ],
        ),
        (
            # an occurrence that started before the range still excludes its tail
            "DTSTART;TZID=UTC:20250101T230000\nRRULE:FREQ=DAILY;COUNT=3",
            120,
            "Europe/Berlin",
            "2025-01-02T00:00:00+00:00",
            "2025-01-10T00:00:00+00:00",
            [
                span("2025-01-02T00:00:00+00:00", "2025-01-02T01:00:00+00:00"),
                span("2025-01-02T23:00:00+00:00", "2025-01-03T01:00:00+00:00"),
                span("2025-01-03T23:00:00+00:00", "2025-01-04T01:00:00+00:00"),
            ],
        ),
        (
            # a floating UNTIL is local time: 03:00 Berlin is 02:00Z, so the last occurrence starts at 01:00Z
            "DTSTART:20250101T010000\nRRULE:FREQ=DAILY;UNTIL=20250103T030000",
            60,
            "Europe/Berlin",
            "2025-01-01T00:00:00+00:00",
            "2025-01-05T00:00:00+00:00",
            [
                span("2025-01-01T00:00:00+00:00", "2025-01-01T01:00:00+00:00"),
                span("2025-01-02T00:00:00+00:00", "2025-01-02T01:00:00+00:00"),
                span("2025-01-03T00:00:00+00:00", "2025-01-03T01:00:00+00:00"),
            ],
        ),
        (
            "DTSTART:20250101T000000Z\nRRULE:FREQ=HOURLY;INTERVAL=1;UNTIL=20250101T020000Z",
            90,  # longer than the interval: overlapping occurrences merge
            "UTC",
            "2025-01-01T00:00:00+00:00",
            "2025-01-02T00:00:00+00:00",
            [span("2025-01-01T00:00:00+00:00", "2025-01-01T03:30:00+00:00")],
        ),
    ],
)
def test_recurring_maintenance_follows_its_rrule_in_local_time(
    rule: str, duration: int, tz: str, start: str, end: str, expected: list[tuple[int, int]]
) -> None:
    maintenance = RecurringMaintenance(rule, duration, tz)
    assert excluded_intervals([maintenance], minute(start), minute(end)) == expected


@pytest.mark.parametrize(
    ("rule", "duration", "tz", "message"),
    [
        ("RRULE:FREQ=DAILY", 60, "UTC", "needs a DTSTART"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=SOMETIMES", 60, "UTC", "invalid recurrence rule"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY;BYDAY=XX", 60, "Europe/Berlin", "invalid recurrence rule"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY", 0, "UTC", "positive duration"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY", 60, "Nowhere/Land", "unknown timezone"),
    ],
)
def test_invalid_recurring_maintenance_is_refused(rule: str, duration: int, tz: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecurringMaintenance(rule, duration, tz)


BERLIN_OFFICE = BusinessHours.parse(
    "Europe/Berlin",
    {"mon": "09:00-17:00", "tue": ["09:00-12:00", "13:00-17:00"], "Sunday": "22:00-24:00"},
    holidays=["2025-03-25", date(2025, 10, 27)],
)


@pytest.mark.parametrize(
    ("start", "end", "business"),
    [
        (  # the week of the change to CEST (Sunday 2025-03-30)
            "2025-03-29T00:00:00+00:00",
            "2025-04-02T00:00:00+00:00",
            [
                span("2025-03-30T20:00:00+00:00", "2025-03-30T22:00:00+00:00"),  # Sunday 22-24 CEST
                span("2025-03-31T07:00:00+00:00", "2025-03-31T15:00:00+00:00"),
                span("2025-04-01T07:00:00+00:00", "2025-04-01T10:00:00+00:00"),
                span("2025-04-01T11:00:00+00:00", "2025-04-01T15:00:00+00:00"),
            ],
        ),
        (  # the week before: Tuesday 2025-03-25 is a holiday
            "2025-03-23T00:00:00+00:00",
            "2025-03-26T00:00:00+00:00",
            [
                span("2025-03-23T21:00:00+00:00", "2025-03-23T23:00:00+00:00"),  # Sunday 22-24 CET
                span("2025-03-24T08:00:00+00:00", "2025-03-24T16:00:00+00:00"),
            ],
        ),
        (  # back to CET on Sunday 2025-10-26; Monday the 27th is a holiday
            "2025-10-26T00:00:00+00:00",
            "2025-10-29T00:00:00+00:00",
            [
                span("2025-10-26T21:00:00+00:00", "2025-10-26T23:00:00+00:00"),
                span("2025-10-28T08:00:00+00:00", "2025-10-28T11:00:00+00:00"),
                span("2025-10-28T12:00:00+00:00", "2025-10-28T16:00:00+00:00"),
            ],
        ),
        (  # a range starting mid-span is clipped
            "2025-03-31T10:00:00+00:00",
            "2025-03-31T12:00:00+00:00",
            [span("2025-03-31T10:00:00+00:00", "2025-03-31T12:00:00+00:00")],
        ),
    ],
)
def test_business_hours_follow_local_time_and_skip_holidays(
    start: str, end: str, business: list[tuple[int, int]]
) -> None:
    assert BERLIN_OFFICE.business_intervals(minute(start), minute(end)) == business
    assert BERLIN_OFFICE.excluded(minute(start), minute(end)) == included_intervals(
        minute(start), minute(end), business
    )


@pytest.mark.parametrize(
    ("weekly", "message"),
    [
        ({"funday": "09:00-17:00"}, "unknown weekday"),
        ({"mon": "09:00"}, "expected HH:MM-HH:MM"),
        ({"mon": "9-17"}, "expected HH:MM"),
        ({"mon": "17:00-09:00"}, "invalid business hours span"),
        ({"mon": "09:00-24:30"}, "00:00 to 24:00"),
    ],
)
def test_invalid_business_hours_are_refused(weekly: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessHours.parse("UTC", weekly)


def test_excluded_time_counts_in_no_window_of_an_objective() -> None:
    series = SeriesCounts()
    series.add(minute("2025-03-31T06:59:00+00:00"), 0, 100)  # Monday 08:59 CEST: outside business hours
    series.add(minute("2025-03-31T07:00:00+00:00"), 99, 100)  # 09:00
    series.add(minute("2025-03-31T07:30:00+00:00"), 0, 50)  # inside the maintenance window
    series.add(minute("2025-03-31T07:47:00+00:00"), 100, 100)  # after it
    maintenance = MaintenanceWindow(
        int(datetime.fromisoformat("2025-03-31T07:30:00+00:00").timestamp() * 1000),
        int(datetime.fromisoformat("2025-03-31T07:45:00+00:00").timestamp() * 1000),
    )
    terms = ObjectiveTerms(
        target=0.99,
        window=RollingWindow(30 * DAY),
        tiers=default_tiers(30 * DAY),
        exclusions=(BERLIN_OFFICE, maintenance),
    )
    ev = evaluate(terms, series, int(datetime.fromisoformat("2025-03-31T07:50:00+00:00").timestamp() * 1000))
    assert ev.counts == Counts(199, 200)
    assert ev.tiers[0].long_total == 200
    assert ev.tiers[0].short_burn_rate == 0.0  # 07:46-07:50: only the good minute
