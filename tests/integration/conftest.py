from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support import NO_AUTH, Live, ServiceProcess, create_token, live_engine

from services.api.app import create_app
from services.api.settings import ApiSettings


@pytest.fixture(autouse=True)
def _service_processes_without_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Service processes these tests start answer clients that send no token; auth tests turn it on (NO_AUTH)."""
    for name, value in NO_AUTH.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The api in-process on this test's fresh database (lifespan entered, so its engine is real), auth on:
    the client sends an admin token."""
    app = create_app(ApiSettings(DATABASE_URL=database_url, ACCORD_API_PAGE_SIZE=50, auth=True))
    async with app.router.lifespan_context(app):
        token = await create_token(database_url, "admin", "integration tests")
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
            yield client


@pytest.fixture
async def api_process(database_url: str, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    """The api as a real process on this test's fresh database (auth off: its clients send no token)."""
    service = ServiceProcess("accord-api", {"DATABASE_URL": database_url}, log=tmp_path / "api.log").start()
    try:
        await service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture
async def api_process_with_token(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[ServiceProcess, str]]:
    """The api as a real process with auth on, and an admin token for it."""
    token = await create_token(database_url, "admin", "integration tests")
    env = {"DATABASE_URL": database_url, "ACCORD_API_AUTH": "true"}
    service = ServiceProcess("accord-api", env, log=tmp_path / "api.log").start()
    try:
        await service.wait_ready()
        yield service, token
    finally:
        service.stop()


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Live]:
    """The evaluator's engine in-process on this test's database (readings checkpointed like the runner's)."""
    async with live_engine(database_url) as engine:
        yield engine
