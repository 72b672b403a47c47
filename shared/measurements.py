"""Measurements and their Kafka record layout (schema 1, documented in docs/records.md).

One Kafka record carries one or more measurements of one indicator; the record key
is the indicator key, so an indicator stays in one partition and its measurements
are applied in the order they were published.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
MAX_COUNT = 2**53 - 1  # good, total and count: exact in a double, and sums stay far from bigint's limit
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a datetime can hold
MAX_INDICATOR_KEY_LENGTH = 128  # the api's indicator key rule allows 1-128 characters
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
    """A record the evaluator cannot decode as a whole; it is dead-lettered and its offset still advances.

    `kind` names the problem in a few words fit for a metric label: no_value, malformed, schema, indicator.
    """

    def __init__(self, reason: str, kind: str = "malformed") -> None:
        super().__init__(reason)
        self.kind = kind


class _Refused(ValueError):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


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


@dataclass(frozen=True, slots=True)
class Rejected:
    """A measurement of a record that cannot be applied: its position in the record and why."""

    index: int
    kind: str  # for a metric label: id, labels, timestamp, counts, value or malformed
    reason: str
    item: object  # the measurement as decoded JSON, for the dead-letter row


class Decoded(NamedTuple):
    """One record value: the measurements that can be applied, and those that cannot."""

    indicator: str
    measurements: list[Measurement]
    rejected: list[Rejected]


# Indicator keys already found valid: every record names one, and a deployment has a few thousand.
_KEYS_OK: set[str] = set()
_KEYS_OK_MAX = 100_000


def decode_record(value: bytes | None) -> Decoded:
    """The measurements of one record value, each checked on its own.

    A problem with the record as a whole (no value, not JSON, another schema, a bad
    indicator key) raises PoisonRecord. A bad measurement (malformed, or an id or labels
    beyond the limits above) is listed in `rejected` and the others are still returned,
    so one bad measurement never takes its neighbours with it.
    """
    if value is None:
        raise PoisonRecord("record has no value", "no_value")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PoisonRecord(f"malformed record: {exc}") from exc
    if not isinstance(doc, dict):
        raise PoisonRecord("record is not a JSON object")
    if doc.get("schema") != SCHEMA_VERSION:
        raise PoisonRecord(f"unsupported schema {str(doc.get('schema'))[:40]!r}", "schema")
    indicator = doc.get("indicator")
    if type(indicator) is not str or indicator not in _KEYS_OK:  # a list or a dict cannot be looked up
        if not isinstance(indicator, str):
            raise PoisonRecord("indicator is not a string", "indicator")
        if (reason := text_problem(indicator, MAX_INDICATOR_KEY_LENGTH)) is not None:
            raise PoisonRecord(f"indicator {reason}", "indicator")
        if len(_KEYS_OK) >= _KEYS_OK_MAX:
            _KEYS_OK.clear()
        _KEYS_OK.add(indicator)
    items = doc.get("measurements")
    if not isinstance(items, list):
        raise PoisonRecord("measurements is not a list")
    out: list[Measurement] = []
    rejected: list[Rejected] = []
    labels_ok: set[tuple[tuple[str, str], ...]] = set()  # label sets of this record already checked
    for index, item in enumerate(items):
        try:
            out.append(_measurement(indicator, item, labels_ok))
        except _Refused as exc:
            rejected.append(Rejected(index, exc.kind, str(exc), item))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            rejected.append(Rejected(index, "malformed", _reason(exc), item))
    return Decoded(indicator, out, rejected)


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _measurement(indicator: str, item: Any, labels_ok: set[tuple[tuple[str, str], ...]]) -> Measurement:
    """One wire measurement as a Measurement; raises _Refused (or KeyError, TypeError, ValueError) if it is none."""
    if not isinstance(item, dict):
        raise _Refused("malformed", "measurement is not a JSON object")
    get = item.get
    mid = get("id")
    if mid is not None and (type(mid) is not str or not 0 < len(mid) <= MAX_ID_LENGTH or _CONTROL.search(mid)):
        raise _Refused("id", f"id {text_problem(mid, MAX_ID_LENGTH)}" if type(mid) is str else "id is not a string")
    labels = get("labels")
    pairs: tuple[tuple[str, str], ...] = ()
    if labels:
        if type(labels) is not dict:
            raise _Refused("labels", "labels is not an object of strings")
        pairs = tuple(sorted(labels.items()))
        if pairs not in labels_ok:  # most measurements of a record repeat a few label sets
            if not all(type(v) is str for v in labels.values()):
                raise _Refused("labels", "labels is not an object of strings")
            if (reason := labels_problem(labels)) is not None:
                raise _Refused("labels", f"labels {reason}")
            labels_ok.add(pairs)
    ts = item["ts"]
    if type(ts) is not int:
        ts = int(ts)
    if not 0 <= ts <= MAX_TIMESTAMP_MS:
        raise _Refused("timestamp", "ts is outside 1970-01-01..9999-12-31")
    good = get("good")
    if good is not None:
        total = item["total"]
        if type(good) is not int or type(total) is not int:
            good, total = int(good), int(total)
        if not 0 <= good <= total <= MAX_COUNT:
            raise _Refused("counts", "counts must satisfy 0 <= good <= total <= 2^53 - 1")
        return Measurement(indicator, ts, good, total, None, 1, mid, pairs)
    observed = float(item["value"])
    if not math.isfinite(observed):
        raise _Refused("value", "value is not a finite number")
    weight = get("count", 1)
    if type(weight) is not int:
        weight = int(weight)
    if not 0 <= weight <= MAX_COUNT:
        raise _Refused("counts", "count must be from 0 to 2^53 - 1")
    return Measurement(indicator, ts, None, None, observed, weight, mid, pairs)
