"""Ingest's edge without servers: decoding, every validation rule, the record layout, and fuzzed input."""

from __future__ import annotations

import gzip
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.parse import MAX_COUNT, Batch, decode_body, encode_wire_record, validate
from shared.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from shared.measurements import Measurement, decode_record, encode_record

NOW_MS = 1_800_000_000_000
KINDS = {"checkout.availability": "ratio", "checkout.latency": "threshold"}
LIMITS = {"now_ms": NOW_MS, "max_future_ms": 300_000, "max_age_ms": 400 * 86_400_000}


def ratio(**over: Any) -> dict[str, Any]:
    return {"indicator": "checkout.availability", "timestamp": NOW_MS / 1000, "good": 9, "total": 10, **over}


def threshold(**over: Any) -> dict[str, Any]:
    return {"indicator": "checkout.latency", "timestamp": NOW_MS / 1000, "value": 0.25, **over}


def check(items: list[Any]) -> Batch:
    return validate(items, KINDS.get, **LIMITS)


def problems_of(items: list[Any]) -> list[dict[str, Any]]:
    with pytest.raises(Invalid) as caught:
        check(items)
    return caught.value.extra["errors"]


def without(item: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != field}


RULES = [
    ("unknown indicator", ratio(indicator="nope.availability"), "indicator", "unknown indicator 'nope.availability'"),
    ("indicator missing", without(ratio(), "indicator"), "indicator", "is required and must be a string"),
    ("indicator not a string", ratio(indicator=7), "indicator", "is required and must be a string"),
    ("value on a ratio indicator", ratio(value=1.0), "value", "not allowed for a ratio indicator"),
    ("good on a threshold indicator", threshold(good=1), "good", "not allowed for a threshold indicator"),
    ("good missing", without(ratio(), "good"), "good", "is required"),
    ("total missing", without(ratio(), "total"), "total", "is required"),
    ("value missing", without(threshold(), "value"), "value", "is required and must be a number"),
    ("negative good", ratio(good=-1), "good", "must be a non-negative integer"),
    ("negative total", ratio(good=0, total=-3), "total", "must be a non-negative integer"),
    ("fractional good", ratio(good=2.5), "good", "must be a non-negative integer"),
    ("integral float total", ratio(total=10.0), "total", "must be a non-negative integer (write it without"),
    ("boolean count", threshold(count=True), "count", "must be a non-negative integer"),
    ("negative count", threshold(count=-2), "count", "must be a non-negative integer"),
    ("count past the largest", ratio(good=0, total=MAX_COUNT + 1), "total", f"must be at most {MAX_COUNT}"),
    ("good above total", ratio(good=11, total=10), "good", "must not exceed total"),
    ("string value", threshold(value="0.2"), "value", "is required and must be a number"),
    ("value too large for a double", threshold(value=10**400), "value", "must be a finite number"),
    ("NaN value", threshold(value=float("nan")), "value", "must be a finite number"),
    ("infinite value", threshold(value=float("inf")), "value", "must be a finite number"),
    ("timestamp missing", without(ratio(), "timestamp"), "timestamp", "is required"),
    ("timestamp without offset", ratio(timestamp="2027-01-15T08:00:00"), "timestamp", "must carry a UTC offset"),
    ("timestamp not a date", ratio(timestamp="yesterday"), "timestamp", "must be RFC 3339 with an offset"),
    ("timestamp a boolean", ratio(timestamp=True), "timestamp", "must be RFC 3339 with an offset"),
    ("infinite timestamp", ratio(timestamp=float("inf")), "timestamp", "must be finite"),
    ("timestamp in the future", ratio(timestamp=NOW_MS / 1000 + 301), "timestamp", "is too far in the future"),
    ("timestamp in ms", ratio(timestamp=NOW_MS), "timestamp", "this looks like milliseconds"),
    ("timestamp too old", ratio(timestamp=NOW_MS / 1000 - 401 * 86_400), "timestamp", "is older than any window"),
    ("labels not an object", ratio(labels=["eu"]), "labels", "must map strings to strings"),
    ("label value not a string", ratio(labels={"region": 1}), "labels", "must map strings to strings"),
    ("empty id", ratio(id=""), "id", "must be a non-empty string"),
    ("id an object", ratio(id={"a": 1}), "id", "must be a non-empty string"),
    ("item not an object", [1, 2], "(item)", "must be a JSON object"),
]


@pytest.mark.parametrize(("item", "field", "reason"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_rule_is_reported_with_the_items_index_field_and_reason(item: Any, field: str, reason: str) -> None:
    problems = problems_of([ratio(id="fine"), item])
    assert [(p["index"], p["field"]) for p in problems] == [(1, field)]
    assert problems[0]["reason"].startswith(reason) or reason in problems[0]["reason"]


def test_every_problem_of_every_item_is_listed() -> None:
    problems = problems_of([ratio(good=-1, total="x"), ratio(), threshold(value=None, timestamp="soon")])
    assert {(p["index"], p["field"]) for p in problems} == {(0, "good"), (0, "total"), (2, "timestamp"), (2, "value")}


def test_valid_items_become_wire_measurements_grouped_per_indicator_in_order() -> None:
    batch = check(
        [
            ratio(id="a", labels={"zone": "b", "region": "eu"}),
            threshold(timestamp="2027-01-15T08:00:00.5+01:00", count=3),
            ratio(id=42, timestamp=NOW_MS / 1000 - 60, good=0, total=0),
            threshold(value=2),
        ]
    )
    assert batch.count == 4
    assert batch.by_indicator == {
        "checkout.availability": [
            {"ts": NOW_MS, "id": "a", "good": 9, "total": 10, "labels": {"region": "eu", "zone": "b"}},
            {"ts": NOW_MS - 60_000, "id": "42", "good": 0, "total": 0},
        ],
        "checkout.latency": [
            {"ts": 1_799_996_400_500, "value": 0.25, "count": 3},
            {"ts": NOW_MS, "value": 2.0, "count": 1},
        ],
    }


def test_ingests_records_are_byte_for_byte_the_shared_layout() -> None:
    batch = check([ratio(id="a", labels={"z": "1", "a": "2"}), ratio(), threshold(count=0), threshold(id=7)])
    for indicator, wires in batch.by_indicator.items():
        value = encode_wire_record(indicator, wires)
        measurements = decode_record(value).measurements
        assert encode_record(indicator, measurements) == value
    assert batch.measurements()[0] == Measurement(
        "checkout.availability", NOW_MS, good=9, total=10, id="a", labels=(("a", "2"), ("z", "1"))
    )
    records = list(batch.records(per_record=1))
    assert [key for key, _ in records] == ["checkout.availability"] * 2 + ["checkout.latency"] * 2


def test_a_json_object_array_and_ndjson_decode_to_items() -> None:
    one = ratio()
    assert decode_body(orjson.dumps(one), content_type="application/json", content_encoding="", max_bytes=1000) == [one]
    assert decode_body(orjson.dumps([one, one]), content_type="", content_encoding="identity", max_bytes=1000) == [
        one,
        one,
    ]
    ndjson = orjson.dumps(one) + b"\n\n" + orjson.dumps(one) + b"\n"
    assert decode_body(ndjson, content_type="application/x-ndjson", content_encoding="", max_bytes=1000) == [one, one]


def test_gzip_bodies_are_decompressed_including_several_members() -> None:
    one = orjson.dumps(ratio()) + b"\n"
    body = gzip.compress(one) + gzip.compress(one)
    items = decode_body(body, content_type="application/x-ndjson", content_encoding="gzip", max_bytes=1000)
    assert items == [ratio(), ratio()]


def test_a_gzip_bomb_is_refused_as_too_large() -> None:
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    assert len(bomb) < 10_000
    with pytest.raises(PayloadTooLarge):
        decode_body(bomb, content_type="application/json", content_encoding="gzip", max_bytes=1_000_000)


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"not gzip", "gzip", "Content-Encoding is gzip but"),
        (gzip.compress(b"[]")[:-6], "gzip", "Content-Encoding is gzip but"),
    ],
    ids=["not gzip", "truncated gzip"],
)
def test_bad_encodings_are_refused_clearly(body: bytes, encoding: str, reason: str) -> None:
    with pytest.raises(Invalid) as caught:
        decode_body(body, content_type="application/json", content_encoding=encoding, max_bytes=1000)
    assert reason in caught.value.extra["errors"][0]["reason"]


def test_an_unsupported_encoding_is_refused_with_415() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_body(b"[]", content_type="application/json", content_encoding="br", max_bytes=1000)
    assert caught.value.status == 415
    assert "'br' is not supported" in str(caught.value.detail)


@pytest.mark.parametrize(
    "body",
    [b'{"value": NaN}', b'[{"value": Infinity}]', b'{"value": -Infinity}', b'{"value": 1e400}', b'{"value": nan}'],
)
def test_nan_and_infinity_literals_are_refused_with_a_clear_reason(body: bytes) -> None:
    with pytest.raises(Invalid) as caught:
        decode_body(body, content_type="application/json", content_encoding="", max_bytes=1000)
    (problem,) = caught.value.extra["errors"]
    assert problem["field"] == "(body)"
    assert problem["reason"].startswith("NaN and Infinity are not JSON numbers")


def test_a_bad_ndjson_line_is_named() -> None:
    body = orjson.dumps(ratio()) + b"\n{oops\n"
    with pytest.raises(Invalid) as caught:
        decode_body(body, content_type="application/x-ndjson", content_encoding="", max_bytes=1000)
    assert caught.value.extra["errors"][0]["field"] == "(line 2)"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
item_like = st.fixed_dictionaries(
    {},
    optional={
        "indicator": st.sampled_from([*KINDS, "other"]) | json_values,
        "timestamp": st.integers() | st.floats() | st.sampled_from(["2027-01-15T08:00:00Z", "x"]) | json_values,
        "good": st.integers() | json_values,
        "total": st.integers() | json_values,
        "value": st.floats() | st.integers() | json_values,
        "count": st.integers() | json_values,
        "id": st.text(max_size=5) | json_values,
        "labels": st.dictionaries(st.text(max_size=5), st.text(max_size=5) | json_values, max_size=3) | json_values,
    },
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(item_like | json_values, max_size=5))
def test_validation_only_ever_accepts_or_lists_problems(items: list[Any]) -> None:
    try:
        batch = validate(items, KINDS.get, now_ms=int(time.time() * 1000), max_future_ms=300_000, max_age_ms=10**12)
    except Invalid as exc:
        errors = exc.extra["errors"]
        assert errors
        assert all({"index", "field", "reason"} <= set(p) for p in errors)
        return
    assert batch.count == len(items)
    for indicator, wires in batch.by_indicator.items():
        decoded = decode_record(encode_wire_record(indicator, wires))
        assert decoded.measurements  # the evaluator can read what is accepted
        assert not decoded.rejected
