"""The corpus in tests/data/openslo/, written in this project from the OpenSLO v1, Sloth and Pyrra specs:
every accepted file imports (its `# expect-objectives:`), its export follows the v1 rules and
imports again unchanged; every refused file is refused naming its `# expect-field:`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from accord.openslo_cli import problems_of
from services.api import openslo_rules
from services.api.openslo import export_yaml, parse_yaml
from services.api.openslo_foreign import import_any
from services.api.schemas import AgreementIn
from shared import contract
from shared.errors import Invalid
from shared.spec import AgreementDocument

CORPUS = Path(__file__).parents[1] / "data" / "openslo"
ACCEPTED = sorted((CORPUS / "accepted").glob("*.yaml"))
REFUSED = sorted((CORPUS / "refused").glob("*.yaml"))
WHO = {"customer": "Acme Corp", "provider": "Shop Platform"}


def expected(path: Path, key: str) -> str:
    match = re.search(rf"^# {key}: (.+)$", path.read_text(), re.M)
    assert match, f"{path.name} names no {key}"
    return match.group(1).strip()


def canonical(document: dict[str, Any]) -> dict[str, Any]:
    return AgreementIn.model_validate(document).model_dump(mode="json", exclude={"author", "reason"})


def test_the_corpus_has_files_of_every_form_and_source() -> None:
    assert len(ACCEPTED) >= 11
    assert len(REFUSED) >= 12
    texts = [p.read_text() for p in ACCEPTED]
    assert any(t.lstrip("#").find("\n- apiVersion") >= 0 for t in texts)  # list
    assert any("\n---\n" in t for t in texts)  # multi-document
    assert any("prometheus/v1" in t for t in texts)
    assert any("openslo/v1alpha" in t for t in texts)
    assert any("pyrra.dev/v1alpha1" in t for t in texts)


@pytest.mark.parametrize("path", ACCEPTED, ids=[p.name for p in ACCEPTED])
def test_an_accepted_file_imports_exports_by_the_rules_and_round_trips(path: Path) -> None:
    imported = import_any(parse_yaml(path.read_text()), **WHO)
    document = canonical(imported.document)
    assert len(document["objectives"]) == int(expected(path, "expect-objectives"))
    if "# expect-window:" in path.read_text():
        assert document["objectives"][0]["window"] == expected(path, "expect-window")
    stored = AgreementDocument.model_validate(
        {**document, "archived_at": None,
         "objectives": [{**o, "id": f"00000000-0000-0000-0000-{n:012d}"} for n, o in enumerate(document["objectives"])]}
    )  # fmt: skip
    assert contract.document_problems(stored, imported.indicators) == []
    assert problems_of(path.read_text(), **WHO)[:2] == ([], [])  # accord openslo validate: ok
    exported = export_yaml(document)
    assert openslo_rules.check(parse_yaml(exported)) == []
    again = canonical(import_any(parse_yaml(exported), **WHO).document)
    assert again == document


@pytest.mark.parametrize("path", REFUSED, ids=[p.name for p in REFUSED])
def test_a_refused_file_is_refused_naming_the_reason(path: Path) -> None:
    with pytest.raises(Invalid) as raised:
        import_any(parse_yaml(path.read_text()), **WHO)
    fields = {e["field"] for e in raised.value.extra["errors"]}
    assert expected(path, "expect-field") in fields, raised.value.extra["errors"]


def _load(name: str) -> dict[str, Any]:
    return canonical(import_any(parse_yaml((CORPUS / "accepted" / name).read_text()), **WHO).document)


def test_sloth_alert_windows_become_tiers_and_its_queries_are_kept() -> None:
    document = _load("sloth-prometheus-v1.yaml")
    availability, refunds = document["objectives"]
    assert (availability["target"], availability["window"]) == (0.999, "30d")
    tiers = [(t["severity"], t["long_window"], t["short_window"], t["factor"])
             for t in availability["alert_policy"]["tiers"]]  # fmt: skip
    assert tiers == [("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0), ("ticket", "1d", "2h", 3.0),
                     ("ticket", "3d", "6h", 1.0)]  # fmt: skip
    assert [t["severity"] for t in refunds["alert_policy"]["tiers"]] == ["ticket", "ticket"]  # page_alert disabled
    assert document["labels"] == {"owner": "payments-team"}
    assert 'code=~"(5..|429)"' in export_yaml(document)


def test_pyrra_burn_rates_scale_with_the_window_and_disabled_alerting_has_none() -> None:
    ratio = _load("pyrra-ratio.yaml")["objectives"][0]
    tiers = [(t["severity"], t["long_window"], t["short_window"], t["factor"]) for t in ratio["alert_policy"]["tiers"]]
    assert tiers == [("page", "1h", "5m", 14.0), ("page", "6h", "30m", 7.0), ("ticket", "1d", "2h", 2.0),
                     ("ticket", "4d", "6h", 1.0)]  # fmt: skip
    assert (ratio["target"], ratio["window"]) == (0.995, "28d")
    latency = _load("pyrra-latency.yaml")["objectives"][0]
    assert latency["alert_policy"]["tiers"] == []
    assert latency["window"] == "14d"


def test_anchored_calendars_ratio_timeslices_and_gte_conditions_import_as_they_mean() -> None:
    windows = [o["window"] for o in _load("calendar-anchored-durations.yaml")["objectives"]]
    assert windows == ["2w from 2026-01-03T06:30", "3d from 2026-03-08T02:30", "1M from 2026-01-31T00:00",
                       "1Q from 2026-02-01T00:00", "1Y from 2026-04-06T00:00"]  # fmt: skip
    exported = parse_yaml(export_yaml(_load("calendar-week-from-saturday-noon.yaml")))
    slo = next(d for d in exported if d["kind"] == "SLO")
    assert slo["spec"]["timeWindow"] == [
        {"duration": "1w", "isRolling": False,
         "calendar": {"startTime": "2026-11-28 12:00:00", "timeZone": "Europe/Berlin"}}
    ]  # fmt: skip
    ratio = _load("ratio-timeslices.yaml")["objectives"][0]
    assert (ratio["budgeting"], ratio["slice_length"], ratio["slice_target"]) == ("ratio_timeslices", "5m", None)
    tiers = _load("burn-rate-conditions-gt-gte.yaml")["objectives"][0]["alert_policy"]["tiers"]
    assert [(t["op"], t["factor"], t["alert_after"]) for t in tiers] == [("gt", 14.4, None), ("gte", 1.0, "30m")]


def test_a_burn_rate_condition_below_its_threshold_is_refused_saying_why() -> None:
    for name in ("burn-rate-lt.yaml", "burn-rate-lte.yaml"):
        with pytest.raises(Invalid) as raised:
            import_any(parse_yaml((CORPUS / "refused" / name).read_text()), **WHO)
        (error,) = raised.value.extra["errors"]
        assert "slower than the threshold" in error["reason"]
        assert "op: gt, or gte" in error["reason"]
