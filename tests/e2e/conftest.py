from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from support import BIN, NO_AUTH, Servers, ServiceProcess, Stack, Topics


@pytest.fixture(autouse=True)
def _service_processes_without_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The services (and `accord run`s) these tests start answer clients that send no token; auth tests turn it
    on (NO_AUTH)."""
    for name, value in NO_AUTH.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def stack_env(servers: Servers, database_url: str, topics: Topics) -> dict[str, str]:
    """Environment for service processes: this test's database, broker, topics and group."""
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap,
        "ACCORD_EVALUATOR_SESSION_TIMEOUT_MS": "3000",
        "ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS": "100",
        "ACCORD_EVALUATOR_RELAY_INTERVAL_MS": "100",
        **topics.env(),
    }


@pytest.fixture
async def launch(stack_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Callable[..., ServiceProcess]]:
    """Start a service process (stopped at the end of the test); its log goes to tmp_path."""
    started: list[ServiceProcess] = []

    def _launch(command: str, **env: str) -> ServiceProcess:
        svc = ServiceProcess(command, {**stack_env, **env}, log=tmp_path / f"{command}-{len(started)}.log")
        started.append(svc.start())
        return svc

    yield _launch
    for svc in reversed(started):
        svc.stop()


@pytest.fixture
def stack() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="accord-stack-"))
    data_dir.chmod(0o755)  # PostgreSQL runs as an unprivileged account when the tests run as root
    s = Stack(data_dir)
    try:
        yield s
    finally:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.send_signal(signal.SIGINT)
            s.proc.wait(timeout=120)
        # What a killed launcher left running (broker, PostgreSQL).
        subprocess.run(
            [str(BIN / "accord"), "stop", "--force"], env=s.env(), check=False, timeout=120, capture_output=True
        )
        shutil.rmtree(data_dir, ignore_errors=True)
