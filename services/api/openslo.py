"""OpenSLO v1 (https://github.com/OpenSLO/OpenSLO) to and from Accord's agreement documents.

Mapping (export, then what import accepts; docs/openslo.md has the full table):
- the agreement is a `Service` (provider, customer, timezone and the contract terms OpenSLO has
  no field for in `accord.dev/*` annotations);
- each objective is one entry of an `SLO`'s `spec.objectives`; an SLO with several entries is
  several Accord objectives that remember their SLO (the `openslo` data), and export as one SLO
  again; its `SLI` is `ratioMetric` good/total or `thresholdMetric`; the Accord indicator and
  matchers are the SLI's `accord.dev/indicator` / `accord.dev/matchers` annotations (an SLI Accord
  wrote itself uses a metric source `type: accord` instead); imported metric queries are kept;
- `timeWindow`: rolling `30d`, `12h`, `90m`; calendar `1w`, `1M`, `1Q` from their default anchors (Monday,
  first of a month / quarter, local midnight), and any other calendar duration (`<n>` d, w, M, Q, Y) from
  any `startTime` as an anchored window (`2w from 2026-11-28T12:00`), in the agreement's timezone;
- `budgetingMethod`: `Occurrences`, `Timeslices` with `timeSliceTarget` and `timeSliceWindow`, or
  `RatioTimeslices` with `timeSliceWindow`;
- each explicit burn-rate tier is one `AlertPolicy` with one `AlertCondition` (`kind: burnrate`,
  `op: gt`, or `gte` for a tier that fires at the factor too, `threshold` = factor, `lookbackWindow` = long
  window, `alertAfter` = how long the condition must hold (default `0m`), the short window in the
  `accord.dev/short-window` annotation) and its notification targets (Accord's breach events,
  an `AlertNotificationTarget`, when the tier names none); default tiers export no policy;
- the low-traffic guard, budget thresholds and business-hours flag are `accord.dev/*` annotations;
- names, display names, labels, annotations, queries, data sources and notification targets of an
  imported file are kept (the `openslo` data of the agreement and its objectives) and exported again.
Import names what it cannot represent (422) and lists what it did not keep (notes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from shared.budget.model import DEFAULT_BUDGET_THRESHOLDS, MAX_WINDOW_DAYS, CalendarWindow, parse_window, tier_name
from shared.budget.periods import MAX_UNIT_DAYS, Calendar
from shared.errors import Invalid
from shared.timeutil import MINUTE_MS, duration_ms

API_VERSION = "openslo/v1"
A = "accord.dev/"
OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
OPS_BACK = {v: k for k, v in OPS.items()}
CALENDAR = {"week": "1w", "month": "1M", "quarter": "1Q"}
CALENDAR_BACK = {v: k for k, v in CALENDAR.items()}
CALENDAR_START = "2024-01-01 00:00:00"  # a Monday that starts a month and a quarter
METHODS = {"occurrences": "Occurrences", "timeslices": "Timeslices", "ratio_timeslices": "RatioTimeslices"}
METHODS_BACK = {v: k for k, v in METHODS.items()}
CALENDAR_DURATION = re.compile(r"([1-9][0-9]{0,3})([dwMQY])")
KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
SEVERITIES = {"page": "page", "critical": "page", "high": "page", "ticket": "ticket", "warning": "ticket",
              "medium": "ticket", "low": "ticket", "info": "ticket"}  # fmt: skip
"""OpenSLO severities (free text in the spec) Accord maps onto its two; the original is kept for export."""
BREACH_EVENTS_TARGET = "accord-breach-events"
MAX_NAME = 63
NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""`metadata.name` in OpenSLO v1: an RFC 1123 label."""

Doc = dict[str, Any]


def dns_label(text: str, limit: int = MAX_NAME) -> str:
    """An RFC 1123 label: lower-case alphanumerics and '-', at most `limit` characters, no '-' at either end."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower())[:limit].strip("-") or "x"


def slug(text: str) -> str:
    """A base for generated `metadata.name`s: short enough that `-alert-NN` style suffixes still fit 63."""
    return dns_label(text, 45)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def _plain(value: Any) -> Any:
    """YAML values as JSON: timestamps and dates (unquoted in YAML) as ISO text, recursively."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def percent(target: float) -> float:
    """`target` × 100 without binary noise (0.999 -> 99.9)."""
    return float(Decimal(repr(target)) * 100)


# --- export -----------------------------------------------------------------------------------------


def export_documents(document: Mapping[str, Any]) -> list[Doc]:
    """The OpenSLO documents of an agreement's revision document."""
    kept = document.get("openslo") or {}
    service = str(kept.get("name") or slug(document["name"]))
    annotations = dict(kept.get("annotations") or {})
    annotations.update(
        {
            f"{A}provider": document["provider"],
            f"{A}customer": document["customer"],
            f"{A}timezone": document["timezone"],
            f"{A}reporting-period": document["reporting_period"],
        }
    )
    for key, name in (("effective_from", "effective-from"), ("effective_until", "effective-until")):
        if document.get(key):
            annotations[f"{A}{name}"] = document[key]
    for key, name in (("business_hours", "business-hours"), ("maintenance", "maintenance"),
                      ("credit_tiers", "credit-tiers")):  # fmt: skip
        if document.get(key):
            annotations[f"{A}{name}"] = json.dumps(document[key], separators=(",", ":"))
    labels = kept.get("labels") if "labels" in kept else dict(document.get("labels") or {})
    docs: list[Doc] = [
        {
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": {"name": service, "displayName": document["name"], "labels": labels,
                         "annotations": annotations},
            "spec": {"description": document.get("description", "")},
        }
    ]  # fmt: skip
    docs.extend(kept.get("documents") or ())  # DataSource and AlertNotificationTarget documents, as imported
    target_names = {d["metadata"]["name"] for d in docs if d.get("kind") == "AlertNotificationTarget"}
    # Objectives of one imported SLO (several `objectives` entries) export as that SLO again.
    groups: dict[str, list[Mapping[str, Any]]] = {}
    objectives = list(document.get("objectives", ()))
    generated = iter(_unique([slug(o["name"]) for o in objectives]))
    for objective in objectives:
        name = next(generated)
        slo_name = str(((objective.get("openslo") or {}).get("slo") or {}).get("name") or name)
        groups.setdefault(slo_name, []).append(objective)
    used: set[str] = set()
    named: dict[tuple[str, str], Doc] = {}
    for slo_name, group in groups.items():
        docs.extend(_once_each(named, _export_slo(service, slo_name, group, document["timezone"], used)))
    if used - target_names:
        docs.append(
            {
                "apiVersion": API_VERSION,
                "kind": "AlertNotificationTarget",
                "metadata": {"name": BREACH_EVENTS_TARGET},
                "spec": {
                    "target": "accord",
                    "description": "Accord's breach events (accord.burnrate.firing / resolved on the events topic).",
                },
            }
        )
    return docs


def _once_each(named: dict[tuple[str, str], Doc], docs: list[Doc]) -> list[Doc]:
    """One SLO's documents less those an earlier SLO's export holds already (same kind, name and content: an
    SLI or an alert policy both SLOs referenced). One that only shares a name with an earlier document (an
    SLI kept from an import and one named after an SLO made in Accord) is renamed `name-2`, `name-3`, ...,
    and the references to it follow."""
    renamed: dict[tuple[str, str], str] = {}
    kept: list[int] = []
    order = ("AlertCondition", "AlertPolicy", "SLI", "SLO")  # each after the kinds it references
    for n, doc in sorted(enumerate(docs), key=lambda d: order.index(d[1]["kind"])):
        kind, spec = doc["kind"], doc["spec"]
        if kind == "AlertPolicy":
            for ref in spec["conditions"]:
                ref["conditionRef"] = renamed.get(("AlertCondition", ref["conditionRef"]), ref["conditionRef"])
        elif kind == "SLO":
            if "indicatorRef" in spec:
                spec["indicatorRef"] = renamed.get(("SLI", spec["indicatorRef"]), spec["indicatorRef"])
            if "alertPolicies" in spec:
                spec["alertPolicies"] = [renamed.get(("AlertPolicy", p), p) for p in spec["alertPolicies"]]
        name = doc["metadata"]["name"]
        if named.get((kind, name)) == doc:
            continue
        if (kind, name) in named:
            count = 2
            while (kind, new := f"{name[: MAX_NAME - 1 - len(str(count))]}-{count}") in named:
                count += 1
            renamed[(kind, name)] = doc["metadata"]["name"] = new
        named[(kind, doc["metadata"]["name"])] = doc
        kept.append(n)
    return [docs[n] for n in sorted(kept)]


def _export_slo(
    service: str, name: str, group: list[Mapping[str, Any]], timezone: str, used_targets: set[str]
) -> list[Doc]:
    first = group[0]
    kept: Doc = first.get("openslo") or {}
    slo_kept: Doc = kept.get("slo") or {}
    sli_kept: Doc = kept.get("sli") or {}
    source: Doc = {"indicator": first["indicator"]}
    if first.get("matchers"):
        source["matchers"] = dict(first["matchers"])
    threshold = first.get("threshold")
    sli_name = str(sli_kept.get("name") or dns_label(f"{name}-sli"))
    sli_meta: Doc = {"name": sli_name}
    for key in ("displayName", "labels"):
        if sli_kept.get(key):
            sli_meta[key] = sli_kept[key]
    if sli_kept.get("spec"):
        metric = dict(sli_kept["spec"])
        sli_meta["annotations"] = {
            **(sli_kept.get("annotations") or {}),
            f"{A}indicator": first["indicator"],
            f"{A}matchers": json.dumps(dict(first.get("matchers") or {}), sort_keys=True),
        }
    elif threshold is None:
        metric = {
            "ratioMetric": {
                "counter": True,
                "good": {"metricSource": {"type": "accord", "spec": {**source, "field": "good"}}},
                "total": {"metricSource": {"type": "accord", "spec": {**source, "field": "total"}}},
            }
        }
    else:
        metric = {"thresholdMetric": {"metricSource": {"type": "accord", "spec": source}}}
    sli = {"apiVersion": API_VERSION, "kind": "SLI", "metadata": sli_meta, "spec": metric}
    inline = bool(sli_kept.get("inline"))

    entries = []
    for objective in group:
        entry_kept: Doc = (objective.get("openslo") or {}).get("entry") or {}
        entry: Doc = {}
        if entry_kept.get("displayName"):
            entry["displayName"] = entry_kept["displayName"]
        if entry_kept.get("targetPercent"):
            entry["targetPercent"] = percent(objective["target"])
        else:
            entry["target"] = objective["target"]
        if objective.get("threshold") is not None:
            entry["op"], entry["value"] = OPS[objective["threshold"]["op"]], objective["threshold"]["value"]
        if objective.get("budgeting") == "timeslices":
            entry["timeSliceTarget"], entry["timeSliceWindow"] = objective["slice_target"], objective["slice_length"]
        elif objective.get("budgeting") == "ratio_timeslices":
            entry["timeSliceWindow"] = objective["slice_length"]
        entries.append(entry)
    window = first["window"]
    time_window = _export_window(window, timezone)
    if kept.get("timeWindow") and kept.get("window") == window:
        time_window = dict(kept["timeWindow"])  # as written, when it still means the same window
        if "calendar" in time_window or not time_window.get("isRolling", False):
            time_window["calendar"] = {**time_window.get("calendar", {}), "timeZone": timezone}
    policy = first.get("alert_policy") or {}
    display = slo_kept.get("displayName") if "slo" in kept else first["name"]
    meta: Doc = {"name": name}
    if display:
        meta["displayName"] = display
    if slo_kept.get("labels"):
        meta["labels"] = slo_kept["labels"]
    meta["annotations"] = {
        **(slo_kept.get("annotations") or {}),
        f"{A}min-events": str(policy.get("min_events", 0)),
        f"{A}budget-thresholds": json.dumps(policy.get("budget_thresholds", list(DEFAULT_BUDGET_THRESHOLDS))),
        f"{A}business-hours-only": "true" if first.get("business_hours_only") else "false",
    }
    shown = str(display or name)
    derived = [
        f"{shown} {entry.get('displayName') or n + 1}" if len(group) > 1 else shown for n, entry in enumerate(entries)
    ]
    if [o["name"] for o in group] != derived:  # names import would not derive from the SLO
        meta["annotations"][f"{A}objective-names"] = json.dumps([o["name"] for o in group])
    slo: Doc = {
        "apiVersion": API_VERSION,
        "kind": "SLO",
        "metadata": meta,
        "spec": {
            "description": first.get("description", ""),
            "service": service,
            **({"indicator": {"metadata": sli_meta, "spec": metric}} if inline else {"indicatorRef": sli_name}),
            "timeWindow": [time_window],
            "budgetingMethod": METHODS.get(str(first.get("budgeting")), "Occurrences"),
            "objectives": entries,
        },
    }
    docs: list[Doc] = [slo] if inline else [sli, slo]
    tiers = policy.get("tiers")
    if tiers is not None:
        alerts_kept: list[Doc] = list(kept.get("alerts") or [])
        refs = []
        for n, tier in enumerate(tiers):
            k: Doc = alerts_kept[n] if n < len(alerts_kept) else {}
            policy_name = str(k.get("policy") or dns_label(f"{name}-alert-{n + 1}"))
            condition_name = str(k.get("condition") or dns_label(f"{name}-burn-{n + 1}"))
            condition_meta: Doc = {"name": condition_name,
                                   "annotations": {f"{A}short-window": tier["short_window"]}}  # fmt: skip
            if tier.get("name") is not None:
                condition_meta["displayName"] = tier["name"]
            severity = k.get("severity") if SEVERITIES.get(str(k.get("severity"))) == tier["severity"] else None
            targets = k.get("targets") or [{"targetRef": BREACH_EVENTS_TARGET}]
            used_targets.update(str(t["targetRef"]) for t in targets if isinstance(t, dict) and "targetRef" in t)
            policy_meta: Doc = {"name": policy_name}
            if k.get("policyDisplayName"):
                policy_meta["displayName"] = k["policyDisplayName"]
            refs.append(policy_name)
            docs.append(
                {
                    "apiVersion": API_VERSION,
                    "kind": "AlertPolicy",
                    "metadata": policy_meta,
                    "spec": {
                        "alertWhenBreaching": tier.get("alert_when_breaching", True),
                        "alertWhenResolved": tier.get("alert_when_resolved", True),
                        "alertWhenNoData": bool(k.get("alertWhenNoData", False)),
                        "conditions": [{"conditionRef": condition_name}],
                        "notificationTargets": targets,
                    },
                }
            )
            docs.append(
                {
                    "apiVersion": API_VERSION,
                    "kind": "AlertCondition",
                    "metadata": condition_meta,
                    "spec": {
                        "severity": severity or tier["severity"],
                        "condition": {
                            "kind": "burnrate",
                            "op": tier.get("op") or "gt",
                            "threshold": tier["factor"],
                            "lookbackWindow": tier["long_window"],
                            "alertAfter": tier.get("alert_after") or "0m",
                        },
                    },
                }
            )
        slo["spec"]["alertPolicies"] = refs
    return docs


def _export_window(window: str, timezone: str) -> Doc:
    """An objective's window as an OpenSLO `timeWindow`."""
    if window in CALENDAR:
        return {"duration": CALENDAR[window], "isRolling": False,
                "calendar": {"startTime": CALENDAR_START, "timeZone": timezone}}  # fmt: skip
    parsed = parse_window(window, timezone)
    if isinstance(parsed, CalendarWindow) and isinstance(parsed.kind, Calendar):
        start = f"{parsed.kind.anchor:%Y-%m-%d %H:%M:%S}"
        return {"duration": parsed.kind.duration, "isRolling": False,
                "calendar": {"startTime": start, "timeZone": timezone}}  # fmt: skip
    return {"duration": window, "isRolling": True}


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
    """The documents of an OpenSLO body: safe YAML, no aliases, at most 64 levels deep, at most 1000 documents.

    A body is one document, a multi-document stream, or a top-level list of documents (what the
    OpenSLO go-sdk, oslo, sloctl and nobl9-openslo write), or a stream of such lists. YAML timestamps
    and dates become ISO text.
    """
    try:
        docs: list[Any] = []
        for d in yaml.load_all(text, Loader=_BoundedLoader):
            if isinstance(d, list):
                docs.extend(_plain(item) for item in d if item is not None)
            elif d is not None:
                docs.append(_plain(d))
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


def _own(annotations: Any) -> Doc:
    """Annotations other than Accord's own (`accord.dev/*`, which Accord reads and writes itself)."""
    return {str(k): v for k, v in _as_dict(annotations).items() if not str(k).startswith(A)}


def import_documents(
    docs: list[Any], *, customer: str | None = None, provider: str | None = None, name: str | None = None
) -> Imported:
    """An agreement from OpenSLO documents; 422 naming every part Accord cannot represent."""
    problems = _Problems()
    by_kind: dict[str, dict[str, tuple[str, Doc]]] = {}
    notes: list[str] = []
    kept_documents: list[Doc] = []
    for n, doc in enumerate(docs):
        where = f"documents.{n}"
        if not isinstance(doc, dict):
            problems.add(where, "not a YAML mapping")
            continue
        if doc.get("apiVersion") != API_VERSION:
            problems.add(f"{where}.apiVersion", f"{_show(doc.get('apiVersion'))} is not supported; only {API_VERSION}")
            continue
        kind = doc.get("kind")
        meta: Doc = doc["metadata"] if isinstance(doc.get("metadata"), dict) else {}
        doc_name = str(meta.get("name") or "")
        if kind not in ("Service", "SLI", "SLO", "AlertPolicy", "AlertCondition", "DataSource",
                        "AlertNotificationTarget"):  # fmt: skip
            problems.add(f"{where}.kind", f"kind {_show(kind)} cannot be represented in Accord")
            continue
        if not doc_name:
            problems.add(f"{where}.metadata.name", "missing")
            continue
        if not NAME.fullmatch(doc_name):
            problems.add(f"{where}.metadata.name", f"{doc_name!r} is not an RFC 1123 label (a-z, 0-9, '-', at most 63)")
            continue
        if doc_name in by_kind.get(kind, {}):
            problems.add(f"{where}.metadata.name", f"a second {kind} named {doc_name!r}")
            continue
        by_kind.setdefault(kind, {})[doc_name] = (where, doc)
        ours = kind == "AlertNotificationTarget" and doc_name == BREACH_EVENTS_TARGET  # exported again anyway
        if kind in ("DataSource", "AlertNotificationTarget") and not ours:
            kept_documents.append(doc)
            notes.append(f"{kind} {doc_name!r} is kept for export; Accord does not use it")

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
    if not services and agreement.get("name"):
        service_refs = {str(_as_dict(s.get("spec")).get("service") or "") for _, s in slos.values()}
        if len(service_refs) == 1 and NAME.fullmatch(ref := service_refs.pop()):
            agreement["openslo"] = {"name": ref}  # exported as the Service the SLOs name
    if kept_documents:
        agreement.setdefault("openslo", {})["documents"] = kept_documents
    if problems.items:
        raise Invalid("The OpenSLO documents cannot be represented in Accord.", problems.items)
    result.document = agreement
    return result


def _show(value: Any) -> str:
    """A value in an error message: as YAML would show it, never a Python repr."""
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, default=str)


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
    raw_labels = _as_dict(meta.get("labels"))
    for key, value in raw_labels.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            problems.add(f"{where}.metadata.labels.{key}", "a label holds a string or a list of strings")
            continue
        labels[str(key)] = ",".join(str(v) for v in values)  # Accord labels hold one string: values joined
    agreement["labels"] = labels
    kept: Doc = {"name": str(meta.get("name"))}
    if raw_labels != labels:
        kept["labels"] = raw_labels
    if _own(annotations):
        kept["annotations"] = _own(annotations)
    agreement["openslo"] = kept


def _import_slo(
    slo_name: str,
    slo: Doc,
    where: str,
    by_kind: dict[str, dict[str, tuple[str, Doc]]],
    agreement: Doc,
    problems: _Problems,
    result: Imported,
) -> list[Doc]:
    meta, spec = _as_dict(slo.get("metadata")), slo.get("spec")
    annotations = _as_dict(meta.get("annotations"))
    if not isinstance(spec, dict):
        problems.add(f"{where}.spec", "missing")
        return []
    # The indicator: a referenced or inline SLI.
    if "indicatorRef" in spec:
        found = by_kind.get("SLI", {}).get(str(spec["indicatorRef"]))
        if found is None:
            problems.add(f"{where}.spec.indicatorRef", f"no SLI named {_show(spec['indicatorRef'])} in the documents")
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
    key, kind, matchers, sli_kept = indicator
    if "indicatorRef" not in spec:
        sli_kept["inline"] = True  # exported inline again: its name need not be unique among the SLIs

    windows = spec.get("timeWindow")
    window: str | None = None
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        problems.add(f"{where}.spec.timeWindow", "Accord needs exactly one time window")
    else:
        window = _import_window(windows[0], f"{where}.spec.timeWindow.0", agreement, problems)

    if spec.get("objectives") is None or not isinstance(spec["objectives"], list) or not spec["objectives"]:
        problems.add(f"{where}.spec.objectives", "an SLO needs at least one objective")
        return []
    alerts = _import_alerts(spec.get("alertPolicies"), f"{where}.spec.alertPolicies", by_kind, problems, result)
    method = spec.get("budgetingMethod")
    if method not in METHODS_BACK:
        problems.add(
            f"{where}.spec.budgetingMethod", f"{_show(method)} is none of Occurrences, Timeslices, RatioTimeslices"
        )
        return []
    try:
        policy = {
            "tiers": None if alerts is None else [tier for tier, _ in alerts],
            "min_events": int(annotations.get(f"{A}min-events", 0)),
            "budget_thresholds": json.loads(
                annotations.get(f"{A}budget-thresholds", json.dumps(DEFAULT_BUDGET_THRESHOLDS))
            ),
        }
        names = json.loads(annotations[f"{A}objective-names"]) if f"{A}objective-names" in annotations else None
    except (TypeError, ValueError):
        problems.add(f"{where}.metadata.annotations", f"an {A} annotation is malformed")
        return []
    if spec.get("compositeWeight") is not None or any(
        "compositeWeight" in e for e in spec["objectives"] if isinstance(e, dict)
    ):
        problems.add(f"{where}.spec.objectives", "composite SLOs (compositeWeight) cannot be represented")
    display = str(meta.get("displayName") or slo_name)
    slo_kept: Doc = {"name": slo_name}
    if "displayName" in meta:
        slo_kept["displayName"] = meta["displayName"]
    for part in ("labels",):
        if meta.get(part):
            slo_kept[part] = meta[part]
    if _own(annotations):
        slo_kept["annotations"] = _own(annotations)
    out = []
    many = len(spec["objectives"]) > 1
    for n, entry in enumerate(spec["objectives"]):
        at = f"{where}.spec.objectives.{n}"
        if not isinstance(entry, dict):
            problems.add(at, "not a mapping")
            continue
        if isinstance(names, list) and n < len(names):
            objective_name = str(names[n])
        else:
            objective_name = f"{display} {entry.get('displayName') or n + 1}" if many else display
        entry_kept: Doc = {}
        if entry.get("displayName"):
            entry_kept["displayName"] = entry["displayName"]
        kept: Doc = {"slo": slo_kept, "sli": sli_kept, "entry": entry_kept}
        objective: Doc = {
            "name": objective_name,
            "description": spec.get("description") or "",
            "indicator": key,
            "matchers": matchers,
            "window": window,
            "budgeting": METHODS_BACK[method],
            "business_hours_only": annotations.get(f"{A}business-hours-only") == "true",
            "alert_policy": policy,
            "openslo": kept,
        }
        if alerts:
            kept["alerts"] = [k for _, k in alerts]
        if isinstance(windows, list) and windows and isinstance(windows[0], dict):
            kept["timeWindow"], kept["window"] = windows[0], window
        if "target" in entry:
            objective["target"] = _exact(entry["target"], 1, f"{at}.target", problems)
        elif "targetPercent" in entry:
            objective["target"] = _exact(entry["targetPercent"], 100, f"{at}.targetPercent", problems)
            entry_kept["targetPercent"] = True
        else:
            problems.add(f"{at}.target", "missing (target or targetPercent)")
        if kind == "threshold":
            if entry.get("op") not in OPS_BACK or "value" not in entry:
                problems.add(f"{at}.op", "a threshold SLI's objective needs op (lt, lte, gt, gte) and value")
            else:
                objective["threshold"] = {"op": OPS_BACK[entry["op"]], "value": entry["value"]}
        elif "op" in entry or "value" in entry:
            problems.add(f"{at}.op", "a ratio SLI's objective takes no op or value")
        if method in ("Timeslices", "RatioTimeslices"):
            slice_window = entry.get("timeSliceWindow")
            if isinstance(slice_window, int) and not isinstance(slice_window, bool):
                slice_window = f"{slice_window}m"  # the spec: a bare number is minutes
            length = _accord_duration(slice_window)
            if length is None:
                problems.add(f"{at}.timeSliceWindow", f"{method} needs a timeSliceWindow of whole minutes")
            objective["slice_length"] = length
            if method == "Timeslices":
                if "timeSliceTarget" not in entry:
                    problems.add(f"{at}.timeSliceTarget", "Timeslices needs a timeSliceTarget")
                objective["slice_target"] = entry.get("timeSliceTarget")
            elif "timeSliceTarget" in entry:
                problems.add(
                    f"{at}.timeSliceTarget",
                    "RatioTimeslices counts each slice by its success ratio (the SLI is their mean): "
                    "a timeSliceTarget means nothing there (use Timeslices for good/bad slices)",
                )
        out.append(objective)
    return out


def _exact(value: Any, scale: int, where: str, problems: _Problems) -> float | None:
    """A target as the nearest float to the decimal written (99.9 % -> 0.999 exactly as 0.999 reads)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.add(where, "not a number")
        return None
    try:
        return float(Decimal(str(value)) / scale)
    except InvalidOperation:
        problems.add(where, "not a number")
        return None


def _import_sli(
    sli: Doc, where: str, problems: _Problems, result: Imported
) -> tuple[str, str, dict[str, str], Doc] | None:
    meta, spec = _as_dict(sli.get("metadata")), _as_dict(sli.get("spec"))
    annotations = _as_dict(meta.get("annotations"))
    name = str(meta.get("name") or "")
    if "ratioMetric" in spec:
        kind, ratio = "ratio", _as_dict(spec["ratioMetric"])
        if "raw" in ratio or "rawType" in ratio:
            problems.add(f"{where}.spec.ratioMetric.raw", "raw (precomputed) ratios cannot be represented")
            return None
        sources = [_as_dict(_as_dict(ratio.get(p)).get("metricSource")) for p in ("good", "bad", "total")]
    elif "thresholdMetric" in spec:
        kind = "threshold"
        sources = [_as_dict(_as_dict(spec["thresholdMetric"]).get("metricSource"))]
    else:
        problems.add(f"{where}.spec", "an SLI needs a ratioMetric or a thresholdMetric")
        return None
    accord = [_as_dict(s.get("spec")) for s in sources if s.get("type") == "accord"]
    kept: Doc = {"name": name}
    for part in ("displayName", "labels"):
        if meta.get(part):
            kept[part] = meta[part]
    if _own(annotations):
        kept["annotations"] = _own(annotations)
    if accord:
        key = str(accord[0].get("indicator") or name)
        matchers = {str(k): str(v) for k, v in _as_dict(accord[0].get("matchers")).items()}
    else:
        key = str(annotations.get(f"{A}indicator") or name)
        try:
            matchers = {str(k): str(v) for k, v in json.loads(annotations.get(f"{A}matchers", "{}")).items()}
        except (TypeError, ValueError, AttributeError):
            problems.add(f"{where}.metadata.annotations.{A}matchers", "not a JSON object")
            return None
        kept["spec"] = spec  # the queries: how the SLO is measured elsewhere, exported again
        if f"{A}indicator" not in annotations:
            result.notes.append(
                f"SLI {name!r}: its metric queries are kept for export; Accord evaluates the measurements "
                f"sent for indicator {key!r}"
            )
    if not KEY.match(key):
        problems.add(f"{where}.metadata.name", f"{key!r} is not a valid indicator key")
        return None
    if result.indicators.get(key, kind) != kind:
        problems.add(f"{where}.spec", f"indicator {key!r} is used as both ratio and threshold")
        return None
    result.indicators[key] = kind
    result.descriptions.setdefault(key, str(spec.get("description") or ""))
    return key, kind, matchers, kept


def _import_window(window: Doc, where: str, agreement: Doc, problems: _Problems) -> str | None:
    duration = str(window.get("duration", ""))
    if window.get("isRolling", False):
        out = _accord_duration(duration)
        if out is None:
            problems.add(f"{where}.duration", f"rolling window {duration!r} is not a whole number of minutes")
        return out
    match = CALENDAR_DURATION.fullmatch(duration)
    if match is None:
        problems.add(
            f"{where}.duration", f"calendar window {duration!r} is no calendar duration (<n> and d, w, M, Q or Y)"
        )
        return None
    count, unit = int(match.group(1)), match.group(2)
    if count * MAX_UNIT_DAYS[unit] + 1 > MAX_WINDOW_DAYS:
        problems.add(
            f"{where}.duration",
            f"a {duration} period can be longer than {MAX_WINDOW_DAYS} days, the longest Accord keeps data for",
        )
        return None
    calendar = _as_dict(window.get("calendar"))
    tz = calendar.get("timeZone")
    if tz is not None and agreement.setdefault("timezone", tz) != tz:
        problems.add(f"{where}.calendar.timeZone", f"{tz!r} differs from the agreement's {agreement['timezone']!r}")
    kind = CALENDAR_BACK.get(duration)
    start = calendar.get("startTime")
    if start is None:
        if kind is None:
            problems.add(f"{where}.calendar.startTime", f"a {duration} calendar window needs a startTime")
        return kind
    try:
        begin = datetime.fromisoformat(str(start))
    except ValueError:
        problems.add(f"{where}.calendar.startTime", f"{str(start)!r} is not a date and time")
        return kind
    if begin.tzinfo is not None:
        problems.add(
            f"{where}.calendar.startTime",
            f"{str(start)!r} carries an offset; OpenSLO's startTime is local to the calendar's timeZone",
        )
        return None
    aligned = begin.time().isoformat() == "00:00:00" and (
        (kind == "week" and begin.weekday() == 0)
        or (kind == "month" and begin.day == 1)
        or (kind == "quarter" and begin.day == 1 and begin.month in (1, 4, 7, 10))
    )
    if kind is not None and aligned:
        return kind  # Accord's default anchors: a week from Monday, a month, a quarter
    if begin.second or begin.microsecond:
        problems.add(f"{where}.calendar.startTime", f"{str(start)!r}: Accord's periods start on a whole minute")
        return None
    try:
        return Calendar(count, unit, begin).text
    except ValueError as exc:
        problems.add(f"{where}.calendar.startTime", str(exc))
        return None


def _import_alerts(
    refs: Any, where: str, by_kind: dict[str, dict[str, tuple[str, Doc]]], problems: _Problems, result: Imported
) -> list[tuple[Doc, Doc]] | None:
    """The tiers of the SLO's alert policies, each with what is kept of its policy for export."""
    if refs is None:
        return None  # Accord's default tiers; `alertPolicies: []` is no tiers at all
    if not isinstance(refs, list):
        problems.add(where, "a list of alert policies or references")
        return None
    tiers: list[tuple[Doc, Doc]] = []
    for n, ref in enumerate(refs):
        if isinstance(ref, str) or (isinstance(ref, dict) and "alertPolicyRef" in ref):
            policy_name = ref if isinstance(ref, str) else ref["alertPolicyRef"]
            found = by_kind.get("AlertPolicy", {}).get(str(policy_name))
            if found is None:
                problems.add(f"{where}.{n}", f"no AlertPolicy named {_show(policy_name)} in the documents")
                continue
            policy_where, policy = found
        elif isinstance(ref, dict):
            policy_where, policy = f"{where}.{n}", ref
        else:
            problems.add(f"{where}.{n}", "not an alert policy or a reference to one")
            continue
        meta, spec = _as_dict(policy.get("metadata")), _as_dict(policy.get("spec"))
        conditions = spec.get("conditions")
        if not isinstance(conditions, list) or len(conditions) != 1:
            problems.add(f"{policy_where}.spec.conditions", "OpenSLO v1 allows exactly one condition per AlertPolicy")
            continue
        condition = conditions[0]
        at = f"{policy_where}.spec.conditions.0"
        condition_name = None
        if isinstance(condition, dict) and "conditionRef" in condition:
            condition_name = str(condition["conditionRef"])
            found_condition = by_kind.get("AlertCondition", {}).get(condition_name)
            if found_condition is None:
                problems.add(at, f"no AlertCondition named {_show(condition['conditionRef'])} in the documents")
                continue
            at, condition = found_condition
        elif isinstance(condition, dict):
            condition_name = str(_as_dict(condition.get("metadata")).get("name") or "") or None
        tier = _import_condition(condition, at, problems)
        if tier is None:
            continue
        tier["alert_when_breaching"] = bool(spec.get("alertWhenBreaching", True))
        tier["alert_when_resolved"] = bool(spec.get("alertWhenResolved", True))
        targets = spec.get("notificationTargets") or []
        if not isinstance(targets, list):
            problems.add(f"{policy_where}.spec.notificationTargets", "a list of targets or references")
            continue
        for m, target in enumerate(targets):
            ref = target.get("targetRef") if isinstance(target, dict) else None
            if (
                ref is not None
                and str(ref) not in by_kind.get("AlertNotificationTarget", {})
                and (ref != BREACH_EVENTS_TARGET)
            ):
                problems.add(
                    f"{policy_where}.spec.notificationTargets.{m}",
                    f"no AlertNotificationTarget named {_show(ref)} in the documents",
                )
        kept: Doc = {"policy": str(meta.get("name") or "") or None, "condition": condition_name,
                     "severity": _as_dict(condition.get("spec")).get("severity")}  # fmt: skip
        if meta.get("displayName"):
            kept["policyDisplayName"] = meta["displayName"]
        if spec.get("alertWhenNoData"):
            kept["alertWhenNoData"] = True
            result.notes.append(f"AlertPolicy {policy_where}: alertWhenNoData is kept for export, not evaluated")
        if targets != [{"targetRef": BREACH_EVENTS_TARGET}]:
            kept["targets"] = targets
        tiers.append((tier, kept))
    return tiers


def _import_condition(condition: Any, where: str, problems: _Problems) -> Doc | None:
    if not isinstance(condition, dict):
        problems.add(where, "not an AlertCondition")
        return None
    meta, spec = _as_dict(condition.get("metadata")), _as_dict(condition.get("spec"))
    annotations = _as_dict(meta.get("annotations"))
    rule = _as_dict(spec.get("condition"))
    ok = True
    if rule.get("kind") != "burnrate":
        problems.add(f"{where}.spec.condition.kind", f"{_show(rule.get('kind'))} cannot be represented (only burnrate)")
        ok = False
    if rule.get("op") in ("lt", "lte"):
        problems.add(
            f"{where}.spec.condition.op",
            f"{_show(rule.get('op'))}: a burn-rate condition that holds while the budget burns slower than "
            "the threshold means nothing to Accord, whose tiers alert on fast burn (op: gt, or gte)",
        )
        ok = False
    elif rule.get("op") not in ("gt", "gte"):
        problems.add(f"{where}.spec.condition.op", f"{_show(rule.get('op'))} is none of lt, lte, gt, gte")
        ok = False
    severity = SEVERITIES.get(str(spec.get("severity")).lower())
    if severity is None:
        problems.add(
            f"{where}.spec.severity",
            f"{_show(spec.get('severity'))} cannot be mapped (page, critical, high -> page; "
            "ticket, warning, medium, low, info -> ticket)",
        )
        ok = False
    long_window = _accord_duration(rule.get("lookbackWindow"))
    if long_window is None:
        problems.add(f"{where}.spec.condition.lookbackWindow", "needs a duration of whole minutes")
        ok = False
    alert_after: str | None = None
    if "alertAfter" in rule:
        after_ms = duration_ms(str(rule["alertAfter"]).strip(), "smhdw")
        if after_ms is None or after_ms % MINUTE_MS:
            problems.add(f"{where}.spec.condition.alertAfter", "needs a duration of whole minutes (0m: at once)")
            ok = False
        elif after_ms:
            alert_after = tier_name(after_ms // MINUTE_MS)
    short_window = _accord_duration(annotations.get(f"{A}short-window")) if f"{A}short-window" in annotations else None
    if short_window is None and long_window is not None:
        minutes = _minutes(long_window) or 12
        short_window = tier_name(max(1, minutes // 12))
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
        "alert_after": alert_after,
        "op": rule["op"],
    }
