"""OpenSLO v1 (https://github.com/OpenSLO/OpenSLO) to and from Accord's agreement documents.

Mapping (export, then what import accepts):
- the agreement is a `Service` (name in `displayName`, provider, customer, timezone and the
  contract terms OpenSLO has no field for in `accord.dev/*` annotations, labels as labels);
- each objective is an `SLO` with one entry in `spec.objectives` and its own `SLI`
  (`ratioMetric` good/total or `thresholdMetric`, metric source `type: accord` naming the
  indicator and label matchers); a threshold is the entry's `op`/`value`;
- `timeWindow`: rolling `30d`, `12h`, `90m`; calendar `1w`, `1M`, `1Q` in the agreement's timezone;
- `budgetingMethod`: `Occurrences`, or `Timeslices` with `timeSliceTarget` and `timeSliceWindow`;
- explicit burn-rate tiers are an `AlertPolicy` with one `AlertCondition` per tier
  (`kind: burnrate`, `op: gte`, `threshold` = factor, `lookbackWindow` = long window,
  `alertAfter` = short window, `severity` page or ticket); default tiers export no policy;
- the low-traffic guard, budget thresholds and business-hours flag are `accord.dev/*` annotations.
Import names what it cannot represent (422) and lists what it did not keep (notes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from shared.budget.model import DEFAULT_BUDGET_THRESHOLDS, tier_name
from shared.errors import Invalid
from shared.timeutil import MINUTE_MS, duration_ms

API_VERSION = "openslo/v1"
A = "accord.dev/"
OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
OPS_BACK = {v: k for k, v in OPS.items()}
CALENDAR = {"week": "1w", "month": "1M", "quarter": "1Q"}
CALENDAR_BACK = {v: k for k, v in CALENDAR.items()}
CALENDAR_START = "2024-01-01 00:00:00"  # a Monday that starts a month and a quarter
KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")

Doc = dict[str, Any]


def slug(text: str) -> str:
    """An RFC 1123 label for `metadata.name`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:55] or "x"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


# --- export -----------------------------------------------------------------------------------------


def export_documents(document: Mapping[str, Any]) -> list[Doc]:
    """The OpenSLO documents of an agreement's revision document."""
    service = slug(document["name"])
    annotations = {
        f"{A}provider": document["provider"],
        f"{A}customer": document["customer"],
        f"{A}timezone": document["timezone"],
        f"{A}reporting-period": document["reporting_period"],
    }
    for key, name in (("effective_from", "effective-from"), ("effective_until", "effective-until")):
        if document.get(key):
            annotations[f"{A}{name}"] = document[key]
    for key, name in (("business_hours", "business-hours"), ("maintenance", "maintenance"),
                      ("credit_tiers", "credit-tiers")):  # fmt: skip
        if document.get(key):
            annotations[f"{A}{name}"] = json.dumps(document[key], separators=(",", ":"))
    docs: list[Doc] = [
        {
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": {
                "name": service,
                "displayName": document["name"],
                "labels": dict(document.get("labels") or {}),
                "annotations": annotations,
            },
            "spec": {"description": document.get("description", "")},
        }
    ]
    objectives = list(document.get("objectives", ()))
    for name, objective in zip(_unique([slug(o["name"]) for o in objectives]), objectives, strict=True):
        docs.extend(_export_objective(service, name, objective, document["timezone"]))
    return docs


def _export_objective(service: str, name: str, objective: Mapping[str, Any], timezone: str) -> list[Doc]:
    source: Doc = {"indicator": objective["indicator"]}
    if objective.get("matchers"):
        source["matchers"] = dict(objective["matchers"])
    threshold = objective.get("threshold")
    if threshold is None:
        metric: Doc = {
            "ratioMetric": {
                "counter": True,
                "good": {"metricSource": {"type": "accord", "spec": {**source, "field": "good"}}},
                "total": {"metricSource": {"type": "accord", "spec": {**source, "field": "total"}}},
            }
        }
    else:
        metric = {"thresholdMetric": {"metricSource": {"type": "accord", "spec": source}}}
    sli = {"apiVersion": API_VERSION, "kind": "SLI", "metadata": {"name": f"{name}-sli"}, "spec": metric}

    entry: Doc = {"target": objective["target"]}
    if threshold is not None:
        entry["op"], entry["value"] = OPS[threshold["op"]], threshold["value"]
    timeslices = objective.get("budgeting") == "timeslices"
    if timeslices:
        entry["timeSliceTarget"], entry["timeSliceWindow"] = objective["slice_target"], objective["slice_length"]
    window = objective["window"]
    time_window: Doc = (
        {
            "duration": CALENDAR[window],
            "isRolling": False,
            "calendar": {"startTime": CALENDAR_START, "timeZone": timezone},
        }
        if window in CALENDAR
        else {"duration": window, "isRolling": True}
    )
    policy = objective.get("alert_policy") or {}
    slo: Doc = {
        "apiVersion": API_VERSION,
        "kind": "SLO",
        "metadata": {
            "name": name,
            "displayName": objective["name"],
            "annotations": {
                f"{A}min-events": str(policy.get("min_events", 0)),
                f"{A}budget-thresholds": json.dumps(policy.get("budget_thresholds", list(DEFAULT_BUDGET_THRESHOLDS))),
                f"{A}business-hours-only": "true" if objective.get("business_hours_only") else "false",
            },
        },
        "spec": {
            "description": objective.get("description", ""),
            "service": service,
            "indicatorRef": f"{name}-sli",
            "timeWindow": [time_window],
            "budgetingMethod": "Timeslices" if timeslices else "Occurrences",
            "objectives": [entry],
        },
    }
    docs = [sli, slo]
    tiers = policy.get("tiers")
    if tiers is not None:
        conditions: list[Doc] = []
        for n, tier in enumerate(tiers):
            meta: Doc = {"name": f"{name}-burn-{n + 1}"}
            if tier.get("name") is not None:
                meta["displayName"] = tier["name"]
            conditions.append(
                {
                    "apiVersion": API_VERSION,
                    "kind": "AlertCondition",
                    "metadata": meta,
                    "spec": {
                        "severity": tier["severity"],
                        "condition": {
                            "kind": "burnrate",
                            "op": "gte",
                            "threshold": tier["factor"],
                            "lookbackWindow": tier["long_window"],
                            "alertAfter": tier["short_window"],
                        },
                    },
                }
            )
        slo["spec"]["alertPolicies"] = [f"{name}-alerts"]
        docs.append(
            {
                "apiVersion": API_VERSION,
                "kind": "AlertPolicy",
                "metadata": {"name": f"{name}-alerts"},
                "spec": {
                    "alertWhenBreaching": True,
                    "alertWhenResolved": True,
                    "alertWhenNoData": False,
                    "conditions": [{"conditionRef": c["metadata"]["name"]} for c in conditions],
                    "notificationTargets": [],
                },
            }
        )
        docs.extend(conditions)
    return docs


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a shared object out again rather than as an alias: imports refuse aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def export_yaml(document: Mapping[str, Any]) -> str:
    return yaml.dump_all(export_documents(document), Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)


# --- import -----------------------------------------------------------------------------------------


@dataclass
class Imported:
    """An agreement document (without objective ids), the indicators it needs, and what was not kept."""

    document: Doc
    indicators: dict[str, str] = field(default_factory=dict)  # key -> kind
    descriptions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, where: str, reason: str) -> None:
        self.items.append({"field": where, "reason": reason})


def _minutes(text: Any) -> int | None:
    """Minutes of an OpenSLO duration that is a whole number of minutes (no months, quarters, years)."""
    ms = duration_ms(str(text).strip(), "smhdw")
    if not ms or ms % MINUTE_MS:
        return None
    return ms // MINUTE_MS


def _accord_duration(value: Any) -> str | None:
    """An OpenSLO duration in Accord's form: kept as written when Accord reads it, else in minutes/hours/days."""
    text = str(value).strip()
    if re.fullmatch(r"[1-9]\d*[mhd]", text):
        return text
    minutes = _minutes(text)
    if minutes is None:
        return None
    return tier_name(minutes)


MAX_YAML_DEPTH = 64
"""Deepest nesting of collections an OpenSLO body may have (OpenSLO itself needs about 10)."""
MAX_YAML_DOCUMENTS = 1000


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases (no "billion laughs") and nesting deeper than MAX_YAML_DEPTH
    before the composer recurses into it (so no RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not supported in an OpenSLO import", self.get_mark()
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {MAX_YAML_DEPTH} levels", self.get_mark()
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str) -> list[Doc]:
    """The documents of an OpenSLO body: safe YAML, no aliases, at most 64 levels deep, at most 1000 documents."""
    try:
        docs = []
        for d in yaml.load_all(text, Loader=_BoundedLoader):
            if d is not None:
                docs.append(d)
            if len(docs) > MAX_YAML_DOCUMENTS:
                raise Invalid(
                    "Too many OpenSLO documents.",
                    [{"field": "(body)", "reason": f"at most {MAX_YAML_DOCUMENTS} documents"}],
                )
    except (yaml.YAMLError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, yaml.YAMLError) else f"nested too deeply (at most {MAX_YAML_DEPTH})"
        raise Invalid("The body is not acceptable YAML.", [{"field": "(body)", "reason": reason[:1000]}]) from None
    if not docs:
        raise Invalid("No OpenSLO documents.", [{"field": "(body)", "reason": "the body holds no YAML documents"}])
    return docs


def import_documents(
    docs: list[Any], *, customer: str | None = None, provider: str | None = None, name: str | None = None
) -> Imported:
    """An agreement from OpenSLO documents; 422 naming every part Accord cannot represent."""
    problems = _Problems()
    by_kind: dict[str, dict[str, tuple[str, Doc]]] = {}
    notes: list[str] = []
    for n, doc in enumerate(docs):
        where = f"documents.{n}"
        if not isinstance(doc, dict):
            problems.add(where, "not a YAML mapping")
            continue
        if doc.get("apiVersion") != API_VERSION:
            problems.add(f"{where}.apiVersion", f"{doc.get('apiVersion')!r} is not supported; only {API_VERSION}")
            continue
        kind = doc.get("kind")
        meta: Doc = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
        doc_name = str(meta.get("name") or "")
        if kind in ("DataSource", "AlertNotificationTarget"):
            notes.append(f"{kind} {doc_name!r} was not kept: Accord receives measurements and emits breach events")
            continue
        if kind not in ("Service", "SLI", "SLO", "AlertPolicy", "AlertCondition"):
            problems.add(f"{where}.kind", f"kind {kind!r} cannot be represented in Accord")
            continue
        if not doc_name:
            problems.add(f"{where}.metadata.name", "missing")
            continue
        if doc_name in by_kind.get(kind, {}):
            problems.add(f"{where}.metadata.name", f"a second {kind} named {doc_name!r}")
            continue
        by_kind.setdefault(kind, {})[doc_name] = (where, doc)

    services = by_kind.get("Service", {})
    if len(services) > 1:
        problems.add("documents", "more than one Service: import one agreement at a time")
    result = Imported(document={}, notes=notes)
    agreement: Doc = {"name": name, "provider": provider, "customer": customer, "description": ""}
    for where, service in services.values():
        _import_service(service, where, agreement, problems, result)
    slos = by_kind.get("SLO", {})
    if not slos:
        problems.add("documents", "no SLO documents")
    objectives = []
    for slo_name, (where, slo) in slos.items():
        objectives.extend(_import_slo(slo_name, slo, where, by_kind, agreement, problems, result))
    if agreement.get("name") is None:
        service_refs = {
            str(s.get("spec", {}).get("service")) for _, s in slos.values() if isinstance(s.get("spec"), dict)
        }
        agreement["name"] = service_refs.pop() if len(service_refs) == 1 else None
    for key in ("name", "provider", "customer"):
        if not agreement.get(key):
            problems.add(
                f"Service.metadata.annotations.{A}{key}" if key != "name" else "Service.metadata.displayName",
                f"the agreement's {key} is missing: add it to the Service or pass ?{key}=",
            )
    agreement.setdefault("timezone", "UTC")
    agreement["objectives"] = objectives
    if problems.items:
        raise Invalid("The OpenSLO documents cannot be represented in Accord.", problems.items)
    result.document = agreement
    return result


def _as_dict(value: Any) -> Doc:
    """`value` when it is a mapping, else an empty one (what is missing is reported where it is needed)."""
    return value if isinstance(value, dict) else {}


def _import_service(service: Doc, where: str, agreement: Doc, problems: _Problems, result: Imported) -> None:
    meta, spec = _as_dict(service.get("metadata")), _as_dict(service.get("spec"))
    annotations = _as_dict(meta.get("annotations"))
    agreement["name"] = agreement.get("name") or meta.get("displayName") or meta.get("name")
    agreement["description"] = spec.get("description") or ""
    for key in ("provider", "customer"):
        agreement[key] = annotations.get(f"{A}{key}") or agreement.get(key)
    simple = (("timezone", "timezone"), ("reporting-period", "reporting_period"),
              ("effective-from", "effective_from"), ("effective-until", "effective_until"))  # fmt: skip
    for annotation, key in simple:
        if f"{A}{annotation}" in annotations:
            agreement[key] = annotations[f"{A}{annotation}"]
    for annotation, key in (("business-hours", "business_hours"), ("maintenance", "maintenance"),
                            ("credit-tiers", "credit_tiers")):  # fmt: skip
        if f"{A}{annotation}" in annotations:
            try:
                agreement[key] = json.loads(annotations[f"{A}{annotation}"])
            except (TypeError, ValueError):
                problems.add(f"{where}.metadata.annotations.{A}{annotation}", "not JSON")
    labels: Doc = {}
    for key, value in (meta.get("labels") or {}).items():
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            problems.add(f"{where}.metadata.labels.{key}", "Accord labels hold one string value")
            continue
        labels[str(key)] = value
    agreement["labels"] = labels


def _import_slo(
    slo_name: str,
    slo: Doc,
    where: str,
    by_kind: dict[str, dict[str, tuple[str, Doc]]],
    agreement: Doc,
    problems: _Problems,
    result: Imported,
) -> list[Doc]:
    meta, spec = slo.get("metadata") or {}, slo.get("spec")
    annotations = meta.get("annotations") or {}
    if not isinstance(spec, dict):
        problems.add(f"{where}.spec", "missing")
        return []
    # The indicator: a referenced or inline SLI.
    if "indicatorRef" in spec:
        found = by_kind.get("SLI", {}).get(str(spec["indicatorRef"]))
        if found is None:
            problems.add(f"{where}.spec.indicatorRef", f"no SLI named {spec['indicatorRef']!r} in the documents")
            return []
        sli_where, sli = found
    elif isinstance(spec.get("indicator"), dict):
        sli_where, sli = f"{where}.spec.indicator", spec["indicator"]
    else:
        problems.add(f"{where}.spec.indicatorRef", "an SLO needs an indicatorRef or an inline indicator")
        return []
    indicator = _import_sli(sli, sli_where, problems, result)
    if indicator is None:
        return []
    key, kind, matchers = indicator

    windows = spec.get("timeWindow")
    window: str | None = None
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        problems.add(f"{where}.spec.timeWindow", "Accord needs exactly one time window")
    else:
        window = _import_window(windows[0], f"{where}.spec.timeWindow.0", agreement, problems)

    if spec.get("objectives") is None or not isinstance(spec["objectives"], list) or not spec["objectives"]:
        problems.add(f"{where}.spec.objectives", "an SLO needs at least one objective")
        return []
    tiers = _import_alerts(spec.get("alertPolicies"), f"{where}.spec.alertPolicies", by_kind, problems, result)
    method = spec.get("budgetingMethod")
    if method not in ("Occurrences", "Timeslices"):
        problems.add(f"{where}.spec.budgetingMethod", f"{method!r} cannot be represented (Occurrences or Timeslices)")
        return []
    try:
        policy = {
            "tiers": tiers,
            "min_events": int(annotations.get(f"{A}min-events", 0)),
            "budget_thresholds": json.loads(
                annotations.get(f"{A}budget-thresholds", json.dumps(DEFAULT_BUDGET_THRESHOLDS))
            ),
        }
    except (TypeError, ValueError):
        problems.add(f"{where}.metadata.annotations", f"{A}min-events or {A}budget-thresholds is malformed")
        return []
    if spec.get("compositeWeight") is not None or any(
        "compositeWeight" in e for e in spec["objectives"] if isinstance(e, dict)
    ):
        problems.add(f"{where}.spec.objectives", "composite SLOs (compositeWeight) cannot be represented")
    display = str(meta.get("displayName") or slo_name)
    out = []
    many = len(spec["objectives"]) > 1
    for n, entry in enumerate(spec["objectives"]):
        at = f"{where}.spec.objectives.{n}"
        if not isinstance(entry, dict):
            problems.add(at, "not a mapping")
            continue
        objective: Doc = {
            "name": f"{display} {entry.get('displayName') or n + 1}" if many else display,
            "description": spec.get("description") or "",
            "indicator": key,
            "matchers": matchers,
            "window": window,
            "budgeting": method.lower(),
            "business_hours_only": annotations.get(f"{A}business-hours-only") == "true",
            "alert_policy": policy,
        }
        if "target" in entry:
            objective["target"] = entry["target"]
        elif "targetPercent" in entry:
            objective["target"] = float(entry["targetPercent"]) / 100
        else:
            problems.add(f"{at}.target", "missing (target or targetPercent)")
        if kind == "threshold":
            if entry.get("op") not in OPS_BACK or "value" not in entry:
                problems.add(f"{at}.op", "a threshold SLI's objective needs op (lt, lte, gt, gte) and value")
            else:
                objective["threshold"] = {"op": OPS_BACK[entry["op"]], "value": entry["value"]}
        elif "op" in entry or "value" in entry:
            problems.add(f"{at}.op", "a ratio SLI's objective takes no op or value")
        if method == "Timeslices":
            length = _accord_duration(entry.get("timeSliceWindow"))
            if length is None:
                problems.add(f"{at}.timeSliceWindow", "Timeslices needs a timeSliceWindow of whole minutes")
            if "timeSliceTarget" not in entry:
                problems.add(f"{at}.timeSliceTarget", "Timeslices needs a timeSliceTarget")
            objective["slice_length"], objective["slice_target"] = length, entry.get("timeSliceTarget")
        out.append(objective)
    return out


def _import_sli(sli: Doc, where: str, problems: _Problems, result: Imported) -> tuple[str, str, Doc] | None:
    meta, spec = sli.get("metadata") or {}, sli.get("spec") or {}
    name = str(meta.get("name") or "")
    if "ratioMetric" in spec:
        kind, ratio = "ratio", spec["ratioMetric"] or {}
        if "raw" in ratio or "rawType" in ratio:
            problems.add(f"{where}.spec.ratioMetric.raw", "raw (precomputed) ratios cannot be represented")
            return None
        sources = [(ratio.get(p) or {}).get("metricSource") or {} for p in ("good", "bad", "total")]
    elif "thresholdMetric" in spec:
        kind = "threshold"
        sources = [(spec["thresholdMetric"] or {}).get("metricSource") or {}]
    else:
        problems.add(f"{where}.spec", "an SLI needs a ratioMetric or a thresholdMetric")
        return None
    accord = [s.get("spec") or {} for s in sources if s.get("type") == "accord"]
    if accord:
        key = str(accord[0].get("indicator") or name)
        matchers = {str(k): str(v) for k, v in (accord[0].get("matchers") or {}).items()}
    else:
        key, matchers = name, {}
        if any(sources):
            result.notes.append(
                f"SLI {name!r}: metric source queries are not kept; send measurements for indicator {key!r}"
            )
    if not KEY.match(key):
        problems.add(f"{where}.metadata.name", f"{key!r} is not a valid indicator key")
        return None
    if result.indicators.get(key, kind) != kind:
        problems.add(f"{where}.spec", f"indicator {key!r} is used as both ratio and threshold")
        return None
    result.indicators[key] = kind
    result.descriptions.setdefault(key, str(spec.get("description") or ""))
    return key, kind, matchers


def _import_window(window: Doc, where: str, agreement: Doc, problems: _Problems) -> str | None:
    duration = str(window.get("duration", ""))
    if window.get("isRolling", False):
        out = _accord_duration(duration)
        if out is None:
            problems.add(f"{where}.duration", f"rolling window {duration!r} is not a whole number of minutes")
        return out
    kind = CALENDAR_BACK.get(duration)
    if kind is None:
        problems.add(f"{where}.duration", f"calendar window {duration!r} cannot be represented (1w, 1M or 1Q)")
        return None
    calendar = window.get("calendar") or {}
    tz = calendar.get("timeZone")
    if tz is not None and agreement.setdefault("timezone", tz) != tz:
        problems.add(f"{where}.calendar.timeZone", f"{tz!r} differs from the agreement's {agreement['timezone']!r}")
    start = calendar.get("startTime")
    if start is not None:
        try:
            begin = datetime.fromisoformat(str(start))
        except ValueError:
            problems.add(f"{where}.calendar.startTime", f"{start!r} is not a date and time")
            return kind
        aligned = begin.time().isoformat() == "00:00:00" and (
            (kind == "week" and begin.weekday() == 0)
            or (kind == "month" and begin.day == 1)
            or (kind == "quarter" and begin.day == 1 and begin.month in (1, 4, 7, 10))
        )
        if not aligned:
            problems.add(
                f"{where}.calendar.startTime",
                f"Accord's {kind}s start at local midnight of the first day (weeks on Monday); {start!r} does not",
            )
    return kind


def _import_alerts(
    refs: Any, where: str, by_kind: dict[str, dict[str, tuple[str, Doc]]], problems: _Problems, result: Imported
) -> list[Doc] | None:
    if not refs:
        return None
    tiers: list[Doc] = []
    for n, ref in enumerate(refs):
        if isinstance(ref, str) or (isinstance(ref, dict) and "alertPolicyRef" in ref):
            policy_name = ref if isinstance(ref, str) else ref["alertPolicyRef"]
            found = by_kind.get("AlertPolicy", {}).get(str(policy_name))
            if found is None:
                problems.add(f"{where}.{n}", f"no AlertPolicy named {policy_name!r} in the documents")
                continue
            policy_where, policy = found
        elif isinstance(ref, dict):
            policy_where, policy = f"{where}.{n}", ref
        else:
            problems.add(f"{where}.{n}", "not an alert policy or a reference to one")
            continue
        spec = policy.get("spec") or {}
        if spec.get("alertWhenNoData"):
            result.notes.append(f"AlertPolicy {policy_where}: alertWhenNoData is not kept")
        for m, condition in enumerate(spec.get("conditions") or []):
            at = f"{policy_where}.spec.conditions.{m}"
            if isinstance(condition, dict) and "conditionRef" in condition:
                found_condition = by_kind.get("AlertCondition", {}).get(str(condition["conditionRef"]))
                if found_condition is None:
                    problems.add(at, f"no AlertCondition named {condition['conditionRef']!r} in the documents")
                    continue
                at, condition = found_condition
            tier = _import_condition(condition, at, problems)
            if tier is not None:
                tiers.append(tier)
    return tiers


def _import_condition(condition: Any, where: str, problems: _Problems) -> Doc | None:
    if not isinstance(condition, dict):
        problems.add(where, "not an AlertCondition")
        return None
    meta, spec = condition.get("metadata") or {}, condition.get("spec") or {}
    rule = spec.get("condition") or {}
    ok = True
    if rule.get("kind") != "burnrate":
        problems.add(f"{where}.spec.condition.kind", f"{rule.get('kind')!r} cannot be represented (only burnrate)")
        ok = False
    if rule.get("op", "gte") != "gte":
        problems.add(f"{where}.spec.condition.op", "Accord fires when the burn rate reaches the factor (op: gte)")
        ok = False
    severity = spec.get("severity")
    if severity not in ("page", "ticket"):
        problems.add(f"{where}.spec.severity", f"{severity!r} cannot be represented (page or ticket)")
        ok = False
    long_window = _accord_duration(rule.get("lookbackWindow"))
    if long_window is None:
        problems.add(f"{where}.spec.condition.lookbackWindow", "needs a duration of whole minutes")
        ok = False
    short_window = _accord_duration(rule.get("alertAfter")) if "alertAfter" in rule else None
    if short_window is None and long_window is not None:
        if "alertAfter" in rule:
            problems.add(f"{where}.spec.condition.alertAfter", "needs a duration of whole minutes")
            ok = False
        else:
            minutes = _minutes(long_window) or 12
            short_window = f"{max(1, minutes // 12)}m"
    threshold = rule.get("threshold")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or threshold <= 0:
        problems.add(f"{where}.spec.condition.threshold", "the burn-rate factor must be a positive number")
        ok = False
    if not ok:
        return None
    return {
        "name": meta.get("displayName"),
        "severity": severity,
        "long_window": long_window,
        "short_window": short_window,
        "factor": threshold,
    }
