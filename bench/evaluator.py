"""bench/evaluator: evaluator throughput and POST-to-breach-event latency (issue 4).

    .venv/bin/python bench/evaluator.py            # about 4 minutes
    .venv/bin/python bench/evaluator.py --quick    # about 1.5 minutes
    .venv/bin/python bench/evaluator.py --profile /tmp/evaluator.prof   # the evaluators under cProfile

Starts its own embedded PostgreSQL and a fresh Tansu broker per scenario (Tansu keeps every
record in memory), seeds 1,000 ratio indicators feeding 10,000 objectives (1,000 agreements,
10 objectives each, each on a different indicator; 30-day windows, default alert policy) and
runs the services as real processes:

(a) throughput: the whole workload is published to the measurements topic first (records of
    up to `--per-record` measurements of one indicator, key = indicator, acks=all), then ONE
    `accord-evaluator` starts; measured from its first checkpoint (the first row in
    `consumer_offsets`) until the stored offsets reach the offsets recorded while publishing.
    Reports measurements/s, records/s and the evaluator's peak RSS.
(b) latency: `accord-ingest` and `accord-evaluator` run while a background load is POSTed to
    ingest (`--background-rate` measurements/s over the 1,000 indicators); a probe indicator
    with one objective (rolling 1-minute window, no burn-rate tiers, budget thresholds [1.0])
    gets one probe measurement every `1/--probe-rate` s, each in its own minute of event time,
    alternately all bad (-> accord.budget.exhausted) and all good (-> accord.budget.recovered).
    A consumer reading the breach topic from its beginning timestamps each probe's event; the
    latency is event receipt minus the instant just before the probe's POST. Two load shapes:
    "spread" (each POST has one measurement for each of 500 indicators, so ingest writes one
    record per measurement) and "grouped" (each POST has 10 measurements for each of 50
    indicators, so one record carries 10).

Every process and server is stopped at the end, on errors and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import pstats
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from accord.cli import migrate  # noqa: E402
from accord.localstack import Broker, LocalStackError, Postgres, ServiceProcess, free_port  # noqa: E402
from accord.tokens import create_token  # noqa: E402
from shared.budget.model import DEFAULT_BUDGET_THRESHOLDS  # noqa: E402
from shared.events import iso_ms  # noqa: E402
from shared.kafka import ensure_topics, make_producer  # noqa: E402
from shared.measurements import Measurement, encode_record  # noqa: E402

MEASUREMENTS_TOPIC = "bench.measurements"
BREACHES_TOPIC = "bench.breaches"
GROUP = "bench-evaluator"
MEASUREMENTS_PARTITIONS = 8
BREACHES_PARTITIONS = 4
INDICATORS = 1_000
OBJECTIVES_PER_INDICATOR = 10
TARGETS = (0.99, 0.995, 0.999, 0.9995, 0.9999)
PROBE_INDICATOR = "bench.probe"
PROBE_OBJECTIVE = uuid.UUID(int=0xACC0)
PROBE_POLICY = {"tiers": [], "budget_thresholds": [1.0]}
# The evaluator's defaults (README), set explicitly so the report names what was measured.
EVALUATOR_SETTINGS = {
    "ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS": "250",
    "ACCORD_EVALUATOR_RELAY_INTERVAL_MS": "500",
    "ACCORD_EVALUATOR_MAX_BATCH": "2000",
}
GOAL_THROUGHPUT = 300_000
GOAL_P99_S = {"spread": (1.0, "<"), "grouped": (0.3, "<=")}
"""POST -> event p99 per load shape (issue 10): spread under a second, grouped at most 300 ms."""


def indicator_key(n: int) -> str:
    return f"bench.service-{n:04d}.availability"


# ---------------------------------------------------------------------------------------------- processes


class Service(ServiceProcess):
    """`ServiceProcess` that also stops waiting when the run is interrupted (Ctrl-C, SIGTERM)."""

    def check(self) -> None:
        if STOP_REQUESTED.is_set():
            raise Interrupted("interrupted")
        super().check()

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.url}/metrics", timeout=5)).text


class BenchError(RuntimeError):
    pass


class Interrupted(BenchError):
    """Ctrl-C or SIGTERM: the run stops, and every server and process is stopped on the way out."""


STOP_REQUESTED = asyncio.Event()  # set by the signal handler; polled by every waiting loop (Service.check)


def service(name: str, env: dict[str, str], work: Path, tag: str, *, profile: Path | None = None) -> Service:
    argv = None
    if profile is not None:
        module = {"accord-ingest": "services.ingest.main", "accord-evaluator": "services.evaluator.main"}[name]
        # Not `python -m cProfile`: uvicorn re-raises the SIGTERM it handled once it has shut down, which
        # would end the process before cProfile writes its file. SIGTERM here raises SystemExit instead.
        code = (
            "import cProfile, runpy, signal, sys\n"
            "def _exit(*_): raise SystemExit(0)\n"
            "signal.signal(signal.SIGTERM, _exit)\n"
            "p = cProfile.Profile()\n"
            "p.enable()\n"
            "try:\n"
            f"    runpy.run_module({module!r}, run_name='__main__')\n"
            "finally:\n"
            "    p.disable()\n"
            f"    p.dump_stats({str(profile)!r})\n"
        )
        argv = [sys.executable, "-c", code]
    return Service(name, env, log=work / f"{name}-{tag}.log", argv=argv, cwd=PROJECT)


class PeakRss:
    """Samples a process's resident set size every 100 ms; keeps the peak and the samples."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.cpu_start = self.process.cpu_times()
        self._task: asyncio.Task[None] | None = None

    def now(self) -> int:
        with contextlib.suppress(psutil.Error):
            rss = int(self.process.memory_info().rss)
            self.peak = max(self.peak, rss)
            return rss
        return 0

    def cpu_seconds(self) -> float:
        with contextlib.suppress(psutil.Error):
            t = self.process.cpu_times()
            return float((t.user + t.system) - (self.cpu_start.user + self.cpu_start.system))
        return float("nan")

    async def _sample(self) -> None:
        while True:
            self.now()
            await asyncio.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def metric_value(text: str, name: str) -> float:
    """Sum of the samples of one Prometheus metric family in an exposition text (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------------------------------------- the database


async def prepare_database(pg: Postgres, name: str, *, probe: bool) -> str:
    """A migrated database holding 1,000 indicators, 1,000 agreements and 10,000 objectives (+ the probe)."""
    pg.create_database(name)
    url = pg.url(name)
    await asyncio.to_thread(migrate, url)
    conn = await asyncpg.connect(url)
    try:
        columns = {
            (r["table_name"], r["column_name"])
            for r in await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            )
        }
        with_spec = ("agreements", "spec") in columns and ("objectives", "spec") in columns
        legacy = ("objectives", "target") in columns  # dropped by migration 0004
        await seed(conn, with_spec=with_spec, legacy=legacy, probe=probe)
    finally:
        await conn.close()
    return url


def agreement_spec(name: str, customer: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "Bench Platform",
        "customer": customer,
        "description": "",
        "effective_from": None,
        "effective_until": None,
        "timezone": "UTC",
        "reporting_period": "month",
        "business_hours": None,
        "maintenance": [],
        "credit_tiers": [],
        "labels": {},
    }


def objective_spec(name: str, indicator: str, target: float, window: str, policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "description": "",
        "indicator": indicator,
        "matchers": {},
        "target": target,
        "window": window,
        "budgeting": "occurrences",
        "slice_length": None,
        "slice_target": None,
        "threshold": None,
        "business_hours_only": False,
        "alert_policy": {
            "tiers": policy.get("tiers"),
            "min_events": policy.get("min_events", 0),
            "budget_thresholds": policy.get("budget_thresholds", list(DEFAULT_BUDGET_THRESHOLDS)),
        },
    }


async def seed(conn: asyncpg.Connection, *, with_spec: bool, legacy: bool, probe: bool) -> None:
    indicators = [indicator_key(n) for n in range(INDICATORS)]
    if probe:
        indicators.append(PROBE_INDICATOR)
    agreements: list[tuple[Any, ...]] = []
    objectives: list[tuple[Any, ...]] = []

    def add_agreement(n: int, name: str, customer: str) -> uuid.UUID:
        agreement = uuid.UUID(int=(1 << 64) + n)
        agreements.append((agreement, name, "Bench Platform", customer, orjson.dumps(agreement_spec(name, customer))))
        return agreement

    def add_objective(oid: uuid.UUID, agreement: uuid.UUID, name: str, key: str, target: float, window: str,
                      policy: dict[str, Any]) -> None:  # fmt: skip
        spec = objective_spec(name, key, target, window, policy)
        objectives.append((oid, agreement, name, key, target, window, orjson.dumps(policy), orjson.dumps(spec)))

    # Agreement a holds one objective on each of the indicators a, a+100, ..., a+900 (mod 1,000):
    # every indicator feeds 10 objectives of 10 different agreements.
    for a in range(INDICATORS):
        agreement = add_agreement(a, f"Customer {a:04d} SLA", f"Customer {a:04d}")
        for k in range(OBJECTIVES_PER_INDICATOR):
            key = indicator_key((a + k * (INDICATORS // OBJECTIVES_PER_INDICATOR)) % INDICATORS)
            target = TARGETS[(a + k) % len(TARGETS)]
            oid = uuid.UUID(int=(2 << 64) + a * OBJECTIVES_PER_INDICATOR + k)
            add_objective(oid, agreement, f"{key} {target}", key, target, "30d", {})
    if probe:
        agreement = add_agreement(INDICATORS, "Probe SLA", "Probe")
        add_objective(PROBE_OBJECTIVE, agreement, "probe", PROBE_INDICATOR, 0.999, "1m", PROBE_POLICY)

    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO indicators (key, kind, unit) VALUES ($1, 'ratio', 'requests')", [(k,) for k in indicators]
        )
        if with_spec:
            await conn.executemany(
                "INSERT INTO agreements (id, name, provider, customer, spec) VALUES ($1, $2, $3, $4, $5::jsonb)",
                [(a, n, p, c, s.decode()) for a, n, p, c, s in agreements],
            )
        if with_spec and not legacy:
            await conn.executemany(
                """INSERT INTO objectives (id, agreement_id, name, indicator_key, spec)
                   VALUES ($1, $2, $3, $4, $5::jsonb)""",
                [(*row[:4], row[7].decode()) for row in objectives],
            )
        elif with_spec:
            await conn.executemany(
                """INSERT INTO objectives (id, agreement_id, name, indicator_key, target, "window", alert_policy, spec)
                   VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)""",
                [(*row[:6], row[6].decode(), row[7].decode()) for row in objectives],
            )
        else:
            await conn.executemany(
                "INSERT INTO agreements (id, name, provider, customer) VALUES ($1, $2, $3, $4)",
                [row[:4] for row in agreements],
            )
            await conn.executemany(
                """INSERT INTO objectives (id, agreement_id, name, indicator_key, target, "window", alert_policy)
                   VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)""",
                [(*row[:6], row[6].decode()) for row in objectives],
            )


def common_env(database_url: str, bootstrap: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ACCORD_MEASUREMENTS_TOPIC": MEASUREMENTS_TOPIC,
        "ACCORD_BREACHES_TOPIC": BREACHES_TOPIC,
        "ACCORD_EVALUATOR_GROUP_ID": GROUP,
        "ACCORD_LOG_LEVEL": "WARNING",
        **EVALUATOR_SETTINGS,
    }


# ---------------------------------------------------------------------------------------------- (a) throughput


def counts_pool(rng: random.Random, size: int = 10_007) -> list[tuple[int, int]]:
    """Realistic (good, total) pairs: ~1,000 requests a measurement, errors in about 2 % of them."""
    pool = []
    for _ in range(size):
        total = rng.randint(800, 1200)
        bad = rng.randint(1, 3) if rng.random() < 0.02 else 0
        pool.append((total - bad, total))
    return pool


@dataclass
class Workload:
    records: int = 0
    measurements: int = 0
    bytes: int = 0
    end_offsets: dict[int, int] = field(default_factory=dict)
    # per partition: cumulative measurements before each offset (index = offset), to count exactly
    # the measurements applied between two stored offsets
    cumulative: dict[int, list[int]] = field(default_factory=dict)

    def applied(self, offsets: dict[int, int]) -> int:
        return sum(self.cumulative[p][min(o, len(self.cumulative[p]) - 1)] for p, o in offsets.items())


async def publish_workload(bootstrap: str, total: int, per_record: int, span_minutes: float) -> Workload:
    """Publish `total` measurements over the 1,000 indicators, `per_record` to a record, round-robin by indicator.

    Each indicator's measurements are evenly spaced over the last `span_minutes`, in time order.
    """
    rng = random.Random(4)
    pool = counts_pool(rng)
    per_indicator = total // INDICATORS
    span_ms = int(span_minutes * 60_000)
    step_ms = span_ms // per_indicator
    start_ms = int(time.time() * 1000) - span_ms
    workload = Workload()
    producer = make_producer(bootstrap, client_id="bench-publisher", linger_ms=5)
    await producer.start()
    try:
        pending: list[tuple[asyncio.Future[Any], int]] = []

        async def settle() -> None:
            for future, count in pending:
                meta = await asyncio.wait_for(future, timeout=60)
                cumulative = workload.cumulative.setdefault(meta.partition, [0])
                if len(cumulative) != meta.offset + 1:
                    raise BenchError(f"partition {meta.partition}: offset {meta.offset} out of order")
                cumulative.append(cumulative[-1] + count)
                workload.end_offsets[meta.partition] = meta.offset + 1
            pending.clear()

        n = 0
        for first in range(0, per_indicator, per_record):
            size = min(per_record, per_indicator - first)
            for i in range(INDICATORS):
                key = indicator_key(i)
                batch = []
                for j in range(first, first + size):
                    good, total_ = pool[n % len(pool)]
                    n += 1
                    batch.append(Measurement(key, start_ms + j * step_ms + i, good=good, total=total_))
                value = encode_record(key, batch)
                pending.append((await producer.send(MEASUREMENTS_TOPIC, value, key=key.encode()), size))
                workload.records += 1
                workload.measurements += size
                workload.bytes += len(value)
                if len(pending) >= 500:
                    await settle()
        await settle()
    finally:
        await producer.stop()
    return workload


@dataclass
class Throughput:
    measurements: int
    records: int
    bytes: int
    publish_s: float
    startup_s: float
    measured_s: float
    measured_measurements: int
    measured_records: int
    peak_rss: int
    rss_at_first_checkpoint: int
    cpu_s: float
    checkpoints: int
    checkpoint_s: float
    events: int

    @property
    def measurements_per_s(self) -> float:
        return self.measured_measurements / self.measured_s

    @property
    def records_per_s(self) -> float:
        return self.measured_records / self.measured_s


async def stored_offsets(conn: asyncpg.Connection) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
        GROUP,
        MEASUREMENTS_TOPIC,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def run_throughput(
    pg: Postgres, work: Path, *, total: int, per_record: int, profile: Path | None, span_minutes: float = 60
) -> Throughput:
    database_url = await prepare_database(pg, "bench_throughput", probe=False)
    broker = Broker(free_port(), work / "tansu-throughput.log")
    evaluator: Service | None = None
    try:
        broker.start()
        await ensure_topics(
            broker.bootstrap, {MEASUREMENTS_TOPIC: MEASUREMENTS_PARTITIONS, BREACHES_TOPIC: BREACHES_PARTITIONS}
        )
        print(f"(a) publishing {total:,} measurements ({per_record} per record) ...", flush=True)
        started = time.perf_counter()
        workload = await publish_workload(broker.bootstrap, total, per_record, span_minutes=span_minutes)
        publish_s = time.perf_counter() - started
        print(
            f"    published {workload.records:,} records, {workload.bytes / 1e6:,.0f} MB of JSON in {publish_s:.1f}s; "
            f"end offsets {dict(sorted(workload.end_offsets.items()))}",
            flush=True,
        )
        evaluator = service(
            "accord-evaluator", common_env(database_url, broker.bootstrap), work, "throughput", profile=profile
        )
        conn = await asyncpg.connect(database_url)
        try:
            spawned = time.perf_counter()
            evaluator.start()
            assert evaluator.proc is not None
            with PeakRss(evaluator.proc.pid) as rss:
                first: dict[int, int] = {}
                deadline = time.monotonic() + 120 + total / 20_000
                while not first:
                    evaluator.check()
                    first = await stored_offsets(conn)
                    if time.monotonic() > deadline:
                        raise BenchError("the evaluator made no checkpoint in time")
                    if not first:
                        await asyncio.sleep(0.02)
                t_first = time.perf_counter()
                rss_first = rss.now()
                cpu_first = rss.cpu_seconds()
                print(f"    first checkpoint {t_first - spawned:.1f}s after the evaluator started", flush=True)
                last_report = t_first
                while True:
                    evaluator.check()
                    offsets = await stored_offsets(conn)
                    if all(offsets.get(p, 0) >= end for p, end in workload.end_offsets.items()):
                        break
                    if time.monotonic() > deadline:
                        raise BenchError(f"the evaluator did not reach the end offsets in time: {offsets}")
                    if time.perf_counter() - last_report >= 10:
                        last_report = time.perf_counter()
                        done = workload.applied(offsets)
                        print(
                            f"    {done:,} of {workload.measurements:,} measurements applied, "
                            f"RSS {rss.now() / 2**20:,.0f} MB",
                            flush=True,
                        )
                    await asyncio.sleep(0.02)
                t_done = time.perf_counter()
                cpu_s = rss.cpu_seconds() - cpu_first
            # After the RSS sampling: rendering 10,000 objectives' gauges for this read takes ≈ 250 MB for a
            # moment, which is the scrape's cost (docs/evaluator.md), not the evaluator's working set.
            metrics = await evaluator.metrics()
            first_records = sum(first.values())
            events = await conn.fetchval("SELECT count(*) FROM breach_events")
            return Throughput(
                measurements=workload.measurements,
                records=workload.records,
                bytes=workload.bytes,
                publish_s=publish_s,
                startup_s=t_first - spawned,
                measured_s=t_done - t_first,
                measured_measurements=workload.measurements - workload.applied(first),
                measured_records=workload.records - first_records,
                peak_rss=rss.peak,
                rss_at_first_checkpoint=rss_first,
                cpu_s=cpu_s,
                checkpoints=int(metric_value(metrics, "accord_evaluator_checkpoint_seconds_count")),
                checkpoint_s=metric_value(metrics, "accord_evaluator_checkpoint_seconds_sum"),
                events=int(events),
            )
        finally:
            await conn.close()
    finally:
        if evaluator is not None:
            evaluator.stop(timeout=60)  # under cProfile, the profile is written on the way out
        broker.stop()


# ---------------------------------------------------------------------------------------------- (b) latency


@dataclass(frozen=True)
class Shape:
    name: str
    indicators_per_post: int  # each POST covers this many indicators ...
    per_indicator: int  # ... with this many measurements each


SHAPES = (Shape("spread", 500, 1), Shape("grouped", 50, 10))


@dataclass
class Latency:
    shape: Shape
    rate: float
    probes: int
    latencies: list[float]
    missing: int
    wait_s: float
    posts: int
    post_failures: int
    posted_measurements: int
    load_s: float
    post_p99_s: float
    evaluator_cpu: float
    ingest_cpu: float
    evaluator_peak_rss: int
    checkpoints: int  # the evaluator's own counters, read at the end of the run
    checkpoint_s: float
    events: int  # breach events decided (background load included: its alerts come and go)
    published: int
    records_applied: int  # Kafka records the evaluator applied, all of the run
    record_age_s: float  # mean age of the last record of each applied batch (accord_evaluator_record_age_seconds)
    lag_records: int  # consumer lag when the load stopped (and the probes' events had arrived, or 30 s passed)
    stages: dict[str, list[float]] = field(default_factory=dict)  # probe_stages

    def stage_quantile(self, stage: str, q: float) -> float:
        ordered = sorted(self.stages.get(stage, ()))
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def read_probe_events(
    bootstrap: str,
    received: dict[str, float],
    ready: asyncio.Event,
    arrived: asyncio.Event,
    stamps: dict[str, tuple[float, float]] | None = None,
) -> None:
    """Timestamp (perf_counter) every probe event on the breach topic, by its measurement time; `stamps` gets
    each one's Kafka timestamp (when the relay sent it) and wall-clock receipt, for the stage breakdown."""
    consumer = AIOKafkaConsumer(
        BREACHES_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # An alerting bridge that wants events fast polls often: with aiokafka's default 500 ms
        # the client's own fetch cadence, not Accord, would dominate the measured latency.
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    ready.set()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    if event.get("subject") == str(PROBE_OBJECTIVE):
                        key = f"{event['type']} {event['data']['measurement_time']}"
                        received.setdefault(key, now)
                        if stamps is not None:
                            stamps.setdefault(key, (record.timestamp / 1000, time.time()))
                        arrived.set()
    finally:
        await consumer.stop()


STAGES = (
    "POST -> 202 (ingest: produced, acked)",
    "202 -> checkpoint begins (evaluator: poll, apply, wait for a checkpoint)",
    "checkpoint begins -> relay pass begins (checkpoint written, relay woken)",
    "relay pass begins -> event sent (relay: select, send)",
    "event sent -> received (broker, bench consumer)",
)


async def probe_stages(
    database_url: str, posted: dict[str, tuple[float, float]], stamps: dict[str, tuple[float, float]]
) -> dict[str, list[float]]:
    """Where each probe's latency went, by wall-clock instants of this machine: the POST and its 202, the stored
    event's `created_at` (its checkpoint transaction's start) and `published_at` (its relay transaction's start),
    the breach record's Kafka timestamp (the relay's send) and its receipt."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, event->'data'->>'measurement_time' AS at, extract(epoch FROM created_at)::float8 AS created,"
            " extract(epoch FROM published_at)::float8 AS published FROM breach_events WHERE objective_id = $1",
            PROBE_OBJECTIVE,
        )
    finally:
        await conn.close()
    stored = {f"{r['type']} {r['at']}": (r["created"], r["published"]) for r in rows}
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for key, (post, acked) in posted.items():
        if key not in stored or key not in stamps or stored[key][1] is None:
            continue
        created, published = stored[key]
        sent, got = stamps[key]
        for name, value in zip(
            STAGES, (acked - post, created - acked, published - created, sent - published, got - sent), strict=True
        ):
            stages[name].append(value)
    return stages


async def background_load(
    client: httpx.AsyncClient, url: str, shape: Shape, rate: float, stop: asyncio.Event, stats: dict[str, Any]
) -> None:
    """POST `rate` measurements/s to ingest in POSTs of shape `shape`, on a fixed schedule."""
    per_post = shape.indicators_per_post * shape.per_indicator
    interval = per_post / rate
    pool = counts_pool(random.Random(7))
    in_flight: set[asyncio.Task[None]] = set()

    async def post(body: bytes) -> None:
        started = time.perf_counter()
        try:
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
            ok = response.status_code == 202
        except httpx.HTTPError:
            ok = False
        stats["post_s"].append(time.perf_counter() - started)
        stats["posts"] += 1
        if ok:
            stats["measurements"] += per_post
        else:
            stats["failures"] += 1

    n = 0
    next_at = time.perf_counter()
    while not stop.is_set():
        now_s = time.time()
        items = []
        first = n * shape.indicators_per_post
        for i in range(shape.indicators_per_post):
            key = indicator_key((first + i) % INDICATORS)
            for j in range(shape.per_indicator):
                good, total = pool[(n * per_post + i * shape.per_indicator + j) % len(pool)]
                items.append({"indicator": key, "timestamp": round(now_s - j * 0.01, 3), "good": good, "total": total})
        n += 1
        if len(in_flight) < 64:
            task = asyncio.create_task(post(orjson.dumps(items)))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        else:
            stats["skipped"] += 1
        next_at += interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - time.perf_counter()))
    if in_flight:
        await asyncio.wait(in_flight, timeout=15)


async def run_latency(
    pg: Postgres,
    work: Path,
    shape: Shape,
    *,
    rate: float,
    probes: int,
    probe_rate: float,
    warmup: float,
    profile: Path | None = None,
) -> Latency:
    database_url = await prepare_database(pg, f"bench_latency_{shape.name}", probe=True)
    token = await asyncio.to_thread(create_token, database_url, name="bench", role="ingest")  # as in production
    broker = Broker(free_port(), work / f"tansu-latency-{shape.name}.log")
    services: list[Service] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        broker.start()
        await ensure_topics(
            broker.bootstrap, {MEASUREMENTS_TOPIC: MEASUREMENTS_PARTITIONS, BREACHES_TOPIC: BREACHES_PARTITIONS}
        )
        env = common_env(database_url, broker.bootstrap)
        ingest = service("accord-ingest", env, work, shape.name)
        evaluator = service("accord-evaluator", env, work, shape.name, profile=profile)
        services = [ingest.start(), evaluator.start()]
        await asyncio.gather(ingest.wait_ready(), evaluator.wait_ready())
        assert ingest.proc is not None
        assert evaluator.proc is not None
        received: dict[str, float] = {}
        consumer_ready, arrived = asyncio.Event(), asyncio.Event()
        stamps: dict[str, tuple[float, float]] = {}
        tasks.append(
            asyncio.create_task(read_probe_events(broker.bootstrap, received, consumer_ready, arrived, stamps))
        )
        await asyncio.wait_for(consumer_ready.wait(), timeout=30)
        url = f"{ingest.url}/v1/measurements"
        stop = asyncio.Event()
        stats: dict[str, Any] = {"posts": 0, "failures": 0, "measurements": 0, "skipped": 0, "post_s": []}
        limits = httpx.Limits(max_connections=80, max_keepalive_connections=80)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
            with PeakRss(evaluator.proc.pid) as evaluator_rss, PeakRss(ingest.proc.pid) as ingest_rss:
                load_started = time.perf_counter()
                tasks.append(asyncio.create_task(background_load(client, url, shape, rate, stop, stats)))
                print(
                    f"(b) {shape.name}: {rate:,.0f} measurements/s in POSTs of {shape.indicators_per_post} "
                    f"indicators x {shape.per_indicator}; {warmup:.0f}s warm-up, then {probes} probes "
                    f"at {probe_rate:g}/s",
                    flush=True,
                )
                await asyncio.sleep(warmup)
                # Probe k sits alone in minute base + k of event time: the 1-minute window sees only it.
                base_minute = int(time.time()) // 60 - probes - 10
                sent: dict[str, float] = {}
                posted: dict[str, tuple[float, float]] = {}  # wall clock: POST sent, 202 received (acked)
                next_at = time.perf_counter()
                for k in range(probes):
                    ts_ms = (base_minute + k) * 60_000 + 30_000
                    bad = k % 2 == 0
                    item = {
                        "indicator": PROBE_INDICATOR,
                        "timestamp": ts_ms / 1000,
                        "good": 0 if bad else 1000,
                        "total": 1000,
                    }
                    expected = "accord.budget.exhausted" if bad else "accord.budget.recovered"
                    t0, wall0 = time.perf_counter(), time.time()
                    response = await client.post(url, content=orjson.dumps([item]), timeout=10)
                    if response.status_code != 202:
                        raise BenchError(f"probe POST answered {response.status_code}: {response.text}")
                    sent[f"{expected} {iso_ms(ts_ms)}"] = t0
                    posted[f"{expected} {iso_ms(ts_ms)}"] = (wall0, time.time())
                    next_at += 1 / probe_rate
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    evaluator.check()
                    ingest.check()
                waited = time.perf_counter()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        while not sent.keys() <= received.keys():
                            arrived.clear()
                            await arrived.wait()
                wait_s = time.perf_counter() - waited
                stop.set()
                load_s = time.perf_counter() - load_started
                evaluator_cpu = evaluator_rss.cpu_seconds() / load_s
                ingest_cpu = ingest_rss.cpu_seconds() / load_s
                await asyncio.wait_for(tasks[-1], timeout=30)
            # After the RSS sampling: rendering 10,000 objectives' gauges takes memory (and a second) of its own.
            evaluator_metrics = await evaluator.metrics()
        latencies = [received[key] - t0 for key, t0 in sent.items() if key in received]
        stages = await probe_stages(database_url, posted, stamps)
        post_s = sorted(stats["post_s"]) or [float("nan")]
        return Latency(
            shape=shape,
            rate=rate,
            probes=probes,
            latencies=latencies,
            missing=len(sent) - len(latencies),
            wait_s=wait_s,
            posts=stats["posts"],
            post_failures=stats["failures"] + stats["skipped"],
            posted_measurements=stats["measurements"],
            load_s=load_s,
            post_p99_s=post_s[min(len(post_s) - 1, int(0.99 * len(post_s)))],
            evaluator_cpu=evaluator_cpu,
            ingest_cpu=ingest_cpu,
            evaluator_peak_rss=evaluator_rss.peak,
            checkpoints=int(metric_value(evaluator_metrics, "accord_evaluator_checkpoint_seconds_count")),
            checkpoint_s=metric_value(evaluator_metrics, "accord_evaluator_checkpoint_seconds_sum"),
            events=int(metric_value(evaluator_metrics, "accord_evaluator_breach_events_total")),
            published=int(metric_value(evaluator_metrics, "accord_evaluator_events_published_total")),
            records_applied=int(metric_value(evaluator_metrics, "accord_evaluator_records_total")),
            record_age_s=metric_value(evaluator_metrics, "accord_evaluator_record_age_seconds_sum")
            / max(1.0, metric_value(evaluator_metrics, "accord_evaluator_record_age_seconds_count")),
            lag_records=int(metric_value(evaluator_metrics, "accord_evaluator_consumer_lag_records")),
            stages=stages,
        )
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        for svc in reversed(services):
            svc.stop()
        broker.stop()


# ---------------------------------------------------------------------------------------------- report


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model or platform.processor()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def report(throughput: Throughput | None, latencies: list[Latency], args: argparse.Namespace) -> None:
    print(f"\nbench/evaluator  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {' '.join(sys.argv[1:]) or '(full)'}")
    print(f"machine: {machine()}")
    print(
        f"workload: {INDICATORS:,} ratio indicators -> {INDICATORS * OBJECTIVES_PER_INDICATOR:,} objectives "
        f"(1,000 agreements x 10), rolling 30d windows, default tiers and thresholds; "
        f"{MEASUREMENTS_PARTITIONS} measurement partitions"
    )
    print("settings: " + ", ".join(f"{k}={v}" for k, v in EVALUATOR_SETTINGS.items()))
    if throughput is not None:
        t = throughput
        print(
            f"\n(a) throughput: {t.measurements:,} measurements in {t.records:,} records "
            f"({args.per_record}/record, {t.bytes / 1e6:,.0f} MB), published first in {t.publish_s:.1f}s"
        )
        print(
            f"    first checkpoint {t.startup_s:.1f}s after start; then {t.measured_measurements:,} measurements "
            f"({t.measured_records:,} records) in {t.measured_s:.2f}s"
        )
        print(
            f"    {t.checkpoints} checkpoints, {t.checkpoint_s:.1f}s inside them "
            f"({t.checkpoint_s / max(1, t.checkpoints) * 1000:.0f} ms each); evaluator CPU "
            f"{t.cpu_s / t.measured_s:.0%} of one core; {t.events:,} breach events decided"
        )
        print(
            f"    RSS {t.rss_at_first_checkpoint / 2**20:,.0f} MB at the first checkpoint, "
            f"peak {t.peak_rss / 2**20:,.0f} MB"
        )
    for r in latencies:
        achieved = r.posted_measurements / r.load_s
        print(
            f"\n(b) latency, {r.shape.name} load ({r.shape.indicators_per_post} indicators x "
            f"{r.shape.per_indicator} per POST): {achieved:,.0f} measurements/s accepted "
            f"({r.posts:,} POSTs, {r.post_failures} failed or skipped, POST p99 {r.post_p99_s * 1000:.0f} ms)"
        )
        print(
            f"    {r.probes} probes: {len(r.latencies)} events received, {r.missing} missing after a "
            f"{r.wait_s:.0f}s wait; p50 {r.quantile(0.5) * 1000:,.0f} ms, p99 {r.quantile(0.99) * 1000:,.0f} ms, "
            f"max {max(r.latencies, default=float('nan')) * 1000:,.0f} ms"
        )
        print(
            f"    CPU: evaluator {r.evaluator_cpu:.0%}, ingest {r.ingest_cpu:.0%} of one core; "
            f"evaluator peak RSS {r.evaluator_peak_rss / 2**20:,.0f} MB"
        )
        print(
            f"    evaluator: {r.checkpoints} checkpoints, {r.checkpoint_s:.1f}s inside them "
            f"({r.checkpoint_s / max(1, r.checkpoints) * 1000:.0f} ms each); {r.events:,} breach events decided, "
            f"{r.published:,} published"
        )
        print(
            f"    evaluator: {r.records_applied:,} records applied ({r.records_applied / r.load_s:,.0f}/s over the "
            f"load), mean age when applied {r.record_age_s * 1000:,.0f} ms; consumer lag at the end "
            f"{r.lag_records:,} records"
        )
        for stage in STAGES:
            print(
                f"    stage {stage}: p50 {r.stage_quantile(stage, 0.5) * 1000:,.0f} ms, "
                f"p99 {r.stage_quantile(stage, 0.99) * 1000:,.0f} ms"
            )

    rows: list[tuple[str, str, str, str]] = []
    if throughput is not None:
        mps = throughput.measurements_per_s
        rows.append(
            ("evaluator throughput (1 process)", f">= {GOAL_THROUGHPUT:,} meas/s", f"{mps:,.0f} meas/s",
             "met" if mps >= GOAL_THROUGHPUT else "MISSED")
        )  # fmt: skip
        rows.append(("  records/s", "", f"{throughput.records_per_s:,.0f} rec/s", ""))
        rows.append(("  evaluator peak RSS", "(reported)", f"{throughput.peak_rss / 2**20:,.0f} MB", ""))
    for r in latencies:
        p99 = r.quantile(0.99)
        complete = r.missing == 0
        limit, op = GOAL_P99_S[r.shape.name]
        met = complete and (p99 < limit if op == "<" else p99 <= limit)
        measured = f"p50 {r.quantile(0.5) * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms"
        if not r.latencies:
            measured = f"no probe event arrived ({r.wait_s:.0f}s after the last probe)"
        elif not complete:
            measured += f", {r.missing}/{r.probes} never arrived"
        rows.append(
            (f"POST -> breach event, {r.shape.name}", f"p99 {op} {limit * 1000:,.0f} ms at {r.rate:,.0f}/s", measured,
             "met" if met else "MISSED")
        )  # fmt: skip
    widths = [max(len(row[i]) for row in [("measure", "goal", "measured", ""), *rows]) for i in range(4)]
    print()
    for row in [("measure", "goal", "measured", ""), tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def latency_profile(path: Path, shape: Shape) -> Path:
    """Where the evaluator of a latency run writes its profile, beside the throughput run's."""
    return path.with_name(f"{path.stem}.{shape.name}{path.suffix}")


def print_profile(path: Path, what: str, limit: int = 30) -> None:
    if not path.exists():
        print(f"\nno profile was written to {path}")
        return
    print(f"\nprofile of {what} ({path}), by own time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(limit)
    print("by cumulative time:")
    stats.sort_stats("cumulative").print_stats(limit)


# ---------------------------------------------------------------------------------------------- main


async def run_until_signal(args: argparse.Namespace) -> None:
    """Run the benchmark; Ctrl-C or SIGTERM cancels it (and every loop notices), cleanup runs in `finally`s."""
    loop = asyncio.get_running_loop()
    body = asyncio.create_task(run(args))

    def stop() -> None:
        STOP_REQUESTED.set()
        body.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await body
    except asyncio.CancelledError:
        if STOP_REQUESTED.is_set():
            raise Interrupted("interrupted") from None
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="accord-bench-evaluator-"))
    work.chmod(0o755)  # noqa: ASYNC240 -- PostgreSQL runs as an unprivileged account when started by root
    pg = Postgres(work / "postgres", free_port())
    throughput: Throughput | None = None
    latencies: list[Latency] = []
    try:
        pg.start()
        if "throughput" in args.only:
            throughput = await run_throughput(
                pg,
                work,
                total=args.measurements,
                per_record=args.per_record,
                profile=args.profile,
                span_minutes=args.span_minutes,
            )
            print(f"    -> {throughput.measurements_per_s:,.0f} measurements/s", flush=True)
        for shape in SHAPES:
            if shape.name in args.only:
                result = await run_latency(
                    pg,
                    work,
                    shape,
                    rate=args.background_rate,
                    probes=args.probes,
                    probe_rate=args.probe_rate,
                    warmup=args.warmup,
                    profile=None if args.profile is None else latency_profile(args.profile, shape),
                )
                latencies.append(result)
                print(
                    f"    -> p50 {result.quantile(0.5) * 1000:,.0f} ms, p99 {result.quantile(0.99) * 1000:,.0f} ms, "
                    f"{result.missing} missing",
                    flush=True,
                )
    finally:
        pg.stop()
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(throughput, latencies, args)
    if args.profile is not None:
        if "throughput" in args.only:
            print_profile(args.profile, "the throughput run")
        for shape in SHAPES:
            if shape.name in args.only:
                print_profile(latency_profile(args.profile, shape), f"the {shape.name} latency run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 1.5 minutes)")
    parser.add_argument(
        "--measurements", type=int, help="(a) measurements published (default 8,000,000; quick 500,000)"
    )
    parser.add_argument("--per-record", type=int, default=500, help="(a) measurements per Kafka record (default 500)")
    parser.add_argument(
        "--span-minutes",
        type=float,
        default=60,
        help="(a) event time the measurements span, per indicator (default 60; e.g. 0.34 with --measurements "
        "200000 --per-record 1 gives each indicator 10 records a second, as the spread load does)",
    )
    parser.add_argument("--background-rate", type=float, default=10_000, help="(b) measurements/s POSTed to ingest")
    parser.add_argument("--probes", type=int, help="(b) probes per load shape (default 300; quick 60)")
    parser.add_argument("--probe-rate", type=float, default=10, help="(b) probes per second")
    parser.add_argument("--warmup", type=float, help="(b) seconds of background load before the probes (default 10)")
    parser.add_argument(
        "--only",
        default="throughput,spread,grouped",
        help="comma-separated parts to run: throughput, spread, grouped (default all)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ACCORD_EVALUATOR_X=VALUE",
        help="override an evaluator or ingest setting (repeatable); the defaults are used otherwise",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the evaluators under cProfile, writing here (latency runs: NAME.spread.prof, NAME.grouped.prof)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (service and broker logs)")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    for assignment in args.set:
        name, sep, value = assignment.partition("=")
        if not sep or not name.startswith(("ACCORD_EVALUATOR_", "ACCORD_INGEST_")):
            parser.error(f"--set takes ACCORD_EVALUATOR_NAME=VALUE or ACCORD_INGEST_NAME=VALUE, not {assignment!r}")
        EVALUATOR_SETTINGS[name] = value
    if args.measurements is None:
        args.measurements = 500_000 if args.quick else 8_000_000
    if args.probes is None:
        args.probes = 60 if args.quick else 300
    if args.warmup is None:
        args.warmup = 5 if args.quick else 10
    if args.profile is not None:
        args.profile = args.profile.resolve()
    try:
        asyncio.run(run_until_signal(args))
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted; every server and process was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except (BenchError, LocalStackError) as exc:
        raise SystemExit(f"bench/evaluator failed: {exc}") from None


if __name__ == "__main__":
    main()
