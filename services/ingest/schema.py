"""What `POST /v1/measurements` takes and answers, for OpenAPI only.

Ingest parses bodies with its own fast parser (services.ingest.parse); these models are never used
to parse a request. They describe the same shapes and limits so that clients and fuzzers can learn
the body, and `operation_docs` plugs them into the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.ingest.parse import MAX_COUNT, MAX_INDICATOR_LENGTH
from shared.measurements import MAX_ID_LENGTH, MAX_LABEL_NAME_LENGTH, MAX_LABEL_VALUE_LENGTH, MAX_LABELS

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
"""No control characters (U+0000-U+001F, U+007F): what `shared.measurements.text_problem` refuses."""

IndicatorKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_INDICATOR_LENGTH,
        pattern=NO_CONTROL,
        description="Key of a registered indicator that is not archived (POST /v1/indicators on the api).",
        examples=["checkout.availability"],
    ),
]
Timestamp = Annotated[
    str | float,
    Field(
        description="Event time: RFC 3339 with an offset (`2026-11-30T12:00:00Z`) or epoch seconds. At most "
        "ACCORD_INGEST_MAX_FUTURE_SECONDS ahead of ingest's clock and ACCORD_INGEST_MAX_AGE_SECONDS behind it.",
        examples=["2026-11-30T12:00:00Z", 1795000000.5],
    ),
]
MeasurementId = Annotated[
    Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_CONTROL)] | int,
    Field(
        description="Makes a retry count once (within the evaluator's dedup horizon). An integer is taken as its "
        f"decimal string; at most {MAX_ID_LENGTH} characters, no control characters.",
        examples=["probe-1"],
    ),
]
# No pattern on names: pydantic would put it in patternProperties, which constrains no other name.
LabelName = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_NAME_LENGTH)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE_LENGTH, pattern=NO_CONTROL)]
Labels = Annotated[
    dict[LabelName, LabelValue],
    Field(
        max_length=MAX_LABELS,
        description=f"At most {MAX_LABELS} labels; names of 1-{MAX_LABEL_NAME_LENGTH} characters, values of at "
        f"most {MAX_LABEL_VALUE_LENGTH}, no control characters.",
        examples=[{"region": "eu"}],
    ),
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class RatioMeasurement(BaseModel):
    """A measurement of a `ratio` indicator: good events out of total."""

    model_config = ConfigDict(title="RatioMeasurement")

    indicator: IndicatorKey
    timestamp: Timestamp
    good: Count = Field(description="Good events; at most `total`.")
    total: Count
    id: MeasurementId | None = None
    labels: Labels | None = None


class ThresholdMeasurement(BaseModel):
    """A measurement of a `threshold` indicator: a value standing for `count` events."""

    model_config = ConfigDict(title="ThresholdMeasurement")

    indicator: IndicatorKey
    timestamp: Timestamp
    value: float = Field(description="A finite number (JSON has no NaN or Infinity).")
    count: Count = Field(default=1, description="Events the value stands for.")
    id: MeasurementId | None = None
    labels: Labels | None = None


Measurement = RatioMeasurement | ThresholdMeasurement


class AcceptedAnswer(BaseModel):
    accepted: int = Field(ge=0, description="Measurements acknowledged by the broker: all of the request.")


class ProblemItem(BaseModel):
    index: int | None = Field(default=None, description="Position of the measurement (absent for the body).")
    field: str = Field(description="The field at fault, or `(body)`, `(item)`, `(line n)`.")
    reason: str = Field(description="What is wrong, with the limit when one applies.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[ProblemItem] | None = Field(default=None, description="422 only: every problem of the request.")


def _schemas(max_items: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """JSON and NDJSON body schemas, and the component schemas they refer to."""
    ref = "#/components/schemas/{model}"
    body = TypeAdapter(
        Annotated[Measurement | Annotated[list[Measurement], Field(max_length=max_items)], Field(title="Measurements")]
    ).json_schema(ref_template=ref)
    ndjson = TypeAdapter(Annotated[list[Measurement], Field(max_length=max_items)]).json_schema(ref_template=ref)
    answers = TypeAdapter(AcceptedAnswer | Problem).json_schema(ref_template=ref)
    components = {**body.pop("$defs"), **ndjson.pop("$defs"), **answers.pop("$defs")}
    return body, ndjson, components


def operation_docs(max_items: int, max_body_bytes: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """requestBody, parameters and responses of `POST /v1/measurements`, and the component schemas they use."""
    body, ndjson, components = _schemas(max_items)
    request_body = {
        "required": True,
        "description": "One measurement (a JSON object), a JSON array of them, or NDJSON (one object per line), "
        f"optionally gzip-compressed (`Content-Encoding: gzip`). At most {max_items} measurements and "
        f"{max_body_bytes} bytes after decompression (ACCORD_INGEST_MAX_ITEMS, ACCORD_INGEST_MAX_BODY_BYTES). "
        "The indicator's kind decides the shape: `good`/`total` for ratio, `value`/`count` for threshold; "
        "the whole request is validated before anything is published.",
        "content": {
            "application/json": {"schema": body},
            "application/x-ndjson": {"schema": ndjson, "description": "Each measurement on a line of its own."},
        },
    }
    parameters = [
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": False,
            "description": "`gzip` (several members allowed) or `identity`; anything else is answered 415.",
            "schema": {"type": "string", "enum": ["gzip", "identity"]},
        }
    ]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    retry_after = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
    responses = {
        "202": {
            "description": "The broker acknowledged every measurement of the request (acks=all).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AcceptedAnswer"}}},
        },
        "413": {
            "description": "The body (after decompression) or its number of measurements is over the limit.",
            "content": problem,
        },
        "415": {"description": "A Content-Encoding other than gzip or identity.", "content": problem},
        "422": {
            "description": "Not JSON, NDJSON or gzip, or measurements breaking a rule: `errors` lists every problem "
            "with the item's index, the field and the reason; nothing was published.",
            "content": problem,
        },
        "503": {
            "description": "The broker did not acknowledge in time, or too much waits for it: the outcome is unknown "
            "(some measurements may have been published). Retry after Retry-After with the same ids.",
            "headers": retry_after,
            "content": problem,
        },
    }
    return {"requestBody": request_body, "parameters": parameters}, responses, components
