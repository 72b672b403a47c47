"""Who may do what: every route of the api and ingest, the permission it needs, and how customers are scoped.

One table a reader can audit (docs/design.md §5e); `shared.auth` enforces it before a request reaches
its route, and tests/integration/test_auth_permissions.py sends every route × every role and checks
each answer against it. A route missing here is served to admins only (fail closed), and a test fails.

Permissions, and the roles that hold them (`ROLE_PERMISSIONS`):

    public        no token needed: health, readiness, the OpenAPI document
    metrics       /metrics; public unless ACCORD_<SVC>_METRICS_NEED_TOKEN (then admin, editor, viewer)
    read          read what is not a customer's own: indicators, revisions, reviews    admin, editor, viewer
    customer      read a customer's agreements and what derives from them               admin, editor, viewer,
                  (`customer:<name>` tokens too, only their own: see `Scope`)           customer:<name>
    write         change agreements, objectives, indicators, reviews; import OpenSLO    admin, editor
    ingest        POST measurements (an ingest token may be limited to indicators)      admin, ingest
    admin         tokens and the audit log                                               admin

A role without the permission is answered 403, except a customer, who is answered 404 as if the
resource did not exist: existence must not leak (docs/design.md §5e).

A customer's agreement is one whose *current* `customer` is theirs: its earlier revisions (`?at=`,
`?revision=`) are readable with it, even from before a change of customer.

Reports (issue 11): reading a report, a statement or an explanation is `customer`, scoped like the
agreement's status; a recompute is `write`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Permission(StrEnum):
    PUBLIC = "public"
    METRICS = "metrics"
    READ = "read"
    CUSTOMER = "customer"
    WRITE = "write"
    INGEST = "ingest"
    ADMIN = "admin"


class Scope(StrEnum):
    """How a customer token's request is confined to the customer's own agreements."""

    NONE = ""  # not open to customers
    AGREEMENT = "agreement"  # path parameter agreement_id: an agreement of the customer's, else 404
    OBJECTIVE = "objective"  # path parameter objective_id: an objective of one of its agreements, else 404
    CUSTOMER = "customer"  # path parameter customer: the token's own customer, else 404
    LIST = "list"  # a list: its `customer` query parameter is set to the token's customer


ROLES = ("admin", "editor", "ingest", "viewer")
CUSTOMER_ROLE = "customer:"
"""`customer:<name>` roles: the name is an agreement's `customer`."""

P = Permission
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset({P.PUBLIC, P.METRICS, P.READ, P.CUSTOMER, P.WRITE, P.INGEST, P.ADMIN}),
    "editor": frozenset({P.PUBLIC, P.METRICS, P.READ, P.CUSTOMER, P.WRITE}),
    "viewer": frozenset({P.PUBLIC, P.METRICS, P.READ, P.CUSTOMER}),
    "ingest": frozenset({P.PUBLIC, P.INGEST}),
    "customer": frozenset({P.PUBLIC, P.CUSTOMER}),
}


@dataclass(frozen=True)
class Rule:
    service: str
    method: str
    path: str  # the route's path template, as FastAPI registers it
    permission: Permission
    scope: Scope = Scope.NONE


S = Scope
# fmt: off
TABLE: tuple[Rule, ...] = (
    # --- api: operations and documents ------------------------------------------------------------
    Rule("api", "GET",    "/healthz",                                              P.PUBLIC),
    Rule("api", "GET",    "/readyz",                                               P.PUBLIC),
    Rule("api", "GET",    "/metrics",                                              P.METRICS),
    Rule("api", "GET",    "/openapi.json",                                         P.PUBLIC),
    Rule("api", "GET",    "/docs",                                                 P.PUBLIC),
    Rule("api", "GET",    "/docs/oauth2-redirect",                                 P.PUBLIC),
    Rule("api", "GET",    "/redoc",                                                P.PUBLIC),
    # --- api: indicators ---------------------------------------------------------------------------
    Rule("api", "POST",   "/v1/indicators",                                        P.WRITE),
    Rule("api", "GET",    "/v1/indicators",                                        P.READ),
    Rule("api", "GET",    "/v1/indicators/{key}",                                  P.READ),
    Rule("api", "PATCH",  "/v1/indicators/{key}",                                  P.WRITE),
    Rule("api", "DELETE", "/v1/indicators/{key}",                                  P.WRITE),
    # --- api: agreements ---------------------------------------------------------------------------
    Rule("api", "POST",   "/v1/agreements",                                        P.WRITE),
    Rule("api", "GET",    "/v1/agreements",                                        P.CUSTOMER, S.LIST),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}",                         P.CUSTOMER, S.AGREEMENT),
    Rule("api", "PATCH",  "/v1/agreements/{agreement_id}",                         P.WRITE),
    Rule("api", "DELETE", "/v1/agreements/{agreement_id}",                         P.WRITE),
    Rule("api", "POST",   "/v1/agreements/{agreement_id}/restore",                 P.WRITE),
    Rule("api", "POST",   "/v1/agreements/{agreement_id}/objectives",              P.WRITE),
    Rule("api", "PATCH",  "/v1/agreements/{agreement_id}/objectives/{objective_id}", P.WRITE),
    Rule("api", "DELETE", "/v1/agreements/{agreement_id}/objectives/{objective_id}", P.WRITE),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/revisions",               P.READ),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/revisions/{revision}",    P.CUSTOMER, S.AGREEMENT),
    Rule("api", "POST",   "/v1/agreements/{agreement_id}/reviews",                 P.WRITE),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/reviews",                 P.READ),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/reviews/{review_id}",     P.READ),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/openslo",                 P.CUSTOMER, S.AGREEMENT),
    Rule("api", "POST",   "/v1/openslo",                                           P.WRITE),
    # --- api: objectives, status, history, breaches ------------------------------------------------
    Rule("api", "GET",    "/v1/objectives",                                        P.CUSTOMER, S.LIST),
    Rule("api", "GET",    "/v1/objectives/{objective_id}",                         P.CUSTOMER, S.OBJECTIVE),
    Rule("api", "GET",    "/v1/objectives/{objective_id}/status",                  P.CUSTOMER, S.OBJECTIVE),
    Rule("api", "GET",    "/v1/objectives/{objective_id}/history",                 P.CUSTOMER, S.OBJECTIVE),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/status",                  P.CUSTOMER, S.AGREEMENT),
    Rule("api", "GET",    "/v1/customers/{customer:path}/status",                  P.CUSTOMER, S.CUSTOMER),
    Rule("api", "GET",    "/v1/breaches",                                          P.CUSTOMER, S.LIST),
    # --- api: reports --------------------------------------------------------------------------------
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/reports",                 P.CUSTOMER, S.AGREEMENT),
    Rule("api", "GET",    "/v1/agreements/{agreement_id}/reports/{period}",        P.CUSTOMER, S.AGREEMENT),
    Rule("api", "POST",   "/v1/agreements/{agreement_id}/reports/{period}/recompute", P.WRITE),
    Rule("api", "GET",    "/v1/customers/{customer:path}/reports/{period}",        P.CUSTOMER, S.CUSTOMER),
    Rule("api", "GET",    "/v1/objectives/{objective_id}/explain",                 P.CUSTOMER, S.OBJECTIVE),
    # --- api: tokens and audit ---------------------------------------------------------------------
    Rule("api", "POST",   "/v1/tokens",                                            P.ADMIN),
    Rule("api", "GET",    "/v1/tokens",                                            P.ADMIN),
    Rule("api", "GET",    "/v1/tokens/{token_id}",                                 P.ADMIN),
    Rule("api", "DELETE", "/v1/tokens/{token_id}",                                 P.ADMIN),
    Rule("api", "GET",    "/v1/audit",                                             P.ADMIN),
    # --- ingest --------------------------------------------------------------------------------------
    Rule("ingest", "GET",  "/healthz",                                             P.PUBLIC),
    Rule("ingest", "GET",  "/readyz",                                              P.PUBLIC),
    Rule("ingest", "GET",  "/metrics",                                             P.METRICS),
    Rule("ingest", "GET",  "/openapi.json",                                        P.PUBLIC),
    Rule("ingest", "GET",  "/docs",                                                P.PUBLIC),
    Rule("ingest", "GET",  "/docs/oauth2-redirect",                                P.PUBLIC),
    Rule("ingest", "GET",  "/redoc",                                               P.PUBLIC),
    Rule("ingest", "POST", "/v1/measurements",                                     P.INGEST),
)
# fmt: on


def rules(service: str) -> tuple[Rule, ...]:
    return tuple(r for r in TABLE if r.service == service)


def role_permissions(role: str) -> frozenset[Permission]:
    """The permissions of a role (`customer:<name>` roles share the `customer` entry)."""
    return ROLE_PERMISSIONS["customer" if role.startswith(CUSTOMER_ROLE) else role]


class Decision(StrEnum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"  # 403
    HIDDEN = "hidden"  # 404: customers are not told a resource exists


def decide(role: str, permission: Permission) -> Decision:
    """Whether a token of `role` may use a route that needs `permission` (customer scoping aside)."""
    if permission in role_permissions(role):
        return Decision.ALLOW
    return Decision.HIDDEN if role.startswith(CUSTOMER_ROLE) else Decision.FORBIDDEN
