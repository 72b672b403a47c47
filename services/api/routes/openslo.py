"""OpenSLO v1 YAML: export an agreement, import one (services/api/openslo.py has the mapping)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from services.api import agreement_changes
from services.api import repository as repo
from services.api.deps import Session
from services.api.openslo import export_yaml, parse_yaml
from services.api.openslo_foreign import import_any
from services.api.params import INSTANT, At, Author, Revision, Text
from services.api.schemas import AgreementIn, ImportOut, QueryInstant
from shared import contract
from shared.errors import Invalid, UnsupportedMediaType
from shared.http import validation_errors
from shared.spec import AgreementDocument, StoredObjective

router = APIRouter(tags=["openslo"])


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
EXAMPLE = """apiVersion: openslo/v1
kind: Service
metadata:
  name: acme-checkout
  displayName: Acme checkout (OpenSLO)
  annotations: {accord.dev/provider: Shop Platform, accord.dev/customer: Acme Corp}
spec:
  description: Imported from OpenSLO
---
apiVersion: openslo/v1
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
        export_yaml(rev.document.to_json()),
        media_type="application/yaml",
        headers={"ETag": agreement_changes.etag(rev.revision)},
    )


@router.post(
    "/v1/openslo",
    status_code=201,
    summary="Import OpenSLO v1 YAML: a new agreement, or a new revision of the customer's agreement of the same name",
    description="The body is one document, a multi-document stream or a top-level list. An agreement of the same "
    "name for the same customer gets a new revision (objectives matched by SLO name keep their ids), not a "
    "duplicate; nothing changed, no revision. 201 when created, 200 otherwise. Missing indicators are registered. "
    "docs/openslo.md has the mapping.",
    openapi_extra={"requestBody": {"required": True, "content": {"application/yaml": {"example": EXAMPLE}}}},
    responses={
        200: {"description": "A new revision, nothing to change, or a dry run."},
        415: {"description": "Not YAML."},
        422: {"description": "What Accord cannot represent."},
    },
)
async def import_openslo(
    request: Request,
    session: Session,
    response: Response,
    customer: Annotated[Text, Query(description="When the Service does not name one.")] = None,
    provider: Annotated[Text, Query(description="When the Service does not name one.")] = None,
    name: Annotated[Text, Query(description="Agreement name when there is no Service.")] = None,
    author: Author = "anonymous",
    reason: Annotated[Text, Query(description="The new revision's reason (default: imported from OpenSLO).")] = None,
    dry_run: Annotated[
        bool, Query(description="Show what the import would create or change (`changes`), without writing anything.")
    ] = False,
    effective_from: Annotated[
        QueryInstant | None,
        Query(
            description="Where the new agreement's budgets start counting (its `effective_from`; earlier "
            "measurements of its indicators are left out); default the Service's `accord.dev/effective-from`, "
            f"else none: the windows cover the indicators' past measurements too. {INSTANT}",
        ),
    ] = None,
) -> ImportOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in YAML_TYPES:
        raise UnsupportedMediaType(f"Send OpenSLO YAML as {YAML_TYPES[0]}, not {content_type or 'no content type'}.")
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError:
        raise Invalid("The body is not UTF-8.", [{"field": "(body)", "reason": "not UTF-8 text"}]) from None
    imported = import_any(parse_yaml(text), customer=customer, provider=provider, name=name)
    if effective_from is not None:
        imported.document["effective_from"] = effective_from.isoformat()
    reason = reason or "imported from OpenSLO"
    try:
        body = AgreementIn.model_validate({**imported.document, "author": author, "reason": reason})
    except ValidationError as exc:
        raise Invalid("The imported agreement has validation errors.", validation_errors(exc.errors())) from None
    existing = await repo.indicator_kinds(session, imported.indicators)
    for key, kind in sorted(imported.indicators.items()):
        if key in existing and existing[key] != kind:
            raise Invalid(
                "An indicator's kind differs.",
                [{"field": f"indicator {key}", "reason": f"registered as {existing[key]}, the SLI is {kind}"}],
            )
    to_create = sorted(k for k in imported.indicators if k not in existing)
    same = [a for a in await repo.customer_agreements(session, body.customer) if a.name == body.name]
    current = None
    if same:
        _, current = await repo.get_revision(session, same[0].id)
    document = updated_document(current.document, body) if current else agreement_changes.new_document(body)
    changes = describe_changes(current.document if current else None, document)
    if dry_run:
        problems = contract.document_problems(document, {**existing, **imported.indicators})
        if problems:
            raise Invalid("The imported agreement has validation errors.", problems)
        response.status_code = 200
        action = "unchanged" if current and not changes else ("would update" if current else "would create")
        return ImportOut(
            agreement=None, action=action, changes=changes, created_indicators=to_create, notes=imported.notes
        )
    for key in to_create:
        await repo.create_indicator(session, key, imported.indicators[key], None, imported.descriptions.get(key, ""))
    if current is None:
        agreement, revision = await agreement_changes.create(session, body)
        response.status_code, action = 201, "created"
    elif not changes:
        agreement, revision = same[0], current
        response.status_code, action = 200, "unchanged"
    else:
        agreement, revision = await agreement_changes.commit_change(
            session,
            same[0].id,
            agreement_changes.etag(same[0].revision),
            lambda _: (document, [], None),
            author=author,
            reason=reason,
            change="updated",
        )
        response.status_code, action = 200, "updated"
    response.headers["Location"] = f"/v1/agreements/{agreement.id}"
    response.headers["ETag"] = agreement_changes.etag(revision.revision)
    return ImportOut(
        agreement=agreement_changes.agreement_out(agreement, revision),
        action=action,
        changes=changes,
        created_indicators=to_create,
        notes=imported.notes,
    )


def _match_keys(objectives: tuple[StoredObjective, ...]) -> list[str]:
    """What identifies each objective across imports: its OpenSLO SLO's name (with its own name when
    the SLO has several objectives), else its name."""
    slos = [str(((o.openslo or {}).get("slo") or {}).get("name") or "") for o in objectives]
    return [
        (slo if slos.count(slo) == 1 else f"{slo}/{o.name}") if slo else f"/{o.name}"
        for slo, o in zip(slos, objectives, strict=True)
    ]


def updated_document(current: AgreementDocument, body: AgreementIn) -> AgreementDocument:
    """`body` as the next revision of `current`: objectives matched by SLO and name keep their ids."""
    new = agreement_changes.new_document(body)
    ids = dict(zip(_match_keys(current.objectives), (o.id for o in current.objectives), strict=True))
    objectives = tuple(
        o.model_copy(update={"id": ids.get(key, o.id)})
        for key, o in zip(_match_keys(new.objectives), new.objectives, strict=True)
    )
    return new.model_copy(update={"objectives": objectives, "archived_at": current.archived_at})


def describe_changes(before: AgreementDocument | None, after: AgreementDocument) -> list[str]:
    """What an import changes, one line each (empty: nothing)."""
    if before is None:
        return [f"agreement {after.name!r} created with {len(after.objectives)} objective(s)"]
    out = []
    old, new = before.spec().to_json(), after.spec().to_json()
    out += [f"agreement {key}: {json.dumps(old[key])} -> {json.dumps(new[key])}" for key in new if old[key] != new[key]]
    by_id = {o.id: o for o in before.objectives}
    for objective in after.objectives:
        previous = by_id.pop(objective.id, None)
        if previous is None:
            out.append(f"objective {objective.name!r} added")
            continue
        was, now = previous.spec().to_json(), objective.spec().to_json()
        out += [
            f"objective {objective.name!r} {key}: {json.dumps(was[key])} -> {json.dumps(now[key])}"
            for key in now
            if was[key] != now[key]
        ]
    out += [f"objective {o.name!r} removed" for o in by_id.values()]
    return out
