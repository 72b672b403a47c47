"""services.api.pagination: cursors decoded at the edge, pages cut from limit + 1 rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from services.api.pagination import (
    encode_cursor,
    key_after,
    page,
    revision_before,
    time_id_after,
)
from shared.errors import Invalid


def test_a_page_keeps_size_rows_and_points_after_the_last_only_when_more_came() -> None:
    items, cursor = page([1, 2, 3], 2, lambda n: (n,))
    assert (items, cursor) == ([1, 2], encode_cursor(2))
    assert page([1, 2], 2, lambda n: (n,)) == ([1, 2], None)
    assert page([], 2, lambda n: (n,)) == ([], None)


def test_a_weighed_page_ends_before_the_row_over_the_limit_but_holds_one_row_at_least() -> None:
    items, cursor = page([5, 5, 5], 3, lambda n: (n,), weigh=lambda n: n, max_weight=12)
    assert (items, cursor) == ([5, 5], encode_cursor(5))
    assert page([50, 1], 3, lambda n: (n,), weigh=lambda n: n, max_weight=12)[0] == [50]


def test_cursors_decode_to_typed_keys() -> None:
    instant, last = datetime(2030, 1, 1, tzinfo=UTC), uuid.uuid4()
    assert time_id_after(encode_cursor(instant.isoformat(), str(last)), uuid.UUID) == (instant, last)
    assert time_id_after(None, uuid.UUID) is None
    assert revision_before(encode_cursor(7)) == 7
    assert key_after(encode_cursor("checkout.latency")) == "checkout.latency"


def by_time(cursor: str) -> object:
    return time_id_after(cursor, uuid.UUID)


@pytest.mark.parametrize(
    ("decode", "cursor"),
    [
        (key_after, "garbage"),
        (key_after, encode_cursor("a\x00b")),  # a NUL must not reach the database
        (key_after, encode_cursor(2**63)),  # nor a number over a BIGINT
        (key_after, encode_cursor(1, 2)),  # the wrong arity
        (revision_before, encode_cursor(0)),
        (revision_before, encode_cursor(2**31)),
        (revision_before, encode_cursor("7")),
        (by_time, encode_cursor("2030-01-01T00:00:00", str(uuid.uuid4()))),  # naive
        (by_time, encode_cursor("9999-12-31T23:59:59-05:00", str(uuid.uuid4()))),  # past the calendar in UTC
        (by_time, encode_cursor("2030-01-01T00:00:00Z", "not-a-uuid")),
    ],
)
def test_a_forged_cursor_is_a_422_naming_cursor(decode: Callable[[str], object], cursor: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode(cursor)
    assert caught.value.extra["errors"] == [{"field": "cursor", "reason": "not a cursor this api issued"}]
