"""Service level reviews of an agreement (written with the revision they make, agreement_changes.review)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.repository.agreements import get_agreement_row
from shared.db import Review
from shared.errors import NotFound


async def add_review(session: AsyncSession, review: Review) -> None:
    session.add(review)
    await session.flush()


async def list_reviews(
    session: AsyncSession, agreement_id: uuid.UUID, *, before: int | None, limit: int
) -> Sequence[Review]:
    await get_agreement_row(session, agreement_id)
    query = select(Review).where(Review.agreement_id == agreement_id).order_by(Review.revision.desc()).limit(limit)
    if before is not None:
        query = query.where(Review.revision < before)
    return (await session.scalars(query)).all()


async def get_review(session: AsyncSession, agreement_id: uuid.UUID, review_id: uuid.UUID) -> Review:
    review = await session.get(Review, review_id)
    if review is None or review.agreement_id != agreement_id:
        raise NotFound(f"No review {review_id} of agreement {agreement_id}.")
    return review
