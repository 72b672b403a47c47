"""Helpers for tests that run the services as real processes (`ServiceProcess`, from accord.localstack)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from accord.localstack import Broker, die_with_parent, free_port
from accord.localstack import ServiceProcess as ServiceProcess  # the tests' name for it
from services.api import token_store
from services.api.schemas import AgreementTerms, ObjectiveIn
from services.evaluator.engine import Engine
from services.evaluator.store import load_objectives, write_checkpoint
from shared.auth import Principal
from shared.budget import AlertState, Evaluation, ObjectiveTerms, PeriodKind, RollingWindow
from shared.db import make_engine, make_sessionmaker
from shared.measurements import Measurement
from shared.objective_config import ObjectiveConfig
from shared.settings import sqlalchemy_url
from shared.spec import AgreementSpec, ObjectiveSpec
from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY, to_ms

BIN = Path(sys.executable).parent
TEMPLATE = "accord_template"
NO_AUTH = {"ACCORD_API_AUTH": "false", "ACCORD_INGEST_AUTH": "false"}
"""Service processes of tests that are not about auth, whose clients send no token (README: Tokens)."""


@dataclass
class Servers:
    admin_url: str  # a database on the server to run CREATE DATABASE from
    bootstrap: str
    broker: Broker | None  # the local broker, when the tests started it (pause/kill tests need it)

    def database_url(self, name: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + name


@dataclass(frozen=True)
class Topics:
    measurements: str
    breaches: str
    group: str

    def env(self) -> dict[str, str]:
        return {
            "ACCORD_MEASUREMENTS_TOPIC": self.measurements,
            "ACCORD_BREACHES_TOPIC": self.breaches,
            "ACCORD_EVALUATOR_GROUP_ID": self.group,
        }


async def wait_until(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
) -> list[dict[str, Any]]:
    """Read JSON records of `topic` from the beginning until `until(records)` holds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while not until(records):
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    records.extend(orjson.loads(m.value) for m in msgs)
    finally:
        await consumer.stop()
    return records


async def create_database(servers: Servers) -> str:
    """A fresh, migrated database (a clone of the template); returns its URL."""
    name = f"accord_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(servers.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    finally:
        await conn.close()
    return servers.database_url(name)


async def create_token(database_url: str, role: str = "admin", name: str = "tests", **options: Any) -> str:
    """A new token of `role` in the database (as `accord tokens create` makes one); returns the secret."""
    engine = make_engine(sqlalchemy_url(database_url), pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            _, issued = await token_store.create_token(
                session, Principal(None, "tests", "admin"), name=name, role=role, **options
            )
    finally:
        await engine.dispose()
    return issued.token


def agreement_spec(**fields: Any) -> AgreementSpec:
    """A stored agreement spec with the api's defaults for every field not given."""
    terms = AgreementTerms.model_validate({"name": "SLA", "provider": "Provider", "customer": "Customer", **fields})
    return AgreementSpec.model_validate(terms.model_dump(mode="json"))


def objective_spec(**fields: Any) -> ObjectiveSpec:
    """A stored objective spec with the api's defaults for every field not given."""
    objective = ObjectiveIn.model_validate({"name": "objective", "indicator": "indicator", **fields})
    return ObjectiveSpec.model_validate(objective.model_dump(mode="json"))


# --- the evaluator in-process, for the api's reading tests (status, history, metrics) ------------------------

MINUTE = MINUTE_MS
T0 = to_ms(datetime(2030, 3, 29, 12, 0, tzinfo=UTC))  # Berlin changes to summer time on the 31st


class Live:
    """The evaluator's engine driven in-process: apply records, checkpoint them into Postgres like the runner."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.engine = Engine([], dedup_horizon_minutes=1440, max_age_minutes=576_000)
        self.states: dict[str, AlertState] = {}

    async def reload(self) -> None:
        """Load the objectives' current terms, as the evaluator does on a config NOTIFY."""
        self.engine.set_objectives(await load_objectives(self.conn))

    async def apply(self, indicator: str, measurements: list[Measurement]) -> dict[str, Evaluation]:
        """One record: count, evaluate at the indicator's watermark, checkpoint; the evaluations by objective id."""
        self.engine.apply(0, indicator, measurements)
        changes = self.engine.drain()
        await write_checkpoint(self.conn, changes, group="test", topic="test.measurements", offsets={})
        for s in changes.statuses:
            self.states[s.objective_id] = s.alert_state
        return {s.objective_id: s.evaluation for s in changes.statuses}


@asynccontextmanager
async def live_engine(database_url: str) -> AsyncIterator[Live]:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        yield Live(conn)
    finally:
        await conn.close()


async def register(api: httpx.AsyncClient) -> None:
    for key, kind in (("checkout.availability", "ratio"), ("checkout.latency", "threshold")):
        r = await api.post("/v1/indicators", json={"key": key, "kind": kind})
        assert r.status_code == 201, r.text


AVAILABILITY = {"name": "Availability", "indicator": "checkout.availability", "target": 0.99, "window": "30d"}
MONTHLY = {"name": "Availability, monthly", "indicator": "checkout.availability", "target": 0.995, "window": "month"}
LATENCY = {
    "name": "Latency",
    "indicator": "checkout.latency",
    "matchers": {"region": "eu"},
    "target": 0.9,
    "window": "7d",
    "budgeting": "timeslices",
    "slice_length": "5m",
    "slice_target": 0.8,
    "threshold": {"op": "<=", "value": 300},
    "alert_policy": {
        "tiers": [{"name": "fast", "severity": "page", "long_window": "1h", "short_window": "5m", "factor": 2}],
        "min_events": 10,
    },
}


async def create_agreement(
    api: httpx.AsyncClient, customer: str = "Acme Corp", objectives: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {
        "name": f"{customer} checkout SLA",
        "provider": "Shop Platform",
        "customer": customer,
        "timezone": "Europe/Berlin",
        "maintenance": [
            {"reason": "migration", "start": "2030-03-29T14:00:00+01:00", "end": "2030-03-29T14:20:00+01:00"}
        ],
        "objectives": objectives if objectives is not None else [AVAILABILITY, MONTHLY, LATENCY],
        **extra,
    }
    r = await api.post("/v1/agreements", json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def availability(minute: int, total: int, bad: int, n: int = 0) -> Measurement:
    ts = T0 + minute * MINUTE + n * 7_000
    return Measurement("checkout.availability", ts, good=total - bad, total=total, id=f"a/{minute}/{n}")


def latency(minute: int, value: float, count: int, region: str = "eu", n: int = 0) -> Measurement:
    ts = T0 + minute * MINUTE + n * 5_000
    return Measurement("checkout.latency", ts, value=value, weight=count, id=f"l/{minute}/{region}/{n}",
                       labels=(("region", region),))  # fmt: skip


def workload(minutes: range) -> list[tuple[str, list[Measurement]]]:
    """Records in order: a quiet hour, then a bad spell; latency in eu (counted) and us (not matched)."""
    records = []
    for m in minutes:
        bad = 600 if 70 <= m < 100 else m % 3
        records.append(("checkout.availability", [availability(m, 1000, bad), availability(m, 500, bad // 2, 1)]))
        slow = 30 if 80 <= m < 90 else 2
        records.append(("checkout.latency", [latency(m, 120, 40 - slow), latency(m, 900, slow, n=1),
                                             latency(m, 900, 50, region="us")]))  # fmt: skip
    return records


async def run(live: Live, records: list[tuple[str, list[Measurement]]]) -> dict[str, Evaluation]:
    latest: dict[str, Evaluation] = {}
    for indicator, batch in records:
        latest.update(await live.apply(indicator, batch))
    return latest


# --- the evaluator's engine without servers ----------------------------------------------------------------


def objective_config(oid: str, indicator: str = "api.availability", **terms: Any) -> ObjectiveConfig:
    """Objective `oid` of agreement a1 (Acme, monthly reports in Berlin, credit tiers at 99 % and 95 %);
    `terms` override ObjectiveTerms' fields (default: 99 % over a rolling 30 days)."""
    fields: dict[str, Any] = {"target": 0.99, "window": RollingWindow(30 * MINUTES_PER_DAY), **terms}
    return ObjectiveConfig(
        id=oid,
        name=oid,
        agreement_id="a1",
        agreement_name="Acme SLA",
        customer="Acme",
        provider="Shop",
        indicator=indicator,
        window="30d",
        terms=ObjectiveTerms(**fields),
        reporting_period=PeriodKind.MONTH,
        timezone="Europe/Berlin",
        credit_tiers=((0.99, 10.0), (0.95, 25.0)),
    )


def engine_for(*objectives: ObjectiveConfig) -> Engine:
    """An engine for unit tests: a day's dedup horizon, 400 days of history."""
    return Engine(objectives, dedup_horizon_minutes=MINUTES_PER_DAY, max_age_minutes=400 * MINUTES_PER_DAY)


# --- the services as processes: set up an objective, send its first measurements ----------------------------


async def setup_objective(api: ServiceProcess, indicator: str, target: float = 0.99) -> dict[str, Any]:
    """Register ratio indicator `indicator` and an agreement with one 30-day objective on it; the agreement."""
    async with httpx.AsyncClient(base_url=api.url) as client:
        r = await client.post("/v1/indicators", json={"key": indicator, "kind": "ratio", "unit": "requests"})
        assert r.status_code == 201, r.text
        r = await client.post(
            "/v1/agreements",
            json={
                "name": f"{indicator} SLA",
                "provider": "Shop Platform",
                "customer": "Acme Corp",
                "objectives": [{"name": "availability", "indicator": indicator, "target": target, "window": "30d"}],
            },
        )
        assert r.status_code == 201, r.text
        agreement: dict[str, Any] = r.json()
        return agreement


async def post_until_accepted(ingest: ServiceProcess, body: list[dict[str, Any]]) -> None:
    """The registry learns a new indicator within seconds; until then ingest answers 422."""
    async with httpx.AsyncClient(base_url=ingest.url) as client:

        async def accepted() -> bool:
            r = await client.post("/v1/measurements", json=body)
            assert r.status_code in (202, 422), r.text
            return r.status_code == 202

        await wait_until(accepted, timeout=15, what="ingest to accept the new indicator")


async def insert_objectives_per_indicator(
    conn: asyncpg.Connection,
    agreement: uuid.UUID,
    indicators: Sequence[str],
    policy: dict[str, Any],
    objective_id: Callable[[int, int], uuid.UUID] = lambda n, m: uuid.uuid4(),
    objectives: Sequence[tuple[float, str]] = ((0.9, "2h"), (0.95, "1h")),
) -> None:
    """Agreement `agreement` (Shop SLA for Acme, UTC) with `objectives` (target, window; by default 90 % over 2 h
    and 95 % over 1 h) on each ratio indicator, alerting by `policy`: rows as the api writes them (complete
    specs), without the api."""
    spec = agreement_spec(name="Shop SLA", provider="Shop", customer="Acme", timezone="UTC")
    await conn.execute(
        "INSERT INTO agreements (id, name, provider, customer, spec) VALUES ($1, $2, $3, $4, $5)",
        agreement,
        spec.name,
        spec.provider,
        spec.customer,
        orjson.dumps(spec.to_json()).decode(),
    )
    for n, key in enumerate(indicators):
        await conn.execute("INSERT INTO indicators (key, kind) VALUES ($1, 'ratio')", key)
        for m, (target, window) in enumerate(objectives):
            objective = objective_spec(
                name=f"{key} {window}", indicator=key, target=target, window=window, alert_policy=policy
            )
            await conn.execute(
                "INSERT INTO objectives (id, agreement_id, name, indicator_key, spec) VALUES ($1, $2, $3, $4, $5)",
                objective_id(n, m),
                agreement,
                objective.name,
                key,
                orjson.dumps(objective.to_json()).decode(),
            )


# --- records straight to Kafka, and the offsets the evaluator stores -------------------------------------

Record = tuple[str, bytes]
"""(key, value) of a measurements record."""


async def produce(bootstrap: str, topic: str, records: Sequence[Record], offsets: dict[int, int]) -> None:
    """Publish in order (acks=all); `offsets` gets each partition's next offset after the last record."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            meta = await producer.send_and_wait(topic, value, key=key.encode())
            offsets[meta.partition] = meta.offset + 1
    finally:
        await producer.stop()


async def stored_offsets(conn: asyncpg.Connection, group: str) -> dict[int, int]:
    """The evaluator group's stored next offset per partition."""
    rows = await conn.fetch("SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1", group)
    return {r["partition"]: r["next_offset"] for r in rows}


async def wait_offsets(database_url: str, group: str, offsets: dict[int, int], timeout: float = 90) -> None:
    """Until the stored offsets are exactly `offsets` (a connection refused counts as not yet)."""

    async def done() -> bool:
        try:
            conn = await asyncpg.connect(database_url, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        try:
            return await stored_offsets(conn, group) == offsets
        finally:
            await conn.close()

    await wait_until(done, timeout=timeout, what=f"stored offsets {offsets}")


# --- `accord run` as a process (the e2e stack fixture) -------------------------------------------------


@dataclass
class Stack:
    """One `accord run` process and what it needs: a data dir and five free ports."""

    data_dir: Path
    ports: dict[str, int] = field(
        default_factory=lambda: {name: free_port() for name in ("PG", "KAFKA", "API", "INGEST", "EVALUATOR")}
    )
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.data_dir / f"run-{self.runs}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
        env.update({f"ACCORD_{name}_PORT": str(port) for name, port in self.ports.items()})
        env.update(
            {
                "ACCORD_DATA_DIR": str(self.data_dir),
                "ACCORD_EVALUATOR_SESSION_TIMEOUT_MS": "3000",
                "ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS": "100",
                **self.extra_env,
            }
        )
        return env

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/accord"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    async def start(self) -> None:
        """Start `accord run` and wait (bounded) until it says it is ready."""
        self.spawn()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"accord run exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
            return "Accord is ready" in self.text()

        await wait_until(ready, timeout=90, what=f"accord run to be ready (log {self.log})")

    def spawn(self) -> None:
        self.runs += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "accord"), "run"],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def wait_exit(self, timeout: float = 90) -> int:
        assert self.proc is not None
        proc = self.proc
        await wait_until(lambda: proc.poll() is not None, timeout=timeout, what="accord run to exit")
        return proc.returncode

    def children(self, command: str) -> list[int]:
        """Pids of the launcher's children running `command` (e.g. accord-ingest)."""
        assert self.proc is not None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid and command in cmdline:
                found.append(int(entry.name))
        return found

    def postmaster_pid(self) -> int | None:
        pidfile = self.data_dir / "postgres" / "data" / "postmaster.pid"
        try:
            first = pidfile.read_text().split("\n", 1)[0].strip()
        except OSError:
            return None
        return int(first) if first.isdigit() else None


# --- the project-written OpenSLO corpus (tests/data/openslo) ---------------------------------------------

OPENSLO_CORPUS = Path(__file__).parent / "data" / "openslo"
FOREIGN = (OPENSLO_CORPUS / "accepted" / "list-every-v1-field.yaml").read_text()
"""A list of OpenSLO v1 documents using every field the spec defines."""
