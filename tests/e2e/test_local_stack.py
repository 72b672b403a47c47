"""`accord run` keeps everything it answered 202 for: through Ctrl-C, a killed launcher and a PostgreSQL crash.

Each test runs the launcher as a real process on its own data dir and ports, posts measurements
with unique ids to ingest, and checks that the evaluator counted exactly the ones answered 202:
every such id among the stored ids, and the stored counts equal to their number. Requests that
failed (the stack was going down) are sent again with the same ids, which then count once.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
from support import Stack, wait_until

from accord.cli import GIVE_UP_EXITS, Launcher, Service, StackSettings, _GiveUp
from accord.localstack import free_port, process_alive

pytestmark = pytest.mark.slow

INDICATOR = "stack.availability"
BATCH = 10


@dataclass
class Sender:
    """Posts measurements with unique ids; remembers which were answered 202 and which were not."""

    stack: Stack
    accepted: set[str] = field(default_factory=set)
    failed: list[list[str]] = field(default_factory=list)
    sent: int = 0

    async def post(self, client: httpx.AsyncClient, ids: list[str]) -> bool:
        now = int(time.time())
        body = [{"id": i, "indicator": INDICATOR, "timestamp": now, "good": 1, "total": 1} for i in ids]
        try:
            answer = await client.post(f"{self.stack.url('INGEST')}/v1/measurements", json=body, timeout=10)
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 202:
            self.accepted.update(ids)
            return True
        self.failed.append(ids)
        return False

    async def stream(self, tag: str, stop: asyncio.Event) -> None:
        """Post batches until `stop` is set."""
        async with httpx.AsyncClient() as client:
            while not stop.is_set():
                ids = [f"{tag}-{self.sent + k}" for k in range(BATCH)]
                self.sent += BATCH
                if not await self.post(client, ids):
                    await asyncio.sleep(0.05)  # the stack is going down; do not spin

    async def batches(self, tag: str, count: int) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(count):
                ids = [f"{tag}-{self.sent + k}" for k in range(BATCH)]
                self.sent += BATCH
                assert await self.post(client, ids), f"ingest refused a batch; log {self.stack.log}"

    async def retry_failed(self) -> None:
        """Send every batch that was not answered 202 again, with the same ids."""
        failed, self.failed = self.failed, []
        async with httpx.AsyncClient() as client:
            for ids in failed:
                assert await self.post(client, ids), f"ingest refused a retried batch; log {self.stack.log}"


@pytest.fixture
def sender(stack: Stack) -> Sender:
    return Sender(stack)


async def _register(stack: Stack, sender: Sender) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{stack.url('API')}/v1/indicators", json={"key": INDICATOR, "kind": "ratio", "unit": "requests"}
        )
        assert answer.status_code == 201, answer.text

        async def known() -> bool:  # ingest learns of the indicator by NOTIFY
            probe = [{"id": "probe", "indicator": INDICATOR, "timestamp": int(time.time()), "good": 1, "total": 1}]
            return (await client.post(f"{stack.url('INGEST')}/v1/measurements", json=probe)).status_code == 202

        await wait_until(known, timeout=30, what="ingest to know the indicator")
        sender.accepted.add("probe")  # sent maybe more than once, with one id: it counts once


async def _stream_until(sender: Sender, tag: str, accepted: int) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """Start posting in the background; return once `accepted` measurements were answered 202."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.stream(tag, stop))
    await wait_until(lambda: len(sender.accepted) >= accepted or task.done(), timeout=60, what=f"{accepted} 202s")
    assert not task.done(), task
    return stop, task


async def _assert_counted_exactly(stack: Stack, sender: Sender) -> None:
    """The stored ids are exactly the ids answered 202, and the counts equal their number."""
    expected = sender.accepted
    conn = await asyncpg.connect(stack.database_url)
    try:

        async def counted() -> tuple[set[str], int]:
            ids = await conn.fetch("SELECT measurement_id FROM seen_measurements WHERE indicator_key = $1", INDICATOR)
            total = await conn.fetchval(
                "SELECT coalesce(sum(total), 0) FROM series_buckets WHERE indicator_key = $1", INDICATOR
            )
            return {r["measurement_id"] for r in ids}, int(total)

        async def exact() -> bool:
            ids, total = await counted()
            return ids == expected and total == len(sender.accepted)

        try:
            await wait_until(exact, timeout=60, what="the evaluator to count exactly the measurements answered 202")
        except AssertionError:
            ids, total = await counted()
            raise AssertionError(
                f"{len(sender.accepted)} answered 202, counted total {total}; missing {len(expected - ids)} "
                f"(e.g. {sorted(expected - ids)[:5]}), unexpected {sorted(ids - expected)[:5]}; log {stack.log}"
            ) from None
    finally:
        await conn.close()


def _seconds(pattern: str, text: str) -> float | None:
    found = re.findall(pattern, text)
    return float(found[-1]) if found else None


async def test_ctrl_c_mid_stream_drains_and_a_restart_counts_new_measurements(stack: Stack, sender: Sender) -> None:
    stack.extra_env["ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS"] = "1000"  # stored offsets lag: the drain must wait
    await stack.start()
    await _register(stack, sender)
    stop, task = await _stream_until(sender, "a", 300)
    assert stack.proc is not None
    stack.proc.send_signal(signal.SIGINT)
    assert await stack.wait_exit() == 0
    stop.set()
    await task
    first = stack.text()
    assert "ingest stopped" in first
    drained = _seconds(r"drained in ([\d.]+)s", first)
    assert drained is not None, first[-3000:]
    stopped = _seconds(r"stopped in ([\d.]+)s", first)
    waiting = re.findall(r"draining: (\d+) record", first)
    print(f"measured: Ctrl-C drain {drained:.1f}s ({waiting[0] if waiting else 0} records left), stopped in {stopped}s")

    await stack.start()  # a new, empty broker: the stored offsets must not skip its records
    assert "reset the evaluator's stored offsets" in stack.text()
    await sender.retry_failed()
    await sender.batches("a2", 20)
    await _assert_counted_exactly(stack, sender)


async def test_a_killed_launcher_leaves_the_broker_to_the_next_run(stack: Stack, sender: Sender) -> None:
    stack.extra_env["ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS"] = "1000"
    await stack.start()
    await _register(stack, sender)
    stop, task = await _stream_until(sender, "b", 300)
    assert stack.proc is not None
    stack.proc.send_signal(signal.SIGKILL)
    await stack.wait_exit()
    stop.set()
    await task

    await stack.start()
    text = stack.text()
    assert "taking over the broker" in text, text[-3000:]
    assert "reset the evaluator's stored offsets" not in text
    await sender.retry_failed()
    await sender.batches("b2", 10)
    await _assert_counted_exactly(stack, sender)


async def test_a_killed_postgres_is_restarted_and_the_stack_stays_up(stack: Stack, sender: Sender) -> None:
    await stack.start()
    await _register(stack, sender)
    services = {name: stack.children(f"accord-{name}") for name in ("ingest", "api")}
    assert all(len(pids) == 1 for pids in services.values()), services
    stop, task = await _stream_until(sender, "c", 200)
    postmaster = stack.postmaster_pid()
    assert postmaster is not None
    os.kill(postmaster, signal.SIGKILL)

    def restarted() -> bool:
        pid = stack.postmaster_pid()
        return pid is not None and pid != postmaster and process_alive(pid) and "PostgreSQL restarted" in stack.text()

    await wait_until(restarted, timeout=60, what="the launcher to restart PostgreSQL")
    posted = len(sender.accepted)
    await wait_until(lambda: len(sender.accepted) >= posted + 200, timeout=60, what="200 more 202s")
    stop.set()
    await task
    await sender.retry_failed()
    await _assert_counted_exactly(stack, sender)

    assert stack.proc is not None
    assert stack.proc.poll() is None, "the launcher must stay up through the outage"
    assert {name: stack.children(f"accord-{name}") for name in ("ingest", "api")} == services
    restart = _seconds(r"PostgreSQL restarted in ([\d.]+)s", stack.text())
    assert restart is not None
    print(f"measured: PostgreSQL restarted in {restart:.1f}s")
    stack.proc.send_signal(signal.SIGINT)
    assert await stack.wait_exit() == 0


def _quitter(launcher: Launcher) -> Service:
    """A "service" that exits at once: the venv's python with nothing on stdin."""
    svc = Service("python", dict(launcher.env), 0, name="quitter")
    svc.start()
    launcher.services = [svc]
    return svc


def _launcher(database_port: int, kafka_port: int) -> Launcher:
    launcher = Launcher(StackSettings())
    launcher.env = {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{database_port}/accord",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
    }
    return launcher


def _exited(svc: Service) -> None:
    assert svc.proc is not None
    svc.proc.wait(timeout=30)


def test_a_service_failing_fast_while_its_dependencies_are_up_is_given_up_on() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        launcher = _launcher(port, port)  # both "up": something listens
        svc = _quitter(launcher)
        for _ in range(GIVE_UP_EXITS):
            _exited(svc)
            launcher._tick()  # restarted at once
        _exited(svc)
        with pytest.raises(_GiveUp, match="quitter keeps exiting") as gave_up:
            launcher._tick()
        assert gave_up.value.service == "quitter"
        assert len(svc.failures) == GIVE_UP_EXITS + 1


def test_a_service_failing_while_a_dependency_is_down_is_restarted_with_growing_pauses_forever() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        up = server.getsockname()[1]
        launcher = _launcher(up, free_port())  # the broker is down: nothing listens on its port
        svc = _quitter(launcher)
        pauses = []
        for _ in range(3 * GIVE_UP_EXITS):
            _exited(svc)
            launcher._tick()
            assert svc.restart_at is not None, "a restart must be scheduled, not given up"
            pauses.append(round(svc.restart_at - time.monotonic()))
            svc.restart_at = 0  # due now: the next tick restarts it
            launcher._tick()
            assert svc.restart_at is None
        assert pauses[:6] == [1, 2, 4, 8, 10, 10]
        assert set(pauses[6:]) == {10}
        assert svc.failures == []
        svc.stop()
