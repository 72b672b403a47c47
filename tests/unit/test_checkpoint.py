"""What a checkpoint is given to write, without servers: decoded records with bad measurements, one
row per measurement id, and nothing of a forgotten partition left to write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from support import engine_for as engine
from support import objective_config as objective

from services.evaluator.checkpoint import waiting_order
from services.evaluator.store import MAX_DEAD_LETTER_BYTES, DeadLetter
from shared.measurements import MAX_ID_LENGTH, Measurement, PoisonRecord, decode_record

TS = 1_795_772_400_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def record(*measurements: dict[str, Any], indicator: str = "api.availability", **extra: Any) -> bytes:
    return orjson.dumps({"schema": 1, "indicator": indicator, "measurements": list(measurements), **extra})


def good(**extra: Any) -> dict[str, Any]:
    return {"ts": TS, "good": 9, "total": 10, **extra}


@pytest.mark.parametrize(
    ("bad", "kind", "reason"),
    [
        (good(id="a\x00b"), "id", "control characters"),
        (good(id="x" * 4000), "id", f"at most {MAX_ID_LENGTH}"),
        (good(id=""), "id", "empty"),
        (good(id=7), "id", "not a string"),
        (good(labels={f"l{n}": "v" for n in range(40)}), "labels", "at most 32 labels"),
        (good(labels={"region": "eu\x00"}), "labels", "control characters"),
        (good(labels={"region": 3}), "labels", "strings"),
        ({"ts": TS, "good": 11, "total": 10}, "counts", "good <= total"),
        ({"ts": TS, "good": -1, "total": 10}, "counts", "good <= total"),
        ({"ts": TS, "value": float("inf")}, "malformed", ""),  # orjson writes inf as null
        ({"ts": -5, "good": 1, "total": 1}, "timestamp", "outside"),
        ({"good": 1, "total": 1}, "malformed", "missing field 'ts'"),
        ({"ts": TS, "good": "many", "total": 1}, "malformed", "invalid literal"),
        ([1, 2], "malformed", "not a JSON object"),
    ],
)
def test_a_bad_measurement_is_rejected_alone_and_its_neighbours_still_count(bad: Any, kind: str, reason: str) -> None:
    decoded = decode_record(record(good(id="before"), bad, good(id="after", labels={"region": "eu"})))
    assert decoded.indicator == "api.availability"
    assert [m.id for m in decoded.measurements] == ["before", "after"]
    assert decoded.measurements[1].labels == (("region", "eu"),)
    assert len(decoded.rejected) == 1
    rejected = decoded.rejected[0]
    assert (rejected.index, rejected.kind) == (1, kind)
    assert reason in rejected.reason
    assert "\x00" not in rejected.reason


def test_every_bad_measurement_of_a_record_is_listed_by_index() -> None:
    decoded = decode_record(record(good(id="\x00"), good(id="ok"), good(id="y" * 4000), good(), {"ts": TS}))
    assert [(r.index, r.kind) for r in decoded.rejected] == [(0, "id"), (2, "id"), (4, "malformed")]
    assert [m.id for m in decoded.measurements] == ["ok", None]


def test_a_good_record_decodes_whole() -> None:
    decoded = decode_record(record(good(id="a"), {"ts": TS + 1, "value": 0.25, "count": 3}))
    assert decoded.rejected == []
    assert decoded.measurements == [
        Measurement("api.availability", TS, 9, 10, id="a"),
        Measurement("api.availability", TS + 1, value=0.25, weight=3),
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "no_value"),
        (b"not json", "malformed"),
        (b"[1]", "malformed"),
        (orjson.dumps({"schema": 2, "indicator": "a", "measurements": []}), "schema"),
        (record(good(), indicator="a\x00b"), "indicator"),
        (record(good(), indicator="k" * 129), "indicator"),
        (orjson.dumps({"schema": 1, "indicator": 5, "measurements": []}), "indicator"),
        (orjson.dumps({"schema": 1, "indicator": ["a"], "measurements": []}), "indicator"),
        (orjson.dumps({"schema": 1, "indicator": "a", "measurements": {}}), "malformed"),
    ],
)
def test_a_record_that_is_bad_as_a_whole_is_poison(value: bytes | None, kind: str) -> None:
    with pytest.raises(PoisonRecord) as caught:
        decode_record(value)
    assert caught.value.kind == kind


def test_a_dead_letter_keeps_a_bounded_value_and_a_reason_postgres_can_store() -> None:
    letter = DeadLetter.of(3, 17, None, "bad \x00 " + "r" * 5000, b"v" * (MAX_DEAD_LETTER_BYTES + 10))
    assert letter.value is not None
    assert len(letter.value) == MAX_DEAD_LETTER_BYTES
    assert "\x00" not in letter.reason
    assert len(letter.reason) <= 1000


def test_an_id_repeated_past_the_dedup_horizon_twice_in_one_drain_is_one_seen_row() -> None:
    """Two rows for one key would make Postgres refuse the whole checkpoint (ON CONFLICT twice)."""
    e = engine(objective("o1"))
    key = "api.availability"
    e.apply(0, key, [Measurement(key, ms("2026-11-25T11:00:00"), 10, 10)])
    e.drain()
    old = ms("2026-11-23T12:00:30")
    e.apply(
        0,
        key,
        [
            Measurement(key, old, 0, 50, id="x"),
            Measurement(key, old, 0, 50, id="x"),
            Measurement(key, ms("2026-11-25T12:00:30"), 10, 10),
        ],
    )
    e.apply(0, key, [Measurement(key, old + 1, 0, 50, id="x")])
    changes = e.drain()
    assert changes.seen == [(key, "x", old // 60_000)]
    buckets = {(minute, g, t) for _, _, minute, g, t in changes.buckets}
    # Past the horizon each copy counts (the horizon is what dedup promises), yet one row is written.
    assert (old // 60_000, 0, 150) in buckets


def test_the_last_minute_an_id_was_counted_at_is_what_is_written() -> None:
    e = engine(objective("o1"))
    key = "api.availability"
    e.apply(0, key, [Measurement(key, ms("2026-11-25T11:00:00"), 10, 10)])
    e.drain()
    first, second = ms("2026-11-22T12:00:30"), ms("2026-11-23T12:00:30")
    e.apply(0, key, [Measurement(key, first, 1, 1, id="x"), Measurement(key, second, 1, 1, id="x")])
    assert e.drain().seen == [(key, "x", second // 60_000)]
    assert e.indicators[key].seen["x"] == second // 60_000  # memory and the stored row agree


def test_forgetting_a_partition_leaves_nothing_of_it_to_write() -> None:
    """After a failed checkpoint or a revocation without one, a later checkpoint must not write half of it."""
    e = engine(objective("o1", "a.availability"), objective("o2", "b.availability"))
    e.apply(0, "a.availability", [Measurement("a.availability", ms("2026-11-25T11:00:00"), 1, 10, id="m1")])
    e.apply(1, "b.availability", [Measurement("b.availability", ms("2026-11-25T11:00:00"), 10, 10, id="m2")])
    e.forget_partitions({0})
    changes = e.drain()
    assert {b[0] for b in changes.buckets} == {"b.availability"}
    assert changes.seen == [("b.availability", "m2", ms("2026-11-25T11:00:00") // 60_000)]
    assert [i[0] for i in changes.indicators] == ["b.availability"]
    assert {s.objective_id for s in changes.statuses} == {"o2"}
    assert all(ev.objective_id != "o1" for ev in changes.events)
    assert not e.pending()


def test_partitions_are_loaded_most_records_waiting_first() -> None:
    ends = {0: 500, 1: 90, 2: 400, 3: 7}
    stored = {0: 500, 1: 10, 2: 390}  # 3 has nothing stored: its whole log waits
    assert waiting_order(ends, stored) == [1, 2, 3, 0]
    assert waiting_order({0: 5, 1: 5, 2: 5}, {0: 5, 1: 5, 2: 5}) == [0, 1, 2]  # nothing waits: in order
