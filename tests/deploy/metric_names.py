"""Every sample name the three services expose, from their registries built in-process (no server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.evaluator.checkpoint import EvaluatorMetrics
from services.evaluator.gauges import FAMILIES
from services.ingest.app import IngestMetrics
from shared.metrics import service_registry

SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["_sum", "_count"]}


def exposed_metric_names() -> set[str]:
    """Sample names as Prometheus stores them (counters with _total, histograms with _bucket, _sum, _count).

    The evaluator's per-objective gauges are rendered outside its registry (services/evaluator/gauges.py)."""
    names: set[str] = set(FAMILIES)
    for service, build in (("api", None), ("ingest", IngestMetrics), ("evaluator", EvaluatorMetrics)):
        registry: CollectorRegistry = service_registry(service)
        if build is not None:
            build(registry)
        for family in registry.collect():
            names.update(family.name + s for s in SUFFIXES.get(family.type, [""]))
    return names
