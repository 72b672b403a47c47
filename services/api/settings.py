"""API settings (env prefix ACCORD_API_ for its own, see README for every variable)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class ApiSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_API_", extra="ignore", frozen=True)

    port: int = Field(default=8000, description="HTTP port.")
    page_size: int = Field(default=50, gt=0, le=1000, description="Default page size of list endpoints.")
    max_history_points: int = Field(
        default=10_000, gt=0, le=1_000_000, description="Most points one history request may ask for (422 above)."
    )
    max_history_work: int = Field(
        default=5_000_000,
        gt=0,
        description="Most work units one history request may take (422 above): per point 300, plus the window's "
        "minutes for timeslices budgeting, plus 1/8 of them for business hours, plus 6 per maintenance occurrence in "
        "the window; plus 6 per maintenance occurrence from a rule's DTSTART to `to`. About 0.2 µs each.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest accepted request body, chunked or not (413 above)."
    )
