"""`accord`: the local stack and operator commands.

accord run            start PostgreSQL, the broker, migrations, topics and the three services
accord migrate        apply database migrations (alembic upgrade head)
accord topics         create the Kafka topics with the configured partition counts
accord events tail    print breach events from the breach topic as they arrive
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from accord.localstack import (
    Broker,
    LocalStackError,
    Postgres,
    _reachable_by_others,
    _running_as_root,
    die_with_parent,
    stop_process,
)
from shared.kafka import ensure_topics
from shared.logs import configure_logging
from shared.settings import CommonSettings, sqlalchemy_url

log = logging.getLogger("accord")
PROJECT = Path(__file__).resolve().parents[1]


class StackSettings(CommonSettings):
    """Settings of `accord run` and the operator commands (prefix ACCORD_)."""

    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=PROJECT / ".accord", description="Where the local PostgreSQL keeps its data.")
    pg_port: int = Field(default=54329, description="Port of the local PostgreSQL (when DATABASE_URL is unset).")
    kafka_port: int = Field(
        default=19092, description="Port of the local broker (when KAFKA_BOOTSTRAP_SERVERS is unset)."
    )
    measurements_partitions: int = Field(default=8, gt=0, description="Partitions of the measurements topic.")
    breaches_partitions: int = Field(default=4, gt=0, description="Partitions of the breach topic.")
    api_port: int = Field(default=8000, description="Port of the api service.")
    ingest_port: int = Field(default=8001, description="Port of the ingest service.")
    evaluator_port: int = Field(default=8002, description="Port of the evaluator's health and metrics.")


def migrate(database_url: str) -> None:
    """Apply every migration (alembic upgrade head) to `database_url`."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT / "alembic.ini"))
    config.attributes["database_url"] = sqlalchemy_url(database_url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def create_topics(settings: StackSettings) -> None:
    created = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            {
                settings.measurements_topic: settings.measurements_partitions,
                settings.breaches_topic: settings.breaches_partitions,
            },
        )
    )
    for name in created:
        log.info("created topic %s", name)


@dataclass
class Service:
    name: str
    command: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / self.command)],
            env=self.env,
            stdin=subprocess.DEVNULL,
            # Own session: Ctrl-C reaches only the supervisor, which stops services in order;
            # and if the supervisor is killed outright, Linux stops them (die_with_parent).
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    def stop(self, timeout: float = 15) -> None:
        stop_process(self.proc, timeout, self.name)


def _wait_ready(services: list[Service], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        for svc in list(pending):
            if svc.proc is not None and svc.proc.poll() is not None:
                raise LocalStackError(f"{svc.name} exited with code {svc.proc.returncode} while starting")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{svc.port}/readyz", timeout=1).status_code == 200:
                    pending.remove(svc)
        if pending and time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            raise LocalStackError(f"not ready after {timeout:.0f}s: {names}")
        time.sleep(0.1)


class _Stop(Exception):
    pass


def _claim(pidfile: Path) -> None:
    """Refuse to start a second stack on the same data; take over from one that died."""
    if pidfile.exists():
        text = pidfile.read_text().strip()
        if text.isdigit() and Path(f"/proc/{text}").exists() and "accord" in Path(f"/proc/{text}/cmdline").read_text():
            raise LocalStackError(
                f"another `accord run` (pid {text}) is using {pidfile.parent}; stop it first (Ctrl-C in its terminal)"
            )
        log.info("the stack that wrote %s is gone; taking over its data", pidfile)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{os.getpid()}\n")


def run_stack(settings: StackSettings) -> int:
    """Start everything, print the URLs, supervise until Ctrl-C, then stop everything."""
    started = time.monotonic()
    env = dict(os.environ)
    pg: Postgres | None = None
    broker: Broker | None = None
    services: list[Service] = []

    def _signal(signum: int, _frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    pidfile = settings.data_dir / "accord-run.pid"
    parent = os.getppid()
    try:
        _claim(pidfile)
        if "DATABASE_URL" not in os.environ:
            data_dir = settings.data_dir
            if _running_as_root() and not _reachable_by_others(data_dir):
                data_dir = Path("/var/tmp") / f"accord-{hashlib.sha256(str(PROJECT).encode()).hexdigest()[:12]}"
                log.info(
                    "%s is out of reach of the account PostgreSQL runs as; data goes to %s", settings.data_dir, data_dir
                )
            pg = Postgres(data_dir / "postgres", settings.pg_port)
            pg.start()
            pg.create_database("accord")
            env["DATABASE_URL"] = pg.url()
            log.info("PostgreSQL listening on 127.0.0.1:%d, data in %s", settings.pg_port, pg.data)
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            broker = Broker(settings.kafka_port, settings.data_dir / "tansu.log")
            broker.start()
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            log.info("Kafka broker (tansu, in memory) listening on %s", broker.bootstrap)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")})
        resolved = StackSettings()
        migrate(resolved.database_url)
        log.info("migrations applied")
        create_topics(resolved)
        services = [
            Service("api", "accord-api", settings.api_port, {**env, "ACCORD_API_PORT": str(settings.api_port)}),
            Service(
                "ingest",
                "accord-ingest",
                settings.ingest_port,
                {**env, "ACCORD_INGEST_PORT": str(settings.ingest_port)},
            ),
            Service(
                "evaluator",
                "accord-evaluator",
                settings.evaluator_port,
                {**env, "ACCORD_EVALUATOR_PORT": str(settings.evaluator_port)},
            ),
        ]
        for svc in services:
            svc.start()
        _wait_ready(services, timeout=60)
        print(
            f"\nAccord is ready in {time.monotonic() - started:.1f}s\n"
            f"  api        http://127.0.0.1:{settings.api_port}   (docs: http://127.0.0.1:{settings.api_port}/docs)\n"
            f"  ingest     http://127.0.0.1:{settings.ingest_port}/v1/measurements\n"
            f"  evaluator  http://127.0.0.1:{settings.evaluator_port}/metrics\n"
            f"  postgres   {env['DATABASE_URL']}\n"
            f"  kafka      {env['KAFKA_BOOTSTRAP_SERVERS']}  topics {resolved.measurements_topic}, "
            f"{resolved.breaches_topic}\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while True:
            if os.getppid() != parent:
                log.info("the process that started `accord run` (e.g. make) is gone: stopping")
                return 0
            for svc in services:
                assert svc.proc is not None
                if svc.proc.poll() is not None:
                    svc.restarts = [t for t in svc.restarts if t > time.monotonic() - 60] + [time.monotonic()]
                    if len(svc.restarts) > 5:
                        log.error("%s keeps exiting (code %d); stopping the stack", svc.name, svc.proc.returncode)
                        return 1
                    log.warning("%s exited with code %d; restarting it", svc.name, svc.proc.returncode)
                    svc.start()
            time.sleep(0.5)
    except _Stop as stop:
        log.info("%s received: stopping", stop)
        return 0
    except LocalStackError as exc:
        log.error("%s", exc)
        return 1
    except Exception as exc:  # start-up failed (migration, topics, ...): say what, then clean up below
        log.error("the stack could not start: %s: %s", type(exc).__name__, exc)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for svc in reversed(services):
            svc.stop()
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()
        if pidfile.exists() and pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink()
        log.info("stopped")


async def tail_events(settings: CommonSettings, limit: int | None) -> None:
    """Print breach events (one CloudEvent JSON per line) from the start of the topic, then as they arrive.

    Consumers dedupe by the CloudEvent `id` (DESIGN §4).
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.breaches_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    printed = 0
    try:
        async for record in consumer:
            sys.stdout.write(record.value.decode() + "\n")
            sys.stdout.flush()
            printed += 1
            if limit is not None and printed >= limit:
                return
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="accord", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole stack locally")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("topics", help="create the Kafka topics")
    events = sub.add_parser("events", help="breach events")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    tail = events_sub.add_parser("tail", help="print breach events as they arrive (JSON lines)")
    tail.add_argument("-n", "--limit", type=int, default=None, help="stop after this many events")
    args = parser.parse_args(argv)

    settings = StackSettings()
    configure_logging("accord", settings.log_level)
    if args.command == "run":
        return run_stack(settings)
    if args.command == "migrate":
        migrate(settings.database_url)
        return 0
    if args.command == "topics":
        create_topics(settings)
        return 0
    if args.command == "events":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(tail_events(settings, args.limit))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
