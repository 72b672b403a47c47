"""Kafka TLS/SASL and PostgreSQL TLS settings: what the clients are given (no server needed)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.kafka import client_options
from shared.settings import CommonSettings, libpq_url, sqlalchemy_url, without_query

KAFKA_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_FILE",
    "KAFKA_SSL_CERT_FILE",
    "KAFKA_SSL_KEY_FILE",
    "DATABASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KAFKA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM), made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "client.crt", folder / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=accord-test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_kafka_is_plaintext_without_sasl_by_default() -> None:
    options = client_options(CommonSettings().kafka)
    assert options == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}
    assert client_options("broker:9092") == {"bootstrap_servers": "broker:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_over_tls_gives_aiokafka_a_verifying_context_and_credentials(
    monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9093,kafka-1:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "accord")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("KAFKA_SSL_CA_FILE", str(cert))
    monkeypatch.setenv("KAFKA_SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("KAFKA_SSL_KEY_FILE", str(key))
    settings = CommonSettings()
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in repr(settings.kafka)
    options = client_options(settings.kafka)
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "kafka-0:9093,kafka-1:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "accord",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "accord-test"),),)]


def test_tls_alone_uses_the_system_cas_without_sasl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    options = client_options(CommonSettings().kafka)
    assert set(options) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, "needs KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SASL_USERNAME": "accord"}, "need KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"KAFKA_SSL_CA_FILE": "/ca.pem"}, "need KAFKA_SECURITY_PROTOCOL=SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "/c.pem"}, "go together"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_incomplete_kafka_security_fails_at_start_naming_the_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        CommonSettings()


def test_database_url_keeps_its_tls_parameters_for_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://accord:pw@db.example:5432/accord?sslmode=verify-full&sslrootcert=/etc/pg/ca.crt"
    monkeypatch.setenv("DATABASE_URL", url)
    settings = CommonSettings()
    assert settings.database_url == url.replace("postgresql://", "postgresql+asyncpg://")
    assert settings.asyncpg_dsn == url  # raw asyncpg (notify, evaluator pool, registry) reads it as libpq does
    assert libpq_url(settings.database_url) == url  # shared.db's engine connects with it too
    assert without_query(settings.database_url) == "postgresql+asyncpg://accord:pw@db.example:5432/accord"
    assert sqlalchemy_url("postgres://u@h/d?sslmode=require") == "postgresql+asyncpg://u@h/d?sslmode=require"
    with pytest.raises(ValueError, match="sslmode must be one of"):
        sqlalchemy_url("postgresql://u@h/d?sslmode=on")
