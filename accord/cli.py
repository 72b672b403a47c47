"""`accord`: the local stack and operator commands.

accord run            start PostgreSQL, the broker, migrations, topics and the three services;
                      supervise them (restart what dies, PostgreSQL included) until Ctrl-C.
                      Ctrl-C stops ingest, waits (ACCORD_DRAIN_TIMEOUT_SECONDS) until the evaluator
                      has applied every record the in-memory broker holds, then stops the rest;
                      a second Ctrl-C stops at once. A broker left running by a killed
                      `accord run` is taken over with its records by the next one.
accord stop           stop the `accord run` of this data dir (as Ctrl-C does), or the broker and
                      PostgreSQL a killed one left running (a broker holding records the
                      evaluator has not applied only with --force; `accord run` would apply them)
accord migrate        apply database migrations (alembic upgrade head)
accord topics         create the Kafka topics with the configured partitions and replication factor
accord events tail    print breach events from the breach topic as they arrive
accord tokens         create, list and revoke bearer tokens, straight in the database (accord/tokens.py)
accord openslo validate FILE...  check OpenSLO files as the api's import would, offline (accord/openslo_cli.py)

Every command finds the local stack as `make run` started it: DATABASE_URL and
KAFKA_BOOTSTRAP_SERVERS when set, else the local PostgreSQL on ACCORD_PG_PORT and the local
broker of ACCORD_DATA_DIR (the port it was started on) or ACCORD_KAFKA_PORT. A server that
does not answer is reported in one sentence (ACCORD_LOG_LEVEL=DEBUG adds the traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import asyncpg
from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from accord import openslo_cli
from accord import tokens as token_commands
from accord.localstack import (
    PG_USER,
    Broker,
    LocalStackError,
    Postgres,
    ServiceProcess,
    _reachable_by_others,
    _running_as_root,
    log_ends,
    port_open,
    process_alive,
    wait_ready,
)
from services.evaluator.settings import EvaluatorSettings
from shared.kafka import client_options, ensure_topics
from shared.logs import configure_logging
from shared.settings import CommonSettings, invalid_settings, sqlalchemy_url

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
    topic_replication_factor: int = Field(
        default=1, gt=0, description="Replication factor of the topics `accord topics` creates."
    )
    api_port: int = Field(default=8000, description="Port of the api service.")
    ingest_port: int = Field(default=8001, description="Port of the ingest service.")
    evaluator_port: int = Field(default=8002, description="Port of the evaluator's health and metrics.")
    drain_timeout_seconds: float = Field(
        default=30,
        ge=0,
        description="On Ctrl-C, longest wait for the evaluator to apply what the local broker holds before it stops.",
    )


def migrate(database_url: str) -> None:
    """Apply every migration (alembic upgrade head) to `database_url`."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(Path(__file__).with_name("alembic.ini")))  # package data: works from a wheel too
    config.attributes["database_url"] = sqlalchemy_url(database_url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


def create_topics(settings: StackSettings) -> None:
    """Create the two topics unless they exist, with the settings' partitions and replication factor."""
    partitions = {
        settings.measurements_topic: settings.measurements_partitions,
        settings.breaches_topic: settings.breaches_partitions,
    }
    created = asyncio.run(ensure_topics(settings.kafka, partitions, settings.topic_replication_factor))
    for name in partitions:
        if name in created:
            log.info(
                "created topic %s: %d partitions, replication factor %d",
                name,
                partitions[name],
                settings.topic_replication_factor,
            )
        else:
            log.info("topic %s exists already: left as it is", name)


# A service that exits while PostgreSQL or the broker is down is restarted after a growing
# pause and never given up on; one that exits this often while both were up all its life is.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 10.0
GIVE_UP_EXITS = 5
GIVE_UP_SECONDS = 60.0


@dataclass
class Service(ServiceProcess):
    """A service under the launcher: output to the launcher's, and restarted with backoff when it exits."""

    restart_at: float | None = None  # a restart is due at this instant (backoff)
    backoff: float = BACKOFF_FIRST_SECONDS
    failures: list[float] = field(default_factory=list)  # exits while its dependencies were up

    def start(self) -> Self:
        super().start()
        self.restart_at = None
        return self

    def stop(self, timeout: float = 15) -> None:
        self.restart_at = None
        super().stop(timeout)


class _Stop(Exception):
    pass


class _GiveUp(Exception):
    """The stack cannot go on (a service fails fast while its dependencies are up, the broker died)."""

    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


def _launcher_pid(pidfile: Path) -> int | None:
    """The pid of the live `accord run` that wrote `pidfile`, if any."""
    with contextlib.suppress(OSError):
        text = pidfile.read_text().strip()
        if text.isdigit() and process_alive(int(text)) and "accord" in Path(f"/proc/{text}/cmdline").read_text():
            return int(text)
    return None


def _claim(pidfile: Path) -> None:
    """Refuse to start a second stack on the same data; take over from one that died."""
    if (pid := _launcher_pid(pidfile)) is not None:
        raise LocalStackError(
            f"another `accord run` (pid {pid}) is using {pidfile.parent}; stop it first "
            "(Ctrl-C in its terminal, or `accord stop`)"
        )
    if pidfile.exists():
        log.info("the stack that wrote %s is gone; taking over its data", pidfile)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{os.getpid()}\n")


def _postgres(settings: StackSettings) -> Postgres:
    """The local PostgreSQL of `settings.data_dir` (elsewhere when root's unprivileged account cannot reach it)."""
    data_dir = settings.data_dir
    if _running_as_root() and not _reachable_by_others(data_dir):
        data_dir = Path("/var/tmp") / f"accord-{hashlib.sha256(str(PROJECT).encode()).hexdigest()[:12]}"
        log.info("%s is out of reach of the account PostgreSQL runs as; data goes to %s", settings.data_dir, data_dir)
    return Postgres(data_dir / "postgres", settings.pg_port)


def _broker_files(settings: StackSettings) -> tuple[Path, Path]:
    """The local broker's state file (pid, port, start time) and log file."""
    return settings.data_dir / "broker.json", settings.data_dir / "tansu.log"


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urlsplit(url if "://" in url else f"//{url}")
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


async def _stored_offsets(dsn: str, group: str, topic: str) -> dict[int, int]:
    conn = await asyncpg.connect(dsn, timeout=2)
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2", group, topic
        )
    finally:
        await conn.close(timeout=2)
    return {r["partition"]: r["next_offset"] for r in rows}


async def _forget_offsets(dsn: str, topic: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        done = await conn.execute("DELETE FROM consumer_offsets WHERE topic = $1", topic)
    finally:
        await conn.close(timeout=2)
    return int(done.split()[-1])


class Launcher:
    """`accord run`: start everything, supervise it, and on Ctrl-C stop it without losing a 202.

    The local broker keeps records in memory only, so the launcher guards them: it outlives
    a killed launcher (and is adopted by the next one), Ctrl-C waits for the evaluator to
    apply what it holds before stopping it, and a failing stack leaves it running rather
    than lose what the evaluator has not applied yet.
    """

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.resolved = settings
        self.env = dict(os.environ)
        self.pg: Postgres | None = None
        self.broker: Broker | None = None
        self.services: list[Service] = []
        self.pidfile = settings.data_dir / "accord-run.pid"
        self.broker_state, self.broker_log = _broker_files(settings)
        self.stops = 0  # SIGINT / SIGTERM received
        self.interruptible = True  # while starting, a signal aborts at once; later it is a request
        self.deps_down_at = -math.inf  # last instant PostgreSQL or the broker was seen down
        self.pg_retry_at = 0.0
        self.pg_backoff = BACKOFF_FIRST_SECONDS
        self.evaluator_group = "accord-evaluator"

    def _signal(self, signum: int, _frame: object) -> None:
        self.stops += 1
        if self.interruptible:
            raise _Stop(signal.Signals(signum).name)
        if self.stops > 1:
            log.warning("%s received again", signal.Signals(signum).name)

    def run(self) -> int:
        started = time.monotonic()
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGTERM, self._signal)
        code, asked = 0, True
        gave_up: _GiveUp | None = None
        try:
            _claim(self.pidfile)
            self._start()
            self._print_ready(started)
            self._print_admin_token()
            self.interruptible = False
            self._supervise()
        except _Stop as stop:
            log.info("%s received: stopping (ingest first, then the rest once the evaluator is done)", stop)
        except _GiveUp as exc:
            log.error("%s; stopping the stack", exc)
            code, asked, gave_up = 1, False, exc
        except LocalStackError as exc:
            log.error("%s", exc)
            code, asked = 1, False
        except Exception as exc:  # start-up failed (migration, topics, ...): say what, then clean up below
            log.error("the stack could not start: %s: %s", type(exc).__name__, exc)
            code, asked = 1, False
        finally:
            self.interruptible = False
            self._shutdown(asked, evaluator_failed=gave_up is not None and gave_up.service == "evaluator")
        return code

    # start-up

    def _start(self) -> None:
        if "DATABASE_URL" not in os.environ:
            self.pg = _postgres(self.settings)
            self.pg.start()
            self.pg.create_database("accord")
            self.env["DATABASE_URL"] = self.pg.url()
            log.info("PostgreSQL listening on 127.0.0.1:%d, data in %s", self.settings.pg_port, self.pg.data)
        fresh_log = False
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            self.broker, fresh_log = self._adopt_or_start_broker()
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap
        elif Broker.recorded(self.broker_state, self.broker_log) is not None:
            log.warning("a local broker left running by an earlier `accord run` is ignored: `accord stop` stops it")
        os.environ.update({k: self.env[k] for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")})
        self.resolved = resolved = StackSettings()
        self.evaluator_group = EvaluatorSettings().group_id
        migrate(resolved.database_url)
        log.info("migrations applied")
        self.admin_token = token_commands.local_admin_token(resolved.database_url, self.settings.data_dir)
        if self.broker is not None and fresh_log:
            self._forget_offsets()
        create_topics(resolved)
        settings = self.settings
        self.services = [
            Service("accord-api", self.env, settings.api_port, name="api"),
            Service("accord-ingest", self.env, settings.ingest_port, name="ingest"),
            Service("accord-evaluator", self.env, settings.evaluator_port, name="evaluator"),
        ]
        for svc in self.services:
            svc.start()
        wait_ready(self.services, timeout=60)

    def _adopt_or_start_broker(self) -> tuple[Broker, bool]:
        """The broker an earlier run left running (its log kept), else a new one; and whether its log is new."""
        found = Broker.recorded(self.broker_state, self.broker_log)
        if found is not None:
            broker, notes = found
            if broker.port != self.settings.kafka_port:
                raise LocalStackError(
                    f"the broker an earlier `accord run` left running (pid {broker.pid}) listens on port "
                    f"{broker.port}, not {self.settings.kafka_port}: set ACCORD_KAFKA_PORT={broker.port} to take "
                    "it over with the records it holds, or run `accord stop` to stop it (losing the records the "
                    "evaluator has not applied)"
                )
            log.info(
                "taking over the broker an earlier `accord run` left running (pid %s, %s, started %s): "
                "the records it holds are kept",
                broker.pid,
                broker.bootstrap,
                notes.get("started_at"),
            )
            return broker, notes.get("offsets_forgotten") is not True
        self.broker_state.unlink(missing_ok=True)
        broker = Broker(self.settings.kafka_port, self.broker_log, outlive_parent=True)
        broker.start()
        broker.record(self.broker_state, offsets_forgotten=False)
        log.info("Kafka broker (tansu, in memory) listening on %s (pid %s)", broker.bootstrap, broker.pid)
        return broker, True

    def _forget_offsets(self) -> None:
        """A new broker's log starts empty: offsets stored for the old log would skip new records silently."""
        assert self.broker is not None
        topic = self.resolved.measurements_topic
        count = asyncio.run(_forget_offsets(self.resolved.asyncpg_dsn, topic))
        if count:
            log.info(
                "the broker is new and its log empty: reset the evaluator's stored offsets of %d partition(s) of %s, "
                "which named positions in the previous broker's log (the counts stay; the evaluator reads the new "
                "log from its beginning)",
                count,
                topic,
            )
        self.broker.record(self.broker_state, offsets_forgotten=True)

    def _print_ready(self, started: float) -> None:
        s, resolved = self.settings, self.resolved
        print(
            f"\nAccord is ready in {time.monotonic() - started:.1f}s\n"
            f"  api        http://127.0.0.1:{s.api_port}   (docs: http://127.0.0.1:{s.api_port}/docs)\n"
            f"  ingest     http://127.0.0.1:{s.ingest_port}/v1/measurements\n"
            f"  evaluator  http://127.0.0.1:{s.evaluator_port}/metrics\n"
            f"  postgres   {self.env['DATABASE_URL']}\n"
            f"  kafka      {self.env['KAFKA_BOOTSTRAP_SERVERS']}  topics {resolved.measurements_topic}, "
            f"{resolved.breaches_topic}\n"
            "Press Ctrl-C to stop everything (twice to stop without waiting for the evaluator).\n",
            flush=True,
        )

    def _print_admin_token(self) -> None:
        """The local admin token (issue 12): kept in the data folder, printed at every start."""
        if getattr(self, "admin_token", None):
            path = self.settings.data_dir / token_commands.LOCAL_ADMIN_FILE
            print(
                f"admin token: {self.admin_token}\n  (kept in {path}; send it as Authorization: Bearer)\n", flush=True
            )

    # supervision

    def _supervise(self) -> None:
        parent = os.getppid()
        while self.stops == 0:
            if os.getppid() != parent:
                log.info("the process that started `accord run` (e.g. make) is gone: stopping")
                return
            self._tick()
            time.sleep(0.5)
        log.info("stop requested: stopping (ingest first, then the rest once the evaluator is done)")

    def _tick(self) -> None:
        """Restart what died: PostgreSQL at once, a service at once or, while a dependency is down, with backoff."""
        self._check_dependencies()
        now = time.monotonic()
        for svc in self.services:
            if svc.restart_at is not None:
                if now >= svc.restart_at:
                    log.info("restarting %s", svc.name)
                    svc.start()
                continue
            assert svc.proc is not None
            code = svc.proc.poll()
            if code is None:
                continue
            if now - svc.started_at > 2 * BACKOFF_MAX_SECONDS:
                svc.backoff = BACKOFF_FIRST_SECONDS
            if self.deps_down_at < svc.started_at:  # its dependencies were up all its life
                svc.failures = [t for t in svc.failures if t > now - GIVE_UP_SECONDS] + [now]
                if len(svc.failures) > GIVE_UP_EXITS:
                    raise _GiveUp(
                        f"{svc.name} keeps exiting (code {code}, {len(svc.failures)} times within "
                        f"{GIVE_UP_SECONDS:.0f}s) while PostgreSQL and the broker are up",
                        svc.name,
                    )
                log.warning("%s exited with code %d; restarting it", svc.name, code)
                svc.start()
            else:
                log.warning(
                    "%s exited with code %d while PostgreSQL or the broker was down; restarting it in %.0fs",
                    svc.name,
                    code,
                    svc.backoff,
                )
                svc.restart_at = now + svc.backoff
                svc.backoff = min(BACKOFF_MAX_SECONDS, svc.backoff * 2)

    def _check_dependencies(self) -> None:
        if self.pg is not None:
            if not self.pg.running():
                self.deps_down_at = time.monotonic()
                self._restart_postgres()
                self.deps_down_at = time.monotonic()
        elif not port_open(*_host_port(self.env["DATABASE_URL"], 5432)):
            self.deps_down_at = time.monotonic()
        if self.broker is not None:
            if not self.broker.alive():
                raise _GiveUp(
                    f"the broker (pid {self.broker.pid}) exited: the records it held are gone; `make run` starts "
                    "a new one"
                )
        elif not port_open(*_host_port(self.env["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0], 9092)):
            self.deps_down_at = time.monotonic()

    def _restart_postgres(self) -> None:
        assert self.pg is not None
        now = time.monotonic()
        if now < self.pg_retry_at:
            return
        log.warning("PostgreSQL (pid %s) is gone; restarting it", self.pg.postmaster_pid())
        try:
            self.pg.start()
        except LocalStackError as exc:
            log.error("PostgreSQL did not start (%s); trying again in %.0fs", exc, self.pg_backoff)
            self.pg_retry_at = time.monotonic() + self.pg_backoff
            self.pg_backoff = min(BACKOFF_MAX_SECONDS, self.pg_backoff * 2)
            return
        self.pg_retry_at, self.pg_backoff = 0.0, BACKOFF_FIRST_SECONDS
        log.info("PostgreSQL restarted in %.1fs (pid %s)", time.monotonic() - now, self.pg.postmaster_pid())

    # shutdown

    def _shutdown(self, asked: bool, evaluator_failed: bool) -> None:
        """Ingest first (no new 202s), then wait for the evaluator to apply what the broker holds, then the rest.

        `asked`: the user asked to stop (Ctrl-C, SIGTERM). The broker is left running while it holds
        records the evaluator has not applied (the drain timed out, or a failure), for the next run to
        take over; only a second Ctrl-C (the user chose to lose them) stops it regardless.
        """
        started = time.monotonic()
        ingest = next((s for s in self.services if s.name == "ingest"), None)
        if ingest is not None:
            ingest.stop()
            self.services.remove(ingest)
            log.info("ingest stopped: no new measurements are accepted")
        left: int | None = 0
        if self.broker is not None and self.broker.alive():
            evaluating = any(s.name == "evaluator" for s in self.services) and not evaluator_failed
            left = self._drain(wait=evaluating)
        for svc in reversed(self.services):
            svc.stop()
        if self.broker is not None:
            if left != 0 and not (asked and self.stops >= 2):
                log.warning(
                    "the broker (pid %s, %s) is left running: it holds %s record(s) the evaluator has not "
                    "applied; the next `make run` takes it over and applies them (`accord stop` stops it, "
                    "losing them)",
                    self.broker.pid,
                    self.broker.bootstrap,
                    "some" if left is None else left,
                )
            else:
                self.broker.stop()
                self.broker_state.unlink(missing_ok=True)
        if self.pg is not None:
            self.pg.stop()
        if self.pidfile.exists() and self.pidfile.read_text().strip() == str(os.getpid()):
            self.pidfile.unlink()
        log.info("stopped in %.1fs", time.monotonic() - started)

    def _drain(self, wait: bool) -> int | None:
        """Wait (bounded) until the evaluator's stored offsets reach the end of every measurements partition.

        Returns how many records it has not applied (None when that cannot be told). The
        launcher keeps supervising meanwhile: a dead PostgreSQL or evaluator is restarted.
        """
        assert self.broker is not None
        topic = self.resolved.measurements_topic
        started = time.monotonic()
        deadline = started + (self.settings.drain_timeout_seconds if wait else 0)
        stored = self._read_offsets()
        try:
            ends = asyncio.run(asyncio.wait_for(log_ends(self.broker.bootstrap, topic, stored or {}), 30))
        except Exception as exc:
            log.warning("could not read the ends of %s (%s: %s)", topic, type(exc).__name__, exc)
            return None
        reported = 0.0
        while True:
            left = sum(max(0, end - (stored or {}).get(p, 0)) for p, end in ends.items())
            if stored is not None and left == 0:
                # Ingest is stopped; still, read past the ends once more before calling it done.
                with contextlib.suppress(Exception):
                    newer = asyncio.run(asyncio.wait_for(log_ends(self.broker.bootstrap, topic, stored, 300), 30))
                    if newer != ends:
                        ends = newer
                        continue
                if wait:
                    took = time.monotonic() - started
                    log.info("drained in %.1fs: the evaluator applied every record the broker held", took)
                return 0
            now = time.monotonic()
            if not wait:
                return left if stored is not None else None
            if self.stops >= 2:
                log.warning(
                    "not waiting any longer: %s record(s) the evaluator has not applied are lost with the broker",
                    left if stored is not None else f"up to {left}",
                )
                return left
            if now >= deadline:
                log.warning(
                    "the evaluator did not apply everything within ACCORD_DRAIN_TIMEOUT_SECONDS=%.0f: %s record(s) "
                    "are not applied yet",
                    self.settings.drain_timeout_seconds,
                    left if stored is not None else f"up to {left}",
                )
                return left
            if now - reported >= 1:
                log.info(
                    "draining: %s record(s) of %s not applied by the evaluator yet; waiting up to %.0fs more "
                    "(Ctrl-C again to stop now and lose them)",
                    left if stored is not None else "some",
                    topic,
                    deadline - now,
                )
                reported = now
            try:
                self._tick()
            except _GiveUp as exc:
                log.error("%s; not waiting for the evaluator", exc)
                return left if stored is not None else None
            time.sleep(0.2)
            stored = self._read_offsets()

    def _read_offsets(self) -> dict[int, int] | None:
        """The evaluator's stored offsets of the measurements topic; None while PostgreSQL does not answer."""
        try:
            return asyncio.run(
                _stored_offsets(self.resolved.asyncpg_dsn, self.evaluator_group, self.resolved.measurements_topic)
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None


def run_stack(settings: StackSettings) -> int:
    """Start everything, print the URLs, supervise until Ctrl-C, then stop everything."""
    return Launcher(settings).run()


def _unapplied(settings: StackSettings, broker: Broker) -> int | None:
    """How many records of the measurements topic `broker` holds that the evaluator has not applied (None: unknown)."""
    if "DATABASE_URL" in os.environ:
        dsn = settings.asyncpg_dsn
    else:
        pg = _postgres(settings)
        if not pg.running():
            return None
        dsn = pg.url()
    topic = settings.measurements_topic
    try:
        stored = asyncio.run(_stored_offsets(dsn, EvaluatorSettings().group_id, topic))
        ends = asyncio.run(asyncio.wait_for(log_ends(broker.bootstrap, topic, stored), 30))
    except Exception as exc:
        log.warning("cannot tell what the broker holds: %s: %s", type(exc).__name__, exc)
        return None
    return sum(max(0, end - stored.get(p, 0)) for p, end in ends.items())


def stop_stack(settings: StackSettings, timeout: float, force: bool = False) -> int:
    """`accord stop`: stop the `accord run` of this data dir, or what a killed one left running.

    A broker left running that holds records the evaluator has not applied is stopped only
    with `force`: the next `accord run` would take it over and apply them.
    """
    pidfile = settings.data_dir / "accord-run.pid"
    if (pid := _launcher_pid(pidfile)) is not None:
        log.info("asking `accord run` (pid %d) to stop; it lets the evaluator apply what the broker holds first", pid)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(pid):
            if time.monotonic() > deadline:
                log.error("`accord run` (pid %d) has not stopped within %.0fs", pid, timeout)
                return 1
            time.sleep(0.2)
        log.info("stopped")
        return 0
    stopped = False
    state, logfile = _broker_files(settings)
    found = Broker.recorded(state, logfile)
    if found is not None:
        broker = found[0]
        left = _unapplied(settings, broker)
        if left != 0 and not force:
            log.error(
                "the broker a killed `accord run` left running (pid %s, %s) holds %s record(s) the evaluator has "
                "not applied: `make run` takes it over and applies them (Ctrl-C then stops everything); "
                "`accord stop --force` stops it and loses them",
                broker.pid,
                broker.bootstrap,
                "an unknown number of" if left is None else left,
            )
            return 1
        broker.stop()
        state.unlink(missing_ok=True)
        log.info("stopped the broker a killed `accord run` left running (pid %s, %s)", broker.pid, broker.bootstrap)
        if left:
            log.warning("%d record(s) the evaluator had not applied are lost with it", left)
        stopped = True
    if "DATABASE_URL" not in os.environ:
        pg = _postgres(settings)
        if pg.running():
            pg.stop()
            log.info("stopped the PostgreSQL server a killed `accord run` left running (%s)", pg.data)
            stopped = True
    if not stopped:
        log.info("nothing of %s is running", settings.data_dir)
    return 0


async def tail_events(settings: CommonSettings, limit: int | None) -> None:
    """Print breach events (one CloudEvent JSON per line) from the start of the topic, then as they arrive.

    Consumers dedupe by the CloudEvent `id` (docs/design.md §4.2).
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.breaches_topic,
        **client_options(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
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


def locate_local_stack(settings: StackSettings) -> StackSettings:
    """`settings` with the local stack's servers where DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are unset.

    As `make run` started them: PostgreSQL on ACCORD_PG_PORT, and the broker on the port
    recorded in ACCORD_DATA_DIR's broker.json (a broker taken over keeps its port), else ACCORD_KAFKA_PORT.
    """
    update: dict[str, object] = {}
    if "DATABASE_URL" not in os.environ:
        update["database_url"] = sqlalchemy_url(f"postgresql://{PG_USER}@127.0.0.1:{settings.pg_port}/accord")
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        found = Broker.recorded(*_broker_files(settings))
        port = found[0].port if found is not None else settings.kafka_port
        update["kafka_bootstrap_servers"] = f"127.0.0.1:{port}"
    return settings.model_copy(update=update)


def _where(settings: StackSettings, server: str) -> str:
    if server == "kafka":
        origin = "KAFKA_BOOTSTRAP_SERVERS" if "KAFKA_BOOTSTRAP_SERVERS" in os.environ else "ACCORD_KAFKA_PORT"
        return f"Kafka at {settings.kafka_bootstrap_servers} (from {origin})"
    parsed = urlsplit(settings.asyncpg_dsn)
    origin = "DATABASE_URL" if "DATABASE_URL" in os.environ else "ACCORD_PG_PORT"
    return f"PostgreSQL at {parsed.hostname}:{parsed.port or 5432}{parsed.path} (from {origin})"


def explain_failure(command: str, settings: StackSettings, exc: BaseException) -> str:
    """One sentence saying what `command` could not do and what to check, for any exception."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    hint = "is `make run` running? (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, ACCORD_PG_PORT, ACCORD_KAFKA_PORT say where)"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, KafkaConnectionError):
        return f"accord {command}: cannot reach {_where(settings, 'kafka')}; {hint}"
    if isinstance(exc, KafkaError):
        return f"accord {command}: {_where(settings, 'kafka')} refused the request: {type(exc).__name__}: {detail}"
    database = (asyncpg.PostgresError, asyncpg.InterfaceError)
    cause: BaseException | None = exc
    while cause is not None:  # SQLAlchemy and alembic wrap the driver's error
        if isinstance(cause, OSError | TimeoutError):
            return f"accord {command}: cannot reach {_where(settings, 'postgres')}: {detail}; {hint}"
        if isinstance(cause, database):
            return f"accord {command}: {_where(settings, 'postgres')} answered: {detail}"
        cause = cause.__cause__ or cause.__context__
    return f"accord {command}: {type(exc).__name__}: {detail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="accord", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole stack locally")
    stop = sub.add_parser("stop", help="stop `accord run` (or what a killed one left running)")
    stop.add_argument(
        "--force", action="store_true", help="stop a left-over broker even if it holds records not yet applied"
    )
    sub.add_parser("migrate", help="apply database migrations")
    topics = sub.add_parser("topics", help="create the Kafka topics that do not exist yet")
    topics.add_argument(
        "--measurements-partitions", type=int, default=None, help="default: ACCORD_MEASUREMENTS_PARTITIONS (8)"
    )
    topics.add_argument("--breaches-partitions", type=int, default=None, help="default: ACCORD_BREACHES_PARTITIONS (4)")
    topics.add_argument(
        "--replication-factor", type=int, default=None, help="default: ACCORD_TOPIC_REPLICATION_FACTOR (1)"
    )
    events = sub.add_parser("events", help="breach events")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    tail = events_sub.add_parser("tail", help="print breach events as they arrive (JSON lines)")
    tail.add_argument("-n", "--limit", type=int, default=None, help="stop after this many events")
    token_commands.add_parser(sub)
    openslo_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "openslo":  # offline: no settings, no stack
        return openslo_cli.run(args)
    command = " ".join(filter(None, [args.command, getattr(args, "events_command", None)]))
    try:
        settings = StackSettings()
    except ValidationError as exc:  # name the setting, not a traceback
        for line in invalid_settings(exc, StackSettings):
            print(f"accord {command}: {line}", file=sys.stderr)
        return 2
    configure_logging("accord", settings.log_level)
    if args.command == "run":
        return run_stack(settings)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # Their retries and start-up notes would bury the one sentence a failure gets here.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    settings = locate_local_stack(settings)
    try:
        return _operate(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("accord %s failed", command, exc_info=True)
        print(explain_failure(command, settings, exc), file=sys.stderr)
        return 1


def _operate(args: argparse.Namespace, settings: StackSettings) -> int:
    if args.command == "stop":
        return stop_stack(settings, timeout=settings.drain_timeout_seconds + 60, force=args.force)
    if args.command == "migrate":
        migrate(settings.database_url)
        return 0
    if args.command == "topics":
        overrides = {
            "measurements_partitions": args.measurements_partitions,
            "breaches_partitions": args.breaches_partitions,
            "topic_replication_factor": args.replication_factor,
        }
        given = {name: value for name, value in overrides.items() if value is not None}
        if any(value < 1 for value in given.values()):
            print("accord topics: partitions and replication factor must be at least 1", file=sys.stderr)
            return 2
        create_topics(settings.model_copy(update=given))
        return 0
    if args.command == "tokens":
        return token_commands.run(args, settings.database_url)
    if args.command == "events":
        asyncio.run(tail_events(settings, args.limit))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
