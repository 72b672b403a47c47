"""bench/history: restart and read costs on 30 days of dense per-minute history (issue 10).

    .venv/bin/python bench/history.py                     # 1,000 indicators, 10,000 objectives
    .venv/bin/python bench/history.py --indicators 100    # a smaller seed (1,000 objectives)
    .venv/bin/python bench/history.py --quick             # 20 indicators, 3 requests each
    .venv/bin/python bench/history.py --code /work/wt/scale-base   # the services of another checkout

Starts its own embedded PostgreSQL and Tansu, migrates (with the migrations of `--code`), and
seeds N indicators × 30 days of dense minute buckets (one bucket a minute, all good) with COPY,
plus 10 objectives per indicator (30-day windows; N agreements of 10 objectives, 10 agreements
per customer), the indicators' watermarks and, when the schema has them, the hour roll-ups.
Then, with the services of `--code` as real processes:

- the evaluator starts and gets ready (time to ready); one good measurement per indicator gives
  every objective a stored status;
- it is SIGKILLed; a new one starts at once, and a record exhausting the budgets of indicator 0
  is published right after the kill: SIGKILL → first breach event stored (the dead member's
  session, the state load and the evaluation);
- the new evaluator's RSS once that event is stored, and its peak;
- the api: GET agreement status, customer status (10 agreements), objective history over 30 d
  at 1 h, and a scrape of every service's /metrics (p50 over `--requests`);
- bytes on disk per indicator-day (series_buckets and series_hours with their indexes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka.partitioner import DefaultPartitioner

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from accord.localstack import Broker, Postgres, ServiceProcess, free_port  # noqa: E402
from bench.evaluator import PeakRss, agreement_spec, objective_spec  # noqa: E402
from shared.kafka import ensure_topics, make_producer  # noqa: E402
from shared.measurements import Measurement, encode_record  # noqa: E402

TOPIC = "bench.measurements"
BREACHES = "bench.breaches"
GROUP = "bench-history"
PARTITIONS = 8
DAYS = 30
OBJECTIVES_PER_INDICATOR = 10
AGREEMENTS_PER_CUSTOMER = 10
TARGETS = (0.99, 0.995, 0.999, 0.9995, 0.9999)
PER_MINUTE = 60  # events a minute, all good
SERIES = "{}|"  # a ratio indicator without labels (shared.series.series_name)


def key_of(n: int) -> str:
    return f"bench.service-{n:04d}.availability"


def partition_of(key: str) -> int:
    return int(DefaultPartitioner()(key.encode(), list(range(PARTITIONS)), list(range(PARTITIONS))))


def migrate(code: Path, url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(code)}
    script = "import sys; from accord.cli import migrate; migrate(sys.argv[1])"
    subprocess.run([sys.executable, "-c", script, url], cwd=code, env=env, check=True)


async def seed(url: str, indicators: int, now_minute: int) -> dict[str, Any]:
    """Agreements, objectives, indicator state and 30 days of buckets; returns the ids the requests use."""
    conn = await asyncpg.connect(url)
    try:
        tables = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        keys = [key_of(n) for n in range(indicators)]
        agreements, objectives = [], []
        for a in range(indicators):
            agreement = uuid.UUID(int=(1 << 64) + a)
            customer = f"Customer {a // AGREEMENTS_PER_CUSTOMER:04d}"
            name = f"{customer} SLA {a:04d}"
            agreements.append(
                (agreement, name, "Bench Platform", customer, orjson.dumps(agreement_spec(name, customer)).decode())
            )
            for k in range(OBJECTIVES_PER_INDICATOR):
                key = keys[(a + k * max(1, indicators // OBJECTIVES_PER_INDICATOR)) % indicators]
                target = TARGETS[(a + k) % len(TARGETS)]
                oid = uuid.UUID(int=(2 << 64) + a * OBJECTIVES_PER_INDICATOR + k)
                spec = objective_spec(f"{key} {target} {k}", key, target, "30d", {})
                objectives.append((oid, agreement, spec["name"], key, target, "30d", "{}", orjson.dumps(spec).decode()))
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO indicators (key, kind, unit) VALUES ($1, 'ratio', 'requests')", [(k,) for k in keys]
            )
            await conn.executemany(
                "INSERT INTO agreements (id, name, provider, customer, spec) VALUES ($1, $2, $3, $4, $5::jsonb)",
                agreements,
            )
            legacy = await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns"
                " WHERE table_name = 'objectives' AND column_name = 'target'"
            )
            if legacy:  # before migration 0004 dropped the columns the spec replaced
                await conn.executemany(
                    """INSERT INTO objectives (id, agreement_id, name, indicator_key, target, "window", alert_policy,
                                               spec)
                       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)""",
                    objectives,
                )
            else:
                await conn.executemany(
                    "INSERT INTO objectives (id, agreement_id, name, indicator_key, spec)"
                    " VALUES ($1, $2, $3, $4, $5::jsonb)",
                    [(o[0], o[1], o[2], o[3], o[7]) for o in objectives],
                )
            await conn.executemany(
                "INSERT INTO indicator_state (indicator_key, topic, partition, watermark_ms) VALUES ($1, $2, $3, $4)",
                [(k, TOPIC, partition_of(k), now_minute * 60_000) for k in keys],
            )
        first = now_minute - DAYS * 24 * 60 + 1
        started = time.perf_counter()
        for indicator in keys:
            await conn.copy_records_to_table(
                "series_buckets",
                records=((indicator, SERIES, m, PER_MINUTE, PER_MINUTE) for m in range(first, now_minute + 1)),
                columns=["indicator_key", "series", "minute", "good", "total"],
            )
        if "series_hours" in tables:
            await conn.execute(
                """INSERT INTO series_hours (indicator_key, series, hour, good, total)
                   SELECT indicator_key, series, minute / 60, sum(good), sum(total)
                   FROM series_buckets GROUP BY 1, 2, 3"""
            )
        await conn.execute("VACUUM ANALYZE")
        print(
            f"    seeded {indicators * (now_minute + 1 - first):,} buckets in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        sizes: dict[str, int] = {
            t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
            for t in ("series_buckets", "series_hours")
            if t in tables
        }
        return {
            "agreement": agreements[0][0],
            "customer": agreements[0][3],
            "objective": objectives[0][0],
            "bytes_per_indicator_day": sum(sizes.values()) / (indicators * DAYS),
            "sizes": sizes,
        }
    finally:
        await conn.close()


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


async def timed_get(client: httpx.AsyncClient, url: str, n: int, **params: str) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get(url, params=params, timeout=120)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
    return p50(samples)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="accord-bench-history-"))
    work.chmod(0o755)  # noqa: ASYNC240 -- PostgreSQL runs as an unprivileged account when started by root
    pg = Postgres(work / "postgres", free_port())
    broker = Broker(free_port(), work / "tansu.log")
    code: Path = args.code
    procs: list[ServiceProcess] = []
    out: dict[str, Any] = {"code": str(code), "indicators": args.indicators}

    def service(command: str, module: str, env: dict[str, str], tag: str) -> ServiceProcess:
        svc = ServiceProcess(
            command,
            {**env, "PYTHONPATH": str(code)},
            log=work / f"{command}-{tag}.log",
            argv=[sys.executable, "-m", module],
            cwd=code,
        )
        procs.append(svc)
        return svc

    try:
        pg.start()
        broker.start()
        pg.create_database("bench")
        url = pg.url("bench")
        migrate(code, url)
        now_minute = int(time.time() // 60)
        print(f"seeding {args.indicators} indicators x {DAYS} days ...", flush=True)
        ids = await seed(url, args.indicators, now_minute)
        out["bytes_per_indicator_day"] = ids["bytes_per_indicator_day"]
        out["table_bytes"] = ids["sizes"]
        await ensure_topics(broker.bootstrap, {TOPIC: PARTITIONS, BREACHES: 4})
        env = {
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "ACCORD_MEASUREMENTS_TOPIC": TOPIC,
            "ACCORD_BREACHES_TOPIC": BREACHES,
            "ACCORD_EVALUATOR_GROUP_ID": GROUP,
            "ACCORD_LOG_LEVEL": "INFO",
            "ACCORD_API_AUTH": "false",  # the requests below carry no token
            **dict(s.split("=", 1) for s in args.set),
        }
        first = service("accord-evaluator", "services.evaluator.main", env, "first")
        started = time.perf_counter()
        first.start()
        await first.wait_ready(timeout=1800)
        out["first_ready_s"] = time.perf_counter() - started
        print(f"    first evaluator ready in {out['first_ready_s']:.1f}s", flush=True)
        # One good measurement per indicator, so that every objective has a stored status (the api's
        # readings and per-objective gauges), then SIGKILL, restart at once, and publish a record that
        # exhausts indicator 0's budgets.
        conn = await asyncpg.connect(url)
        producer = make_producer(broker.bootstrap, client_id="bench-history")
        await producer.start()
        try:
            for n in range(args.indicators):
                good = Measurement(key_of(n), now_minute * 60_000, 1, 1, id=f"bench-history-warm-{n}")
                await producer.send(TOPIC, encode_record(key_of(n), [good]), key=key_of(n).encode())
            await producer.flush()
            objectives = args.indicators * OBJECTIVES_PER_INDICATOR
            while await conn.fetchval("SELECT count(*) FROM objective_status") < objectives:
                first.check()
                await asyncio.sleep(0.2)
            killed = time.perf_counter()
            first.kill()
            second = service("accord-evaluator", "services.evaluator.main", env, "second")
            second.start()
            assert second.proc is not None
            key = key_of(0)
            bad = Measurement(key, now_minute * 60_000 + 1, 0, 10**9, id="bench-history-bad")
            await producer.send_and_wait(TOPIC, encode_record(key, [bad]), key=key.encode())
            with PeakRss(second.proc.pid) as rss:
                while not await conn.fetchval("SELECT count(*) FROM breach_events"):
                    second.check()
                    if time.perf_counter() - killed > 1800:
                        raise RuntimeError("no breach event within 30 minutes")
                    await asyncio.sleep(0.05)
                out["kill_to_event_s"] = time.perf_counter() - killed
                out["rss_at_event_mb"] = rss.now() / 2**20
                await second.wait_ready(timeout=1800)
                out["kill_to_ready_s"] = time.perf_counter() - killed
                await asyncio.sleep(2)
                out["rss_peak_mb"] = rss.peak / 2**20
            print(
                f"    SIGKILL -> first event {out['kill_to_event_s']:.1f}s, RSS {out['rss_at_event_mb']:.0f} MB",
                flush=True,
            )
        finally:
            await producer.stop()
            await conn.close()
        api = service("accord-api", "services.api.main", env, "api")
        api.start()
        await api.wait_ready(timeout=120)
        n = args.requests
        async with httpx.AsyncClient(base_url=api.url) as client:
            out["agreement_status_p50_s"] = await timed_get(client, f"/v1/agreements/{ids['agreement']}/status", n)
            out["customer_status_p50_s"] = await timed_get(client, f"/v1/customers/{ids['customer']}/status", n)
            end = now_minute * 60_000
            # History needs an agreement revision in force over the range: one made through the api,
            # back-dated 61 days (the seeded agreements have no revision rows).
            r = await client.post(
                "/v1/agreements",
                json={
                    "name": "History probe",
                    "provider": "Bench Platform",
                    "customer": "History",
                    "objectives": [{"name": "availability", "indicator": key_of(0), "target": 0.999, "window": "30d"}],
                },
            )
            if r.status_code != 201:
                raise RuntimeError(f"POST /v1/agreements: {r.status_code} {r.text[:300]}")
            history_objective = r.json()["objectives"][0]["id"]
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(
                    "UPDATE agreement_revisions SET valid_from = now() - interval '61 days' WHERE agreement_id = $1",
                    uuid.UUID(r.json()["id"]),
                )
            finally:
                await conn.close()
            out["history_30d_1h_p50_s"] = await timed_get(
                client,
                f"/v1/objectives/{history_objective}/history",
                n,
                **{"from": str((end - DAYS * 86_400_000) // 1000), "to": str(end // 1000), "step": "1h"},
            )
            scrapes: dict[str, list[float]] = {"api": [], "evaluator": []}
            sizes: dict[str, int] = {}
            for _ in range(n):
                for name, svc in (("api", api), ("evaluator", second)):
                    started = time.perf_counter()
                    sizes[name] = len((await client.get(f"{svc.url}/metrics", timeout=120)).content)
                    scrapes[name].append(time.perf_counter() - started)
            both = [a + e for a, e in zip(scrapes["api"], scrapes["evaluator"], strict=True)]
            out["metrics_scrape_p50_s"] = p50(both)
            out["metrics_scrape_api_p50_s"] = p50(scrapes["api"])
            out["metrics_scrape_evaluator_p50_s"] = p50(scrapes["evaluator"])
            out["metrics_bytes"] = sum(sizes.values())
        return out
    finally:
        for svc in reversed(procs):
            if svc.proc is not None:
                svc.stop(timeout=20)
        broker.stop()
        pg.stop()
        if args.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indicators", type=int, help="indicators seeded (default 1,000; quick 20)")
    parser.add_argument("--requests", type=int, help="requests per api figure (default 10; quick 3)")
    parser.add_argument("--quick", action="store_true", help="20 indicators, 3 requests per figure")
    parser.add_argument("--code", type=Path, default=PROJECT, help="checkout whose services and migrations run")
    parser.add_argument("--set", action="append", default=[], metavar="ACCORD_X=VALUE", help="a service setting")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    args.indicators = args.indicators or (20 if args.quick else 1_000)
    args.requests = args.requests or (3 if args.quick else 10)
    args.code = args.code.resolve()
    result = asyncio.run(run(args))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
