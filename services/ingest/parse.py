"""Request bodies to validated measurements: the one place ingest converts at its edge.

The whole request is validated before anything is published: every problem is
collected with the item's index and field, and one bad item refuses the request.

Validation is the hot path of ingest, so it runs in two passes per item: a fast
path of plain type checks that accepts the common, well-formed item and builds
its wire form (docs/records.md) directly, and a careful path that runs only for
an item the fast path did not accept and is the authority on what is wrong with
it. The fast path accepts a strict subset of what the careful path accepts.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shared.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from shared.measurements import (
    MAX_ID_LENGTH,
    MAX_LABEL_NAME_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    SCHEMA_VERSION,
    Measurement,
    decode_record,
    labels_problem,
    text_problem,
)

Problem = dict[str, Any]
Wire = dict[str, Any]
"""One measurement in its record form: `{"ts", "id"?, "good", "total"}` or `{"ts", "id"?, "value", "count"}`."""

MAX_COUNT = 2**53 - 1
"""Largest event count: the largest integer every JSON parser keeps exact, far below BIGINT sums."""

MAX_INDICATOR_LENGTH = 128
"""Longest indicator key in a request: the api registers none longer (its key pattern), so a longer one is refused
before any lookup."""

GZIP_CHUNK = 64 * 1024
"""Compressed bytes handed to zlib at once: what zlib copies into `unused_data` after each gzip member is bounded
by it, so a body of many tiny members costs linear time."""

_GZIP = ("gzip", "x-gzip")
_IDENTITY = ("", "identity")
_NON_FINITE = (b"nan", b"infinity", b"-infinity", b"inf", b"-inf", b"-nan")
_TIMESTAMP_FORMAT = "must be RFC 3339 with an offset, or epoch seconds"


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated request: measurements in wire form, grouped per indicator in request order."""

    by_indicator: dict[str, list[Wire]]
    count: int

    def records(self, per_record: int) -> Iterator[tuple[str, bytes]]:
        """(key, value) of each Kafka record: up to `per_record` measurements of one indicator (schema 1)."""
        for indicator, wires in self.by_indicator.items():
            for start in range(0, len(wires), per_record):
                yield indicator, encode_wire_record(indicator, wires[start : start + per_record])

    def measurements(self) -> list[Measurement]:
        """The same measurements as domain objects (for tools and tests; the hot path never builds them)."""
        out: list[Measurement] = []
        for indicator, wires in self.by_indicator.items():
            out.extend(decode_record(encode_wire_record(indicator, wires)).measurements)
        return out


def encode_wire_record(indicator: str, wires: list[Wire]) -> bytes:
    """One record value; byte for byte what `shared.measurements.encode_record` makes of the same measurements."""
    return orjson.dumps({"schema": SCHEMA_VERSION, "indicator": indicator, "measurements": wires})


# ---------------------------------------------------------------------------------------------- decoding


def decode_body(raw: bytes, *, content_type: str, content_encoding: str, max_bytes: int) -> list[Any]:
    """The items of a JSON object, JSON array or NDJSON body, gunzipped when asked."""
    encoding = content_encoding.strip().lower()
    if encoding in _GZIP:
        raw = gunzip(raw, max_bytes)
    elif encoding not in _IDENTITY:
        raise UnsupportedMediaType(
            f"Content-Encoding {content_encoding[:100]!r} is not supported: send the body as is or gzip-compressed."
        )
    if "ndjson" in content_type.lower() or "jsonl" in content_type.lower():
        items = []
        for n, line in enumerate(raw.split(b"\n")):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise Invalid("A line is not valid JSON.", [_json_problem(exc, line, f"(line {n + 1})")]) from exc
        return items
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid("The body is not valid JSON.", [_json_problem(exc, raw, "(body)")]) from exc
    return doc if isinstance(doc, list) else [doc]


def _json_problem(exc: orjson.JSONDecodeError, doc: bytes, field: str) -> Problem:
    """The decoder's complaint, said plainly when it is about NaN or Infinity (which JSON does not have)."""
    reason = str(exc)
    pos = exc.pos if isinstance(exc.pos, int) else 0
    at = doc[max(0, pos - 1) : pos + 10].lower()
    if any(at.startswith(w) or at[1:].startswith(w) for w in _NON_FINITE) or "infinity" in exc.msg:
        reason = f"NaN and Infinity are not JSON numbers: every number must be finite ({reason})"
    return {"field": field, "reason": reason}


def gunzip(raw: bytes, max_bytes: int) -> bytes:
    """The decompressed body (every gzip member of it); 413 past `max_bytes`, 422 when it is not gzip.

    Linear in the body's size whatever its members: input goes to zlib in `GZIP_CHUNK` slices of a
    memoryview (no copy of the remainder per member), output collects in one bytearray.
    """
    view = memoryview(raw)
    end = len(raw)
    pos = 0
    out = bytearray()
    try:
        while True:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while not decompressor.eof:
                if pos >= end:
                    raise EOFError("the gzip stream is truncated")
                chunk = view[pos : pos + GZIP_CHUNK]
                out += decompressor.decompress(chunk, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise PayloadTooLarge(f"The decompressed body exceeds {max_bytes} bytes.")
                pos += len(chunk) - len(decompressor.unconsumed_tail) - len(decompressor.unused_data)
            # Another member follows, unless the rest is padding (some writers pad with NULs).
            if pos >= end or (raw[pos] == 0 and raw.count(b"\x00", pos) == end - pos):
                return bytes(out)
    except (OSError, EOFError, zlib.error) as exc:
        raise Invalid(
            "The body is not valid gzip.", [{"field": "(body)", "reason": f"Content-Encoding is gzip but {exc}"}]
        ) from exc


# ---------------------------------------------------------------------------------------------- validation


def validate(
    items: list[Any],
    kind_of: Callable[[str], str | None],
    *,
    now_ms: int,
    max_future_ms: int,
    max_age_ms: int,
    archived: Collection[str] = frozenset(),
) -> Batch:
    """Validated measurements from decoded items; raises Invalid listing every problem by index and field.

    `kind_of` answers for indicators that take measurements; `archived` names those that no longer do.
    """
    lo, hi = now_ms - max_age_ms, now_ms + max_future_ms
    problems: list[Problem] = []
    groups: dict[str, list[Wire]] = {}
    last_indicator: str | None = None
    last_group: list[Wire] = []
    for index, item in enumerate(items):
        wire: Wire | None = None
        # The fast path: plain checks on the common shapes; anything else goes to _check.
        if type(item) is dict:
            indicator: Any = item.get("indicator")
            kind = kind_of(indicator) if type(indicator) is str else None
            ts: Any = item.get("timestamp")
            t = type(ts)
            ms = ts * 1000 if t is float or t is int else _iso_ms(ts) if t is str else None
            mid = item.get("id")
            labels = item.get("labels")
            if (
                ms is not None
                and lo <= ms <= hi
                # Ids and labels the careful path would take as they are; any other goes there.
                and (mid is None or (type(mid) is str and 0 < len(mid) <= MAX_ID_LENGTH and mid.isprintable()))
                and (labels is None or (type(labels) is dict and _plain_labels(labels)))
            ):
                if kind == "ratio":
                    good = item.get("good")
                    total = item.get("total")
                    if (
                        type(good) is int
                        and type(total) is int
                        and 0 <= good <= total <= MAX_COUNT
                        and "value" not in item
                        and "count" not in item
                    ):
                        wire = {"ts": round(ms)} if mid is None else {"ts": round(ms), "id": mid}
                        wire["good"] = good
                        wire["total"] = total
                elif kind == "threshold":
                    value = item.get("value")
                    count = item.get("count", 1)
                    if (
                        type(value) is float
                        and value - value == 0.0  # finite
                        and type(count) is int
                        and 0 <= count <= MAX_COUNT
                        and "good" not in item
                        and "total" not in item
                    ):
                        wire = {"ts": round(ms)} if mid is None else {"ts": round(ms), "id": mid}
                        wire["value"] = value
                        wire["count"] = count
                if wire is not None and labels:
                    wire["labels"] = dict(sorted(labels.items()))
        if wire is None:
            wire = _check(index, item, kind_of, archived, problems, lo, hi)
            if wire is None:
                continue
            indicator = item["indicator"]
        if indicator != last_indicator:
            last_group = groups.setdefault(indicator, [])
            last_indicator = indicator
        last_group.append(wire)
    if problems:
        raise Invalid(f"{len(problems)} problem(s) in the request; nothing was published.", problems)
    return Batch(groups, len(items))


def _plain_labels(labels: dict[str, Any]) -> bool:
    """Labels of printable strings within every limit: a strict subset of what `labels_problem` accepts."""
    if len(labels) > MAX_LABELS:
        return False
    for name, value in labels.items():
        if (
            type(value) is not str
            or not 0 < len(name) <= MAX_LABEL_NAME_LENGTH
            or len(value) > MAX_LABEL_VALUE_LENGTH
            or not name.isprintable()
            or not value.isprintable()
        ):
            return False
    return True


def _iso_ms(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp() * 1000
    except (ValueError, OverflowError):
        return None


def parse_timestamp(value: Any) -> int | str:
    """Epoch milliseconds, or the reason the value is not a timestamp."""
    if isinstance(value, bool):
        return _TIMESTAMP_FORMAT
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return "must be finite"
        return round(value * 1000) if abs(value) < 1e15 else "is not a plausible epoch time in seconds"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return _TIMESTAMP_FORMAT
        if parsed.tzinfo is None:
            return "must carry a UTC offset (e.g. Z or +02:00)"
        try:
            return round(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):
            return "is out of range"
    return _TIMESTAMP_FORMAT


def _as_float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _count(item: dict[str, Any], name: str, problems: list[Problem], index: int) -> int | None:
    value = item.get(name)
    if value is None:
        problems.append({"index": index, "field": name, "reason": "is required"})
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        reason = "must be a non-negative integer"
        if isinstance(value, float) and value.is_integer():
            reason += " (write it without a fraction or exponent)"
        problems.append({"index": index, "field": name, "reason": reason})
        return None
    if value > MAX_COUNT:
        problems.append({"index": index, "field": name, "reason": f"must be at most {MAX_COUNT}"})
        return None
    return value


def _check(
    index: int,
    item: Any,
    kind_of: Callable[[str], str | None],
    archived: Collection[str],
    problems: list[Problem],
    lo: int,
    hi: int,
) -> Wire | None:
    """The careful path: every problem of one item, or its wire form when it has none."""
    before = len(problems)
    if not isinstance(item, dict):
        problems.append({"index": index, "field": "(item)", "reason": "must be a JSON object"})
        return None
    indicator = item.get("indicator")
    kind = None
    if not isinstance(indicator, str) or not indicator:
        problems.append({"index": index, "field": "indicator", "reason": "is required and must be a string"})
    elif (reason := text_problem(indicator, MAX_INDICATOR_LENGTH)) is not None:
        problems.append({"index": index, "field": "indicator", "reason": reason})
    else:
        kind = kind_of(indicator)
        if kind is None:
            reason = (
                f"indicator {indicator!r} is archived and takes no new measurements"
                if indicator in archived
                else f"unknown indicator {indicator!r}"
            )
            problems.append({"index": index, "field": "indicator", "reason": reason})
        elif kind not in ("ratio", "threshold"):
            problems.append({"index": index, "field": "indicator", "reason": f"has unsupported kind {kind!r}"})
            kind = None
    ts = parse_timestamp(item["timestamp"]) if "timestamp" in item else "is required"
    if isinstance(ts, str):
        problems.append({"index": index, "field": "timestamp", "reason": ts})
    elif ts > hi:
        reason = "is too far in the future"
        if ts > 1e14:
            reason += " (epoch seconds expected; this looks like milliseconds)"
        problems.append({"index": index, "field": "timestamp", "reason": reason})
    elif ts < lo:
        problems.append({"index": index, "field": "timestamp", "reason": "is older than any window could use"})
    mid = item.get("id")
    if mid is not None:
        if not isinstance(mid, str | int) or isinstance(mid, bool) or mid == "":
            problems.append({"index": index, "field": "id", "reason": "must be a non-empty string"})
        else:
            mid = str(mid)  # integers are taken as their decimal string
            if (reason := text_problem(mid, MAX_ID_LENGTH)) is not None:
                problems.append({"index": index, "field": "id", "reason": reason})
    labels = item.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in labels.items()
        ):
            problems.append({"index": index, "field": "labels", "reason": "must map strings to strings"})
        elif (reason := labels_problem(labels)) is not None:
            problems.append({"index": index, "field": "labels", "reason": reason})
    wire: Wire = {"ts": ts}
    if mid is not None:
        wire["id"] = mid
    if kind == "ratio":
        for wrong in ("value", "count"):
            if wrong in item:
                problems.append({"index": index, "field": wrong, "reason": "not allowed for a ratio indicator"})
        good = _count(item, "good", problems, index)
        total = _count(item, "total", problems, index)
        if good is not None and total is not None and good > total:
            problems.append({"index": index, "field": "good", "reason": "must not exceed total"})
        wire["good"] = good
        wire["total"] = total
    elif kind == "threshold":
        for wrong in ("good", "total"):
            if wrong in item:
                problems.append({"index": index, "field": wrong, "reason": "not allowed for a threshold indicator"})
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append({"index": index, "field": "value", "reason": "is required and must be a number"})
        elif not math.isfinite(_as_float(value)):
            problems.append({"index": index, "field": "value", "reason": "must be a finite number"})
        else:
            wire["value"] = float(value)
        wire["count"] = _count(item, "count", problems, index) if "count" in item else 1
    if len(problems) > before:
        return None
    if labels:
        wire["labels"] = dict(sorted(labels.items()))
    return wire
