"""What every service's /metrics carries besides its own metrics: process, Python and build information.

Each service keeps its own CollectorRegistry (tests build several in one process), so the
default registry's collectors are added here explicitly: `process_*` (CPU, memory, open file
descriptors, start time; Linux only), `python_info` and `python_gc_*`, and
`accord_build_info{service, version, python}` = 1, which dashboards join on to show versions.

Counters and histograms carry no `_created` series (process-wide: a service process has one
registry): Prometheus 2 stores them as extra gauges, doubling the series of every counter.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

DISTRIBUTION = "accord"
_disable_created: Callable[[], None] = disable_created_metrics  # prometheus_client leaves it unannotated


def accord_version() -> str:
    """The installed `accord` distribution's version; "unknown" when it is not installed (a bare checkout)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def service_registry(service: str) -> CollectorRegistry:
    """A registry for one service (`api`, `ingest`, `evaluator`) with process, Python and build metrics."""
    _disable_created()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    info = Gauge(
        "accord_build_info",
        "Always 1; the labels say which Accord service, version and Python answer.",
        ["service", "version", "python"],
        registry=registry,
    )
    info.labels(service, accord_version(), platform.python_version()).set(1)
    return registry
