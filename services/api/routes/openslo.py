"""OpenSLO v1 YAML: export an agreement, import one (services/api/openslo.py has the mapping)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from services.api import agreement_changes
from services.api import repository as repo
from services.api.deps import Session
from services.api.openslo import export_yaml, import_documents, parse_yaml
from services.api.params import At, Author, Revision, Text
from services.api.schemas import AgreementIn, ImportOut
from shared.errors import Invalid, UnsupportedMediaType
from shared.http import validation_errors

router = APIRouter(tags=["openslo"])


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
EXAMPLE = """apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-availability
  displayName: Checkout availability
spec:
  service: acme-checkout
  indicator:
    metadata: {name: checkout.availability}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: prometheus, spec: {query: 'sum(rate(http_requests{code!~"5.."}[1m]))'}}}
        total: {metricSource: {type: prometheus, spec: {query: 'sum(rate(http_requests[1m]))'}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
"""


@router.get(
    "/v1/agreements/{agreement_id}/openslo",
    summary="Export an agreement as OpenSLO v1 YAML (Service, SLI, SLO, AlertPolicy, AlertCondition)",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}}}, 404: {}},
)
async def export_agreement(
    agreement_id: uuid.UUID,
    session: Session,
    at: At = None,
    revision: Revision = None,
) -> Response:
    _, rev = await repo.get_revision(session, agreement_id, number=revision, at=at)
    return Response(
        export_yaml(rev.document), media_type="application/yaml", headers={"ETag": agreement_changes.etag(rev.revision)}
    )


@router.post(
    "/v1/openslo",
    status_code=201,
    summary="Import OpenSLO v1 YAML as a new agreement (missing indicators are registered)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/yaml": {"example": EXAMPLE}}}},
    responses={415: {"description": "Not YAML."}, 422: {"description": "What Accord cannot represent."}},
)
async def import_openslo(
    request: Request,
    session: Session,
    response: Response,
    customer: Annotated[Text, Query(description="When the Service does not name one.")] = None,
    provider: Annotated[Text, Query(description="When the Service does not name one.")] = None,
    name: Annotated[Text, Query(description="Agreement name when there is no Service.")] = None,
    author: Author = "anonymous",
) -> ImportOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in YAML_TYPES:
        raise UnsupportedMediaType(f"Send OpenSLO YAML as {YAML_TYPES[0]}, not {content_type or 'no content type'}.")
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError:
        raise Invalid("The body is not UTF-8.", [{"field": "(body)", "reason": "not UTF-8 text"}]) from None
    imported = import_documents(parse_yaml(text), customer=customer, provider=provider, name=name)
    try:
        body = AgreementIn.model_validate({**imported.document, "author": author, "reason": "imported from OpenSLO"})
    except ValidationError as exc:
        raise Invalid("The imported agreement has validation errors.", validation_errors(exc.errors())) from None
    created = []
    existing = await repo.indicator_kinds(session, imported.indicators)
    for key, kind in sorted(imported.indicators.items()):
        if key in existing:
            if existing[key] != kind:
                raise Invalid(
                    "An indicator's kind differs.",
                    [{"field": f"indicator {key}", "reason": f"registered as {existing[key]}, the SLI is {kind}"}],
                )
            continue
        await repo.create_indicator(session, key, kind, None, imported.descriptions.get(key, ""))
        created.append(key)
    agreement, revision = await agreement_changes.create(session, body)
    response.headers["Location"] = f"/v1/agreements/{agreement.id}"
    response.headers["ETag"] = agreement_changes.etag(revision.revision)
    return ImportOut(
        agreement=agreement_changes.agreement_out(agreement, revision), created_indicators=created, notes=imported.notes
    )
