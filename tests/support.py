"""Helpers for tests that run the services as real processes (`ServiceProcess`, from accord.localstack)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer

from accord.localstack import Broker
from accord.localstack import ServiceProcess as ServiceProcess  # the tests' name for it
from services.api.schemas import AgreementTerms, ObjectiveIn
from shared.spec import AgreementSpec, ObjectiveSpec

BIN = Path(sys.executable).parent
TEMPLATE = "accord_template"


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


def agreement_spec(**fields: Any) -> AgreementSpec:
    """A stored agreement spec with the api's defaults for every field not given."""
    terms = AgreementTerms.model_validate({"name": "SLA", "provider": "Provider", "customer": "Customer", **fields})
    return AgreementSpec.model_validate(terms.model_dump(mode="json"))


def objective_spec(**fields: Any) -> ObjectiveSpec:
    """A stored objective spec with the api's defaults for every field not given."""
    objective = ObjectiveIn.model_validate({"name": "objective", "indicator": "indicator", **fields})
    return ObjectiveSpec.model_validate(objective.model_dump(mode="json"))
