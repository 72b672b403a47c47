"""schemathesis against a real ingest process (real broker, this test's database): ingest's OpenAPI
document is what it does. Bodies valid and invalid by the schema, JSON and NDJSON, gzip-compressed
when the generated Content-Encoding says so: never a 5xx, and every answer (status, content type,
headers, body) is one the document describes.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import Servers, ServiceProcess, Topics

MAX_EXAMPLES = 150
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
INDICATORS = {"checkout.availability": "ratio", "checkout.latency": "threshold"}


def serialize(value: Any, media_type: str) -> bytes:
    if isinstance(value, bytes):  # negative cases may be raw bytes
        return value
    if media_type == "application/x-ndjson" and isinstance(value, list):
        return b"\n".join(json.dumps(item).encode() for item in value)
    return json.dumps(value).encode()


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    return serialize(value, "application/x-ndjson")


async def _register(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany("INSERT INTO indicators (key, kind) VALUES ($1, $2)", list(INDICATORS.items()))
    finally:
        await conn.close()


@pytest.fixture
def ingest_url(servers: Servers, database_url: str, topics: Topics, tmp_path: Path) -> Iterator[str]:
    asyncio.run(_register(database_url.replace("postgresql+asyncpg://", "postgresql://")))
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap, **topics.env()}
    svc = ServiceProcess("accord-ingest", env, log=tmp_path / "ingest.log").start()
    try:
        asyncio.run(svc.wait_ready())
        yield svc.url
    finally:
        svc.stop()


def test_ingest_answers_as_its_openapi_document_says(ingest_url: str) -> None:
    # The strategies of schemathesis' Python API, run by hypothesis here: its pytest plugin's lazy
    # loading (`from_fixture`) does not run under pytest 9.
    schema = schemathesis.openapi.from_url(f"{ingest_url}/openapi.json")
    cases = schema.as_strategy(GenerationMode.POSITIVE) | schema.as_strategy(GenerationMode.NEGATIVE)
    answers: dict[int, int] = {}

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=cases)
    def answers_as_documented(case: schemathesis.Case[Any]) -> None:
        extra: dict[str, Any] = {}
        encoding = next((v for k, v in (case.headers or {}).items() if k.lower() == "content-encoding"), None)
        if encoding == "gzip" and case.media_type is not None and case.body is not NOT_SET:
            extra["data"] = gzip.compress(serialize(case.body, case.media_type))
        response = case.call_and_validate(checks=CHECKS, timeout=30, **extra)
        answers[response.status_code] = answers.get(response.status_code, 0) + 1

    answers_as_documented()
    print(f"schemathesis: {sum(answers.values())} cases against ingest, by status {dict(sorted(answers.items()))}")
    # Both kinds of data reached ingest: some accepted (the broker acked), some refused.
    assert answers.get(202), answers
    assert answers.get(422), answers
