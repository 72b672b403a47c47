"""Query and path parameters shared by the routes, bounded once (README "Limits").

Free text is at most 1,000 characters without control characters; revisions fit in int32;
instants are RFC 3339 with an offset or epoch seconds (at most 1e11), in the years 1970..9999.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query

from services.api.schemas import KEY_PATTERN, MAX_REVISION, QueryInstant, QueryText
from shared.contract import MAX_LABELS, MAX_NAME_LENGTH, MAX_QUERY_LENGTH, MAX_REASON_LENGTH
from shared.errors import Invalid

TEXT = f"At most {MAX_QUERY_LENGTH} characters, no control characters."
INSTANT = "RFC 3339 with an offset, or epoch seconds (at most 1e11); years 1970 to 9999."

Text = Annotated[QueryText | None, Query(max_length=MAX_QUERY_LENGTH, description=TEXT)]
Cursor = Annotated[
    QueryText | None, Query(max_length=MAX_QUERY_LENGTH, description="`next_cursor` of the previous page.")
]
Labels = Annotated[
    list[QueryText],
    Query(max_length=MAX_LABELS, description=f"`name=value`; repeat to require several (at most {MAX_LABELS})."),
]


def _label_filters(label: Labels = []) -> dict[str, str]:  # noqa: B006
    """`label=team=payments` query values to a label map; 422 naming the bad one otherwise."""
    out: dict[str, str] = {}
    for value in label:
        name, sep, wanted = value.partition("=")
        if not sep or not name:
            raise Invalid("Invalid label filter.", [{"field": "label", "reason": f"{value!r} is not name=value"}])
        out[name] = wanted
    return out


LabelFilters = Annotated[dict[str, str], Depends(_label_filters)]
"""The repeated `label` query parameter as the label map every listed item's labels must contain."""
Limit = Annotated[int | None, Query(ge=1, le=1000, description="Page size (1 to 1000).")]
Author = Annotated[
    QueryText, Query(min_length=1, max_length=MAX_NAME_LENGTH, description="Who makes the change (at most 200).")
]
Reason = Annotated[QueryText, Query(max_length=MAX_REASON_LENGTH, description="Why (at most 2000 characters).")]
Revision = Annotated[int | None, Query(ge=1, le=MAX_REVISION, description="This revision (1 to 2^31 - 1).")]
RevisionPath = Annotated[int, Path(ge=1, le=MAX_REVISION, description="A revision number (1 to 2^31 - 1).")]
At = Annotated[QueryInstant | None, Query(description=f"The revision in force at this instant. {INSTANT}")]
IndicatorKey = Annotated[str, Path(pattern=KEY_PATTERN, description="An indicator key.")]
CustomerPath = Annotated[
    QueryText, Path(min_length=1, max_length=MAX_NAME_LENGTH, description="The customer's name, `/` included.")
]
