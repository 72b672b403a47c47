"""Kafka clients configured the one way Accord uses them (standard Kafka features only).

Producers wait for every in-sync replica (acks=all). Idempotent and transactional
producers stay off: exactly-once comes from Postgres (docs/design.md §5.3). Consumers never
auto-commit: offsets are stored in Postgres with the state they produced.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def make_producer(
    bootstrap: str,
    *,
    client_id: str,
    request_timeout_ms: int = 10_000,
    linger_ms: int = 2,
    max_batch_size: int = 16_384,
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        request_timeout_ms=request_timeout_ms,
        max_request_size=8 * 1024 * 1024,
    )


def make_consumer(
    bootstrap: str,
    *,
    group_id: str,
    client_id: str,
    session_timeout_ms: int = 10_000,
    fetch_max_wait_ms: int = 500,
    group_instance_id: str | None = None,
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
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


async def ensure_topics(bootstrap: str, topics: dict[str, int], replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet with the given partition counts; returns the created ones."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="accord-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication) for name, partitions in topics.items() if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
