"""Evaluator settings (env prefix ACCORD_EVALUATOR_ for its own, see README for every variable)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class EvaluatorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_EVALUATOR_", extra="ignore", frozen=True)

    port: int = Field(default=8002, description="HTTP port for /healthz, /readyz and /metrics.")
    group_id: str = Field(default="accord-evaluator", description="Kafka consumer group of the evaluators.")
    checkpoint_interval_ms: int = Field(
        default=250, gt=0, description="Longest time applied measurements wait before their checkpoint commits."
    )
    max_statuses_per_checkpoint: int = Field(
        default=500,
        gt=0,
        description="Most statuses without alert changes rewritten per checkpoint (the rest wait their turn).",
    )
    max_batch: int = Field(default=2000, gt=0, description="Most Kafka records taken per poll.")
    fetch_max_wait_ms: int = Field(
        default=100, gt=0, description="Longest time the broker holds a fetch when no data is there."
    )
    session_timeout_ms: int = Field(default=6000, gt=0, description="Kafka consumer session timeout.")
    group_instance_id: str = Field(
        default="",
        max_length=249,
        description="Static group membership (e.g. the pod name of a StatefulSet): a restarted evaluator with the "
        "same id takes its partitions back without waiting for its old session to expire. Empty: dynamic.",
    )
    dedup_horizon_minutes: int = Field(
        default=24 * 60, gt=0, description="How long (in measurement time) a measurement id is remembered."
    )
    max_age_minutes: int = Field(
        default=400 * 24 * 60, gt=0, description="History kept for indicators with no objective yet."
    )
    minute_retention_days: int = Field(
        default=8,
        gt=0,
        description="Days of minute buckets kept behind each indicator's watermark, at least (never less than "
        "the longest window, tier window or reporting period of its objectives, plus a day).",
    )
    hour_retention_days: int = Field(
        default=400,
        gt=0,
        description="Days of hour roll-ups kept behind each indicator's watermark (at least as long as the minutes).",
    )
    minute_band_minutes: int = Field(
        default=360,
        ge=0,
        description="Old hours are held in memory as hour cells only, with the minutes evaluations read one by one "
        "(window and tier-window edges, hours cut by exclusions) for watermarks up to this many minutes ahead, "
        "fetched again as the watermark advances. 0: hold every minute of the history (as before).",
    )
    recent_minutes: int = Field(
        default=120,
        ge=60,
        description="Minutes behind the watermark always held minute by minute (with the band).",
    )
    retention_interval_seconds: float = Field(
        default=600.0, gt=0, description="How often the evaluator deletes buckets and roll-ups past retention."
    )
    relay_interval_ms: int = Field(default=500, gt=0, description="Outbox relay poll period for unpublished events.")
    config_refresh_seconds: float = Field(default=30.0, gt=0, description="Fallback reload period of objectives.")
