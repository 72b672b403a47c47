"""The checker of OpenSLO v1's own rules (services/api/openslo_rules.py): what it refuses, and that it
accepts a file that follows them. Exports are checked with it in test_openslo.py."""

from __future__ import annotations

import pytest

from services.api.openslo import parse_yaml
from services.api.openslo_rules import check

GOOD = """
- apiVersion: openslo/v1
  kind: SLO
  metadata: {name: s}
  spec:
    service: svc
    indicator:
      metadata: {name: i}
      spec: {thresholdMetric: {metricSource: {type: Prometheus, spec: {query: q}}}}
    timeWindow: [{duration: 1w, isRolling: false, calendar: {startTime: "2024-01-06 12:00:00", timeZone: UTC}}]
    budgetingMethod: Timeslices
    objectives: [{op: lte, value: 300, target: 0.99, timeSliceTarget: 0.9, timeSliceWindow: 5}]
    alertPolicies: [p]
- apiVersion: openslo/v1
  kind: AlertPolicy
  metadata: {name: p}
  spec:
    conditions: [{conditionRef: c}]
    notificationTargets: [{targetRef: t}]
- apiVersion: openslo/v1
  kind: AlertCondition
  metadata: {name: c}
  spec: {severity: critical, condition: {kind: burnrate, op: gt, threshold: 2, lookbackWindow: 1h, alertAfter: 0m}}
- apiVersion: openslo/v1
  kind: AlertNotificationTarget
  metadata: {name: t}
  spec: {target: pagerduty}
"""

BROKEN = [
    ("two conditions", ("conditions: [{conditionRef: c}]", "conditions: [{conditionRef: c}, {conditionRef: c}]"),
     "documents.1.spec.conditions"),
    ("no notification targets", ("notificationTargets: [{targetRef: t}]", "notificationTargets: []"),
     "documents.1.spec.notificationTargets"),
    ("a dangling target", ("targetRef: t}", "targetRef: nope}"), "documents.1.spec.notificationTargets.0"),
    ("a name with capitals", ("metadata: {name: p}", "metadata: {name: P}"), "documents.1.metadata.name"),
    ("a name ending in -", ("metadata: {name: s}", "metadata: {name: s-}"), "documents.0.metadata.name"),
    ("a bad duration", ("lookbackWindow: 1h", "lookbackWindow: 1 hour"),
     "documents.2.spec.condition.lookbackWindow"),
    ("a zero window", ("duration: 1w", "duration: 0w"), "documents.0.spec.timeWindow.0.duration"),
    ("an unknown op", ("op: gt", "op: ge"), "documents.2.spec.condition.op"),
    ("no severity", ("severity: critical, ", ""), "documents.2.spec.severity"),
    ("calendar without a start", ('startTime: "2024-01-06 12:00:00", ', ""),
     "documents.0.spec.timeWindow.0.calendar.startTime"),
    ("both targets", ("target: 0.99,", "target: 0.99, targetPercent: 99,"), "documents.0.spec.objectives.0"),
    ("timeslices without a target", ("timeSliceTarget: 0.9, ", ""), "documents.0.spec.objectives.0.timeSliceTarget"),
    ("an unknown method", ("budgetingMethod: Timeslices", "budgetingMethod: Ratio"),
     "documents.0.spec.budgetingMethod"),
    ("a dangling policy", ("alertPolicies: [p]", "alertPolicies: [q]"), "documents.0.spec.alertPolicies.0"),
]  # fmt: skip


def test_a_file_that_follows_the_rules_passes() -> None:
    assert check(parse_yaml(GOOD)) == []


@pytest.mark.parametrize(("case", "edit", "field"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_rule_is_named(case: str, edit: tuple[str, str], field: str) -> None:
    assert edit[0] in GOOD, case
    problems = check(parse_yaml(GOOD.replace(*edit)))
    assert field in {p["field"] for p in problems}, problems
