"""Sloth and Pyrra SLO files as OpenSLO v1 documents, which services/api/openslo.py then imports.

- Sloth `version: prometheus/v1` (https://sloth.dev/specs/): one Service (`service`, its `labels`),
  and per `slos[]` item an SLI (`sli.events` error/total queries as a `ratioMetric` bad/total kept
  for export), an SLO (`objective` as `targetPercent`, a rolling 30 d window: Sloth's default
  period, the window is not in the file) and, unless disabled, Sloth's alert windows as tiers:
  page 2 % of the budget in 1 h (short 5 m) and 5 % in 6 h (30 m), ticket 10 % in 1 d (2 h) and
  10 % in 3 d (6 h), factor = share × window / long window (14.4, 6, 3, 1 for 30 d).
  `sli.raw` (a precomputed error ratio) and `sli.plugin` cannot be represented (422).
- Sloth `apiVersion: openslo/v1alpha` `kind: SLO`: `ratioMetrics` good/total queries, `target`,
  `timeWindows` (count and unit, rolling), Occurrences; no alerts in the format (Accord's defaults).
- Pyrra `apiVersion: pyrra.dev/v1alpha1` `kind: ServiceLevelObjective`: `target` (percent text),
  `window`, `indicator.ratio` (errors/total) or `indicator.latency` (success/total) as a
  ratioMetric kept for export; Pyrra's burn-rate alerts as tiers: 1/28, 6/28 of a day..., i.e. for
  a 28 d window 1 h/5 m ×14 and 6 h/30 m ×7 (critical), 1 d/2 h ×2 and 4 d/6 h ×1 (warning), the
  windows scaled to the SLO's window; `alerting.disabled` or `burnrates: false`: no tiers.
  `bool_gauge`, `latencyNative` and `grouping` cannot be represented (422). The namespace is the
  Service, `metadata.labels` the SLO's labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.api.openslo import (
    API_VERSION,
    BREACH_EVENTS_TARGET,
    Doc,
    Imported,
    _as_dict,
    _minutes,
    dns_label,
    import_documents,
    slug,
)
from shared.budget.model import tier_name
from shared.errors import Invalid

SLOTH_PERIOD_DAYS = 30
SLOTH_TIERS = (("page", 0.02, 60, 5), ("page", 0.05, 360, 30), ("ticket", 0.10, 1440, 120), ("ticket", 0.10, 4320, 360))
"""(severity, share of the budget, long and short window in minutes): Sloth's alert windows."""
PYRRA_TIERS = (("critical", 14, 60, 5), ("critical", 7, 360, 30), ("warning", 2, 1440, 120), ("warning", 1, 5760, 360))
"""(severity, factor, long and short window in minutes for a 28 d window): Pyrra's burn-rate alerts."""
PYRRA_BASE_MINUTES = 28 * 1440
UNITS = {"Second": "s", "Minute": "m", "Hour": "h", "Day": "d", "Week": "w"}


def is_foreign(doc: Any) -> bool:
    return isinstance(doc, dict) and (
        doc.get("version") == "prometheus/v1" or doc.get("apiVersion") in ("openslo/v1alpha", "pyrra.dev/v1alpha1")
    )


def translate(docs: list[Any]) -> tuple[list[Any], list[str]]:
    """`docs` with every Sloth and Pyrra document replaced by OpenSLO v1 documents; 422 naming what
    cannot be mapped; notes on what was assumed."""
    out: list[Any] = []
    notes: list[str] = []
    problems: list[dict[str, str]] = []
    services: set[str] = set()
    for n, doc in enumerate(docs):
        where = f"documents.{n}"
        if not is_foreign(doc):
            out.append(doc)
            continue
        if doc.get("version") == "prometheus/v1":
            made = _sloth(doc, where, problems, notes)
        elif doc.get("apiVersion") == "openslo/v1alpha":
            made = _sloth_alpha(doc, where, problems)
        else:
            made = _pyrra(doc, where, problems)
        for d in made:  # one Service per name, however many files name it
            if d["kind"] == "Service":
                if d["metadata"]["name"] in services:
                    continue
                services.add(d["metadata"]["name"])
            out.append(d)
    if problems:
        raise Invalid("The SLO files cannot be represented in Accord.", problems)
    targets = {
        _as_dict(d.get("metadata")).get("name") for d in out if _as_dict(d).get("kind") == "AlertNotificationTarget"
    }
    if len(out) != len(docs) and BREACH_EVENTS_TARGET not in targets:  # what the translated policies notify
        out.append(_doc("AlertNotificationTarget", BREACH_EVENTS_TARGET,
                        {"target": "accord", "description": "Accord's breach events"}))  # fmt: skip
    return out, notes


def _doc(kind: str, name: str, spec: Doc, **meta: Any) -> Doc:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, **{k: v for k, v in meta.items() if v}},
            "spec": spec}  # fmt: skip


def _query(query: Any) -> Doc:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": str(query)}}}


def _tiers(slo: str, rows: Sequence[tuple[str, float, int, int]], window_minutes: int | None, scale: bool) -> list[Doc]:
    """AlertPolicy and AlertCondition documents (one condition each) for burn-rate rows
    (severity, share or factor, long, short minutes); `scale`: Pyrra's, windows scaled to the window."""
    docs: list[Doc] = []
    refs = []
    for n, (severity, amount, long, short) in enumerate(rows):
        if window_minutes is None:
            continue
        if scale:
            long = max(1, long * window_minutes // PYRRA_BASE_MINUTES)
            short = max(1, short * window_minutes // PYRRA_BASE_MINUTES)
            factor = float(amount)
        else:
            factor = round(amount * window_minutes / long, 6)
        name = dns_label(f"{slo}-burn-{n + 1}")
        refs.append(name)
        condition = _doc(
            "AlertCondition",
            f"{name}-condition"[:63].strip("-"),
            {"severity": severity, "condition": {"kind": "burnrate", "op": "gt", "threshold": factor,
                                                 "lookbackWindow": tier_name(long), "alertAfter": "0m"}},
            annotations={"accord.dev/short-window": tier_name(short)},
        )  # fmt: skip
        docs.append(
            _doc("AlertPolicy", name, {"conditions": [{"conditionRef": condition["metadata"]["name"]}],
                                       "notificationTargets": [{"targetRef": "accord-breach-events"}]})
        )  # fmt: skip
        docs.append(condition)
    return [*docs, {"refs": refs}]


def _split(made: list[Doc]) -> tuple[list[Doc], list[str]]:
    return made[:-1], made[-1]["refs"]


def _sloth(doc: Doc, where: str, problems: list[dict[str, str]], notes: list[str]) -> list[Doc]:
    service_name = str(doc.get("service") or "")
    if not service_name:
        problems.append({"field": f"{where}.service", "reason": "a Sloth file needs its service"})
        return []
    service = slug(service_name)
    out: list[Doc] = [
        _doc("Service", service, {"description": ""}, displayName=service_name, labels=_as_dict(doc.get("labels")))
    ]
    window = SLOTH_PERIOD_DAYS * 1440
    notes.append(f"{where}: Sloth files do not hold their period; imported with Sloth's default, 30d")
    slos = doc.get("slos")
    if not isinstance(slos, list) or not slos:
        problems.append({"field": f"{where}.slos", "reason": "a Sloth file needs at least one SLO"})
        return out
    for m, item in enumerate(slos):
        at, item = f"{where}.slos.{m}", _as_dict(item)
        name = dns_label(f"{service}-{item.get('name') or m + 1}")
        sli = _as_dict(item.get("sli"))
        events = _as_dict(sli.get("events"))
        if "raw" in sli:
            problems.append({"field": f"{at}.sli.raw", "reason": "a precomputed error ratio cannot be represented: "
                             "Accord counts events (use sli.events)"})  # fmt: skip
            continue
        if "plugin" in sli:
            problems.append({"field": f"{at}.sli.plugin", "reason": "Sloth SLI plugins cannot be represented"})
            continue
        if not events.get("error_query") or not events.get("total_query"):
            problems.append({"field": f"{at}.sli.events", "reason": "needs error_query and total_query"})
            continue
        objective = item.get("objective")
        if not isinstance(objective, int | float) or isinstance(objective, bool):
            problems.append({"field": f"{at}.objective", "reason": "a percentage, e.g. 99.9"})
            continue
        alerting = _as_dict(item.get("alerting"))
        rows = [r for r in SLOTH_TIERS if not _as_dict(alerting.get(f"{r[0]}_alert")).get("disable")]
        if alerting.get("labels") or alerting.get("annotations") or alerting.get("name"):
            notes.append(f"{at}.alerting: the alert's name, labels and annotations are Prometheus rule details, "
                         "not kept")  # fmt: skip
        alerts, refs = _split(_tiers(name, rows, window, scale=False))
        out.append(
            _doc("SLI", f"{name}-sli"[:63].strip("-"),
                 {"ratioMetric": {"counter": True, "bad": _query(events["error_query"]),
                                  "total": _query(events["total_query"])}})
        )  # fmt: skip
        out.append(
            _doc(
                "SLO",
                name,
                {"description": str(item.get("description") or ""), "service": service,
                 "indicatorRef": f"{name}-sli"[:63].strip("-"),
                 "timeWindow": [{"duration": f"{SLOTH_PERIOD_DAYS}d", "isRolling": True}],
                 "budgetingMethod": "Occurrences", "objectives": [{"targetPercent": objective}],
                 "alertPolicies": refs},
                displayName=str(item.get("name") or name),
                labels=_as_dict(item.get("labels")),
            )
        )  # fmt: skip
        out.extend(alerts)
    return out


def _sloth_alpha(doc: Doc, where: str, problems: list[dict[str, str]]) -> list[Doc]:
    meta, spec = _as_dict(doc.get("metadata")), _as_dict(doc.get("spec"))
    if doc.get("kind") != "SLO":
        problems.append({"field": f"{where}.kind", "reason": "only openslo/v1alpha SLOs (as Sloth reads them)"})
        return []
    name = dns_label(str(meta.get("name") or "slo"))
    service_name = str(spec.get("service") or name)
    windows = spec.get("timeWindows")
    duration = None
    if isinstance(windows, list) and len(windows) == 1:
        w = _as_dict(windows[0])
        unit = UNITS.get(str(w.get("unit")))
        if unit and isinstance(w.get("count"), int) and w.get("isRolling", True):
            duration = f"{w['count']}{unit}"
    if duration is None:
        problems.append({"field": f"{where}.spec.timeWindows", "reason": "one rolling window of Seconds to Weeks"})
        return []
    if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
        problems.append({"field": f"{where}.spec.budgetingMethod", "reason": "Sloth's v1alpha SLOs are Occurrences"})
        return []
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or len(objectives) != 1:
        problems.append({"field": f"{where}.spec.objectives", "reason": "exactly one objective (as Sloth reads them)"})
        return []
    objective = _as_dict(objectives[0])
    ratio = _as_dict(objective.get("ratioMetrics"))
    good, total = _as_dict(ratio.get("good")), _as_dict(ratio.get("total"))
    if not good.get("query") or not total.get("query"):
        problems.append({"field": f"{where}.spec.objectives.0.ratioMetrics", "reason": "needs good and total queries"})
        return []
    service = slug(service_name)
    return [
        _doc("Service", service, {"description": ""}, displayName=service_name),
        _doc("SLI", f"{name}-sli"[:63].strip("-"),
             {"ratioMetric": {"counter": True, "good": _query(good["query"]), "total": _query(total["query"])}}),
        _doc("SLO", name, {"description": str(spec.get("description") or ""), "service": service,
                           "indicatorRef": f"{name}-sli"[:63].strip("-"),
                           "timeWindow": [{"duration": duration, "isRolling": True}],
                           "budgetingMethod": "Occurrences", "objectives": [{"target": objective.get("target")}]},
             displayName=meta.get("displayName")),
    ]  # fmt: skip


def _pyrra(doc: Doc, where: str, problems: list[dict[str, str]]) -> list[Doc]:
    meta, spec = _as_dict(doc.get("metadata")), _as_dict(doc.get("spec"))
    if doc.get("kind") != "ServiceLevelObjective":
        problems.append({"field": f"{where}.kind", "reason": "only Pyrra ServiceLevelObjective"})
        return []
    name = dns_label(str(meta.get("name") or "slo"))
    namespace = str(meta.get("namespace") or "default")
    indicator = _as_dict(spec.get("indicator"))
    for unsupported in ("bool_gauge", "latencyNative"):
        if unsupported in indicator:
            reason = f"Pyrra's {unsupported} indicators cannot be represented (ratio, latency)"
            problems.append({"field": f"{where}.spec.indicator.{unsupported}", "reason": reason})
            return []
    if "ratio" in indicator:
        part, good_key, bad_key = _as_dict(indicator["ratio"]), None, "errors"
    elif "latency" in indicator:
        part, good_key, bad_key = _as_dict(indicator["latency"]), "success", None
    else:
        problems.append({"field": f"{where}.spec.indicator", "reason": "a ratio or latency indicator"})
        return []
    if part.get("grouping"):
        problems.append({"field": f"{where}.spec.indicator.{'ratio' if bad_key else 'latency'}.grouping",
                         "reason": "grouping (one SLO per label value) cannot be represented"})  # fmt: skip
        return []
    total = _as_dict(part.get("total")).get("metric")
    counted = _as_dict(part.get(bad_key or good_key or "")).get("metric")
    if not total or not counted:
        problems.append(
            {"field": f"{where}.spec.indicator", "reason": f"needs {bad_key or good_key} and total metrics"}
        )
        return []
    window = str(spec.get("window") or "")
    minutes = _minutes(window)
    if minutes is None:
        problems.append({"field": f"{where}.spec.window", "reason": f"{window!r} is not a whole number of minutes"})
        return []
    try:
        target = float(str(spec.get("target")))
    except ValueError:
        problems.append({"field": f"{where}.spec.target", "reason": 'a percentage, e.g. "99.5"'})
        return []
    alerting = _as_dict(spec.get("alerting"))
    rows = [] if alerting.get("disabled") or alerting.get("burnrates") is False else list(PYRRA_TIERS)
    alerts, refs = _split(_tiers(name, rows, minutes, scale=True))
    metric: Doc = {"ratioMetric": {"counter": True, "total": _query(total),
                                   ("bad" if bad_key else "good"): _query(counted)}}  # fmt: skip
    service = dns_label(namespace)
    return [
        _doc("Service", service, {"description": ""}, displayName=namespace),
        _doc("SLI", f"{name}-sli"[:63].strip("-"), metric),
        _doc("SLO", name, {"description": str(spec.get("description") or ""), "service": service,
                           "indicatorRef": f"{name}-sli"[:63].strip("-"),
                           "timeWindow": [{"duration": tier_name(minutes), "isRolling": True}],
                           "budgetingMethod": "Occurrences", "objectives": [{"targetPercent": target}],
                           "alertPolicies": refs},
             labels=_as_dict(meta.get("labels"))),
        *alerts,
    ]  # fmt: skip


def import_any(docs: list[Any], **where: str | None) -> Imported:
    """OpenSLO v1, Sloth and Pyrra documents (mixed as they come) imported as one agreement."""
    translated, notes = translate(docs)
    imported = import_documents(translated, **where)
    imported.notes[:0] = notes
    return imported
