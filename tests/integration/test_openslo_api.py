"""POST /v1/openslo as create or update, with a dry run, against the real api and PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from support import FOREIGN

YAML = {"content-type": "application/yaml"}
PARAMS = {"customer": "Acme Corp", "provider": "Shop Platform"}


async def test_importing_again_updates_the_agreement_in_a_new_revision_and_a_dry_run_writes_nothing(
    api: httpx.AsyncClient,
) -> None:
    r = await api.post("/v1/openslo", content=FOREIGN, params=PARAMS, headers=YAML)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["action"] == "created"
    agreement = first["agreement"]
    ids = [o["id"] for o in agreement["objectives"]]

    r = await api.post("/v1/openslo", content=FOREIGN, params=PARAMS, headers=YAML)
    assert r.status_code == 200, r.text
    assert (r.json()["action"], r.json()["changes"], r.json()["agreement"]["revision"]) == ("unchanged", [], 1)

    changed = FOREIGN.replace("targetPercent: 99.9", "targetPercent: 99.95")
    r = await api.post("/v1/openslo", content=changed, params={**PARAMS, "dry_run": "true"}, headers=YAML)
    assert r.status_code == 200, r.text
    dry = r.json()
    assert (dry["action"], dry["agreement"]) == ("would update", None)
    assert dry["changes"] == ["objective 'Checkout availability strict' target: 0.999 -> 0.9995"]
    assert (await api.get(f"/v1/agreements/{agreement['id']}")).json()["revision"] == 1

    r = await api.post(
        "/v1/openslo", content=changed, params={**PARAMS, "author": "jane", "reason": "Q3 targets"}, headers=YAML
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["action"] == "updated"
    assert updated["agreement"]["id"] == agreement["id"]
    assert updated["agreement"]["revision"] == 2
    assert [o["id"] for o in updated["agreement"]["objectives"]] == ids
    assert updated["agreement"]["objectives"][0]["target"] == 0.9995
    revisions = (await api.get(f"/v1/agreements/{agreement['id']}/revisions")).json()["items"]
    latest = max(revisions, key=lambda rev: rev["revision"])
    assert (latest["author"], latest["reason"]) == ("jane", "Q3 targets")
    assert len((await api.get("/v1/agreements", params={"customer": "Acme Corp"})).json()["items"]) == 1

    exported = (await api.get(f"/v1/agreements/{agreement['id']}/openslo")).text
    assert "targetPercent: 99.95" in exported
    assert "query: sum(rate(ok[5m]))" in exported


async def test_sloth_and_pyrra_files_import_through_the_api(api: httpx.AsyncClient) -> None:
    corpus = Path(__file__).parents[1] / "data" / "openslo" / "accepted"
    r = await api.post("/v1/openslo", content=(corpus / "sloth-prometheus-v1.yaml").read_text(), params=PARAMS,
                       headers=YAML)  # fmt: skip
    assert r.status_code == 201, r.text
    assert [o["name"] for o in r.json()["agreement"]["objectives"]] == ["requests-availability", "refunds-availability"]
    assert any("Sloth's default, 30d" in n for n in r.json()["notes"])
    refused = (Path(__file__).parents[1] / "data" / "openslo" / "refused" / "pyrra-bool-gauge.yaml").read_text()
    r = await api.post("/v1/openslo", content=refused, params=PARAMS, headers=YAML)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "documents.0.spec.indicator.bool_gauge"
