"""`accord topics` creates the topics with the partitions and replication factor it is given, and
leaves existing ones as they are (against the real broker)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

from aiokafka import AIOKafkaConsumer
from support import BIN, Servers


async def accord(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [str(BIN / "accord"), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_topics_takes_partitions_and_replication_factor(servers: Servers) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=servers.bootstrap,
        DATABASE_URL=servers.admin_url,
        ACCORD_MEASUREMENTS_TOPIC=f"m-{tag}",
        ACCORD_BREACHES_TOPIC=f"b-{tag}",
    )
    command = ["topics", "--measurements-partitions", "3", "--breaches-partitions", "2"]
    done = await accord([*command, "--replication-factor", "1"], env)
    assert done.returncode == 0, done.stderr
    assert f"created topic m-{tag}: 3 partitions, replication factor 1" in done.stderr
    again = await accord(command, env)
    assert again.returncode == 0, again.stderr
    assert f"topic m-{tag} exists already: left as it is" in again.stderr
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.bootstrap)
    await consumer.start()
    try:
        await consumer.topics()
        assert consumer.partitions_for_topic(f"m-{tag}") == {0, 1, 2}
        assert consumer.partitions_for_topic(f"b-{tag}") == {0, 1}
    finally:
        await consumer.stop()
    bad = await accord([*command, "--replication-factor", "0"], env)
    assert (bad.returncode, bad.stderr.strip()) == (
        2,
        "accord topics: partitions and replication factor must be at least 1",
    )
