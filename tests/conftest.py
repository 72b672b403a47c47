"""Session servers for the tests: embedded PostgreSQL and the Tansu broker, or the ones named by
DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS. Each test that needs a database gets its own, cloned from a
migrated template (so the migrations are what builds the schema); each test that needs Kafka gets
its own topics and consumer group.

Hypothesis profiles: `fast` (the default on a developer's machine: few examples, a quick signal) and
`ci` (chosen when CI=true: many more examples, shown with the blob to reproduce a failure).
HYPOTHESIS_PROFILE=fast|ci picks one explicitly. Neither has a per-example deadline: on a loaded
machine a deadline fails tests for being slow, not wrong, and pytest-timeout bounds a stuck test.
Tests leave max_examples to the profile unless they have a reason of their own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from support import TEMPLATE, Servers, Topics, create_database

from accord.cli import migrate
from accord.localstack import Broker, Postgres, free_port
from shared.kafka import ensure_topics

settings.register_profile("fast", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "fast"))


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    base = Path(tempfile.mkdtemp(prefix="accord-test-"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account when the tests run as root
    pg: Postgres | None = None
    broker: Broker | None = None
    try:
        if "DATABASE_URL" in os.environ:
            admin_url = os.environ["DATABASE_URL"]
        else:
            pg = Postgres(base / "postgres", free_port())
            pg.start()
            admin_url = pg.url("postgres")
        if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
            bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        else:
            broker = Broker(free_port(), base / "tansu.log")
            broker.start()
            bootstrap = broker.bootstrap
        servers = Servers(admin_url, bootstrap, broker)
        asyncio.run(_make_template(servers))
        yield servers
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _make_template(servers: Servers) -> None:
    conn = await asyncpg.connect(servers.admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    await asyncio.to_thread(migrate, servers.database_url(TEMPLATE))


@pytest.fixture
async def database_url(servers: Servers) -> AsyncIterator[str]:
    url = await create_database(servers)
    yield url
    conn = await asyncpg.connect(servers.admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def topics(servers: Servers) -> Topics:
    suffix = uuid.uuid4().hex[:10]
    t = Topics(f"test.measurements.{suffix}", f"test.breaches.{suffix}", f"test-evaluator-{suffix}")
    await ensure_topics(servers.bootstrap, {t.measurements: 4, t.breaches: 2})
    return t
