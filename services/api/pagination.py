"""Keyset pagination for every list route: an opaque cursor, `limit + 1` rows, one page.

A page's cursor is the sort key of its last row (base64 of a JSON array). A route decodes the
cursor of the request into a typed key here, at the edge (a forged cursor is a 422 naming
`cursor`, never a database error); the repository query returns up to `size + 1` rows after that
key (`after` builds the predicate); `page` keeps the first `size` rows and issues the next cursor
when the extra row shows there is more.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import and_, or_

from services.api.schemas import MAX_REVISION
from shared.contract import MAX_QUERY_LENGTH, text_problem
from shared.errors import Invalid

T = TypeVar("T")
K = TypeVar("K")


def bad_cursor() -> Invalid:
    return Invalid("Invalid cursor.", [{"field": "cursor", "reason": "not a cursor this api issued"}])


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode()


def _part_ok(part: Any) -> bool:
    """A cursor holds short strings without control characters and integers that fit a BIGINT: a forged one
    must not reach the database with a NUL or an overflowing number."""
    if isinstance(part, str):
        return text_problem(part, MAX_QUERY_LENGTH) is None
    return isinstance(part, int) and not isinstance(part, bool) and -(2**63) <= part < 2**63


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError):
        parts = None
    if not isinstance(parts, list) or len(parts) != arity or not all(_part_ok(p) for p in parts):
        raise bad_cursor()
    return parts


# --- the three key shapes the routes page by ---------------------------------------------------------


def key_after(cursor: str | None) -> str | None:
    """A text key (indicators by key): rows after it."""
    return None if cursor is None else str(decode_cursor(cursor, 1)[0])


def revision_before(cursor: str | None) -> int | None:
    """A revision number (revisions and reviews, newest first): rows before it."""
    if cursor is None:
        return None
    value = decode_cursor(cursor, 1)[0]
    if not isinstance(value, int) or not 1 <= value <= MAX_REVISION:
        raise bad_cursor()
    return value


def time_id_after(cursor: str | None, id_of: Callable[[str], K]) -> tuple[datetime, K] | None:
    """An (instant, id) key (agreements, objectives, breach events, oldest first): rows after it.

    The instant is aware and within the years 1..9999 in UTC too; `id_of` parses the id (ValueError
    when it is not one).
    """
    if cursor is None:
        return None
    time, last = decode_cursor(cursor, 2)
    try:
        instant = datetime.fromisoformat(time)
        if instant.tzinfo is None:
            raise ValueError("naive")
        instant.astimezone(UTC)  # OverflowError near the ends of the calendar
        return instant, id_of(last)
    except (TypeError, ValueError, OverflowError):
        raise bad_cursor() from None


def after(time_column: Any, id_column: Any, key: tuple[datetime, object]) -> Any:
    """The keyset predicate: rows after `key` in (time, id) order."""
    time, last = key
    return or_(time_column > time, and_(time_column == time, id_column > last))


# --- slicing ----------------------------------------------------------------------------------------


def page(
    rows: Sequence[T],
    size: int,
    key: Callable[[T], tuple[Any, ...]],
    *,
    weigh: Callable[[T], int] | None = None,
    max_weight: int = 0,
) -> tuple[list[T], str | None]:
    """The first `size` of `rows` (queried with `limit=size + 1`) and the cursor after the last of them,
    None when there is no more. With `weigh`, the page also ends before the row that would take it over
    `max_weight` (a page holds at least one row)."""
    items: list[T] = []
    held = 0
    for row in rows[:size]:
        if weigh is not None:
            held += weigh(row)
            if items and held > max_weight:
                break
        items.append(row)
    more = len(rows) > len(items)
    return items, encode_cursor(*key(items[-1])) if more else None
