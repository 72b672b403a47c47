"""The measurements of concurrent requests, packed into records and published together.

Requests that arrive while the previous flush is being handed to the producer join one
*flush*: their measurements are grouped per indicator, cut into records of up to
`per_record` measurements (and `MAX_RECORD_BYTES`), and sent in arrival order, so an
indicator's measurements keep their order in its partition. A flush settles when the
producer is done with every one of its records: acked by the broker (acks=all), or
failed. Each request waits for its flush to settle and answers 202 only when every
record of it was acked (docs/design.md §5.1); if any record failed, every request of the flush
gets 503 and retries with the same ids, which the evaluator counts once.

This turns per-request producer work into per-record work: a thousand single-measurement
POSTs a second become a few records a second. A pack window (`ACCORD_INGEST_PACK_WINDOW_MS`,
0 by default) holds each flush open a little longer, so that measurements of one indicator
sent by separate requests share a record: the evaluator's work is per record.

Memory is bounded: bytes of a flush count against `max_in_flight_bytes` from the moment a
request joins it until the producer is done with its records (even after the request
itself was answered 503), and a request that would pass the limit is refused at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingest.parse import Batch, Wire, encode_wire_record

log = logging.getLogger("accord.ingest.publisher")

MAX_RECORD_BYTES = 1024 * 1024
"""Records are cut smaller than this (far below the producer's max request size), whatever the labels."""


@dataclass
class Flush:
    """Measurements of the requests that joined, and the future they wait on: None when all were acked."""

    future: asyncio.Future[BaseException | None]
    pending: dict[str, list[Wire]] = field(default_factory=dict)
    bytes: int = 0
    measurements: int = 0


class Publisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        per_record: int,
        max_in_flight_bytes: int,
        timeout: float,
        pack_window: float = 0.0,
        on_in_flight: Callable[[int], None] = lambda _: None,
        on_record: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._per_record = per_record
        self._max_bytes = max_in_flight_bytes
        self._timeout = timeout
        self._pack_window = pack_window
        self._on_in_flight = on_in_flight
        self._on_record = on_record
        self._next: Flush | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.in_flight_bytes = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-publisher")

    async def stop(self) -> None:
        """Hand what has joined to the producer, then stop (the producer's own stop flushes it)."""
        if self._task is not None:
            if self._next is not None:
                await self._send(self._take())
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, batch: Batch, size: int) -> asyncio.Future[BaseException | None] | None:
        """Join the next flush; None when in-flight bytes are at the limit (answer 503 at once).

        The future resolves to None once every record of the flush is acked, to the error otherwise,
        and to TimeoutError `timeout` seconds after the flush began, whichever comes first. It is
        shared by every request of the flush: await it through `asyncio.shield`.
        """
        if self.in_flight_bytes and self.in_flight_bytes + size > self._max_bytes:
            return None
        flush = self._next
        if flush is None:
            loop = asyncio.get_running_loop()
            flush = self._next = Flush(loop.create_future())
            # One timer per flush, not per request: every request of it joined after this moment.
            loop.call_later(self._timeout, _resolve, flush.future, TimeoutError())
            self._wake.set()
        pending = flush.pending
        for indicator, wires in batch.by_indicator.items():
            joined = pending.get(indicator)
            if joined is None:
                pending[indicator] = wires
            else:
                joined.extend(wires)
        flush.bytes += size
        flush.measurements += batch.count
        self._take_bytes(size)
        return flush.future

    def _take(self) -> Flush:
        flush = self._next
        assert flush is not None
        self._next = None
        return flush

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pack_window:
                # Let more requests join: fewer, fuller records per indicator, for a little latency.
                await asyncio.sleep(self._pack_window)
            if self._next is not None:
                await self._send(self._take())

    async def _send(self, flush: Flush) -> None:
        """Hand every record of `flush` to the producer in order; settle it when the producer is done."""
        futures: list[asyncio.Future[object]] = []
        error: BaseException | None = None
        try:
            for indicator, wires in flush.pending.items():
                key = indicator.encode()
                for count, value in self._records(indicator, wires):
                    futures.append(await self._producer.send(self._topic, value=value, key=key))
                    self._on_record(count)
        except KafkaError as exc:  # e.g. a full partition queue that did not drain within the timeout
            error = exc
        except Exception as exc:  # never let one flush stop the publisher: its requests get 503
            log.exception("could not hand a flush to the producer")
            error = exc
        flush.pending = {}
        self._settle(flush, futures, error)

    def _records(self, indicator: str, wires: list[Wire]) -> list[tuple[int, bytes]]:
        out = []
        for start in range(0, len(wires), self._per_record):
            out.extend(self._cut(indicator, wires[start : start + self._per_record]))
        return out

    def _cut(self, indicator: str, wires: list[Wire]) -> list[tuple[int, bytes]]:
        value = encode_wire_record(indicator, wires)
        if len(value) <= MAX_RECORD_BYTES or len(wires) == 1:
            return [(len(wires), value)]
        half = len(wires) // 2
        return self._cut(indicator, wires[:half]) + self._cut(indicator, wires[half:])

    def _settle(self, flush: Flush, futures: list[asyncio.Future[object]], error: BaseException | None) -> None:
        left = len(futures)
        first_error = [error]

        def done(fut: asyncio.Future[object]) -> None:
            nonlocal left
            left -= 1
            if not fut.cancelled() and (exc := fut.exception()) is not None and first_error[0] is None:
                first_error[0] = exc
            if left == 0:
                finish()

        def finish() -> None:
            self._take_bytes(-flush.bytes)
            if first_error[0] is not None:
                log.warning("broker did not acknowledge %d measurements: %r", flush.measurements, first_error[0])
            _resolve(flush.future, first_error[0])

        if not futures:
            finish()
        for fut in futures:
            fut.add_done_callback(done)

    def _take_bytes(self, n: int) -> None:
        self.in_flight_bytes += n
        self._on_in_flight(self.in_flight_bytes)


def _resolve(future: asyncio.Future[BaseException | None], outcome: BaseException | None) -> None:
    if not future.done():
        future.set_result(outcome)
