"""API settings (env prefix ACCORD_API_ for its own, see README for every variable)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.auth import AuthSettings


class ApiSettings(AuthSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_API_", extra="ignore", frozen=True)

    port: int = Field(default=8000, description="HTTP port.")
    page_size: int = Field(default=50, gt=0, le=1000, description="Default page size of list endpoints.")
    max_history_points: int = Field(
        default=10_000, gt=0, le=1_000_000, description="Most points one history request may ask for (422 above)."
    )
    max_history_work: int = Field(
        default=2_000_000,
        gt=0,
        description="Most work units (about 1.5 µs each) one history request may take (422 above): per point 30, plus "
        "the window's minutes for timeslices budgeting, plus 1/30 of the lookback minutes for business hours, plus "
        "0.5 per maintenance occurrence in the lookback; plus 4 per occurrence of a recurring rule from its DTSTART "
        "to `to`.",
    )
    report_grace_seconds: int = Field(
        default=3600,
        ge=0,
        le=31 * 86_400,
        description="How long after a reporting period ends the closer waits for late data before it freezes the "
        "period's report and emits accord.sla.met / accord.sla.breached (docs/reports.md).",
    )
    report_close_interval_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86_400,
        description="How often each api process tries to close ended reporting periods (one process at a time "
        "does, under a Postgres advisory lock; docs/reports.md).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest accepted request body, chunked or not (413 above)."
    )
