"""A revoked or expired token is refused by every replica within the documented bound (README: Tokens):
two api processes and an ingest process, each with its own token cache.

Measured: revoked through the api (the NOTIFY path), revoked behind the api's back (no notice: only
the periodic reload, every ACCORD_<SVC>_TOKEN_REFRESH_SECONDS), and expired (checked on each request).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from support import ServiceProcess, create_token

pytestmark = pytest.mark.slow

BOUND_SECONDS = 5.0
REFRESH_SECONDS = 2.0


def probe(service: ServiceProcess) -> tuple[str, str, dict[str, object]]:
    """A request that any admin token passes (2xx or a validation answer) and a refused one fails with 401."""
    if service.command == "accord-ingest":
        return "POST", f"{service.url}/v1/measurements", {"json": {}}
    return "GET", f"{service.url}/v1/indicators", {}


async def refused_after(replicas: list[ServiceProcess], token: str, started: float) -> list[float]:
    """Seconds from `started` until each replica answers `token` with 401 (polled every 20 ms, bounded)."""
    headers = {"Authorization": f"Bearer {token}"}

    async def one(client: httpx.AsyncClient, service: ServiceProcess) -> float:
        method, url, extra = probe(service)
        deadline = started + 3 * BOUND_SECONDS
        while True:
            answer = await client.request(method, url, headers=headers, timeout=5, **extra)  # type: ignore[arg-type]
            if answer.status_code == 401:
                return time.monotonic() - started
            assert answer.status_code in (200, 422), answer.text
            if time.monotonic() > deadline:
                raise AssertionError(f"{service.name} still accepts the token after {3 * BOUND_SECONDS} s")
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient() as client:
        return list(await asyncio.gather(*(one(client, s) for s in replicas)))


async def accepted_everywhere(replicas: list[ServiceProcess], token: str) -> None:
    async with httpx.AsyncClient() as client:
        for service in replicas:
            method, url, extra = probe(service)
            deadline = time.monotonic() + BOUND_SECONDS
            while True:
                status = (
                    await client.request(method, url, headers={"Authorization": f"Bearer {token}"}, **extra)  # type: ignore[arg-type]
                ).status_code
                if status in (200, 422):
                    break
                assert time.monotonic() < deadline, f"{service.name} does not accept a new token: {status}"
                await asyncio.sleep(0.02)


async def test_a_revoked_or_expired_token_is_refused_by_every_replica_within_the_bound(
    launch: Callable[..., ServiceProcess], database_url: str
) -> None:
    auth = {"ACCORD_API_AUTH": "true", "ACCORD_INGEST_AUTH": "true"}
    refresh = {"ACCORD_API_TOKEN_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    replicas = [launch("accord-api", **auth, **refresh), launch("accord-api", **auth, **refresh)]
    replicas.append(launch("accord-ingest", **auth, ACCORD_INGEST_TOKEN_REFRESH_SECONDS=str(REFRESH_SECONDS)))
    for service in replicas:
        await service.wait_ready()
    admin = await create_token(database_url, "admin", "operator")

    # 1. Revoked through the api: every replica hears the NOTIFY.
    victim = await create_token(database_url, "admin", "victim 1")
    await accepted_everywhere(replicas, victim)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {admin}"}) as client:
        r = await client.delete(f"{replicas[0].url}/v1/tokens/{victim.split('_')[1]}")
        started = time.monotonic()  # the revocation is committed
        assert r.status_code == 200, r.text
        assert r.json()["revoked_at"], r.text
    notified = await refused_after(replicas, victim, started)

    # 2. Revoked with no notice at all (straight in the database): the periodic reload finds it.
    victim = await create_token(database_url, "admin", "victim 2")
    await accepted_everywhere(replicas, victim)
    conn = await asyncpg.connect(database_url)
    try:
        started = time.monotonic()
        await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", victim.split("_")[1])
    finally:
        await conn.close()
    unnotified = await refused_after(replicas, victim, started)

    # 3. Expired: checked on every request against the clock.
    expires = datetime.now(UTC) + timedelta(seconds=2)
    victim = await create_token(database_url, "admin", "victim 3", expires_at=expires)
    await accepted_everywhere(replicas, victim)
    expiry = time.monotonic() + (expires - datetime.now(UTC)).total_seconds()
    expired = await refused_after(replicas, victim, expiry)

    print(
        f"refused after revocation via the api: {', '.join(f'{t * 1000:.0f} ms' for t in notified)}; "
        f"revoked without notice: {', '.join(f'{t:.2f} s' for t in unnotified)}; "
        f"expired: refused {', '.join(f'{t * 1000:.0f} ms' for t in expired)} after the expiry"
    )
    assert max(notified) < BOUND_SECONDS
    assert max(unnotified) < BOUND_SECONDS
    assert max(unnotified) < REFRESH_SECONDS + 1.0  # the refresh period, plus one reload
    assert min(expired) > -0.1
    assert max(expired) < BOUND_SECONDS
