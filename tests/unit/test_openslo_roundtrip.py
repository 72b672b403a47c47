"""Round trip of OpenSLO v1 files written by other tools: import -> export -> import leaves the agreement
unchanged, and names, display names, labels, annotations, targets, windows, budgeting, alert policies
and queries come out of the export as they went in (hypothesis generates the files)."""

from __future__ import annotations

import string
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.api import openslo_rules
from services.api.openslo import SEVERITIES, export_yaml, import_documents, parse_yaml
from services.api.schemas import AgreementIn

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " .-_", min_size=1, max_size=20).filter(str.strip)
LABELS = st.dictionaries(NAMES, TEXT | st.lists(TEXT, min_size=1, max_size=3), max_size=3)
ANNOTATIONS = st.dictionaries(st.from_regex(r"example\.com/[a-z]{1,8}", fullmatch=True), TEXT, max_size=2)
ANCHORS = st.builds(
    lambda day, minute: f"2026-{1 + day // 28:02d}-{1 + day % 28:02d} {minute // 60:02d}:{minute % 60:02d}:00",
    st.integers(0, 12 * 28 - 1),
    st.integers(0, 24 * 60 - 1),
)
ANCHORED = st.tuples(
    st.sampled_from(["1d", "3d", "1w", "2w", "1M", "2M", "1Q", "3Q", "1Y"]), ANCHORS
)  # any startTime: Accord's default anchors included (a Monday midnight, a first of a month)
WINDOWS = st.one_of(
    st.sampled_from(["30d", "28d", "7d", "12h", "90m", "4w"]).map(lambda d: {"duration": d, "isRolling": True}),
    st.sampled_from([("1w", "2024-01-01 00:00:00"), ("1M", "2024-02-01 00:00:00"), ("1Q", "2024-04-01 00:00:00")]).map(
        lambda w: {"duration": w[0], "isRolling": False, "calendar": {"startTime": w[1], "timeZone": "Europe/Berlin"}}
    ),
    ANCHORED.map(
        lambda w: {"duration": w[0], "isRolling": False, "calendar": {"startTime": w[1], "timeZone": "Europe/Berlin"}}
    ),
)
PERCENTS = st.integers(1, 99_999).map(lambda n: float(Decimal(n) / 1000))  # 0.001 .. 99.999


def query(text: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": text}}}


@st.composite
def files(draw: st.DrawFn) -> list[dict[str, Any]]:
    service = draw(NAMES)
    docs: list[dict[str, Any]] = [
        {"apiVersion": "openslo/v1", "kind": "Service",
         "metadata": {"name": service, "displayName": draw(TEXT), "labels": draw(LABELS),
                      "annotations": draw(ANNOTATIONS)},
         "spec": {"description": draw(st.just("") | TEXT)}}
    ]  # fmt: skip
    first_sli: tuple[str, bool] | None = None
    for n, slo in enumerate(draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))):
        shared = first_sli is not None and draw(st.booleans())  # the first SLO's SLI, referenced again
        sli_name, threshold = first_sli if shared and first_sli else (f"{slo}-sli", draw(st.booleans()))
        method = draw(st.sampled_from(["Occurrences", "Timeslices", "RatioTimeslices"]))
        sli_spec = (
            {"thresholdMetric": query(f"latency_{n}")}
            if threshold
            else {"ratioMetric": {"counter": True, "good": query(f"good_{n}"), "total": query(f"total_{n}")}}
        )
        entries = []
        for m in range(draw(st.integers(1, 2))):
            entry: dict[str, Any] = {"displayName": f"entry {m}"}
            if draw(st.booleans()):
                entry["targetPercent"] = draw(PERCENTS)
            else:
                entry["target"] = draw(PERCENTS) / 100
            if threshold:
                entry["op"], entry["value"] = (
                    draw(st.sampled_from(["lt", "lte", "gt", "gte"])),
                    draw(st.integers(1, 999)),
                )
            if method == "Timeslices":
                entry["timeSliceTarget"] = 0.9
            if method != "Occurrences":
                entry["timeSliceWindow"] = draw(st.sampled_from([1, 5, "1m", "5m"]))
            entries.append(entry)
        policies = []
        for k in range(draw(st.integers(0, 2))):
            name = f"{slo}-p{k}"[:63]
            policies.append(name)
            docs.append(
                {"apiVersion": "openslo/v1", "kind": "AlertPolicy", "metadata": {"name": name},
                 "spec": {"alertWhenBreaching": draw(st.booleans()), "alertWhenResolved": draw(st.booleans()),
                          "alertWhenNoData": draw(st.booleans()),
                          "conditions": [{"conditionRef": f"{name}-c"}],
                          "notificationTargets": [{"target": "email", "description": draw(TEXT)}]}}
            )  # fmt: skip
            docs.append(
                {"apiVersion": "openslo/v1", "kind": "AlertCondition", "metadata": {"name": f"{name}-c"},
                 "spec": {"severity": draw(st.sampled_from(sorted(SEVERITIES))),
                          "condition": {"kind": "burnrate", "op": draw(st.sampled_from(["gt", "gte"])),
                                        "threshold": draw(st.sampled_from([1, 2.5, 14.4])),
                                        "lookbackWindow": draw(st.sampled_from(["1h", "6h", "1d"])),
                                        "alertAfter": draw(st.sampled_from(["0m", "5m", "1h"]))}}}
            )  # fmt: skip
        sli_doc: dict[str, Any] = {"apiVersion": "openslo/v1", "kind": "SLI",
                   "metadata": {"name": sli_name, "displayName": draw(TEXT)}, "spec": sli_spec}  # fmt: skip
        inline = not shared and draw(st.booleans())  # inline SLIs named alike (one Accord indicator per kind)
        if inline:
            sli_doc["metadata"]["name"] = "inline-threshold" if threshold else "inline-ratio"
        elif not shared:
            docs.append(sli_doc)
            first_sli = first_sli or (sli_name, threshold)
        slo_doc: dict[str, Any] = {
            "apiVersion": "openslo/v1", "kind": "SLO",
            "metadata": {"name": slo, "displayName": draw(TEXT), "labels": draw(LABELS),
                         "annotations": draw(ANNOTATIONS)},
            "spec": {"description": "", "service": service,
                     "timeWindow": [draw(WINDOWS)], "budgetingMethod": method,
                     "objectives": entries},
        }  # fmt: skip
        if inline:
            slo_doc["spec"]["indicator"] = {"metadata": sli_doc["metadata"], "spec": sli_spec}
        else:
            slo_doc["spec"]["indicatorRef"] = sli_name
        if policies:
            slo_doc["spec"]["alertPolicies"] = policies
        docs.append(slo_doc)
    return docs


def canonical(document: dict[str, Any]) -> dict[str, Any]:
    return AgreementIn.model_validate(document).model_dump(mode="json", exclude={"author", "reason"})


def by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@settings(max_examples=60)
@given(files())
def test_a_file_survives_import_export_import(docs: list[dict[str, Any]]) -> None:
    first = canonical(import_documents(docs, customer="c", provider="p").document)
    exported = parse_yaml(export_yaml(first))
    assert openslo_rules.check(exported) == []
    names = [(d["kind"], d["metadata"]["name"]) for d in exported]
    assert len(names) == len(set(names)), f"a name twice in the export: {names}"
    assert canonical(import_documents(exported).document) == first
    for kind in ("Service", "SLO", "SLI", "AlertPolicy", "AlertCondition"):
        before, after = by_name(docs, kind), by_name(exported, kind)
        assert set(after) == set(before), kind
        for name, doc in before.items():
            for key in ("displayName", "labels"):
                assert after[name]["metadata"].get(key) == (doc["metadata"].get(key) or None) or not doc[
                    "metadata"
                ].get(key), (kind, key)
            for key, value in (doc["metadata"].get("annotations") or {}).items():
                assert after[name]["metadata"]["annotations"][key] == value
    for name, slo in by_name(docs, "SLO").items():
        out = by_name(exported, "SLO")[name]["spec"]
        assert out["objectives"] == [
            {**e, "timeSliceWindow": f"{e['timeSliceWindow']}m"} if isinstance(e.get("timeSliceWindow"), int) else e
            for e in slo["spec"]["objectives"]
        ]
        assert out["timeWindow"] == slo["spec"]["timeWindow"]  # duration, startTime and timeZone kept
        assert out["budgetingMethod"] == slo["spec"]["budgetingMethod"]
        assert out.get("alertPolicies", []) == slo["spec"].get("alertPolicies", [])
    for name, sli in by_name(docs, "SLI").items():
        assert by_name(exported, "SLI")[name]["spec"] == sli["spec"]
    for name, policy in by_name(docs, "AlertPolicy").items():
        assert by_name(exported, "AlertPolicy")[name]["spec"] == policy["spec"]
    for name, condition in by_name(docs, "AlertCondition").items():
        out = by_name(exported, "AlertCondition")[name]["spec"]
        rule = condition["spec"]["condition"]
        assert out["severity"] == condition["spec"]["severity"]
        assert out["condition"] == {**rule, "alertAfter": rule["alertAfter"]}
