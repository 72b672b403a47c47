"""Settings every service shares, read from the environment once at start-up.

Each service subclasses `CommonSettings` with its own fields and env prefix; the
object is built in `main()` and passed in, never imported as a global, so a test
can build its own. `DATABASE_URL` and the `KAFKA_*` connection settings carry no prefix.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Literal, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# libpq's TLS parameters that asyncpg understands in a URL's query (sslmode=verify-full&sslrootcert=...).
LIBPQ_TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LOG_LEVELS = tuple(logging.getLevelNamesMapping())  # CRITICAL, ERROR, WARNING, INFO, DEBUG and their aliases


def sqlalchemy_url(url: str) -> str:
    """Accept the plain libpq form of a PostgreSQL URL and name the asyncpg driver in it.

    The query (e.g. `?sslmode=verify-full&sslrootcert=/etc/ca.crt`) is kept as it is: shared.db
    hands the whole libpq URL to asyncpg, which reads it for SQLAlchemy's connections too.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+asyncpg://" + url[len(prefix) :]
            break
    if not url.startswith("postgresql+asyncpg://"):
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    query = dict(parse_qsl(urlsplit(url).query))
    if "sslmode" in query and query["sslmode"] not in SSLMODES:
        raise ValueError(f"DATABASE_URL: sslmode must be one of {', '.join(SSLMODES)}, not {query['sslmode']!r}")
    return url


def libpq_url(url: str) -> str:
    """The libpq form (`postgresql://...`) of a DATABASE_URL, query (TLS parameters) included, for asyncpg."""
    return sqlalchemy_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def without_query(url: str) -> str:
    """`url` without its query: what SQLAlchemy's URL needs when asyncpg reads the parameters itself."""
    return urlunsplit(urlsplit(url)._replace(query=urlencode({})))


@dataclasses.dataclass(frozen=True)
class KafkaConnection:
    """Where and how to reach Kafka: bootstrap servers, TLS and SASL (`shared.kafka.client_options`
    turns it into aiokafka's arguments). By default plaintext, without authentication."""

    bootstrap_servers: str
    security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    sasl_mechanism: KafkaSaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = dataclasses.field(default=None, repr=False)
    ssl_ca_file: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:54329/accord",
        validation_alias=_env("DATABASE_URL"),
        description="PostgreSQL URL (postgresql:// or postgresql+asyncpg://); TLS as libpq query parameters "
        "(sslmode, sslrootcert, sslcert, sslkey).",
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated Kafka bootstrap servers.",
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        default="PLAINTEXT",
        validation_alias=_env("KAFKA_SECURITY_PROTOCOL"),
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SASL_MECHANISM"),
        description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (required with a SASL_ protocol).",
    )
    kafka_sasl_username: str | None = Field(
        default=None, validation_alias=_env("KAFKA_SASL_USERNAME"), description="SASL user name."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias=_env("KAFKA_SASL_PASSWORD"), description="SASL password."
    )
    kafka_ssl_ca_file: str | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_CA_FILE"),
        description="PEM file of the CA(s) the brokers' certificates are verified against (default: the system's).",
    )
    kafka_ssl_cert_file: str | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_CERT_FILE"),
        description="PEM client certificate (mutual TLS); needs KAFKA_SSL_KEY_FILE.",
    )
    kafka_ssl_key_file: str | None = Field(
        default=None,
        validation_alias=_env("KAFKA_SSL_KEY_FILE"),
        description="PEM private key of the client certificate.",
    )
    measurements_topic: str = Field(
        default="accord.measurements",
        validation_alias=_env("ACCORD_MEASUREMENTS_TOPIC"),
        description="Topic ingest publishes to and the evaluator consumes.",
    )
    breaches_topic: str = Field(
        default="accord.breaches",
        validation_alias=_env("ACCORD_BREACHES_TOPIC"),
        description="Topic breach events are published to.",
    )
    log_level: str = Field(
        default="INFO",
        validation_alias=_env("ACCORD_LOG_LEVEL"),
        description="Python log level: CRITICAL, ERROR, WARNING, INFO or DEBUG.",
    )
    host: str = Field(
        default="127.0.0.1", description="Address the service's HTTP server binds (prefixed per service)."
    )

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        return sqlalchemy_url(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError("a log level is one of CRITICAL, ERROR, WARNING, INFO, DEBUG")
        return value.upper()

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Self:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_MECHANISM, "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.kafka_sasl_mechanism or self.kafka_sasl_username or self.kafka_sasl_password):
            raise ValueError("KAFKA_SASL_* settings need KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT")
        tls_files = self.kafka_ssl_ca_file or self.kafka_ssl_cert_file or self.kafka_ssl_key_file
        if tls_files and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError("KAFKA_SSL_* files need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
        if bool(self.kafka_ssl_cert_file) != bool(self.kafka_ssl_key_file):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together (mutual TLS)")
        return self

    @property
    def asyncpg_dsn(self) -> str:
        """The same URL without the SQLAlchemy driver name (TLS parameters kept), for raw asyncpg connections."""
        return libpq_url(self.database_url)

    @property
    def kafka(self) -> KafkaConnection:
        """How every Kafka client of the service connects (shared.kafka's factories take it)."""
        password = self.kafka_sasl_password
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=password.get_secret_value() if password is not None else None,
            ssl_ca_file=self.kafka_ssl_ca_file,
            ssl_cert_file=self.kafka_ssl_cert_file,
            ssl_key_file=self.kafka_ssl_key_file,
        )


S = TypeVar("S", bound=BaseSettings)


def invalid_settings(exc: ValidationError, settings: type[BaseSettings]) -> list[str]:
    """One line per refused setting: its environment variable and why (never its value, which may be a secret)."""
    prefix = str(settings.model_config.get("env_prefix") or "")
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a rule across settings: its message names them
            lines.append(message)
            continue
        field = str(error["loc"][0])  # a field's name, or the variable itself for one read by its alias
        name = f"{prefix}{field}".upper() if field in settings.model_fields else field
        lines.append(f"invalid setting {name}: {message}")
    return lines


def settings_or_exit(settings: type[S], program: str) -> S:
    """The settings from the environment; when one is refused, each refusal on stderr and exit status 2, not a
    traceback."""
    try:
        return settings()
    except ValidationError as exc:
        for line in invalid_settings(exc, settings):
            print(f"{program}: {line}", file=sys.stderr)
        raise SystemExit(2) from None
