"""Each service's /metrics, scraped from a real process after some traffic, passes `promtool check metrics`
and carries the process, Python and build series next to Accord's own. promtool comes from the Debian package
`prometheus`; without it the promtool checks skip, or fail under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import Servers, ServiceProcess, Topics, post_until_accepted, setup_objective, wait_until

INDICATOR = "checkout.availability"


@pytest.fixture
async def launch(
    servers: Servers, database_url: str, topics: Topics, tmp_path: Path
) -> AsyncIterator[Callable[[str], ServiceProcess]]:
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap,
        "ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS": "100",
        "ACCORD_EVALUATOR_RELAY_INTERVAL_MS": "100",
        **topics.env(),
    }
    started: list[ServiceProcess] = []

    def _launch(command: str) -> ServiceProcess:
        svc = ServiceProcess(command, env, log=tmp_path / f"{command}.log")
        started.append(svc.start())
        return svc

    yield _launch
    for svc in reversed(started):
        svc.stop()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def promtool_check(text: str, service: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing tool is a failure)")
        pytest.skip(message)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, f"{service}: {result.stdout}{result.stderr}"


async def test_every_service_exposition_passes_promtool(launch: Callable[[str], ServiceProcess]) -> None:
    api, ingest, evaluator = launch("accord-api"), launch("accord-ingest"), launch("accord-evaluator")
    for svc in (api, ingest, evaluator):
        await svc.wait_ready()
    await setup_objective(api, INDICATOR)
    body = [
        {"id": f"m-{i}", "indicator": INDICATOR, "timestamp": time.time(), "good": 99, "total": 100} for i in range(3)
    ]
    await post_until_accepted(ingest, body)
    async with httpx.AsyncClient(base_url=ingest.url) as client:
        assert (await client.post("/v1/measurements", content=b"{")).status_code == 422

    async def scrape(svc: ServiceProcess) -> str:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"{svc.url}/metrics")
        assert r.status_code == 200
        return r.text

    async def evaluated() -> str | None:
        text = await scrape(evaluator)
        s = samples(text)
        applied = dict((lbl["outcome"], v) for lbl, v in s["accord_evaluator_measurements_total"])
        lags = s.get("accord_evaluator_consumer_lag_records", [])
        # Caught up: every measurement applied, and the partition that got them has a lag sample of 0.
        return text if applied["applied"] == 3 and lags and all(v == 0 for _, v in lags) else None

    await wait_until(evaluated, timeout=30, what="the evaluator to apply and report lag 0")

    async def objective_exported() -> str | None:
        text = await scrape(evaluator)
        events = samples(text).get("accord_objective_window_events", [])
        return text if events and events[0][1] == 300 else None

    texts = {
        "evaluator": await wait_until(objective_exported, timeout=15, what="the evaluator to export the gauges"),
        "ingest": await scrape(ingest),
        "api": await scrape(api),
    }
    for service, text in texts.items():
        promtool_check(text, service)
        s = samples(text)
        ((labels, value),) = s["accord_build_info"]
        assert (labels["service"], value) == (service, 1)
        assert {"process_resident_memory_bytes", "python_info", "python_gc_collections_total"} <= s.keys(), service
        assert not [n for n in s if n.endswith("_created")], service

    ingest_s = samples(texts["ingest"])
    codes = {lbl["code"]: v for lbl, v in ingest_s["accord_ingest_requests_total"]}
    assert codes["202"] == 1
    assert codes["422"] >= 1
    assert codes["503"] == codes["500"] == 0
    assert ingest_s["accord_ingest_ready"] == [({}, 1.0)]
    evaluator_s = samples(texts["evaluator"])
    reasons = {lbl["reason"] for lbl, _ in evaluator_s["accord_evaluator_dead_letters_total"]}
    assert {"schema", "malformed", "id", "labels"} <= reasons  # present at 0 before any dead letter
    assert evaluator_s["accord_outbox_backlog_events"] == [({}, 0.0)]
    (events,) = evaluator_s["accord_objective_window_events"]
    assert events[1] == 300
    assert not [n for n in samples(texts["api"]) if n.startswith("accord_objective_")]  # exported once: evaluators
