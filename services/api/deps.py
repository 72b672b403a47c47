"""Request-scoped dependencies: one unit of work per request, committed or rolled back here only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.settings import ApiSettings
from services.api.token_store import set_actor
from shared.auth import principal_of


@dataclass
class ApiState:
    settings: ApiSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[Any]


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the route returns, rolled back when it raises."""
    async with api_state(request).sessionmaker() as session:
        try:
            if request.method not in ("GET", "HEAD"):
                await set_actor(session, principal_of(request))  # the audit log's actor of this change
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": commit before the response is sent, so a failed commit is never answered 2xx.
Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
State = Annotated[ApiState, Depends(api_state)]
