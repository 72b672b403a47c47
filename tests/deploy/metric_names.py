"""Every sample name the three services expose, from their registries built in-process (no server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.api.metrics import ObjectiveMetrics
from services.evaluator.checkpoint import EvaluatorMetrics
from services.ingest.app import IngestMetrics
from shared.metrics import service_registry

SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}


def exposed_metric_names() -> set[str]:
    """Sample names as Prometheus stores them (counters with _total, histograms with _bucket, _sum, _count).

    The api's per-objective families are only yielded for objectives; they are listed by the collector."""
    names: set[str] = set()
    for service, build in (("api", ObjectiveMetrics), ("ingest", IngestMetrics), ("evaluator", EvaluatorMetrics)):
        registry: CollectorRegistry = service_registry(service)
        metrics = build(registry)
        if isinstance(metrics, ObjectiveMetrics):
            names.update(f.name for f in metrics.collector.collect())
        for family in registry.collect():
            names.update(family.name + s for s in SUFFIXES.get(family.type, [""]))
    return names
