"""Ingest: measurements over HTTP to the measurements topic, answered 202 only after the broker acked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.ingest.parse import decode_body, validate
from services.ingest.registry import IndicatorRegistry
from services.ingest.settings import IngestSettings
from shared.errors import Invalid, PayloadTooLarge, Unavailable
from shared.http import install_error_handlers, ops_router
from shared.kafka import make_producer
from shared.measurements import Measurement, encode_record
from shared.notify import follow_config

log = logging.getLogger("accord.ingest")


@dataclass
class IngestMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        r = self.registry
        self.accepted = Counter("accord_ingest_measurements_accepted", "Measurements published and acked.", registry=r)
        self.rejected = Counter(
            "accord_ingest_measurements_rejected", "Measurements refused, by reason.", ["reason"], registry=r
        )
        self.latency = Histogram(
            "accord_ingest_request_seconds",
            "POST /v1/measurements latency.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch = Histogram(
            "accord_ingest_batch_size",
            "Measurements per accepted request.",
            buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 100000),
            registry=r,
        )
        self.broker_errors = Counter("accord_ingest_broker_errors", "Requests failed by the broker.", registry=r)
        self.in_flight = Gauge("accord_ingest_requests_in_flight", "Requests being handled.", registry=r)


@dataclass
class IngestState:
    settings: IngestSettings
    producer: AIOKafkaProducer
    registry: IndicatorRegistry
    metrics: IngestMetrics


def create_app(settings: IngestSettings) -> FastAPI:
    metrics = IngestMetrics(CollectorRegistry())
    registry = IndicatorRegistry(settings.asyncpg_dsn)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = make_producer(
            settings.kafka_bootstrap_servers,
            client_id="accord-ingest",
            request_timeout_ms=int(settings.publish_timeout_seconds * 1000),
        )
        await producer.start()
        with contextlib.suppress(OSError, Exception):
            await registry.reload()
        follower = asyncio.create_task(
            follow_config(settings.asyncpg_dsn, registry.reload, fallback_seconds=settings.registry_refresh_seconds)
        )
        app.state.ingest = IngestState(settings, producer, registry, metrics)
        log.info("ingest ready: publishing to %s", settings.measurements_topic)
        try:
            yield
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await producer.stop()

    app = FastAPI(title="Accord ingest", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    async def broker_ready() -> str | None:
        state: IngestState = app.state.ingest
        try:
            await asyncio.wait_for(state.producer.partitions_for(settings.measurements_topic), timeout=2)
        except (TimeoutError, KafkaError) as exc:
            return f"broker unreachable: {exc!r}"
        return None

    async def registry_ready() -> str | None:
        return None if registry.loaded else "indicator registry not loaded yet"

    app.include_router(ops_router(metrics.registry, {"broker": broker_ready, "registry": registry_ready}))

    @app.post("/v1/measurements", status_code=202, summary="Accept measurements")
    async def post_measurements(request: Request) -> JSONResponse:
        """One measurement, a JSON array, or NDJSON, optionally gzip-compressed; 202 once the broker acked all."""
        state: IngestState = request.app.state.ingest
        started = time.perf_counter()
        metrics.in_flight.inc()
        try:
            accepted = await _accept(request, state)
        finally:
            metrics.in_flight.dec()
            metrics.latency.observe(time.perf_counter() - started)
        return JSONResponse({"accepted": accepted}, status_code=202)

    return app


async def _accept(request: Request, state: IngestState) -> int:
    settings, metrics = state.settings, state.metrics
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
        metrics.rejected.labels("too_large").inc()
        raise PayloadTooLarge(f"The body exceeds {settings.max_body_bytes} bytes.")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > settings.max_body_bytes:
            metrics.rejected.labels("too_large").inc()
            raise PayloadTooLarge(f"The body exceeds {settings.max_body_bytes} bytes.")
    try:
        items = decode_body(
            bytes(raw),
            content_type=request.headers.get("content-type", "application/json"),
            content_encoding=request.headers.get("content-encoding", ""),
            max_bytes=settings.max_body_bytes,
        )
        if len(items) > settings.max_items:
            raise PayloadTooLarge(f"The request holds {len(items)} measurements; at most {settings.max_items} fit.")
        measurements = validate(
            items,
            state.registry.kind,
            now_ms=int(time.time() * 1000),
            max_future_ms=settings.max_future_seconds * 1000,
            max_age_ms=settings.max_age_seconds * 1000,
        )
    except Invalid as exc:
        for p in exc.extra.get("errors", []):
            metrics.rejected.labels(_reason(p)).inc()
        raise
    except PayloadTooLarge:
        metrics.rejected.labels("too_large").inc()
        raise
    await publish(state, measurements)
    metrics.accepted.inc(len(measurements))
    metrics.batch.observe(len(measurements))
    return len(measurements)


def _reason(p: dict[str, object]) -> str:
    field = str(p.get("field", ""))
    return field if field in {"indicator", "timestamp", "good", "total", "value", "count", "labels", "id"} else "body"


async def publish(state: IngestState, measurements: list[Measurement]) -> None:
    """Send every measurement, grouped per indicator into records; return once all are acked."""
    settings = state.settings
    by_indicator: dict[str, list[Measurement]] = defaultdict(list)
    for m in measurements:
        by_indicator[m.indicator].append(m)
    try:
        async with asyncio.timeout(settings.publish_timeout_seconds):
            pending = []
            for indicator, items in by_indicator.items():
                key = indicator.encode()
                for start in range(0, len(items), settings.measurements_per_record):
                    value = encode_record(indicator, items[start : start + settings.measurements_per_record])
                    pending.append(await state.producer.send(settings.measurements_topic, value=value, key=key))
            await asyncio.gather(*pending)
    except (TimeoutError, KafkaError) as exc:
        state.metrics.broker_errors.inc()
        log.warning("broker did not acknowledge %d measurements: %r", len(measurements), exc)
        raise Unavailable("The broker did not acknowledge the measurements; retry with the same ids.", 1) from exc
