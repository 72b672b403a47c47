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
