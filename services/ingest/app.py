"""Ingest: measurements over HTTP to the measurements topic, answered 202 only after the broker acked.

Faults are bounded in time and memory:
- every request waits at most `publish_timeout_seconds` for the broker, then gets 503 + Retry-After;
- records handed to the producer count against `max_in_flight_bytes` until the producer is done
  with them (acked or failed), even after their request was answered 503; a request that would
  pass the limit is answered 503 at once, so a paused broker cannot make ingest's memory grow;
- the indicator registry is a cached copy of Postgres' indicators table, so an unreachable
  Postgres does not stop ingest from accepting known indicators;
- bodies larger than `THREAD_BYTES`, and compressed ones, are decoded and validated in a worker
  thread, so one large (or adversarial: many tiny gzip members) body does not hold every other
  request up.

Readiness tells the truth: ingest is ready only while the broker answers a real request (see
`BrokerProbe`) and the indicator registry was loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.protocol.metadata import MetadataRequest
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.ingest.parse import Batch, decode_body, validate
from services.ingest.publisher import Publisher
from services.ingest.registry import IndicatorRegistry
from services.ingest.schema import operation_docs
from services.ingest.settings import IngestSettings
from shared.auth import forbid_unlisted_indicators, install_auth, principal_of
from shared.errors import AccordError, Invalid, PayloadTooLarge, Unavailable, UnsupportedMediaType
from shared.http import ReadinessCheck, install_error_handlers, ops_router, problem
from shared.kafka import make_producer
from shared.metrics import service_registry
from shared.notify import follow_config

log = logging.getLogger("accord.ingest")

RETRY_AFTER_SECONDS = 1
THREAD_BYTES = 128 * 1024
"""Bodies larger than this are decoded and validated off the event loop."""
BROKER_PROBE_TIMEOUT_SECONDS = 1.0
"""Longest wait for the broker's answer to a readiness round trip."""
BROKER_PROBE_MAX_AGE_SECONDS = 1.0
"""How long one answered round trip stands for the broker's health. With the timeout, a broker that stops
answering makes /readyz 503 within 2 s (documented as at most 3 s, for the probe's own latency)."""
REASONS = frozenset({"indicator", "timestamp", "good", "total", "value", "count", "labels", "id"})
REJECTED_REASONS = (*sorted(REASONS), "body", "too_large", "encoding", "unavailable")
"""Every `reason` of accord_ingest_measurements_rejected_total: the fields, then the request-wide ones."""
ANSWER_CODES = ("202", "413", "415", "422", "500", "503")
"""Answers of POST /v1/measurements counted in accord_ingest_requests_total (each starts at 0)."""


@dataclass
class IngestMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r = self.registry
        self.accepted = Counter("accord_ingest_measurements_accepted", "Measurements published and acked.", registry=r)
        self.rejected = Counter(
            "accord_ingest_measurements_rejected",
            "Measurements refused, by reason: the field at fault (first problem of the item), `body` (not JSON, "
            "gzip or an object), `too_large` (413, counted once per request), `unavailable` (503).",
            ["reason"],
            registry=r,
        )
        for reason in REJECTED_REASONS:
            self.rejected.labels(reason)
        self.requests = Counter(
            "accord_ingest_requests", "POST /v1/measurements requests by HTTP status code.", ["code"], registry=r
        )
        for code in ANSWER_CODES:
            self.requests.labels(code)
        self.latency = Histogram(
            "accord_ingest_request_seconds",
            "POST /v1/measurements latency, whatever the answer.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch = Histogram(
            "accord_ingest_batch_size",
            "Measurements per accepted request.",
            buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 100000),
            registry=r,
        )
        self.record_size = Histogram(
            "accord_ingest_record_size",
            "Measurements per published Kafka record (concurrent requests share records).",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
            registry=r,
        )
        self.broker_errors = Counter(
            "accord_ingest_broker_errors", "Requests answered 503 because the broker did not ack in time.", registry=r
        )
        self.in_flight = Gauge("accord_ingest_requests_in_flight", "Requests being handled.", registry=r)
        self.ready = Gauge(
            "accord_ingest_ready",
            "1 when /readyz would answer 200 (broker answers, indicator registry loaded), checked at scrape time.",
            registry=r,
        )
        self.in_flight_bytes = Gauge(
            "accord_ingest_in_flight_bytes", "Bytes of records handed to the producer and not yet acked or failed.",
            registry=r,
        )  # fmt: skip
        self.overloaded = Counter(
            "accord_ingest_overloaded", "Requests answered 503 at once because in-flight bytes were at the limit.",
            registry=r,
        )  # fmt: skip


@dataclass
class IngestState:
    settings: IngestSettings
    producer: AIOKafkaProducer
    registry: IndicatorRegistry
    metrics: IngestMetrics
    publisher: Publisher
    broker_probe: BrokerProbe


class BrokerProbe:
    """Whether the broker answers now: a Metadata request for the measurements topic, sent to the broker.

    The producer's cached metadata says nothing about a broker that froze after answering it, so this
    sends a real request on the producer's own connection (what publishing needs to work) and waits at
    most `timeout` seconds. An answer counts for `max_age` seconds; concurrent probes share one round trip.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, timeout: float, max_age: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout
        self._max_age = max_age
        self._checked_at = -math.inf
        self._reason: str | None = "not checked yet"
        self._pending: asyncio.Task[str | None] | None = None

    async def check(self) -> str | None:
        """None when the broker answered within the last `max_age` seconds, else the reason it is not ready."""
        if time.monotonic() - self._checked_at < self._max_age:
            return self._reason
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._round_trip(), name="ingest-broker-probe")
        # Shielded: a probe whose client went away must not cancel the round trip others wait on.
        return await asyncio.shield(self._pending)

    async def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending

    async def _round_trip(self) -> str | None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                client = self._producer.client
                node = _leader_of(client, self._topic)
                if node is None:
                    node = client.get_random_node()
                if node is None:
                    raise ConnectionError("no broker known")
                answer = await client.send(node, MetadataRequest([self._topic], allow_auto_topic_creation=False))
                if not answer.brokers:
                    raise ConnectionError("the broker answered without brokers")
            reason = None
        except TimeoutError:
            reason = f"the broker did not answer within {self._timeout:g} s"
        except Exception as exc:  # readiness answers 503 with a reason, never raises
            reason = f"broker unreachable: {exc!r}"
        self._checked_at, self._reason = started, reason
        return reason


def _leader_of(client: Any, topic: str) -> int | None:
    """A broker leading a partition of `topic` (the one publishing needs), from the client's cached layout."""
    for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
        leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        if leader is not None and leader >= 0:
            return int(leader)
    return None


def never_raises(name: str, check: ReadinessCheck) -> ReadinessCheck:
    """`check`, answering a reason instead of raising: a readiness probe must answer 503, never 500."""

    async def safe() -> str | None:
        try:
            return await check()
        except Exception as exc:
            log.warning("readiness check %s failed: %r", name, exc)
            return f"check failed: {exc!r}"

    return safe


def create_app(settings: IngestSettings) -> FastAPI:
    metrics = IngestMetrics(service_registry("ingest"))
    registry = IndicatorRegistry(settings.asyncpg_dsn)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = make_producer(
            settings.kafka,
            client_id="accord-ingest",
            request_timeout_ms=int(settings.publish_timeout_seconds * 1000),
            linger_ms=settings.linger_ms,
            # With aiokafka's default 16 KiB a partition carries one record per round trip, capping ingest.
            max_batch_size=settings.producer_batch_bytes,
        )
        await producer.start()
        publisher = Publisher(
            producer,
            settings.measurements_topic,
            per_record=settings.measurements_per_record,
            max_in_flight_bytes=settings.max_in_flight_bytes,
            timeout=settings.publish_timeout_seconds,
            pack_window=settings.pack_window_ms / 1000,
            on_in_flight=metrics.in_flight_bytes.set,
            on_record=metrics.record_size.observe,
        )
        await publisher.start()
        try:
            await registry.reload()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("indicator registry not loaded at start (%r); the config listener retries", exc)
        follower = asyncio.create_task(
            follow_config(settings.asyncpg_dsn, registry.reload, fallback_seconds=settings.registry_refresh_seconds)
        )
        probe = BrokerProbe(
            producer,
            settings.measurements_topic,
            timeout=BROKER_PROBE_TIMEOUT_SECONDS,
            max_age=BROKER_PROBE_MAX_AGE_SECONDS,
        )
        app.state.ingest = IngestState(settings, producer, registry, metrics, publisher, probe)
        log.info("ingest ready: publishing to %s", settings.measurements_topic)
        try:
            yield
        finally:
            await probe.stop()
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await publisher.stop()
            await producer.stop()

    app = FastAPI(title="Accord ingest", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        # As shared.http's, but keeping the exception's headers: a 405 must say which methods are allowed.
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None)

    async def broker_ready() -> str | None:
        state: IngestState = app.state.ingest
        return await state.broker_probe.check()

    async def registry_ready() -> str | None:
        return None if registry.loaded else "indicator registry not loaded yet"

    checks: dict[str, Callable[[], Awaitable[str | None]]] = {"broker": broker_ready, "registry": registry_ready}
    safe_checks = {name: never_raises(name, c) for name, c in checks.items()}

    async def before_scrape() -> None:
        reasons = [await check() for check in safe_checks.values()]
        metrics.ready.set(1 if all(r is None for r in reasons) else 0)

    app.include_router(ops_router(metrics.registry, safe_checks, before_scrape))
    extra, responses, components = operation_docs(settings.max_items, settings.max_body_bytes)

    @app.post(
        "/v1/measurements",
        status_code=202,
        summary="Accept measurements",
        response_class=Response,
        openapi_extra=extra,
    )
    async def post_measurements(request: Request) -> Response:
        """One measurement, a JSON array, or NDJSON, optionally gzip-compressed; 202 once the broker acked all."""
        state: IngestState = request.app.state.ingest
        started = time.perf_counter()
        metrics.in_flight.inc()
        code: int | None = None  # stays None for a request cancelled mid-way (its client is gone)
        try:
            accepted = await _accept(request, state)
            code = 202
        except AccordError as exc:
            code = exc.status
            raise
        except Exception:
            code = 500  # the error handlers answer a 500 problem
            raise
        finally:
            metrics.in_flight.dec()
            metrics.latency.observe(time.perf_counter() - started)
            if code is not None:
                metrics.requests.labels(str(code)).inc()
        return Response(b'{"accepted":%d}' % accepted, status_code=202, media_type="application/json")

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the hand-parsed body's schemas and every answer of the route."""
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc.setdefault("components", {}).setdefault("schemas", {}).update(components)
            doc["paths"]["/v1/measurements"]["post"]["responses"] = responses
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_auth(app, "ingest", settings)
    return app


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body; 413 as soon as it (or its declared length) passes `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_request(
    raw: bytes,
    headers: Mapping[str, str],
    settings: IngestSettings,
    kinds: dict[str, str],
    archived: Collection[str] = frozenset(),
) -> Batch:
    """Decode and validate a body against the registry's `kinds`: the whole request or nothing."""
    items = decode_body(
        raw,
        content_type=headers.get("content-type", "application/json"),
        content_encoding=headers.get("content-encoding", ""),
        max_bytes=settings.max_body_bytes,
    )
    if len(items) > settings.max_items:
        raise PayloadTooLarge(f"The request holds {len(items)} measurements; at most {settings.max_items} fit.")
    return validate(
        items,
        kinds.get,
        now_ms=int(time.time() * 1000),
        max_future_ms=settings.max_future_seconds * 1000,
        max_age_ms=settings.max_age_seconds * 1000,
        archived=archived,
    )


async def _accept(request: Request, state: IngestState) -> int:
    settings, metrics = state.settings, state.metrics
    try:
        raw = await read_body(request, settings.max_body_bytes)
        registry = state.registry
        if len(raw) > THREAD_BYTES or "content-encoding" in request.headers:
            batch = await asyncio.to_thread(
                parse_request, raw, request.headers, settings, registry.kinds, registry.archived
            )
        else:
            batch = parse_request(raw, request.headers, settings, registry.kinds, registry.archived)
    except Invalid as exc:
        reasons: dict[object, str] = {}
        for p in exc.extra.get("errors", []):
            reasons.setdefault(p.get("index"), str(p.get("field", "")))
        for reason in reasons.values():
            metrics.rejected.labels(reason if reason in REASONS else "body").inc()
        raise
    except PayloadTooLarge:
        metrics.rejected.labels("too_large").inc()
        raise
    except UnsupportedMediaType:
        metrics.rejected.labels("encoding").inc()
        raise
    forbid_unlisted_indicators(principal_of(request), batch.by_indicator)  # an ingest token may be limited
    try:
        await publish(state, batch, max(len(raw), 64 * batch.count))
    except Unavailable:
        metrics.rejected.labels("unavailable").inc(batch.count)
        raise
    metrics.accepted.inc(batch.count)
    metrics.batch.observe(batch.count)
    return batch.count


async def publish(state: IngestState, batch: Batch, size: int) -> None:
    """Return once every measurement of `batch` is acked; raise Unavailable within the publish timeout."""
    joined = state.publisher.submit(batch, size)
    if joined is None:
        state.metrics.overloaded.inc()
        raise Unavailable("Too many measurements wait for the broker; retry with the same ids.", RETRY_AFTER_SECONDS)
    # Shielded: the flush's future is shared, a cancelled request must not cancel the others.
    # It resolves within the publish timeout (Publisher arms one timer per flush).
    error = await asyncio.shield(joined)
    if error is not None:
        state.metrics.broker_errors.inc()
        raise Unavailable(
            "The broker did not acknowledge the measurements in time; retry with the same ids.", RETRY_AFTER_SECONDS
        ) from error
