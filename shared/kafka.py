"""Kafka clients configured the one way Accord uses them (standard Kafka features only).

Producers wait for every in-sync replica (acks=all). Idempotent and transactional
producers stay off: exactly-once comes from Postgres (docs/design.md §5.3). Consumers never
auto-commit: offsets are stored in Postgres with the state they produced.

Every factory takes a `KafkaConnection` (`settings.kafka`: bootstrap servers, TLS, SASL) or, for
tests and the local broker, a plain bootstrap string (plaintext).
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context

from shared.settings import KafkaConnection


def client_options(connection: KafkaConnection | str) -> dict[str, Any]:
    """aiokafka's connection arguments (bootstrap, security protocol, TLS context, SASL) for `connection`.

    TLS verifies the brokers' certificates and host names against KAFKA_SSL_CA_FILE (else the
    system's CAs); a client certificate is presented when one is configured.
    """
    if isinstance(connection, str):
        connection = KafkaConnection(connection)
    options: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap_servers,
        "security_protocol": connection.security_protocol,
    }
    if connection.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=connection.ssl_ca_file, certfile=connection.ssl_cert_file, keyfile=connection.ssl_key_file
        )
    if connection.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        options["sasl_mechanism"] = connection.sasl_mechanism
        options["sasl_plain_username"] = connection.sasl_username
        options["sasl_plain_password"] = connection.sasl_password
    return options


def make_producer(
    connection: KafkaConnection | str,
    *,
    client_id: str,
    request_timeout_ms: int = 10_000,
    linger_ms: int = 2,
    max_batch_size: int = 16_384,
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(connection),
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        request_timeout_ms=request_timeout_ms,
        max_request_size=8 * 1024 * 1024,
    )


def make_consumer(
    connection: KafkaConnection | str,
    *,
    group_id: str,
    client_id: str,
    session_timeout_ms: int = 10_000,
    fetch_max_wait_ms: int = 500,
    group_instance_id: str | None = None,
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_options(connection),
        group_id=group_id,
        group_instance_id=group_instance_id,  # static membership (KIP-345) when set
        client_id=client_id,
        enable_auto_commit=False,
        # Positions come from Postgres: the owner seeks every assigned partition itself, and a stored
        # offset the log no longer has is an error the owner handles (it must know, to re-base).
        auto_offset_reset="none",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 5),
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=fetch_max_wait_ms,
        fetch_max_bytes=32 * 1024 * 1024,
    )


async def ensure_topics(connection: KafkaConnection | str, topics: dict[str, int], replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet with the given partition counts and replication factor;
    returns the created ones (existing topics are left as they are)."""
    admin = AIOKafkaAdminClient(**client_options(connection), client_id="accord-admin")
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication) for name, partitions in topics.items() if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
