"""`accord`'s operator commands find the local stack as `make run` started it (ACCORD_PG_PORT,
ACCORD_KAFKA_PORT) and fail with one sentence naming the server, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from accord.cli import StackSettings, locate_local_stack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nothing_running(tmp_path: Path) -> dict[str, str]:
    """The environment of a second stack on non-default ports, with nothing listening on them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCORD_", "KAFKA_", "DATABASE_URL", "PG"))}
    env.update(
        ACCORD_PG_PORT=str(_free_port()), ACCORD_KAFKA_PORT=str(_free_port()), ACCORD_DATA_DIR=str(tmp_path / "data")
    )
    return env


@pytest.mark.parametrize(
    ("command", "server"),
    [(["events", "tail"], "Kafka"), (["topics"], "Kafka"), (["migrate"], "PostgreSQL")],
)
def test_a_command_without_its_server_says_so_in_one_sentence(
    nothing_running: dict[str, str], command: list[str], server: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", *command],
        env=nothing_running,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    port = nothing_running["ACCORD_KAFKA_PORT" if server == "Kafka" else "ACCORD_PG_PORT"]
    assert lines[0].startswith(f"accord {' '.join(command)}: cannot reach {server} at 127.0.0.1:{port}")
    assert "is `make run` running?" in lines[0]


def test_an_incomplete_setting_is_one_sentence(nothing_running: dict[str, str]) -> None:
    env = {**nothing_running, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
    done = subprocess.run(
        [sys.executable, "-m", "accord.cli", "topics"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "accord topics: KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and "
        "KAFKA_SASL_PASSWORD"
    )


def test_the_local_stack_is_where_make_run_puts_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCORD_PG_PORT", "55432")
    monkeypatch.setenv("ACCORD_KAFKA_PORT", "29092")
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path))
    located = locate_local_stack(StackSettings())
    assert located.asyncpg_dsn == "postgresql://postgres@127.0.0.1:55432/accord"
    assert located.kafka.bootstrap_servers == "127.0.0.1:29092"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/x")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    located = locate_local_stack(StackSettings())
    assert located.asyncpg_dsn == "postgresql://u@db:5432/x"
    assert located.kafka.bootstrap_servers == "k:9092"
