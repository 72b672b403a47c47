"""bench/engine: the evaluator's apply path in-process, CPU per record (issue 10).

    .venv/bin/python bench/engine.py                      # 30,000 spread records, a few seconds
    .venv/bin/python bench/engine.py --history-days 30    # with 30 days of stored history loaded first
    .venv/bin/python bench/engine.py --profile /tmp/engine.prof

No Kafka, no PostgreSQL: what `Evaluator._apply` does per record (decode_record, Engine.covers,
Engine.apply) and what a checkpoint asks of the engine (Engine.drain, every `--drain-every`
records, with the runner's default bound on quiet statuses). The workload is the evaluator
bench's: 1,000 ratio indicators × 10 objectives (30-day windows, default tiers and thresholds,
five targets), and the "spread" load shape: single-measurement records, `--rate` records a second of
event time round-robin over the indicators, counts of ≈ 1,000 events, ≈ 2 % of records with errors.

Prints records/s and µs per record of each stage, and how many records were evaluated.
Figures are CPU-bound and in-process: compare A/B by alternating runs in the same minutes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from bench.evaluator import (  # noqa: E402  (the workload bench/evaluator.py publishes)
    INDICATORS,
    OBJECTIVES_PER_INDICATOR,
    TARGETS,
    counts_pool,
    indicator_key,
)
from services.evaluator.engine import Engine  # noqa: E402
from shared.budget import ObjectiveTerms, default_tiers_for, parse_window  # noqa: E402
from shared.measurements import Measurement, decode_record, encode_record  # noqa: E402
from shared.objective_config import ObjectiveConfig  # noqa: E402
from shared.timeutil import MINUTE_MS, MINUTES_PER_DAY  # noqa: E402

PARTITIONS = 8
QUIET_STATUSES = 500  # the runner's default ACCORD_EVALUATOR_MAX_STATUSES_PER_CHECKPOINT
START_MS = 1_800_000_000_000  # a whole second, mid-month


def objectives() -> list[ObjectiveConfig]:
    """As bench/evaluator.py seeds them: agreement a holds one objective on each of indicators a, a+100, ..."""
    window = parse_window("30d")
    out = []
    for a in range(INDICATORS):
        for k in range(OBJECTIVES_PER_INDICATOR):
            key = indicator_key((a + k * (INDICATORS // OBJECTIVES_PER_INDICATOR)) % INDICATORS)
            target = TARGETS[(a + k) % len(TARGETS)]
            terms = ObjectiveTerms(target=target, window=window, tiers=default_tiers_for(window))
            oid = f"{a:04d}-{k}"
            out.append(ObjectiveConfig(oid, f"{key} {target}", f"agreement-{a}", "SLA", f"Customer {a}", "Bench", key,
                                       "30d", terms))  # fmt: skip
    return out


def records(n: int, rate: int) -> list[tuple[int, bytes]]:
    """(partition, record value) in publishing order: `rate` records a second of event time, round-robin."""
    pool = counts_pool(random.Random(7))
    step_ms = 1000 * INDICATORS // rate  # each indicator's records are this far apart in event time
    out = []
    for r in range(n):
        i = r % INDICATORS
        key = indicator_key(i)
        ts = START_MS + (r // INDICATORS) * step_ms + (i * step_ms) // INDICATORS
        good, total = pool[r % len(pool)]
        out.append((i % PARTITIONS, encode_record(key, [Measurement(key, ts, good=good, total=total)])))
    return out


def load_history(engine: Engine, days: int) -> None:
    """`days` of stored history before START_MS per indicator, loaded as the store does (hour cells, and the
    minutes evaluations read one by one): a deployment in its steady state, not one that just started."""
    rng = random.Random(11)
    end_minute = START_MS // MINUTE_MS
    first_minute = end_minute - days * MINUTES_PER_DAY
    for i in range(INDICATORS):
        key = indicator_key(i)
        spans, ready = engine.load_plan(key, START_MS)
        if spans is None:
            spans = [(first_minute, end_minute)]
        minutes: list[int] = []
        goods: list[int] = []
        totals: list[int] = []
        for a, b in spans:
            for minute in range(max(a, first_minute), min(b, end_minute)):
                total = 10_000 + rng.randrange(2_000)
                minutes.append(minute)
                goods.append(total - (rng.randrange(4) if rng.random() < 0.3 else 0))
                totals.append(total)
        # hour cells for every hour (those meeting the spans are ignored: their minutes are loaded)
        hours: dict[int, list[int]] = {}
        for hour in range(first_minute // 60, end_minute // 60):
            total = 60 * (10_000 + rng.randrange(2_000))
            hours[hour] = [total - rng.randrange(40), total]
        hs = sorted(hours)
        series_minutes = [("", minutes, goods, totals)]
        series_hours = [("", hs, [hours[h][0] for h in hs], [hours[h][1] for h in hs])]
        if spans is None or ready is None:
            engine.load_indicator_series(key, i % PARTITIONS, START_MS - MINUTE_MS, series_minutes, ())
        else:
            engine.load_indicator_held(key, i % PARTITIONS, START_MS - MINUTE_MS, series_minutes, series_hours,
                                       spans, ready, ())  # fmt: skip


class Counted(Engine):
    """The engine, counting its evaluations."""

    evaluations = 0
    evaluating_s = 0.0

    def _evaluate(self, indicator: str, state: Any, last_measurement_ms: int, before_ms: int | None) -> int:
        self.evaluations += 1
        started = time.perf_counter()
        try:
            return super()._evaluate(indicator, state, last_measurement_ms, before_ms)
        finally:
            self.evaluating_s += time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, float]:
    engine = Counted(
        objectives(),
        dedup_horizon_minutes=24 * 60,
        max_age_minutes=400 * MINUTES_PER_DAY,
        minute_band_minutes=args.band or None,
        recent_minutes=120,
    )
    if args.history_days:
        load_history(engine, args.history_days)
    work = records(args.records, args.rate)
    gc.collect()
    clock = time.perf_counter
    t_decode = t_apply = t_drain = 0.0
    events = statuses = 0
    profile = cProfile.Profile() if args.profile else None
    if profile:
        profile.enable()
    started, cpu_started = clock(), time.process_time()
    for n, (partition, value) in enumerate(work, 1):
        t0 = clock()
        decoded = decode_record(value)
        t1 = clock()
        if not engine.covers(decoded.indicator, decoded.measurements):
            raise SystemExit("a record needs stored minutes fetched: not modelled here")
        result = engine.apply(partition, decoded.indicator, decoded.measurements)
        t2 = clock()
        t_decode += t1 - t0
        t_apply += t2 - t1
        events += result.events
        if n % args.drain_every == 0 or n == len(work):
            changes = engine.drain(quiet_statuses=QUIET_STATUSES)
            statuses += len(changes.statuses)
            if n % args.prune_every == 0:
                engine.prune()
            t_drain += clock() - t2
    elapsed, cpu = clock() - started, time.process_time() - cpu_started
    if profile:
        profile.disable()
        profile.dump_stats(args.profile)
    n = len(work)
    return {
        "records": n,
        "seconds": elapsed,
        "records_per_s": n / elapsed,
        "decode_us": 1e6 * t_decode / n,
        "apply_us": 1e6 * t_apply / n,
        "drain_us": 1e6 * t_drain / n,
        "total_us": 1e6 * elapsed / n,
        "cpu_us": 1e6 * cpu / n,
        "events": events,
        "statuses": statuses,
        "evaluations": engine.evaluations,
        "evaluate_us": 1e6 * engine.evaluating_s / max(1, engine.evaluations),
        "evaluate_share_us": 1e6 * engine.evaluating_s / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=30_000, help="records applied (default 30,000)")
    parser.add_argument("--rate", type=int, default=10_000, help="records a second of event time (default 10,000)")
    parser.add_argument("--drain-every", type=int, default=2_500, help="records between drains (default 2,500)")
    parser.add_argument(
        "--prune-every",
        type=int,
        default=600_000,
        help="records between prunes (default 600,000: the runner prunes once a minute)",
    )
    parser.add_argument("--history-days", type=int, default=0, help="days of history loaded first (default none)")
    parser.add_argument("--band", type=int, default=360, help="minute band in minutes (0: every minute held)")
    parser.add_argument("--repeat", type=int, default=1, help="runs, each on a fresh engine (default 1)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the timed loop here, and print its top")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        r = run(args)
        runs.append(r)
        print(
            f"{r['records']:,} records in {r['seconds']:.2f} s: {r['records_per_s']:,.0f} records/s, "
            f"CPU {r['cpu_us']:.1f} µs/record; "
            f"µs/record: total {r['total_us']:.1f} = decode {r['decode_us']:.1f} + apply {r['apply_us']:.1f} "
            f"+ drain {r['drain_us']:.1f} (+ loop); apply includes evaluations {r['evaluate_share_us']:.1f} "
            f"({r['evaluations']:,} evaluations, {r['evaluate_us']:.0f} µs each); events {r['events']:,}, "
            f"statuses drained {r['statuses']:,}",
            flush=True,
        )
    if len(runs) > 1:
        best = min(runs, key=lambda r: r["cpu_us"])
        print(
            f"best of {len(runs)}: CPU {best['cpu_us']:.1f} µs/record, {best['records_per_s']:,.0f} records/s, "
            f"evaluations {best['evaluate_us']:.0f} µs each, drain {best['drain_us']:.1f} µs/record"
        )
    if args.profile:
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
