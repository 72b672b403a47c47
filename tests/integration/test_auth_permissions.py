"""Every route of the api and ingest × every kind of token, checked against shared.permissions; customers
confined to their own agreements; the audit log names the token behind each change.

The api and ingest run in-process with auth on, on this test's database and broker. Each route gets one
request that does not change anything (writes are refused by validation, If-Match or a conflict, after
authorization), so the admin's answer is the baseline every allowed role must get too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from support import Servers, Topics, create_token, wait_until

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest_app
from services.ingest.settings import IngestSettings
from shared.permissions import TABLE, Decision, Permission, Rule, Scope, decide

ACME, BETA = "Acme", "Beta"


def agreement(customer: str, indicator: str) -> dict[str, Any]:
    return {
        "name": f"{customer} SLA",
        "provider": "Shop",
        "customer": customer,
        "author": "tests",
        "objectives": [{"name": "Availability", "indicator": indicator, "target": 0.99}],
    }


@dataclass
class World:
    api: FastAPI
    ingest: FastAPI
    database_url: str
    tokens: dict[str, str | None] = field(default_factory=dict)  # role label -> token
    ids: dict[str, str] = field(default_factory=dict)

    def client(self, app: FastAPI, label: str) -> httpx.AsyncClient:
        token = self.tokens[label]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers)


ROLES = {
    "admin": "admin",
    "editor": "editor",
    "ingest": "ingest",
    "ingest-acme-only": "ingest",
    "viewer": "viewer",
    "customer-acme": f"customer:{ACME}",
    "customer-beta": f"customer:{BETA}",
}
REFUSED = ("no token", "expired", "revoked", "malformed")


@pytest.fixture
async def world(servers: Servers, database_url: str, topics: Topics) -> AsyncIterator[World]:
    api = create_app(ApiSettings(DATABASE_URL=database_url, auth=True))
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap, **topics.env()}
    ingest_settings = IngestSettings(**{k: v for k, v in env.items()}, auth=True)  # type: ignore[arg-type]
    async with api.router.lifespan_context(api):
        w = World(api, create_ingest_app(ingest_settings), database_url)
        for label, role in ROLES.items():
            options = {"indicators": ["acme.*"]} if label == "ingest-acme-only" else {}
            w.tokens[label] = await create_token(database_url, role, label, **options)
        w.tokens["no token"] = None
        w.tokens["malformed"] = "not-an-accord-token"
        w.tokens["expired"] = await create_token(database_url, "admin", "expired")
        w.tokens["revoked"] = await create_token(database_url, "admin", "revoked")
        conn = await asyncpg.connect(database_url)
        try:
            expired_id = str(w.tokens["expired"]).split("_")[1]
            await conn.execute(
                "UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1", expired_id
            )
            await conn.execute("SELECT pg_notify('accord_tokens', $1)", expired_id)
        finally:
            await conn.close()
        async with w.client(api, "admin") as admin:
            revoked_id = str(w.tokens["revoked"]).split("_")[1]
            assert (await admin.delete(f"/v1/tokens/{revoked_id}")).status_code == 200
            for key in ("acme.avail", "beta.avail"):
                r = await admin.post("/v1/indicators", json={"key": key, "kind": "ratio"})
                assert r.status_code == 201, r.text
            for customer, key in ((ACME, "acme.avail"), (BETA, "beta.avail")):
                r = await admin.post("/v1/agreements", json=agreement(customer, key))
                assert r.status_code == 201, r.text
                w.ids[f"{customer}.agreement"] = r.json()["id"]
                w.ids[f"{customer}.objective"] = r.json()["objectives"][0]["id"]
            w.ids["admin.token"] = str(w.tokens["admin"]).split("_")[1]
        await _breach_events(database_url, w)
        for label in ("expired", "revoked"):  # the api's cache has heard of the change (NOTIFY)

            async def refused(label: str = label) -> bool:
                async with w.client(api, label) as client:
                    return (await client.get("/v1/agreements")).status_code == 401

            await wait_until(refused, timeout=5, what=f"the {label} token to be refused")
        async with w.ingest.router.lifespan_context(w.ingest):
            yield w


async def _breach_events(database_url: str, w: World) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for customer in (ACME, BETA):
            await conn.execute(
                "INSERT INTO breach_events (id, objective_id, agreement_id, customer, type, seq, time, event) "
                "VALUES ($1, $2, $3, $4, 'accord.budget.exhausted', 1, now(), $5)",
                f"event-{customer}",
                uuid.UUID(w.ids[f"{customer}.objective"]),
                uuid.UUID(w.ids[f"{customer}.agreement"]),
                customer,
                orjson.dumps({"customer": customer}).decode(),
            )
    finally:
        await conn.close()


def request_for(rule: Rule, ids: dict[str, str]) -> dict[str, Any]:
    """One request to `rule`'s route naming Acme's resources, that changes nothing whoever sends it."""
    a, o = ids[f"{ACME}.agreement"], ids[f"{ACME}.objective"]
    path = (
        rule.path.replace("{agreement_id}", a)
        .replace("{objective_id}", o)
        .replace("{key}", "acme.avail")
        .replace("{revision}", "1")
        .replace("{review_id}", str(uuid.UUID(int=7)))
        .replace("{customer:path}", ACME)
        .replace("{token_id}", ids["admin.token"] if rule.method == "GET" else "000000000000")
    )
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/v1/indicators"): {"key": "acme.avail", "kind": "ratio"},  # 409: exists
        ("PATCH", "/v1/indicators/{key}"): {"kind": None},  # 422
        ("POST", "/v1/measurements"): [
            {"indicator": "acme.avail", "timestamp": int(datetime.now(UTC).timestamp()), "good": 1, "total": 1}
        ],
    }
    request: dict[str, Any] = {"method": rule.method, "url": path}
    if rule.method in ("POST", "PATCH"):
        request["json"] = bodies.get((rule.method, rule.path), {})
    if rule.path == "/v1/openslo":
        request = {"method": "POST", "url": path, "content": b"x", "headers": {"content-type": "text/plain"}}
    return request


def expected(label: str, rule: Rule, baseline: int) -> int:
    """The status `label` must get where the admin got `baseline`, by the permission table."""
    permission = Permission.PUBLIC if rule.permission is Permission.METRICS else rule.permission
    if permission is Permission.PUBLIC:
        return baseline
    if label in REFUSED:
        return 401
    decision = decide(ROLES[label], permission)
    if decision is Decision.FORBIDDEN:
        return 403
    if decision is Decision.HIDDEN:
        return 404
    if label == "customer-beta" and rule.scope not in (Scope.LIST, Scope.NONE):
        return 404  # the request names Acme's resources
    return baseline


ALL_LABELS = [*ROLES, *REFUSED]


async def test_every_route_answers_every_kind_of_token_as_the_permission_table_says(world: World) -> None:
    mismatches = []
    checked = 0
    for rule in TABLE:
        app = world.api if rule.service == "api" else world.ingest
        request = request_for(rule, world.ids)
        async with world.client(app, "admin") as admin:
            answer = await admin.request(**request)
            baseline = answer.status_code
        assert baseline not in (401, 403, 500), (rule, baseline, answer.text)
        for label in ALL_LABELS:
            async with world.client(app, label) as client:
                r = await client.request(**request)
            want = expected(label, rule, baseline)
            checked += 1
            if r.status_code != want:
                mismatches.append(f"{rule.service} {rule.method} {rule.path} as {label}: {r.status_code}, want {want}")
            if r.status_code == 401:
                assert r.headers["WWW-Authenticate"].startswith("Bearer"), rule
                assert r.headers["content-type"] == "application/problem+json"
                token = world.tokens[label]
                assert token is None or token not in r.text  # never echoed
    assert not mismatches, "\n".join(mismatches)
    assert checked == len(TABLE) * len(ALL_LABELS)


def _registered(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves."""
    out: set[tuple[str, str]] = set()
    for route in app.routes:
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        for context in contexts:
            original = getattr(context, "original_route", context)
            path = getattr(context, "path", "") or getattr(original, "path", "")
            for method in getattr(original, "methods", None) or ():
                if method != "HEAD":
                    out.add((method, path))
    return out


def test_the_permission_table_names_exactly_the_routes_of_the_api_and_ingest() -> None:
    for service, app in (
        ("api", create_app(ApiSettings(auth=True))),
        ("ingest", create_ingest_app(IngestSettings(auth=True))),
    ):
        registered = _registered(app)
        assert len(registered) > 5
        tabled = {(r.method, r.path) for r in TABLE if r.service == service}
        assert registered == tabled, (
            f"{service}: add {sorted(registered - tabled)}, remove {sorted(tabled - registered)}"
        )


async def test_a_customer_sees_its_own_agreements_and_never_another_customers(world: World) -> None:
    mine, theirs = world.ids[f"{ACME}.agreement"], world.ids[f"{BETA}.agreement"]
    my_objective, their_objective = world.ids[f"{ACME}.objective"], world.ids[f"{BETA}.objective"]
    async with world.client(world.api, "customer-acme") as acme:
        for url in ("/v1/agreements", f"/v1/agreements?customer={BETA}", "/v1/agreements?archived=true"):
            r = await acme.get(url)
            assert [a["customer"] for a in r.json()["items"]] == [ACME], url
        for url in ("/v1/objectives", f"/v1/objectives?agreement={theirs}", f"/v1/objectives?customer={BETA}"):
            r = await acme.get(url)
            assert {o["agreement_id"] for o in r.json()["items"]} <= {mine}, url
        for url in ("/v1/breaches", f"/v1/breaches?customer={BETA}", f"/v1/breaches?agreement={theirs}"):
            r = await acme.get(url)
            assert {e["customer"] for e in r.json()["items"]} <= {ACME}, url
        assert len((await acme.get("/v1/breaches")).json()["items"]) == 1
        # By id: another customer's resource reads exactly as one that does not exist.
        nobody = str(uuid.uuid4())
        for template in (
            "/v1/agreements/{a}",
            "/v1/agreements/{a}/status",
            "/v1/agreements/{a}/revisions/1",
            "/v1/agreements/{a}/openslo",
            "/v1/objectives/{o}",
            "/v1/objectives/{o}/status",
            "/v1/objectives/{o}/history?step=nonsense",
        ):
            own = await acme.get(template.format(a=mine, o=my_objective).replace("step=nonsense", "step=1h"))
            assert own.status_code == 200, (template, own.text)
            other = await acme.get(template.format(a=theirs, o=their_objective))
            missing = await acme.get(template.format(a=nobody, o=nobody))
            assert other.status_code == missing.status_code == 404, template
            assert other.json()["detail"].replace(theirs, "X").replace(their_objective, "X") == missing.json()[
                "detail"
            ].replace(nobody, "X"), template
        assert (await acme.get(f"/v1/customers/{ACME}/status")).status_code == 200
        other = await acme.get(f"/v1/customers/{BETA}/status")
        missing = await acme.get("/v1/customers/Nobody/status")
        assert other.status_code == missing.status_code == 404
        assert other.json()["detail"].replace(BETA, "N") == missing.json()["detail"].replace("Nobody", "N")
        # What is not the customer's business is not found either, whatever it is.
        for url in ("/v1/indicators", "/v1/tokens", "/v1/audit", f"/v1/agreements/{mine}/reviews"):
            assert (await acme.get(url)).status_code == 404, url


async def test_a_limited_ingest_token_posts_only_to_its_indicators(world: World) -> None:
    now = int(datetime.now(UTC).timestamp())
    async with world.client(world.ingest, "ingest-acme-only") as client:
        ok = await client.post(
            "/v1/measurements", json={"indicator": "acme.avail", "timestamp": now, "good": 1, "total": 1}
        )
        assert ok.status_code == 202, ok.text
        mixed = [
            {"indicator": "acme.avail", "timestamp": now, "good": 1, "total": 1},
            {"indicator": "beta.avail", "timestamp": now, "good": 1, "total": 1},
        ]
        refused = await client.post("/v1/measurements", json=mixed)
        assert refused.status_code == 403
        assert "beta.avail" in refused.json()["detail"]
        assert "acme.avail" not in refused.json()["detail"]


async def test_the_audit_log_names_the_token_behind_every_change(world: World) -> None:
    editor_id = str(world.tokens["editor"]).split("_")[1]
    a = world.ids[f"{ACME}.agreement"]
    async with world.client(world.api, "editor") as editor:
        current = await editor.get(f"/v1/agreements/{a}")
        r = await editor.patch(
            f"/v1/agreements/{a}",
            json={"description": "changed", "author": "Jane"},
            headers={"If-Match": current.headers["ETag"]},
        )
        assert r.status_code == 200, r.text
        r = await editor.post(
            f"/v1/agreements/{a}/reviews",
            json={"author": "Jane", "notes": "quarterly"},
            headers={"If-Match": r.headers["ETag"]},
        )
        assert r.status_code == 201, r.text
    async with world.client(world.api, "admin") as admin:
        created = await admin.post("/v1/tokens", json={"name": "grafana", "role": "viewer"})
        assert created.status_code == 201
        assert created.json()["token"].startswith("accord_")
        listed = (await admin.get("/v1/tokens")).json()["items"]
        assert all("token" not in t for t in listed)
        assert created.json()["id"] in {t["id"] for t in listed}
        entries = (await admin.get(f"/v1/audit?actor={editor_id}")).json()["items"]
        assert [e["action"] for e in entries] == ["review.recorded", "agreement.reviewed", "agreement.updated"]
        assert {e["actor_name"] for e in entries} == {"editor"}
        assert entries[-1]["detail"]["author"] == "Jane"
        assert entries[-1]["agreement_id"] == a
        tokens = (await admin.get("/v1/audit?action=token.")).json()["items"]
        assert tokens[0]["action"] == "token.created"
        assert tokens[0]["target"] == created.json()["id"]
        assert tokens[0]["actor_name"] == "admin"
        page = await admin.get("/v1/audit?limit=2")
        rest = await admin.get(f"/v1/audit?limit=1000&cursor={page.json()['next_cursor']}")
        assert page.json()["items"][-1]["id"] > rest.json()["items"][0]["id"]


async def test_metrics_need_a_token_when_the_setting_says_so(database_url: str) -> None:
    app = create_app(ApiSettings(DATABASE_URL=database_url, auth=True, metrics_need_token=True))
    async with app.router.lifespan_context(app):
        viewer = await create_token(database_url, "viewer")
        customer = await create_token(database_url, f"customer:{ACME}")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/metrics")).status_code == 401
            assert (await client.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})).status_code == 200
            assert (await client.get("/metrics", headers={"Authorization": f"Bearer {customer}"})).status_code == 404
            assert (await client.get("/healthz")).status_code == 200


async def test_without_auth_every_request_is_served_and_a_warning_says_so(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(ApiSettings(DATABASE_URL=database_url, auth=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/v1/tokens")).status_code == 200
    assert any("AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)


async def test_cors_is_off_unless_origins_are_configured(database_url: str) -> None:
    preflight = {"Origin": "https://portal.example", "Access-Control-Request-Method": "GET"}
    for origins, allowed in (("", False), ("https://portal.example", True)):
        app = create_app(ApiSettings(DATABASE_URL=database_url, auth=True, cors_origins=origins))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                r = await client.options("/v1/agreements", headers=preflight)
                assert ("access-control-allow-origin" in r.headers) is allowed, origins


async def test_a_token_is_created_only_with_a_role_that_exists_and_an_expiry_ahead(world: World) -> None:
    async with world.client(world.api, "admin") as admin:
        for body, field_name in (
            ({"name": "x", "role": "root"}, "role"),
            ({"name": "x", "role": "customer:"}, "role"),
            ({"name": "x", "role": "viewer", "indicators": ["a.b"]}, "indicators"),
            ({"name": "x", "role": "viewer", "expires_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
             "expires_at"),
        ):  # fmt: skip
            r = await admin.post("/v1/tokens", json=body)
            assert r.status_code == 422, body
            assert field_name in {e["field"] for e in r.json()["errors"]}, r.json()
