"""Every example in the api's OpenAPI document works as given, against a fresh stack after the README's
step 1 (the indicator `checkout.availability` registered): what a reader of /docs would try."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

README_STEP_1 = {"key": "checkout.availability", "kind": "ratio", "unit": "requests"}
Operation = tuple[str, str, dict[str, Any]]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_example(doc: dict[str, Any], op: dict[str, Any]) -> tuple[str, Any] | None:
    """The request body /docs offers: the media type's example, else the schema's first example, else one
    assembled from the properties' examples (as Swagger UI does); None without a body."""
    body = op.get("requestBody")
    if body is None:
        return None
    media, content = next(iter(body["content"].items()))
    if "example" in content:
        return media, content["example"]
    schema = _resolve(doc, content.get("schema", {}))
    if schema.get("examples"):
        return media, schema["examples"][0]
    assembled = {name: p["examples"][0] for name, p in schema.get("properties", {}).items() if p.get("examples")}
    return (media, assembled) if assembled else None


def operations(doc: dict[str, Any]) -> Iterator[Operation]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def parameter_examples(op: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for p in op.get("parameters", []):
        examples = p.get("examples") or p.get("schema", {}).get("examples")
        if p.get("example") is not None:
            out[p["name"]] = p["example"]
        elif isinstance(examples, list) and examples:
            out[p["name"]] = examples[0]
        elif isinstance(examples, dict) and examples:
            out[p["name"]] = next(iter(examples.values()))["value"]
    return out


async def test_every_openapi_example_succeeds_as_given(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/indicators", json=README_STEP_1)
    assert r.status_code == 201, r.text
    doc = (await api.get("/openapi.json")).json()
    agreement_example = body_example(doc, doc["paths"]["/v1/agreements"]["post"])
    assert agreement_example is not None
    sent = []
    for method, path, op in operations(doc):
        body = body_example(doc, op)
        params = parameter_examples(op)
        if body is None and not params:
            continue  # nothing /docs suggests for it
        # A fresh agreement for each operation on one, created from the document's own example:
        # so `If-Match: "1"` (the header's example) is its current ETag.
        created = (await api.post("/v1/agreements", json=agreement_example[1])).json()
        if path.endswith("/restore"):  # only an archived agreement can be restored: archive it first
            archived = await api.delete(
                f"/v1/agreements/{created['id']}", params={"author": "jane"}, headers={"If-Match": '"1"'}
            )
            assert archived.status_code == 200, archived.text
            params["If-Match"] = archived.headers["ETag"]
        url = path.replace("{agreement_id}", created["id"]).replace("{objective_id}", created["objectives"][0]["id"])
        headers = {p["name"]: str(params[p["name"]]) for p in op.get("parameters", []) if p["in"] == "header"}
        query = {
            p["name"]: params[p["name"]] for p in op.get("parameters", []) if p["in"] == "query" and p["name"] in params
        }
        content = None
        if body is not None:
            media, example = body
            headers["content-type"] = media
            content = example if isinstance(example, str) else json.dumps(example)
        r = await api.request(method, url, params=query, headers=headers, content=content)
        assert 200 <= r.status_code < 300, f"{method} {path} with its example: {r.status_code} {r.text}"
        sent.append(f"{method} {path}")
    # The examples this document has today; a new one is sent too, a lost one fails here.
    assert {
        "POST /v1/indicators",
        "POST /v1/agreements",
        "PATCH /v1/agreements/{agreement_id}",
        "POST /v1/agreements/{agreement_id}/objectives",
        "POST /v1/agreements/{agreement_id}/reviews",
        "POST /v1/openslo",
        "GET /v1/breaches",
    } <= set(sent), sent
