"""Measurements and their Kafka record layout (schema 1, documented in docs/records.md).

One Kafka record carries one or more measurements of one indicator; the record key
is the indicator key, so an indicator stays in one partition and its measurements
are applied in the order they were published.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

SCHEMA_VERSION = 1
SCHEMA_HEADER = "accord-schema"

# Limits on a measurement's text, checked at the edge (ingest answers 422) and again when a
# record is decoded (a record from another producer that breaks them is dead-lettered).
# Postgres stores ids in a btree-indexed text column: no NUL, and far below its ~2.7 KB row limit.
MAX_ID_LENGTH = 256
MAX_LABELS = 32
MAX_LABEL_NAME_LENGTH = 128
MAX_LABEL_VALUE_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text_problem(value: str, max_length: int) -> str | None:
    """Why `value` cannot be stored as an id, label name or label value; None when it can."""
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if _CONTROL.search(value):
        return "must not contain control characters (U+0000-U+001F, U+007F)"
    return None


def labels_problem(labels: Mapping[str, str]) -> str | None:
    """Why a label set cannot be stored; None when it can (names and values already strings)."""
    if len(labels) > MAX_LABELS:
        return f"must have at most {MAX_LABELS} labels"
    for name, value in labels.items():
        if (reason := text_problem(name, MAX_LABEL_NAME_LENGTH)) is not None:
            return f"label name {name[:40]!r} {reason}"
        if value and (reason := text_problem(value, MAX_LABEL_VALUE_LENGTH)) is not None:
            return f"label {name[:40]!r} value {reason}"
    return None


class PoisonRecord(ValueError):
    """A record the evaluator cannot decode; it is logged with its position and skipped."""


class Measurement(NamedTuple):
    """One observation of an indicator at `timestamp_ms` (ms since the epoch, event time).

    Ratio indicators carry `good`/`total`; threshold indicators carry `value` and `count`.
    A NamedTuple rather than a frozen dataclass: it is built once per measurement on the
    evaluator's hot path, and tuples are several times cheaper to construct.
    """

    indicator: str
    timestamp_ms: int
    good: int | None = None
    total: int | None = None
    value: float | None = None
    weight: int = 1  # events a threshold value stands for (`count` on the wire)
    id: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"ts": self.timestamp_ms}
        if self.id is not None:
            wire["id"] = self.id
        if self.good is not None:
            wire["good"] = self.good
            wire["total"] = self.total
        if self.value is not None:
            wire["value"] = self.value
            wire["count"] = self.weight
        if self.labels:
            wire["labels"] = dict(self.labels)
        return wire


def label_pairs(labels: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Labels in their canonical, hashable form: sorted (name, value) pairs."""
    return tuple(sorted(labels.items())) if labels else ()


def encode_record(indicator: str, measurements: Iterable[Measurement]) -> bytes:
    """The value of one Kafka record holding measurements of `indicator`."""
    return orjson.dumps(
        {"schema": SCHEMA_VERSION, "indicator": indicator, "measurements": [m.to_wire() for m in measurements]}
    )


def decode_record(value: bytes | None) -> list[Measurement]:
    """Measurements from one record value; raises PoisonRecord for anything not of schema 1."""
    if value is None:
        raise PoisonRecord("record has no value")
    try:
        doc = orjson.loads(value)
        if doc.get("schema") != SCHEMA_VERSION:
            raise PoisonRecord(f"unsupported schema {doc.get('schema')!r}")
        indicator = doc["indicator"]
        if not isinstance(indicator, str):
            raise PoisonRecord("indicator is not a string")
        out = []
        for item in doc["measurements"]:
            get = item.get
            good = get("good")
            value_ = get("value")
            labels = get("labels")
            ts = item["ts"]
            if type(ts) is not int:
                ts = int(ts)
            if good is not None:
                total = get("total")
                if type(good) is not int or type(total) is not int:
                    good, total = int(good), int(total)
                out.append(
                    Measurement(indicator, ts, good, total, None, 1, get("id"), label_pairs(labels) if labels else ())
                )
            else:
                out.append(
                    Measurement(
                        indicator, ts, None, None, float(value_), int(get("count", 1)), get("id"),
                        label_pairs(labels) if labels else (),
                    )
                )  # fmt: skip
        return out
    except PoisonRecord:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PoisonRecord(f"malformed record: {exc}") from exc
