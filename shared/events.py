"""Breach events as CloudEvents 1.0 (structured JSON mode), with deterministic ids (DESIGN §4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

EVENT_NAMESPACE = uuid.UUID("6f1d7d4e-58a6-4c36-9f5e-0a0c5d6b2a11")
SOURCE = "urn:accord:evaluator"


def event_id(objective_id: str, event_type: str, transition: int | str) -> str:
    """The same objective, type and transition (a sequence number, or a period label) always give the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{objective_id}/{event_type}/{transition}"))


def iso_ms(timestamp_ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision."""
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloud_event(
    *, objective_id: str, event_type: str, seq: int | str, time_ms: int, data: dict[str, Any]
) -> dict[str, Any]:
    """A structured-mode CloudEvent; `time` is the measurement time that triggered it."""
    return {
        "specversion": "1.0",
        "id": event_id(objective_id, event_type, seq),
        "source": SOURCE,
        "type": event_type,
        "subject": objective_id,
        "time": iso_ms(time_ms),
        "datacontenttype": "application/json",
        "data": data,
    }
