"""`accord tokens create|list|revoke`, straight against the database (so it works before any token
exists), and the local admin token `accord run` creates on first start.

    accord tokens create --name "prometheus" --role ingest --indicator 'checkout.*'   prints the token
    accord tokens list [--revoked]
    accord tokens revoke <id>
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.api import token_store
from shared.auth import Principal
from shared.db import make_engine, make_sessionmaker
from shared.errors import AccordError
from shared.settings import sqlalchemy_url

log = logging.getLogger("accord.tokens")
LOCAL_ADMIN_FILE = "admin-token"
"""Under the data folder: the admin token `accord run` created (0600)."""
_DURATION = re.compile(r"^([0-9]{1,6})([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
T = TypeVar("T")


def _cli_actor() -> Principal:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Principal(None, f"accord tokens ({user})", "admin")


async def _in_transaction(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def _expiry(args: argparse.Namespace) -> datetime | None:
    if args.expires_at:
        instant = datetime.fromisoformat(args.expires_at)
        if instant.tzinfo is None:
            raise SystemExit("--expires-at needs an offset, e.g. 2027-01-01T00:00:00Z")
        return instant
    if args.expires_in:
        match = _DURATION.match(args.expires_in)
        if match is None:
            raise SystemExit("--expires-in reads like 90d, 12h or 30m")
        return datetime.now(UTC) + timedelta(seconds=int(match.group(1)) * _SECONDS[match.group(2)])
    return None


def add_parser(sub: Any) -> None:
    tokens = sub.add_parser("tokens", help="create, list and revoke bearer tokens (works before any token exists)")
    commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = commands.add_parser("create", help="create a token and print it (shown this once)")
    create.add_argument("--name", required=True, help="what the token is for, e.g. 'prometheus exporter'")
    create.add_argument("--role", required=True, help="admin, editor, ingest, viewer or customer:<name>")
    create.add_argument("--expires-in", help="lifetime such as 90d, 12h, 30m (default: until revoked)")
    create.add_argument("--expires-at", help="expiry instant, RFC 3339 with an offset")
    create.add_argument(
        "--indicator", action="append", help="ingest tokens: an indicator (or prefix ending in *) it may post; repeat"
    )
    listing = commands.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--revoked", action="store_true", help="include revoked tokens")
    revoke = commands.add_parser("revoke", help="revoke a token: every replica refuses it within 5 s")
    revoke.add_argument("id", help="the token's id (from list)")


def run(args: argparse.Namespace, database_url: str) -> int:
    """Run `accord tokens ...`; the token (create) or the table (list) goes to stdout."""
    actor = _cli_actor()
    try:
        if args.tokens_command == "create":
            expires_at = _expiry(args)

            async def create(session: AsyncSession) -> str:
                row, issued = await token_store.create_token(
                    session, actor, name=args.name, role=args.role, expires_at=expires_at, indicators=args.indicator
                )
                log.info("created token %s (%s, %r); its secret is shown this once:", row.id, row.role, row.name)
                return issued.token

            print(asyncio.run(_in_transaction(database_url, create)))
            return 0
        if args.tokens_command == "list":
            rows = asyncio.run(
                _in_transaction(
                    database_url, lambda s: token_store.list_tokens(s, revoked=args.revoked, after=None, limit=100_000)
                )
            )
            print(f"{'ID':<13} {'ROLE':<20} {'EXPIRES':<26} {'REVOKED':<26} NAME")
            for r in rows:
                expires = r.expires_at.isoformat(timespec="seconds") if r.expires_at else "-"
                revoked = r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "-"
                print(f"{r.id:<13} {r.role:<20} {expires:<26} {revoked:<26} {r.name}")
            return 0
        if args.tokens_command == "revoke":
            row = asyncio.run(_in_transaction(database_url, lambda s: token_store.revoke_token(s, actor, args.id)))
            log.info("token %s (%r) revoked at %s", row.id, row.name, row.revoked_at)
            return 0
    except AccordError as exc:
        problems = exc.extra.get("errors", [])
        details = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        print(f"accord tokens: {exc.detail}{' ' + details if details else ''}", file=sys.stderr)
        return 1
    return 2


def create_token(database_url: str, *, name: str, role: str, indicators: list[str] | None = None) -> str:
    """A new token (for tools such as the benchmarks); returns its secret."""

    async def create(session: AsyncSession) -> str:
        _, issued = await token_store.create_token(session, _cli_actor(), name=name, role=role, indicators=indicators)
        return issued.token

    return asyncio.run(_in_transaction(sqlalchemy_url(database_url), create))


def local_admin_token(database_url: str, data_dir: Path) -> str:
    """The admin token of `accord run`: the one kept in `data_dir` while it is in force, else a new one."""
    path = data_dir / LOCAL_ADMIN_FILE
    kept = path.read_text().strip() if path.exists() else ""

    async def ensure(session: AsyncSession) -> str:
        if kept and await token_store.token_in_force(session, kept):
            return kept
        actor = Principal(None, "accord run", "admin")
        _, issued = await token_store.create_token(session, actor, name="local admin (accord run)", role="admin")
        return issued.token

    token = asyncio.run(_in_transaction(database_url, ensure))
    if token != kept:
        data_dir.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + ".tmp")
        staging.unlink(missing_ok=True)
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        staging.replace(path)
        log.info("created a local admin token, kept in %s", path)
    return token
