"""Queries of the api, one module per resource; routes call these, nothing here commits (the unit of work does).

`from services.api import repository as repo` gives every query: `repo.get_revision`, ...

An agreement changes only through `save_revision` (agreements.py), under a row lock taken by
`lock_agreement`: the revision check (If-Match), the new revision row, the current-state rows the
evaluator reads (`agreements`, `objectives`) and the config NOTIFY all happen in the request's one
transaction. Cursors are decoded at the edge (services/api/pagination.py); queries take typed keys.
"""

from services.api.repository.agreements import (
    all_revisions,
    create_agreement,
    customer_agreements,
    get_agreement_row,
    get_revision,
    list_agreements,
    list_revisions,
    lock_agreement,
    revision_documents,
    save_revision,
)
from services.api.repository.breaches import list_breach_events
from services.api.repository.indicators import (
    archive_indicator,
    create_indicator,
    get_indicator,
    indicator_in_use,
    indicator_kinds,
    list_indicators,
    update_indicator,
)
from services.api.repository.objectives import get_objective, list_objectives
from services.api.repository.readings import (
    Cells,
    StatusAgreement,
    StatusInput,
    StatusObjective,
    StoredStatus,
    rolled_up,
    series_buckets,
    status_inputs,
)
from services.api.repository.reviews import add_review, get_review, list_reviews
from services.api.repository.session import announce_config_change, now, read_snapshot
from shared.budget.rollups import Columns

__all__ = [
    "Cells",
    "Columns",
    "StatusAgreement",
    "StatusInput",
    "StatusObjective",
    "StoredStatus",
    "add_review",
    "all_revisions",
    "announce_config_change",
    "archive_indicator",
    "create_agreement",
    "create_indicator",
    "customer_agreements",
    "get_agreement_row",
    "get_indicator",
    "get_objective",
    "get_review",
    "get_revision",
    "indicator_in_use",
    "indicator_kinds",
    "list_agreements",
    "list_breach_events",
    "list_indicators",
    "list_objectives",
    "list_reviews",
    "list_revisions",
    "lock_agreement",
    "now",
    "read_snapshot",
    "revision_documents",
    "rolled_up",
    "save_revision",
    "series_buckets",
    "status_inputs",
    "update_indicator",
]
