"""Settings every service shares, read from the environment once at start-up.

Each service subclasses `CommonSettings` with its own fields and env prefix; the
object is built in `main()` and passed in, never imported as a global, so a test
can build its own. `DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS` carry no prefix.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def sqlalchemy_url(url: str) -> str:
    """Accept the plain libpq form of a PostgreSQL URL and name the asyncpg driver in it."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if not url.startswith("postgresql+asyncpg://"):
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    return url


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:54329/accord",
        validation_alias=AliasChoices("DATABASE_URL"),
        description="PostgreSQL URL (postgresql:// or postgresql+asyncpg://).",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated Kafka bootstrap servers.",
    )
    measurements_topic: str = Field(
        default="accord.measurements",
        validation_alias=AliasChoices("ACCORD_MEASUREMENTS_TOPIC"),
        description="Topic ingest publishes to and the evaluator consumes.",
    )
    breaches_topic: str = Field(
        default="accord.breaches",
        validation_alias=AliasChoices("ACCORD_BREACHES_TOPIC"),
        description="Topic breach events are published to.",
    )
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices("ACCORD_LOG_LEVEL"), description="Python log level."
    )
    host: str = Field(
        default="127.0.0.1", description="Address the service's HTTP server binds (prefixed per service)."
    )

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        return sqlalchemy_url(value)

    @property
    def asyncpg_dsn(self) -> str:
        """The same URL without the SQLAlchemy driver name, for raw asyncpg connections."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
