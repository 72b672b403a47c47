"""The printable HTML form of a report: no JavaScript, print CSS, one table per objective, a credit summary and a
per-day compliance chart as inline SVG. Rendered from the same JSON document as the JSON and CSV forms."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from services.api.reports import pct

STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; color: #1b1f24; margin: 2em auto; max-width: 60em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.muted { color: #57606a; } .met { color: #1a7f37; font-weight: bold; } .missed { color: #cf222e; font-weight: bold; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; }
th, td { border: 1px solid #d0d7de; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; width: 40%; } td.num { font-variant-numeric: tabular-nums; }
section.objective { break-inside: avoid; page-break-inside: avoid; }
svg { display: block; margin: .4em 0; }
@page { size: A4; margin: 15mm; }
@media print { body { margin: 0; max-width: none; } a { color: inherit; text-decoration: none; } }
"""

CHART_W, CHART_H = 620, 120


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def chart(days: Sequence[dict[str, Any]], target: float) -> str:
    """Bars of per-day compliance from (target − its error budget × 4, floored at 0) to 100 %, a dashed target line."""
    if not days:
        return '<p class="muted">No days yet.</p>'
    low = max(0.0, 1 - (1 - target) * 4)
    low = min(low, *(d["compliance"] for d in days if d["compliance"] is not None), target)
    span = (1 - low) or 1.0
    width = CHART_W / len(days)
    bars = []
    for i, d in enumerate(days):
        c = d["compliance"]
        x = i * width
        if c is None:
            bars.append(
                f'<rect x="{x + 1:.1f}" y="{CHART_H - 2}" width="{max(width - 2, 1):.1f}" height="2" '
                f'fill="#d0d7de"><title>{_e(d["date"])}: no data</title></rect>'
            )
            continue
        h = max(1.0, (c - low) / span * (CHART_H - 10))
        colour = "#2da44e" if c >= target else "#cf222e"
        bars.append(
            f'<rect x="{x + 1:.1f}" y="{CHART_H - h:.1f}" width="{max(width - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>{_e(d["date"])}: {pct(c)}</title></rect>'
        )
    ty = CHART_H - (target - low) / span * (CHART_H - 10)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H + 16}" role="img" '
        f'aria-label="Compliance per day">'
        f'<rect x="0" y="0" width="{CHART_W}" height="{CHART_H}" fill="#f6f8fa"/>{"".join(bars)}'
        f'<line x1="0" x2="{CHART_W}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#57606a" stroke-dasharray="4 3"/>'
        f'<text x="2" y="{CHART_H + 12}" font-size="10" fill="#57606a">{_e(days[0]["date"])}</text>'
        f'<text x="{CHART_W - 2}" y="{CHART_H + 12}" font-size="10" fill="#57606a" text-anchor="end">'
        f"{_e(days[-1]['date'])} · target {pct(target)} (dashed) · axis from {pct(low, 1)}</text></svg>"
    )


def _objective(o: dict[str, Any]) -> str:
    verdict = {True: '<span class="met">met</span>', False: '<span class="missed">missed</span>'}.get(
        o["met"], '<span class="muted">no data</span>'
    )
    worst = o["worst_day"]
    ex = o["excluded_minutes"]
    rows = [
        ("Target", pct(o["target"])),
        ("Compliance", f"{pct(o['compliance'])} — {verdict}"),
        (f"Good / total {o['unit']}", f"{o['good']} / {o['total']}"),
        ("Budget allowed / consumed / remaining",
         f"{o['budget']['allowed']:.2f} / {o['budget']['consumed']} / {o['budget']['remaining']:.2f} {o['unit']}"),
        ("Minutes excluded: maintenance", str(ex["maintenance"])),
        ("Minutes excluded: outside business hours", str(ex["business_hours"])),
        ("Minutes excluded: before the agreement was effective", str(ex["before_effective"])),
        ("Worst day", "n/a" if worst is None else f"{worst['date']}: {pct(worst['compliance'])}"),
        ("Minutes with a page / ticket firing", f"{o['firing_minutes']['page']:g} / {o['firing_minutes']['ticket']:g}"),
        ("Breach events", str(o["breaches_total"])),
        ("Credit owed by this objective", f"{o['credit_percent']:g} %"),
    ]  # fmt: skip
    table = "".join(
        f"<tr><th>{_e(k)}</th><td class=num>{v if k.startswith('Compliance') else _e(v)}</td></tr>" for k, v in rows
    )
    return (
        f'<section class="objective"><h2>{_e(o["name"])} <span class="muted">({_e(o["indicator"])})</span></h2>'
        f"<table>{table}</table>{chart(o['days'], o['target'])}</section>"
    )


def to_html(reports: Sequence[dict[str, Any]], title: str) -> str:
    """One printable page for one agreement's report, or a customer's statement (several)."""
    parts = []
    for r in reports:
        a, p, s, t = r["agreement"], r["period"], r["summary"], r["terms"]
        amount = "" if s["credit_amount"] is None else f" = {_e(s['credit_amount'])} {_e(s['currency'])}"
        fee = t["fee"]
        revisions = "".join(
            f"<li>revision {_e(v['revision'])} from {_e(v['valid_from'])} by {_e(v['author'])}"
            f"{': ' + _e(v['reason']) if v['reason'] else ''}</li>"
            for v in t["revisions"]
        )
        version = "" if r["version"] is None else f", version {_e(r['version'])}"
        parts.append(
            f"<article><h1>{_e(a['name'])} — {_e(p['label'])}</h1>"
            f"<p><b>Provider</b> {_e(a['provider'])} · <b>Customer</b> {_e(a['customer'])}</p>"
            f"<p>Period {_e(p['start_local'])} to {_e(p['end_local'])} ({_e(p['timezone'])}); "
            f"state <b>{_e(r['state'])}</b>{version}.</p>"
            f"<h2>Credit summary</h2><table>"
            f"<tr><th>Objectives met / missed / no data</th><td>{s['met']} / {s['missed']} / {s['no_data']}</td></tr>"
            f"<tr><th>Credit owed</th><td class=num>{s['credit_percent']:g} %{amount}</td></tr>"
            f"<tr><th>Fee</th><td>{'none' if fee is None else _e(fee['amount']) + ' ' + _e(fee['currency'])}</td></tr>"
            f"</table><p class=muted>{_e(t['rule'])} Terms: revision {_e(t['revision'])}.</p>"
            f"<ul class=muted>{revisions}</ul>"
            f"{''.join(_objective(o) for o in r['objectives'])}</article>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
