"""Request bodies to validated measurements: the one place ingest converts at its edge.

The whole request is validated before anything is published: every problem is
collected with the item's index and field, and one bad item refuses the request.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from shared.errors import Invalid, PayloadTooLarge
from shared.measurements import Measurement, label_pairs

Problem = dict[str, Any]


def decode_body(raw: bytes, *, content_type: str, content_encoding: str, max_bytes: int) -> list[Any]:
    """The items of a JSON object, JSON array or NDJSON body, gunzipped when asked."""
    if content_encoding.strip().lower() == "gzip":
        try:
            raw = _gunzip(raw, max_bytes)
        except (OSError, EOFError, zlib.error) as exc:
            raise Invalid("The body is not valid gzip.", [{"field": "(body)", "reason": str(exc)}]) from exc
    elif content_encoding.strip() not in ("", "identity"):
        raise Invalid(
            "Unsupported Content-Encoding.", [{"field": "(header) Content-Encoding", "reason": content_encoding}]
        )
    if "ndjson" in content_type.lower():
        items = []
        for n, line in enumerate(raw.splitlines()):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise Invalid("A line is not valid JSON.", [{"field": f"(line {n + 1})", "reason": str(exc)}]) from exc
        return items
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid("The body is not valid JSON.", [{"field": "(body)", "reason": str(exc)}]) from exc
    return doc if isinstance(doc, list) else [doc]


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decompressor.decompress(raw, max_bytes + 1)
    if len(out) > max_bytes or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"The decompressed body exceeds {max_bytes} bytes.")
    if not decompressor.eof:
        raise EOFError("gzip stream is truncated")
    return out


def parse_timestamp(value: Any) -> int | str:
    """Epoch milliseconds, or the reason the value is not a timestamp."""
    if isinstance(value, bool):
        return "must be RFC 3339 with an offset, or epoch seconds"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return "must be finite"
        return round(value * 1000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return "must be RFC 3339 with an offset, or epoch seconds"
        if parsed.tzinfo is None:
            return "must carry a UTC offset"
        return round(parsed.timestamp() * 1000)
    return "must be RFC 3339 with an offset, or epoch seconds"


def _count(item: dict[str, Any], name: str, problems: list[Problem], index: int) -> int | None:
    value = item.get(name)
    if value is None:
        problems.append({"index": index, "field": name, "reason": "is required"})
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append({"index": index, "field": name, "reason": "must be a non-negative integer"})
        return None
    if value < 0:
        problems.append({"index": index, "field": name, "reason": "must be a non-negative integer"})
        return None
    return value


def validate(
    items: list[Any],
    kind_of: Callable[[str], str | None],
    *,
    now_ms: int,
    max_future_ms: int,
    max_age_ms: int,
) -> list[Measurement]:
    """Measurements from decoded items; raises Invalid listing every problem by index and field."""
    problems: list[Problem] = []
    out: list[Measurement] = []
    for index, item in enumerate(items):
        before = len(problems)
        if not isinstance(item, dict):
            problems.append({"index": index, "field": "(item)", "reason": "must be a JSON object"})
            continue
        indicator = item.get("indicator")
        kind = None
        if not isinstance(indicator, str) or not indicator:
            problems.append({"index": index, "field": "indicator", "reason": "is required and must be a string"})
        else:
            kind = kind_of(indicator)
            if kind is None:
                problems.append({"index": index, "field": "indicator", "reason": f"unknown indicator {indicator!r}"})
        ts = parse_timestamp(item["timestamp"]) if "timestamp" in item else "is required"
        if isinstance(ts, str):
            problems.append({"index": index, "field": "timestamp", "reason": ts})
        elif ts > now_ms + max_future_ms:
            problems.append({"index": index, "field": "timestamp", "reason": "is too far in the future"})
        elif ts < now_ms - max_age_ms:
            problems.append({"index": index, "field": "timestamp", "reason": "is older than any window could use"})
        mid = item.get("id")
        if mid is not None and (not isinstance(mid, str | int) or isinstance(mid, bool) or mid == ""):
            problems.append({"index": index, "field": "id", "reason": "must be a non-empty string"})
        labels = item.get("labels")
        if labels is not None and (
            not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values())
        ):
            problems.append({"index": index, "field": "labels", "reason": "must map strings to strings"})
        good = total = None
        value: float | None = None
        count = 1
        if kind == "ratio":
            for wrong in ("value", "count"):
                if wrong in item:
                    problems.append({"index": index, "field": wrong, "reason": "not allowed for a ratio indicator"})
            good = _count(item, "good", problems, index)
            total = _count(item, "total", problems, index)
            if good is not None and total is not None and good > total:
                problems.append({"index": index, "field": "good", "reason": "must not exceed total"})
        elif kind == "threshold":
            for wrong in ("good", "total"):
                if wrong in item:
                    problems.append({"index": index, "field": wrong, "reason": "not allowed for a threshold indicator"})
            raw_value = item.get("value")
            if isinstance(raw_value, bool) or not isinstance(raw_value, int | float):
                problems.append({"index": index, "field": "value", "reason": "is required and must be a number"})
            elif not math.isfinite(raw_value):
                problems.append({"index": index, "field": "value", "reason": "must be finite"})
            else:
                value = float(raw_value)
            if "count" in item:
                count = _count(item, "count", problems, index) or 0
        if len(problems) == before and isinstance(ts, int) and isinstance(indicator, str):
            out.append(
                Measurement(
                    indicator=indicator,
                    timestamp_ms=ts,
                    good=good,
                    total=total,
                    value=value,
                    count=count,
                    id=None if mid is None else str(mid),
                    labels=label_pairs(labels),
                )
            )
    if problems:
        raise Invalid(f"{len(problems)} problem(s) in the request; nothing was published.", problems)
    return out
