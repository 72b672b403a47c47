"""An ETag describes the representation returned: `?revision=1` answers `ETag: "1"` (issue 15)."""

from __future__ import annotations

import httpx


async def test_the_etag_names_the_revision_returned(api: httpx.AsyncClient) -> None:
    await api.post("/v1/indicators", json={"key": "checkout.availability", "kind": "ratio"})
    created = await api.post(
        "/v1/agreements",
        json={"name": "A", "provider": "P", "customer": "C", "objectives": [
            {"name": "o", "indicator": "checkout.availability", "target": 0.99}]},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    url = f"/v1/agreements/{created.json()['id']}"
    changed = await api.patch(url, json={"description": "second"}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] == '"2"'
    old = await api.get(url, params={"revision": 1})
    assert (old.json()["revision"], old.headers["ETag"]) == (1, '"1"')
    assert (await api.get(f"{url}/revisions/1")).headers["ETag"] == '"1"'
    assert (await api.get(url)).headers["ETag"] == '"2"'
    # Only the current revision's ETag is accepted for a change: the old one is a 412.
    stale = await api.patch(url, json={"description": "third"}, headers={"If-Match": old.headers["ETag"]})
    assert stale.status_code == 412
