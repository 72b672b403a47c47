"""A checker of the OpenSLO v1 spec's own rules (https://github.com/OpenSLO/OpenSLO, v1), independent of
what Accord can represent: every export is checked with it in the tests, and `accord openslo validate`
runs it offline next to the import's checks.

Rules checked: `apiVersion: openslo/v1`, a known `kind`, `metadata.name` an RFC 1123 label (at most 63
characters), the required fields of each kind, duration syntax (`<n><unit>`, units s m h d w M Q Y;
`alertAfter` may be 0, a bare `timeSliceWindow` number is minutes), exactly one condition per
AlertPolicy and at least one notification target, condition operators lt/lte/gt/gte, budgeting
methods Occurrences/Timeslices/RatioTimeslices (a timeSliceWindow with either slice method), and that
references (indicatorRef, alertPolicies, conditionRef, targetRef, metricSourceRef) name documents of
the set.
"""

from __future__ import annotations

import re
from typing import Any

KINDS = ("Service", "SLI", "SLO", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "DataSource")
NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DURATION = re.compile(r"[1-9]\d*[smhdwMQY]")
DURATION_OR_ZERO = re.compile(r"\d+[smhdwMQY]")
OPS = ("lt", "lte", "gt", "gte")
METHODS = ("Occurrences", "Timeslices", "RatioTimeslices")

Problem = dict[str, str]


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _Check:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.refs: list[tuple[str, str, str]] = []  # (where, kind, name)

    def add(self, where: str, reason: str) -> None:
        self.problems.append({"field": where, "reason": reason})

    def duration(self, where: str, value: Any, *, zero: bool = False, required: bool = True) -> None:
        if value is None:
            if required:
                self.add(where, "required")
            return
        pattern = DURATION_OR_ZERO if zero else DURATION
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.add(where, f"{value!s} is not an OpenSLO duration (a number and one of s m h d w M Q Y)")

    def meta(self, where: str, doc: dict[str, Any]) -> None:
        name = _d(doc.get("metadata")).get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            self.add(f"{where}.metadata.name", f"{name!s} is not an RFC 1123 label (a-z, 0-9, '-', at most 63)")

    def sli(self, where: str, sli: dict[str, Any]) -> None:
        spec = _d(sli.get("spec"))
        metrics = [k for k in ("ratioMetric", "thresholdMetric") if k in spec]
        if len(metrics) != 1:
            self.add(f"{where}.spec", "exactly one of ratioMetric and thresholdMetric")
            return
        if metrics == ["ratioMetric"]:
            ratio = _d(spec["ratioMetric"])
            if not isinstance(ratio.get("counter"), bool):
                self.add(f"{where}.spec.ratioMetric.counter", "required (true or false)")
            if "raw" in ratio:
                sources = [_d(ratio["raw"])]
            elif "total" in ratio and (("good" in ratio) != ("bad" in ratio)):
                sources = [_d(ratio.get(p)) for p in ("good", "bad", "total") if p in ratio]
            else:
                self.add(f"{where}.spec.ratioMetric", "total and one of good or bad (or raw)")
                return
        else:
            sources = [_d(spec["thresholdMetric"])]
        for source in sources:
            metric = _d(source.get("metricSource"))
            if not metric:
                self.add(f"{where}.spec", "a metric needs a metricSource")
            elif "metricSourceRef" in metric:
                self.refs.append((where, "DataSource", str(metric["metricSourceRef"])))
            elif "type" not in metric:
                self.add(f"{where}.spec", "a metricSource needs a type or a metricSourceRef")

    def slo(self, where: str, spec: dict[str, Any]) -> None:
        if not spec.get("service"):
            self.add(f"{where}.spec.service", "required")
        else:
            self.refs.append((f"{where}.spec.service", "Service", str(spec["service"])))
        if ("indicator" in spec) == ("indicatorRef" in spec):
            self.add(f"{where}.spec", "exactly one of indicator and indicatorRef")
        elif "indicatorRef" in spec:
            self.refs.append((f"{where}.spec.indicatorRef", "SLI", str(spec["indicatorRef"])))
        else:
            self.meta(f"{where}.spec.indicator", _d(spec["indicator"]))
            self.sli(f"{where}.spec.indicator", _d(spec["indicator"]))
        windows = spec.get("timeWindow")
        if not isinstance(windows, list) or len(windows) != 1:
            self.add(f"{where}.spec.timeWindow", "exactly one time window")
        else:
            window = _d(windows[0])
            self.duration(f"{where}.spec.timeWindow.0.duration", window.get("duration"))
            if not isinstance(window.get("isRolling"), bool):
                self.add(f"{where}.spec.timeWindow.0.isRolling", "required (true or false)")
            elif not window["isRolling"]:
                calendar = _d(window.get("calendar"))
                for key in ("startTime", "timeZone"):
                    if not calendar.get(key):
                        self.add(f"{where}.spec.timeWindow.0.calendar.{key}", "required for a calendar window")
        method = spec.get("budgetingMethod")
        if method not in METHODS:
            self.add(f"{where}.spec.budgetingMethod", f"one of {', '.join(METHODS)}")
        objectives = spec.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            self.add(f"{where}.spec.objectives", "at least one objective")
            objectives = []
        for n, entry in enumerate(objectives):
            at, entry = f"{where}.spec.objectives.{n}", _d(entry)
            if ("target" in entry) == ("targetPercent" in entry):
                self.add(at, "exactly one of target and targetPercent")
            if "op" in entry and entry["op"] not in OPS:
                self.add(f"{at}.op", f"one of {', '.join(OPS)}")
            if method in ("Timeslices", "RatioTimeslices"):
                if method == "Timeslices" and "timeSliceTarget" not in entry:
                    self.add(f"{at}.timeSliceTarget", "required with Timeslices")
                length = entry.get("timeSliceWindow")
                if not (isinstance(length, int) and not isinstance(length, bool) and length > 0):
                    self.duration(f"{at}.timeSliceWindow", length)
        for n, ref in enumerate(spec.get("alertPolicies") or []):
            at = f"{where}.spec.alertPolicies.{n}"
            if isinstance(ref, str):
                self.refs.append((at, "AlertPolicy", ref))
            elif isinstance(ref, dict) and "alertPolicyRef" in ref:
                self.refs.append((at, "AlertPolicy", str(ref["alertPolicyRef"])))
            elif isinstance(ref, dict):
                self.meta(at, ref)
                self.policy(at, _d(ref.get("spec")))
            else:
                self.add(at, "an AlertPolicy or a reference to one")

    def policy(self, where: str, spec: dict[str, Any]) -> None:
        conditions = spec.get("conditions")
        if not isinstance(conditions, list) or len(conditions) != 1:
            self.add(f"{where}.spec.conditions", "exactly one condition per AlertPolicy")
        else:
            condition = _d(conditions[0])
            if "conditionRef" in condition:
                self.refs.append((f"{where}.spec.conditions.0", "AlertCondition", str(condition["conditionRef"])))
            else:
                self.meta(f"{where}.spec.conditions.0", condition)
                self.condition(f"{where}.spec.conditions.0", _d(condition.get("spec")))
        targets = spec.get("notificationTargets")
        if not isinstance(targets, list) or not targets:
            self.add(f"{where}.spec.notificationTargets", "at least one notification target")
            targets = []
        for n, target in enumerate(targets):
            target = _d(target)
            if "targetRef" in target:
                self.refs.append((f"{where}.spec.notificationTargets.{n}", "AlertNotificationTarget",
                                  str(target["targetRef"])))  # fmt: skip
            elif not target.get("target"):
                self.add(f"{where}.spec.notificationTargets.{n}", "a target or a targetRef")
        for key in ("alertWhenBreaching", "alertWhenResolved", "alertWhenNoData"):
            if key in spec and not isinstance(spec[key], bool):
                self.add(f"{where}.spec.{key}", "true or false")

    def condition(self, where: str, spec: dict[str, Any]) -> None:
        if not spec.get("severity"):
            self.add(f"{where}.spec.severity", "required")
        rule = _d(spec.get("condition"))
        if rule.get("kind") != "burnrate":
            self.add(f"{where}.spec.condition.kind", "burnrate")
        if rule.get("op") not in OPS:
            self.add(f"{where}.spec.condition.op", f"one of {', '.join(OPS)}")
        threshold = rule.get("threshold")
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            self.add(f"{where}.spec.condition.threshold", "a number")
        self.duration(f"{where}.spec.condition.lookbackWindow", rule.get("lookbackWindow"))
        self.duration(f"{where}.spec.condition.alertAfter", rule.get("alertAfter"), zero=True, required=False)


def check(docs: list[Any]) -> list[Problem]:
    """The v1 rules `docs` break, each as {field: documents.N..., reason}; empty when they follow them all."""
    c = _Check()
    names: dict[str, set[str]] = {}
    for n, doc in enumerate(docs):
        where = f"documents.{n}"
        if not isinstance(doc, dict):
            c.add(where, "not a mapping")
            continue
        if doc.get("apiVersion") != "openslo/v1":
            c.add(f"{where}.apiVersion", "openslo/v1")
            continue
        kind = doc.get("kind")
        if kind not in KINDS:
            c.add(f"{where}.kind", f"one of {', '.join(KINDS)}")
            continue
        c.meta(where, doc)
        names.setdefault(str(kind), set()).add(str(_d(doc.get("metadata")).get("name")))
        spec = doc.get("spec")
        if kind == "Service" and spec is None:
            continue  # a Service's spec holds only an optional description
        if not isinstance(spec, dict):
            c.add(f"{where}.spec", "required")
            continue
        if kind == "SLI":
            c.sli(where, doc)
        elif kind == "SLO":
            c.slo(where, spec)
        elif kind == "AlertPolicy":
            c.policy(where, spec)
        elif kind == "AlertCondition":
            c.condition(where, spec)
        elif kind == "AlertNotificationTarget" and not spec.get("target"):
            c.add(f"{where}.spec.target", "required")
        elif kind == "DataSource":
            if not spec.get("type"):
                c.add(f"{where}.spec.type", "required")
            if "connectionDetails" not in spec:
                c.add(f"{where}.spec.connectionDetails", "required")
    for where, kind, name in c.refs:
        if kind == "Service" and "Service" not in names:
            continue  # an SLO may name a Service defined elsewhere
        if name not in names.get(kind, set()):
            c.add(where, f"no {kind} named {name!r} in the documents")
    return c.problems
