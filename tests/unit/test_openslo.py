"""OpenSLO v1 export and import: round trips and what Accord refuses (no servers)."""

from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import FOREIGN

from services.api import openslo_rules as rules
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
        "alert_after": draw(st.none() | DURATIONS),
        "alert_when_breaching": draw(st.booleans()),
        "alert_when_resolved": draw(st.booleans()),
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


def terms(document: dict[str, Any]) -> dict[str, Any]:
    """The agreement's terms without the OpenSLO data an import keeps."""
    out = {k: v for k, v in document.items() if k != "openslo"}
    out["objectives"] = [{k: v for k, v in o.items() if k != "openslo"} for o in document["objectives"]]
    return out


@settings(max_examples=60)
@given(agreements())
def test_objectives_round_trip_exactly_through_openslo(agreement: dict[str, Any]) -> None:
    original = canonical(agreement)
    exported = export_yaml(original)
    imported = canonical(import_documents(parse_yaml(exported)).document)
    assert terms(imported) == terms(original)
    kinds = {o["indicator"]: ("threshold" if o["threshold"] else "ratio") for o in original["objectives"]}
    assert import_documents(parse_yaml(exported)).indicators == kinds
    # import -> export -> import: everything survives, the OpenSLO data too, and the documents are the same
    again = canonical(import_documents(parse_yaml(export_yaml(imported))).document)
    assert again == imported
    assert export_yaml(again) == export_yaml(imported)
    assert rules.check(parse_yaml(exported)) == []


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
    assert [d["kind"] for d in docs] == [
        "Service", "SLI", "SLO", "AlertPolicy", "AlertCondition", "SLI", "SLO", "AlertNotificationTarget"
    ]  # fmt: skip
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
    ("a two-year calendar (over 400 days)", ("duration: 1M", "duration: 2Y"),
     "documents.0.spec.timeWindow.0.duration"),
    ("an hours calendar", ("duration: 1M, isRolling: false", "duration: 6h, isRolling: false"),
     "documents.0.spec.timeWindow.0.duration"),
    ("seconds windows", ("duration: 1M, isRolling: false", "duration: 90s, isRolling: true"),
     "documents.0.spec.timeWindow.0.duration"),
    ("a startTime with an offset", ("2024-01-01 00:00:00", "2024-01-15 00:00:00+02:00"),
     "documents.0.spec.timeWindow.0.calendar.startTime"),
    ("a startTime with seconds", ("2024-01-01 00:00:00", "2024-01-15 00:00:30"),
     "documents.0.spec.timeWindow.0.calendar.startTime"),
    ("ratio timeslices with a slice target", ("budgetingMethod: Timeslices", "budgetingMethod: RatioTimeslices"),
     "documents.0.spec.objectives.0.timeSliceTarget"),
    ("an unknown budgeting method", ("budgetingMethod: Timeslices", "budgetingMethod: Slices"),
     "documents.0.spec.budgetingMethod"),
    ("a burn rate below", ("objectives: [", "alertPolicies: [{kind: AlertPolicy, metadata: {name: p}, spec: "
     "{conditions: [{kind: AlertCondition, metadata: {name: c}, spec: {severity: page, condition: "
     "{kind: burnrate, op: lt, threshold: 2, lookbackWindow: 1h}}}]}}]\n  objectives: ["),
     "documents.0.spec.alertPolicies.0.spec.conditions.0.spec.condition.op"),
    ("a burn rate at most", ("objectives: [", "alertPolicies: [{kind: AlertPolicy, metadata: {name: p}, spec: "
     "{conditions: [{kind: AlertCondition, metadata: {name: c}, spec: {severity: page, condition: "
     "{kind: burnrate, op: lte, threshold: 2, lookbackWindow: 1h}}}]}}]\n  objectives: ["),
     "documents.0.spec.alertPolicies.0.spec.conditions.0.spec.condition.op"),
    ("two conditions in a policy", ("objectives: [", "alertPolicies: [{kind: AlertPolicy, metadata: {name: p}, "
     "spec: {conditions: [{conditionRef: a}, {conditionRef: b}]}}]\n  objectives: ["),
     "documents.0.spec.alertPolicies.0.spec.conditions"),
    ("an unknown severity", ("objectives: [", "alertPolicies: [{kind: AlertPolicy, metadata: {name: p}, spec: "
     "{conditions: [{kind: AlertCondition, metadata: {name: c}, spec: {severity: sev9, condition: "
     "{kind: burnrate, op: gt, threshold: 2, lookbackWindow: 1h}}}]}}]\n  objectives: ["),
     "documents.0.spec.alertPolicies.0.spec.conditions.0.spec.severity"),
    ("timeslices without a slice target", ("timeSliceTarget: 0.9, ", ""),
     "documents.0.spec.objectives.0.timeSliceTarget"),
    ("threshold without op", ("op: lte, ", ""), "documents.0.spec.objectives.0.op"),
    ("composite", ("target: 0.99,", "target: 0.99, compositeWeight: 2,"), "documents.0.spec.objectives"),
    ("unknown kind", ("kind: SLO", "kind: Dashboard"), "documents.0.kind"),
    ("a name longer than 63", ("metadata: {name: s}", f"metadata: {{name: {'s' * 64}}}"), "documents.0.metadata.name"),
    ("a name ending in -", ("metadata: {name: s}", "metadata: {name: s-}"), "documents.0.metadata.name"),
    ("other versions", ("apiVersion: openslo/v1", "apiVersion: openslo/v1alpha"), "documents.0.apiVersion"),
]  # fmt: skip


def test_slos_sharing_an_sli_and_a_policy_export_them_once_and_inline_slis_stay_inline() -> None:
    def query(text: str) -> dict[str, Any]:
        return {"metricSource": {"type": "Prometheus", "spec": {"query": text}}}

    def ratio(good: str) -> dict[str, Any]:
        return {"ratioMetric": {"counter": True, "good": query(good), "total": query("total")}}

    def slo(name: str, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": name},
                "spec": {"service": "shop", "timeWindow": [{"duration": "30d", "isRolling": True}],
                         "budgetingMethod": "Occurrences", "objectives": [{"target": 0.99}], **spec}}  # fmt: skip

    docs = [
        {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "shop"}, "spec": {}},
        {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "shared"}, "spec": ratio("good")},
        {"apiVersion": "openslo/v1", "kind": "AlertCondition", "metadata": {"name": "fast"},
         "spec": {"severity": "page", "condition": {"kind": "burnrate", "op": "gt", "threshold": 14.4,
                                                    "lookbackWindow": "1h", "alertAfter": "0m"}}},
        {"apiVersion": "openslo/v1", "kind": "AlertPolicy", "metadata": {"name": "page"},
         "spec": {"conditions": [{"conditionRef": "fast"}], "notificationTargets": [{"targetRef": "oncall"}]}},
        {"apiVersion": "openslo/v1", "kind": "AlertNotificationTarget", "metadata": {"name": "oncall"},
         "spec": {"target": "pagerduty"}},
        slo("a", indicatorRef="shared", alertPolicies=["page"]),
        slo("b", indicatorRef="shared", alertPolicies=["page"]),
        slo("c", indicator={"metadata": {"name": "inline"}, "spec": ratio("good-c")}),
        slo("d", indicator={"metadata": {"name": "inline"}, "spec": ratio("good-d")}),
    ]  # fmt: skip
    imported = canonical(import_documents(docs, customer="Acme", provider="Shop").document)
    exported = parse_yaml(export_yaml(imported))
    names = [(d["kind"], d["metadata"]["name"]) for d in exported]
    assert len(names) == len(set(names)), names
    slos = {d["metadata"]["name"]: d["spec"] for d in exported if d["kind"] == "SLO"}
    assert {name: spec.get("indicatorRef") for name, spec in slos.items()} == {"a": "shared", "b": "shared",
                                                                              "c": None, "d": None}  # fmt: skip
    assert [d["metadata"]["name"] for d in exported if d["kind"] == "SLI"] == ["shared"]
    for name, good in (("c", "good-c"), ("d", "good-d")):
        assert slos[name]["indicator"]["metadata"]["name"] == "inline"
        assert slos[name]["indicator"]["spec"] == ratio(good)
    assert rules.check(exported) == []
    assert canonical(import_documents(exported).document) == imported


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


def test_a_list_of_documents_imports_with_everything_kept_and_exports_by_the_rules() -> None:
    imported = import_documents(parse_yaml(FOREIGN), customer="Acme", provider="Shop")
    document = canonical(imported.document)
    assert document["labels"] == {"team": "payments,web", "tier": "1"}
    strict, loose = document["objectives"]
    assert (strict["name"], loose["name"]) == ("Checkout availability strict", "Checkout availability loose")
    assert (strict["target"], loose["target"]) == (0.999, 0.99)  # exact decimals
    assert (strict["window"], strict["slice_length"]) == ("week", "5m")  # a bare timeSliceWindow is minutes
    fast, slow = strict["alert_policy"]["tiers"]
    assert (fast["severity"], fast["alert_after"], fast["alert_when_resolved"]) == ("page", None, False)
    assert (slow["severity"], slow["alert_when_breaching"], slow["short_window"]) == ("ticket", False, "2h")
    docs = parse_yaml(export_yaml(document))
    assert rules.check(docs) == []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (service,) = by_kind["Service"]
    assert service["metadata"]["labels"] == {"team": ["payments", "web"], "tier": "1"}
    assert service["metadata"]["annotations"]["owner"] == "jane"
    (slo,) = by_kind["SLO"]  # one SLO with its two objectives, as imported
    assert slo["metadata"]["name"] == "checkout-availability-with-a-rather-long-name-that-goes-on-and"
    assert [o["targetPercent"] for o in slo["spec"]["objectives"]] == [99.9, 99.0]
    assert slo["metadata"]["labels"] == {"env": ["prod"]}
    assert slo["spec"]["alertPolicies"] == ["fast-burn", "slow-burn"]
    (sli,) = by_kind["SLI"]
    assert sli["spec"]["ratioMetric"]["good"]["metricSource"]["spec"]["query"] == "sum(rate(ok[5m]))"
    assert [d["metadata"]["name"] for d in by_kind["DataSource"]] == ["prom"]
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind["AlertPolicy"]}
    assert policies["fast-burn"]["notificationTargets"] == [{"targetRef": "on-call"}]
    assert policies["slow-burn"]["alertWhenBreaching"] is False
    assert {c["spec"]["severity"] for c in by_kind["AlertCondition"]} == {"critical", "warning"}
    ops = {c["metadata"]["name"]: c["spec"]["condition"]["op"] for c in by_kind["AlertCondition"]}
    assert sorted(ops.values()) == ["gt", "gte"]  # gte kept: that tier fires at its factor too
    assert (fast["op"], slow["op"]) == ("gt", "gte")
    again = canonical(import_documents(docs).document)
    assert again == document


def test_list_multi_document_and_single_forms_are_the_same_documents() -> None:
    docs = parse_yaml(FOREIGN)
    multi = yaml.safe_dump_all(docs)
    assert parse_yaml(multi) == docs
    assert parse_yaml("---\n" + yaml.safe_dump(docs[:3]) + "---\n" + yaml.safe_dump(docs[3])) == docs[:4]
    assert parse_yaml(yaml.safe_dump(docs[0])) == docs[:1]


def test_an_unquoted_timestamp_is_shown_as_written_not_as_python() -> None:
    bad = BASE.replace('"2024-01-01 00:00:00"', "2024-01-02 10:00:30")  # refused: periods start on a minute
    with pytest.raises(Invalid) as raised:
        import_documents(parse_yaml(bad), customer="c", provider="p")
    text = json.dumps(raised.value.extra["errors"])
    assert "datetime" not in text
    assert "2024-01-02 10:00:30" in text


@given(st.text(alphabet=string.printable.strip() + "é -", min_size=1, max_size=200).filter(str.strip))
def test_generated_names_are_rfc_1123_labels(name: str) -> None:
    docs = export_documents(
        canonical({"name": name, "provider": "p", "customer": "c", "objectives": [
            {"name": name, "indicator": "a", "target": 0.9,
             "alert_policy": {"tiers": [{"long_window": "1h", "short_window": "5m", "factor": 2}]}}]})
    )  # fmt: skip
    for doc in docs:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", doc["metadata"]["name"]), doc["metadata"]["name"]


def test_an_agreement_made_in_accord_with_anchored_calendars_ratio_slices_and_gte_exports_and_imports_again() -> None:
    made = canonical(
        {"name": "A", "provider": "P", "customer": "C", "timezone": "Europe/Berlin",
         "reporting_period": "2M from 2026-01-31T06:00",
         "objectives": [{"name": "o", "indicator": "i", "target": 0.99, "window": "3d from 2026-03-29T02:30",
                         "budgeting": "ratio_timeslices", "slice_length": "5m",
                         "alert_policy": {"tiers": [{"long_window": "1h", "short_window": "5m", "factor": 2,
                                                     "op": "gte"}]}}]}
    )  # fmt: skip
    docs = parse_yaml(export_yaml(made))
    assert rules.check(docs) == []
    slo = next(d for d in docs if d["kind"] == "SLO")
    assert slo["spec"]["timeWindow"] == [
        {"duration": "3d", "isRolling": False,
         "calendar": {"startTime": "2026-03-29 02:30:00", "timeZone": "Europe/Berlin"}}
    ]  # fmt: skip
    assert (slo["spec"]["budgetingMethod"], slo["spec"]["objectives"]) == (
        "RatioTimeslices",
        [{"target": 0.99, "timeSliceWindow": "5m"}],
    )
    condition = next(d for d in docs if d["kind"] == "AlertCondition")
    assert condition["spec"]["condition"]["op"] == "gte"
    again = canonical(import_documents(docs).document)
    drop = {"openslo": None}
    assert {**again, **drop, "objectives": [{**o, **drop} for o in again["objectives"]]} == {
        **made,
        **drop,
        "objectives": [{**o, **drop} for o in made["objectives"]],
    }
