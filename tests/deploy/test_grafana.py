"""deploy/grafana/accord.json: a dashboard Grafana can import, whose queries use only metrics the services export."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from deploy.deploy_support import ROOT
from deploy.metric_names import exposed_metric_names

DASHBOARD = ROOT / "deploy" / "grafana" / "accord.json"
# Series Prometheus makes itself, not a service.
PROMETHEUS_OWN = {"ALERTS", "up"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def metric_names(expr: str) -> set[str]:
    """Metric names of a PromQL expression: identifiers before a selector, a range or the end, that are not
    functions, keywords or label names (label names only appear inside braces or `by (...)`)."""
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # matchers hold label names and values
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges: [5m], [$__rate_interval]
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"label_values\(([^,]+),[^)]*\)", r"\1", expr)
    return set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))


def test_is_an_importable_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "accord-overview"
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert all(t["refId"] and t["expr"] for t in p["targets"]), p["title"]


def test_variables_come_from_objective_metrics(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("customer", "agreement", "objective"):
        query = variables[name]["query"]["query"]
        assert re.fullmatch(rf"label_values\(accord_objective_\w+(\{{[^}}]*\}})?, {name}\)", query), query
    assert variables["datasource"]["type"] == "datasource"


def test_panels_cover_what_operators_need(dashboard: dict[str, Any]) -> None:
    used = set().union(*(metric_names(e) for e in queries(dashboard)))
    for needed in (
        "accord_objective_budget_remaining", "accord_objective_burn_rate", "accord_objective_alert_firing",
        "accord_objective_sli", "accord_ingest_requests_total", "accord_ingest_request_seconds_bucket",
        "accord_evaluator_consumer_lag_records", "accord_evaluator_checkpoint_seconds_bucket",
        "accord_evaluator_checkpoint_age_seconds", "accord_outbox_backlog_events",
        "accord_evaluator_dead_letters_total",
    ):  # fmt: skip
        assert needed in used, needed


def test_every_query_uses_exported_metrics(dashboard: dict[str, Any]) -> None:
    exposed = exposed_metric_names() | PROMETHEUS_OWN
    used = set().union(*(metric_names(e) for e in queries(dashboard)))
    assert used <= exposed, f"not exported by any service: {sorted(used - exposed)}"


def test_metric_names_finds_names_not_functions() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(accord_x_bucket{code=~"5.."}[$__rate_interval]))) / up'
    assert metric_names(expr) == {"accord_x_bucket", "up"}
