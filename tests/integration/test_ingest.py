"""Ingest in-process (ASGI) against the real broker and a real, migrated Postgres database."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Servers, Topics, read_topic, wait_until

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.measurements import MAX_ID_LENGTH

RATIO = "checkout.availability"
THRESHOLD = "checkout.latency"


@dataclass
class Ingest:
    client: httpx.AsyncClient
    app: FastAPI
    settings: IngestSettings
    dsn: str
    bootstrap: str
    topic: str


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def register(dsn: str, key: str, kind: str, *, notify: bool = False) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO indicators (key, kind) VALUES ($1, $2)", key, kind)
            if notify:
                await conn.execute("NOTIFY accord_config")
    finally:
        await conn.close()


def ingest_settings(database_url: str, bootstrap: str, topic: str, **extra: Any) -> IngestSettings:
    limits: dict[str, Any] = {"max_body_bytes": 200_000, "max_items": 1000, "publish_timeout_seconds": 5}
    return IngestSettings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ACCORD_MEASUREMENTS_TOPIC=topic,
        **{**limits, **extra},
    )


@contextlib.asynccontextmanager
async def running(settings: IngestSettings) -> AsyncIterator[Ingest]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client,
    ):
        yield Ingest(client, app, settings, settings.asyncpg_dsn, settings.kafka_bootstrap_servers, "")


@pytest.fixture
async def ingest(servers: Servers, database_url: str, topics: Topics) -> AsyncIterator[Ingest]:
    dsn = plain(database_url)
    await register(dsn, RATIO, "ratio")
    await register(dsn, THRESHOLD, "threshold")
    async with running(ingest_settings(database_url, servers.bootstrap, topics.measurements)) as svc:
        svc.topic = topics.measurements
        yield svc


def now() -> float:
    return round(time.time(), 3)


def ratio(id: str, /, **over: Any) -> dict[str, Any]:
    return {"id": id, "indicator": RATIO, "timestamp": now(), "good": 9, "total": 10, **over}


async def ids_on_topic(svc: Ingest, count: int) -> list[str]:
    records = await read_topic(
        svc.bootstrap, svc.topic, until=lambda recs: sum(len(r["measurements"]) for r in recs) >= count, timeout=15
    )
    return [m.get("id") for r in records for m in r["measurements"]]


async def test_measurements_answered_202_are_on_the_topic_one_record_per_indicator(ingest: Ingest) -> None:
    body = [
        ratio("a"),
        {"id": "b", "indicator": THRESHOLD, "timestamp": "2026-01-01T00:00:00Z", "value": 0.3},
        ratio("c", labels={"region": "eu"}),
    ]
    body[1]["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    r = await ingest.client.post("/v1/measurements", json=body)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 3}
    records = await read_topic(ingest.bootstrap, ingest.topic, until=lambda recs: len(recs) >= 2)
    by_indicator = {r["indicator"]: r for r in records}
    assert set(by_indicator) == {RATIO, THRESHOLD}
    assert all(r["schema"] == 1 for r in records)
    assert [m["id"] for m in by_indicator[RATIO]["measurements"]] == ["a", "c"]
    assert by_indicator[RATIO]["measurements"][1]["labels"] == {"region": "eu"}
    assert by_indicator[THRESHOLD]["measurements"][0]["count"] == 1


async def test_a_pack_window_puts_one_indicator_from_separate_requests_in_one_record(
    servers: Servers, database_url: str, topics: Topics
) -> None:
    await register(plain(database_url), RATIO, "ratio")
    settings = ingest_settings(database_url, servers.bootstrap, topics.measurements, pack_window_ms=500)
    async with running(settings) as svc:
        svc.topic = topics.measurements
        publisher = svc.app.state.ingest.publisher
        first = asyncio.create_task(svc.client.post("/v1/measurements", json=[ratio("first")]))
        # The second request arrives while the first's flush is held open (500 ms).
        await wait_until(lambda: publisher.in_flight_bytes > 0, timeout=5, what="the first request to join a flush")
        assert not first.done()
        second = await svc.client.post("/v1/measurements", json=[ratio("second")])
        assert second.status_code == 202
        assert (await first).status_code == 202
        records = await read_topic(svc.bootstrap, svc.topic, until=lambda recs: len(recs) >= 1)
    assert [[m["id"] for m in r["measurements"]] for r in records] == [["first", "second"]]


HTTP_RULES = [
    ("unknown indicator", {"indicator": "nope"}, "indicator", "unknown indicator"),
    ("wrong kind", {"value": 0.5}, "value", "not allowed for a ratio indicator"),
    ("negative count", {"good": -1}, "good", "must be a non-negative integer"),
    ("non-integer count", {"total": 10.5}, "total", "must be a non-negative integer"),
    ("good above total", {"good": 11}, "good", "must not exceed total"),
    ("missing field", {"total": None}, "total", "is required"),
    ("future timestamp", {"timestamp": time.time() + 3600}, "timestamp", "is too far in the future"),
    ("old timestamp", {"timestamp": time.time() - 500 * 86_400}, "timestamp", "is older than any window"),
    ("labels not string to string", {"labels": {"region": 3}}, "labels", "must map strings to strings"),
    ("id with a NUL", {"id": "probe\x00-1"}, "id", "must not contain control characters"),
    ("id too long", {"id": "x" * (MAX_ID_LENGTH + 1)}, "id", f"must be at most {MAX_ID_LENGTH} characters"),
    ("label value too long", {"labels": {"region": "e" * 257}}, "labels", "must be at most 256 characters"),
    ("indicator with a NUL", {"indicator": "checkout\x00availability"}, "indicator", "control characters"),
]


@pytest.mark.parametrize(("change", "field", "reason"), [r[1:] for r in HTTP_RULES], ids=[r[0] for r in HTTP_RULES])
async def test_one_bad_item_refuses_the_request_with_its_problem_and_nothing_is_published(
    ingest: Ingest, change: dict[str, Any], field: str, reason: str
) -> None:
    bad = {k: v for k, v in ratio("bad", **change).items() if v is not None}
    r = await ingest.client.post("/v1/measurements", json=[ratio("ok-1"), bad, ratio("ok-2")])
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 422
    assert [(p["index"], p["field"]) for p in problem["errors"]] == [(1, field)]
    assert reason in problem["errors"][0]["reason"]
    # Nothing of the refused request reached the topic: the next accepted one is all there is.
    assert (await ingest.client.post("/v1/measurements", json=ratio("after"))).status_code == 202
    assert await ids_on_topic(ingest, 1) == ["after"]


async def test_nan_is_refused_with_a_reason_that_says_so(ingest: Ingest) -> None:
    body = b'[{"indicator": "checkout.latency", "timestamp": 1, "value": NaN}]'
    r = await ingest.client.post("/v1/measurements", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["reason"].startswith("NaN and Infinity are not JSON numbers")


async def test_gzip_ndjson_is_accepted(ingest: Ingest) -> None:
    ndjson = b"\n".join(orjson.dumps(ratio(f"n{i}")) for i in range(5)) + b"\n"
    r = await ingest.client.post(
        "/v1/measurements",
        content=gzip.compress(ndjson),
        headers={"content-type": "application/x-ndjson", "content-encoding": "gzip"},
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 5}
    assert sorted(await ids_on_topic(ingest, 5)) == [f"n{i}" for i in range(5)]


async def test_plain_ndjson_is_accepted(ingest: Ingest) -> None:
    ndjson = orjson.dumps(ratio("x")) + b"\n" + orjson.dumps(ratio("y"))
    r = await ingest.client.post("/v1/measurements", content=ndjson, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    assert await ids_on_topic(ingest, 2) == ["x", "y"]


@pytest.mark.parametrize("how", ["raw", "gzip"])
async def test_an_oversized_body_is_refused_with_413_even_when_it_only_grows_by_decompression(
    ingest: Ingest, how: str
) -> None:
    big = orjson.dumps([ratio(f"m{i}", labels={"pad": "x" * 400}) for i in range(500)])
    assert len(big) > ingest.settings.max_body_bytes
    headers = {"content-type": "application/json"}
    if how == "gzip":
        big = gzip.compress(big)
        assert len(big) < ingest.settings.max_body_bytes
        headers["content-encoding"] = "gzip"
    r = await ingest.client.post("/v1/measurements", content=big, headers=headers)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


async def test_too_many_items_are_refused_with_413(ingest: Ingest) -> None:
    body = [{"indicator": RATIO, "timestamp": now(), "good": 1, "total": 1}] * (ingest.settings.max_items + 1)
    r = await ingest.client.post("/v1/measurements", json=body)
    assert r.status_code == 413
    assert str(ingest.settings.max_items) in r.json()["detail"]


async def test_a_new_indicator_is_accepted_within_seconds_of_its_notice(ingest: Ingest) -> None:
    body = {"indicator": "search.availability", "timestamp": now(), "good": 1, "total": 1}
    assert (await ingest.client.post("/v1/measurements", json=body)).status_code == 422
    await register(ingest.dsn, "search.availability", "ratio", notify=True)

    async def accepted() -> bool:
        return (await ingest.client.post("/v1/measurements", json=body)).status_code == 202

    # The fallback reload is 30 s away: within 5 s, it was the notice.
    assert ingest.settings.registry_refresh_seconds >= 30
    await wait_until(accepted, timeout=5, what="ingest to learn the new indicator")


async def test_an_archived_indicator_is_refused_within_seconds_of_its_notice(ingest: Ingest) -> None:
    body = {"indicator": RATIO, "timestamp": now(), "good": 1, "total": 1}
    assert (await ingest.client.post("/v1/measurements", json=body)).status_code == 202
    conn = await asyncpg.connect(ingest.dsn)
    try:
        async with conn.transaction():
            await conn.execute("UPDATE indicators SET archived_at = now() WHERE key = $1", RATIO)
            await conn.execute("NOTIFY accord_config")
    finally:
        await conn.close()

    async def refused() -> bool:
        r = await ingest.client.post("/v1/measurements", json=body)
        return r.status_code == 422 and r.json()["errors"][0]

    problem = await wait_until(refused, timeout=5, what="ingest to refuse the archived indicator")
    assert problem == {
        "index": 0,
        "field": "indicator",
        "reason": f"indicator {RATIO!r} is archived and takes no new measurements",
    }


async def test_known_indicators_are_still_accepted_when_postgres_is_gone(
    ingest: Ingest, servers: Servers, database_url: str
) -> None:
    conn = await asyncpg.connect(servers.admin_url)
    try:
        await conn.execute(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()
    # A reload while Postgres is gone fails, and leaves the copy ingest validates against in place.
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await ingest.app.state.ingest.registry.reload()
    r = await ingest.client.post("/v1/measurements", json=[ratio("while-down")])
    assert r.status_code == 202, r.text
    r = await ingest.client.post("/v1/measurements", json=[ratio("x", indicator="still.unknown")])
    assert r.status_code == 422


async def test_metrics_count_accepted_and_rejected_measurements_by_reason(ingest: Ingest) -> None:
    await ingest.client.post("/v1/measurements", json=[ratio("a"), ratio("b")])
    await ingest.client.post("/v1/measurements", json=[ratio("c", good=20), ratio("d", indicator="nope")])
    await ingest.client.post("/v1/measurements", content=b"{", headers={"content-type": "application/json"})
    text = (await ingest.client.get("/metrics")).text
    for line in (
        "accord_ingest_measurements_accepted_total 2.0",
        'accord_ingest_measurements_rejected_total{reason="good"} 1.0',
        'accord_ingest_measurements_rejected_total{reason="indicator"} 1.0',
        'accord_ingest_measurements_rejected_total{reason="body"} 1.0',
        "accord_ingest_batch_size_count 1.0",
        "accord_ingest_record_size_count 1.0",
        "accord_ingest_request_seconds_count 3.0",
        "accord_ingest_requests_in_flight 0.0",
        "accord_ingest_in_flight_bytes 0.0",
        "accord_ingest_broker_errors_total 0.0",
    ):
        assert line in text, line


async def test_four_megabytes_of_empty_gzip_members_are_answered(
    servers: Servers, database_url: str, topics: Topics
) -> None:
    await register(plain(database_url), RATIO, "ratio")
    settings = ingest_settings(database_url, servers.bootstrap, topics.measurements, max_body_bytes=8 * 1024 * 1024)
    empties = gzip.compress(b"", mtime=0) * (4 * 1024 * 1024 // 20)
    body = gzip.compress(b"[") + empties + gzip.compress(orjson.dumps(ratio("after-empties")) + b"]")
    async with running(settings) as svc:
        started = time.perf_counter()
        r = await svc.client.post(
            "/v1/measurements", content=body, headers={"content-type": "application/json", "content-encoding": "gzip"}
        )
        print(f"4 MB of empty gzip members answered in {time.perf_counter() - started:.2f} s")
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 1}


async def test_a_wrong_method_is_answered_405_with_allow(ingest: Ingest) -> None:
    r = await ingest.client.get("/v1/measurements")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_openapi_document_describes_the_body_and_every_answer(ingest: Ingest) -> None:
    doc = (await ingest.client.get("/openapi.json")).json()
    post = doc["paths"]["/v1/measurements"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert set(post["responses"]) == {"202", "413", "415", "422", "503"}
    ratio_schema = doc["components"]["schemas"]["RatioMeasurement"]
    assert set(ratio_schema["required"]) == {"indicator", "timestamp", "good", "total"}
    assert set(ratio_schema["properties"]) == {"indicator", "timestamp", "good", "total", "id", "labels"}
    threshold_schema = doc["components"]["schemas"]["ThresholdMeasurement"]
    assert set(threshold_schema["properties"]) == {"indicator", "timestamp", "value", "count", "id", "labels"}
    id_string = ratio_schema["properties"]["id"]["anyOf"][0]["anyOf"][0]
    assert id_string["maxLength"] == MAX_ID_LENGTH


async def test_readiness_reaches_the_broker_and_a_failing_check_answers_503_not_500(ingest: Ingest) -> None:
    r = await ingest.client.get("/readyz")
    assert r.status_code == 200, r.text

    class Broken:
        async def check(self) -> str | None:
            raise RuntimeError("probe broke")

    ingest.app.state.ingest.broker_probe = Broken()
    r = await ingest.client.get("/readyz")
    assert r.status_code == 503
    assert "probe broke" in r.json()["dependencies"]["broker"]


# ---------------------------------------------------------------------------------------------- fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=10,
)
items = st.fixed_dictionaries(
    {},
    optional={
        "indicator": st.sampled_from([RATIO, THRESHOLD, "nope"]) | json_values,
        "timestamp": st.floats(1.7e9, 1.9e9) | st.sampled_from(["2026-01-01T00:00:00Z", "2099-13-01"]) | json_values,
        "good": st.integers(-2, 2**64) | json_values,
        "total": st.integers(-2, 2**64) | json_values,
        "value": st.floats() | json_values,
        "count": st.integers(-2, 10) | json_values,
        "id": st.text(max_size=8) | json_values,
        "labels": st.dictionaries(st.text(max_size=5), st.text(max_size=5) | json_values, max_size=3) | json_values,
    },
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


def dump(value: Any) -> bytes:
    """The stdlib encoder: it writes what orjson refuses to (NaN, Infinity, integers past 64 bits)."""
    return json.dumps(value).encode()


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    shape = draw(st.sampled_from(["items", "json", "ndjson", "bytes"]))
    if shape == "items":
        body = dump(draw(st.lists(items, max_size=6)))
    elif shape == "json":
        body = dump(draw(json_values))
    elif shape == "ndjson":
        body = b"\n".join(dump(v) for v in draw(st.lists(items | json_values, max_size=4)))
    else:
        body = draw(st.binary(max_size=200))
    headers = {"content-type": draw(st.sampled_from(["application/json", "application/x-ndjson", ""]) | header_text)}
    encoding = draw(st.sampled_from(["", "gzip", "identity", "GZIP ", "br"]) | header_text)
    if encoding:
        headers["content-encoding"] = encoding
    if draw(st.booleans()) and encoding.strip().lower() == "gzip":
        body = gzip.compress(body)
    if draw(st.integers(0, 9)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return body, headers


@pytest.fixture
def fuzz_target(servers: Servers, database_url: str, topics: Topics) -> Iterator[tuple[asyncio.Runner, Ingest]]:
    """Ingest on its own event loop, so that a synchronous hypothesis test can drive it."""
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        runner.run(register(plain(database_url), RATIO, "ratio"))
        runner.run(register(plain(database_url), THRESHOLD, "threshold"))
        svc = runner.run(
            stack.enter_async_context(running(ingest_settings(database_url, servers.bootstrap, topics.measurements)))
        )
        try:
            yield runner, svc
        finally:
            runner.run(stack.aclose())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_random_bodies_and_headers_never_get_a_500(
    fuzz_target: tuple[asyncio.Runner, Ingest], request: tuple[bytes, dict[str, str]]
) -> None:
    runner, svc = fuzz_target
    body, headers = request
    r = runner.run(svc.client.post("/v1/measurements", content=body, headers=headers))
    assert r.status_code in (202, 413, 415, 422), (r.status_code, r.text)
    if r.status_code != 202:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == r.status_code
