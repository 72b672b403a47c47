from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support import Live, ServiceProcess, live_engine

from services.api.app import create_app
from services.api.settings import ApiSettings


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The api in-process on this test's fresh database (lifespan entered, so its engine is real)."""
    app = create_app(ApiSettings(DATABASE_URL=database_url, ACCORD_API_PAGE_SIZE=50))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@pytest.fixture
async def api_process(database_url: str, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    """The api as a real process on this test's fresh database."""
    service = ServiceProcess("accord-api", {"DATABASE_URL": database_url}, log=tmp_path / "api.log").start()
    try:
        await service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Live]:
    """The evaluator's engine in-process on this test's database (readings checkpointed like the runner's)."""
    async with live_engine(database_url) as engine:
        yield engine
