"""Ingest settings (env prefix ACCORD_INGEST_ for its own, see README for every variable)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.auth import AuthSettings


class IngestSettings(AuthSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_INGEST_", extra="ignore", frozen=True)

    port: int = Field(default=8001, description="HTTP port.")
    publish_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait for the broker to acknowledge a request before answering 503."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest accepted request body (413 above)."
    )
    max_items: int = Field(default=100_000, gt=0, description="Most measurements in one request (413 above).")
    max_future_seconds: int = Field(default=300, ge=0, description="How far ahead of the clock a timestamp may be.")
    max_age_seconds: int = Field(
        default=400 * 86_400, gt=0, description="Oldest timestamp accepted (the longest window that could use it)."
    )
    measurements_per_record: int = Field(default=500, gt=0, description="Most measurements packed in one Kafka record.")
    registry_refresh_seconds: float = Field(
        default=30.0, gt=0, description="Fallback reload period of the indicator registry."
    )
    max_in_flight_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Most bytes of records waiting for the broker's ack; past it requests get 503 at once.",
    )
    producer_batch_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Producer batch size per partition; records of up to 500 measurements are ~35 KB each.",
    )
    pack_window_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="How long a flush stays open for more requests to join (0: none); adds that much latency.",
    )
    linger_ms: int = Field(
        default=0,
        ge=0,
        description="Producer linger; 0 because ingest already packs concurrent requests into records itself.",
    )
