"""Tokens and permissions as pure logic: the format, roles, indicator limits, decisions, the cache's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import (
    Refused,
    TokenCache,
    TokenRecord,
    indicator_allowed,
    issue_token,
    role_problem,
    token_hash,
    token_id_of,
)
from shared.permissions import ROLE_PERMISSIONS, TABLE, Decision, Permission, Scope, decide


def test_an_issued_token_carries_its_id_and_only_its_hash_is_kept() -> None:
    issued = issue_token()
    assert issued.token.startswith(f"accord_{issued.id}_")
    assert token_id_of(issued.token) == issued.id
    assert issued.hash == token_hash(issued.token)
    assert issued.token not in issued.hash
    assert issue_token().token != issued.token


@pytest.mark.parametrize(
    "text",
    ["", "accord_", "accord_abc_def", "Bearer accord_0123456789ab_" + "x" * 43, "accord_0123456789AB_" + "x" * 43],
)
def test_anything_else_is_not_a_token(text: str) -> None:
    assert token_id_of(text) is None


@pytest.mark.parametrize(
    ("role", "ok"),
    [("admin", True), ("editor", True), ("ingest", True), ("viewer", True), ("customer:Acme Corp", True),
     ("customer:", False), ("customer: Acme", False), ("customer:a\nb", False), ("root", False), ("Admin", False)],
)  # fmt: skip
def test_roles_are_the_four_and_customer_name(role: str, ok: bool) -> None:
    assert (role_problem(role) is None) is ok


@pytest.mark.parametrize(
    ("patterns", "indicator", "allowed"),
    [(None, "any", True), (("checkout.*",), "checkout.latency", True), (("checkout.*",), "search.latency", False),
     (("a.b",), "a.b", True), (("a.b",), "a.bc", False), ((), "a.b", False)],
)  # fmt: skip
def test_an_ingest_token_may_be_limited_to_keys_and_prefixes(
    patterns: tuple[str, ...] | None, indicator: str, allowed: bool
) -> None:
    assert indicator_allowed(patterns, indicator) is allowed


def test_a_customer_is_told_nothing_exists_where_others_are_told_no() -> None:
    assert decide("customer:Acme", Permission.WRITE) is Decision.HIDDEN
    assert decide("viewer", Permission.WRITE) is Decision.FORBIDDEN
    assert decide("editor", Permission.WRITE) is Decision.ALLOW
    assert decide("ingest", Permission.READ) is Decision.FORBIDDEN
    assert all(decide("admin", p) is Decision.ALLOW for p in Permission)


def test_every_route_open_to_customers_says_how_they_are_confined() -> None:
    for rule in TABLE:
        assert (rule.permission is Permission.CUSTOMER) == (rule.scope is not Scope.NONE), rule
    assert Permission.ADMIN not in ROLE_PERMISSIONS["editor"]


async def test_the_cache_refuses_unknown_mismatched_and_expired_tokens() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    cache = TokenCache("postgresql://unused", 2.0, now=lambda: now)
    good, expiring, revoked = issue_token(), issue_token(), issue_token()
    cache.replace(
        [
            TokenRecord(good.id, "good", "viewer", good.hash, None, None),
            TokenRecord(expiring.id, "expiring", "ingest", expiring.hash, ("a.*",), now + timedelta(seconds=1)),
            TokenRecord(revoked.id, "revoked", "admin", revoked.hash, None, None, revoked=True),
        ]
    )
    assert (await cache.authenticate(good.token)).role == "viewer"
    principal = await cache.authenticate(expiring.token)
    assert principal.indicators == ("a.*",)
    assert principal.customer is None
    forged = good.token[:-1] + ("A" if good.token[-1] != "A" else "B")
    for refused in (forged, issue_token().token, "nonsense", revoked.token):
        with pytest.raises(Refused) as info:
            await cache.authenticate(refused)
        assert refused not in str(info.value)
    now += timedelta(seconds=1)
    with pytest.raises(Refused, match="expired"):
        await cache.authenticate(expiring.token)
