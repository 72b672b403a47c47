"""Measurements and their Kafka record layout (schema 1, documented in docs/records.md).

One Kafka record carries one or more measurements of one indicator; the record key
is the indicator key, so an indicator stays in one partition and its measurements
are applied in the order they were published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

SCHEMA_VERSION = 1
SCHEMA_HEADER = "accord-schema"


class PoisonRecord(ValueError):
    """A record the evaluator cannot decode; it is logged with its position and skipped."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One observation of an indicator at `timestamp_ms` (ms since the epoch, event time).

    Ratio indicators carry `good`/`total`; threshold indicators carry `value` and `count`.
    """

    indicator: str
    timestamp_ms: int
    good: int | None = None
    total: int | None = None
    value: float | None = None
    count: int = 1
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
            wire["count"] = self.count
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
        out = []
        for item in doc["measurements"]:
            good = item.get("good")
            total = item.get("total")
            value_ = item.get("value")
            out.append(
                Measurement(
                    indicator=indicator,
                    timestamp_ms=int(item["ts"]),
                    good=None if good is None else int(good),
                    total=None if total is None else int(total),
                    value=None if value_ is None else float(value_),
                    count=int(item.get("count", 1)),
                    id=item.get("id"),
                    labels=label_pairs(item.get("labels")),
                )
            )
        return out
    except PoisonRecord:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PoisonRecord(f"malformed record: {exc}") from exc
