"""Property-based fuzzing of the api's OpenAPI with schemathesis, against a real api process on a real database.

Every operation gets `EXAMPLES` generated requests that fit its schema and `EXAMPLES` that break it (hypothesis,
no deadline); each response must not be a 5xx, must have a documented status code and content type, and must
match the documented schema.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import ServiceProcess

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

EXAMPLES = 25
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


async def _seed(url: str, headers: dict[str, str]) -> None:
    """An indicator and an agreement, so list and status endpoints have something to show."""
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        r = await client.post("/v1/indicators", json={"key": "checkout.availability", "kind": "ratio"})
        assert r.status_code == 201, r.text
        agreement = {
            "name": "Acme SLA",
            "provider": "Shop",
            "customer": "Acme",
            "maintenance": [{"rrule": "DTSTART:20250105T020000\nRRULE:FREQ=WEEKLY", "duration": "2h"}],
            "objectives": [{"name": "Availability", "indicator": "checkout.availability", "target": 0.999}],
        }
        r = await client.post("/v1/agreements", json=agreement)
        assert r.status_code == 201, r.text


def _fuzz(url: str, headers: dict[str, str]) -> tuple[Counter[int], dict[str, str]]:
    """Run every operation's examples; the status codes answered and the failures by operation."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}
    operations = [(result.ok(), mode) for result in schema.get_all_operations() for mode in GenerationMode]  # type: ignore[union-attr]
    for operation, mode in operations:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(base_url=url, timeout=60, headers=headers)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:
            failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]
    return statuses, failures


async def test_every_operation_answers_as_documented_and_never_5xx(
    api_process_with_token: tuple[ServiceProcess, str],
) -> None:
    """With an admin token (auth on): tokens and audit are fuzzed too."""
    api_process, token = api_process_with_token
    headers = {"Authorization": f"Bearer {token}"}
    await _seed(api_process.url, headers)
    statuses, failures = await asyncio.to_thread(_fuzz, api_process.url, headers)
    async with httpx.AsyncClient(base_url=api_process.url, headers=headers) as client:
        assert (await client.get("/v1/tokens")).status_code == 200  # the fuzzing ran with its token throughout
    print(f"schemathesis: {statuses.total()} requests, by status {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(f"{op}:\n{text}" for op, text in failures.items())
    assert statuses.total() >= 2 * 20 * 20  # every operation was exercised, both ways
    assert not any(code >= 500 for code in statuses)
