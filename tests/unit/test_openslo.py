"""OpenSLO v1 export and import: round trips and what Accord refuses (no servers)."""

from __future__ import annotations

import string
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from services.api.openslo import export_documents, export_yaml, import_documents, parse_yaml
from services.api.schemas import AgreementIn
from shared.errors import Invalid

TEXT = st.text(alphabet=string.ascii_letters + string.digits + " .,:-_/()%", min_size=1, max_size=30).filter(
    str.strip  # names may not be blank (the api refuses whitespace-only names)
)
KEYS = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
LABEL_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True)
FRACTIONS = st.floats(min_value=1e-6, max_value=1 - 1e-6, allow_nan=False)
ROLLING = st.one_of(
    st.integers(1, 400).map(lambda n: f"{n}d"),
    st.integers(1, 72).map(lambda n: f"{n}h"),
    st.integers(1, 600).map(lambda n: f"{n}m"),
)
DURATIONS = st.one_of(st.integers(1, 3).map(lambda n: f"{n}d"), st.integers(1, 12).map(lambda n: f"{n}h"),
                      st.integers(1, 59).map(lambda n: f"{n}m"))  # fmt: skip


@st.composite
def tiers(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "name": draw(st.none() | TEXT),
        "severity": draw(st.sampled_from(["page", "ticket"])),
        "long_window": "3d",
        "short_window": draw(DURATIONS),
        "factor": draw(st.floats(min_value=0.01, max_value=100, allow_nan=False)),
    }


@st.composite
def objectives(draw: st.DrawFn, name: str, n: int) -> dict[str, Any]:
    window = draw(st.one_of(ROLLING, st.sampled_from(["week", "month", "quarter"])))
    objective: dict[str, Any] = {
        "name": name,
        "description": draw(st.just("") | TEXT),
        "indicator": f"{draw(KEYS)}.{n}",  # one kind per indicator
        "matchers": draw(st.dictionaries(LABEL_NAMES, TEXT, max_size=2)),
        "target": draw(FRACTIONS),
        "window": window,
        "business_hours_only": draw(st.booleans()),
        "alert_policy": {
            "tiers": draw(st.none() | st.lists(tiers(), max_size=3)),
            "min_events": draw(st.integers(0, 10_000)),
            "budget_thresholds": draw(st.lists(st.sampled_from([0.25, 0.5, 0.75, 0.9, 1.0]), min_size=1, unique=True)),
        },
    }
    if draw(st.booleans()):
        objective["threshold"] = {
            "op": draw(st.sampled_from(["<", "<=", ">", ">="])),
            "value": draw(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)),
        }
    if draw(st.booleans()):
        objective["budgeting"] = "timeslices"
        objective["slice_length"] = draw(st.sampled_from(["1m", "5m", "1h"]))
        objective["slice_target"] = draw(st.floats(min_value=0.01, max_value=1, allow_nan=False))
    return objective


@st.composite
def agreements(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(TEXT, min_size=1, max_size=4, unique_by=lambda s: s))
    return {
        "name": draw(TEXT),
        "provider": draw(TEXT),
        "customer": draw(TEXT),
        "description": draw(st.just("") | TEXT),
        "timezone": draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])),
        "reporting_period": draw(st.sampled_from(["month", "quarter", "week"])),
        "business_hours": {"weekly": {"mon": ["09:00-17:00"]}, "holidays": ["2025-12-25"]},
        "maintenance": [{"reason": "r", "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T02:00:00Z"}],
        "credit_tiers": [{"below": 0.99, "credit_percent": 10}],
        "labels": draw(st.dictionaries(LABEL_NAMES, TEXT, max_size=2)),
        "objectives": [draw(objectives(name, n)) for n, name in enumerate(names)],
    }


def canonical(document: dict[str, Any]) -> dict[str, Any]:
    return AgreementIn.model_validate(document).model_dump(mode="json", exclude={"author", "reason"})


@given(agreements())
def test_objectives_round_trip_exactly_through_openslo(agreement: dict[str, Any]) -> None:
    original = canonical(agreement)
    imported = import_documents(parse_yaml(export_yaml(original)))
    assert canonical(imported.document) == original
    kinds = {o["indicator"]: ("threshold" if o["threshold"] else "ratio") for o in original["objectives"]}
    assert imported.indicators == kinds


def test_an_export_holds_the_five_kinds_with_names_unique_per_kind() -> None:
    agreement = canonical(
        {
            "name": "Acme",
            "provider": "P",
            "customer": "C",
            "objectives": [
                {"name": "Availability!", "indicator": "a", "target": 0.9,
                 "alert_policy": {"tiers": [{"long_window": "1h", "short_window": "5m", "factor": 14.4}]}},
                {"name": "availability?", "indicator": "a", "target": 0.99},
            ],
        }
    )  # fmt: skip
    docs = export_documents(agreement)
    assert [d["kind"] for d in docs] == ["Service", "SLI", "SLO", "AlertPolicy", "AlertCondition", "SLI", "SLO"]
    slo_names = [d["metadata"]["name"] for d in docs if d["kind"] == "SLO"]
    assert slo_names == ["availability", "availability-2"]
    assert all(d["apiVersion"] == "openslo/v1" for d in docs)


BASE = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: s}
spec:
  service: svc
  indicator:
    metadata: {name: latency}
    spec: {thresholdMetric: {metricSource: {type: Prometheus, spec: {query: q}}}}
  timeWindow: [{duration: 1M, isRolling: false, calendar: {startTime: "2024-01-01 00:00:00", timeZone: UTC}}]
  budgetingMethod: Timeslices
  objectives: [{op: lte, value: 300, target: 0.99, timeSliceTarget: 0.9, timeSliceWindow: 1m}]
"""

UNREPRESENTABLE = [
    ("two time windows", ("timeWindow: [", "timeWindow: [{duration: 1d, isRolling: true}, "),
     "documents.0.spec.timeWindow"),
    ("yearly calendar", ("duration: 1M", "duration: 1Y"), "documents.0.spec.timeWindow.0.duration"),
    ("seconds windows", ("duration: 1M, isRolling: false", "duration: 90s, isRolling: true"),
     "documents.0.spec.timeWindow.0.duration"),
    ("misaligned calendar", ("2024-01-01 00:00:00", "2024-01-15 00:00:00"),
     "documents.0.spec.timeWindow.0.calendar.startTime"),
    ("ratio timeslices", ("budgetingMethod: Timeslices", "budgetingMethod: RatioTimeslices"),
     "documents.0.spec.budgetingMethod"),
    ("timeslices without a slice target", ("timeSliceTarget: 0.9, ", ""),
     "documents.0.spec.objectives.0.timeSliceTarget"),
    ("threshold without op", ("op: lte, ", ""), "documents.0.spec.objectives.0.op"),
    ("composite", ("target: 0.99,", "target: 0.99, compositeWeight: 2,"), "documents.0.spec.objectives"),
    ("unknown kind", ("kind: SLO", "kind: Dashboard"), "documents.0.kind"),
    ("other versions", ("apiVersion: openslo/v1", "apiVersion: openslo/v1alpha"), "documents.0.apiVersion"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "edit", "field"), UNREPRESENTABLE, ids=[c[0] for c in UNREPRESENTABLE])
def test_what_accord_cannot_represent_is_named(case: str, edit: tuple[str, str], field: str) -> None:
    assert edit[0] in BASE, case
    with pytest.raises(Invalid) as raised:
        import_documents(parse_yaml(BASE.replace(*edit)), customer="c", provider="p")
    assert field in {e["field"] for e in raised.value.extra["errors"]}


def test_a_foreign_threshold_slo_imports_with_its_calendar_and_slices() -> None:
    imported = import_documents(parse_yaml(BASE), customer="c", provider="p")
    (objective,) = imported.document["objectives"]
    assert imported.document["name"] == "svc"
    assert imported.indicators == {"latency": "threshold"}
    assert (objective["window"], objective["budgeting"], objective["slice_length"]) == ("month", "timeslices", "1m")
    assert objective["threshold"] == {"op": "<=", "value": 300}
    assert yaml.safe_load(export_yaml(canonical(imported.document)).split("---")[0])["kind"] == "Service"
