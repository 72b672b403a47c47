"""`accord tokens` works straight against the database (before any token exists), and `accord run`'s
local admin token is kept in the data folder while it is in force."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

from support import BIN

from accord.tokens import LOCAL_ADMIN_FILE, local_admin_token


def accord(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([str(BIN / "accord"), *args], env=env, capture_output=True, text=True, timeout=60)


async def test_tokens_are_created_listed_and_revoked_from_the_command_line(database_url: str) -> None:
    created = await asyncio.to_thread(
        accord, database_url, "tokens", "create", "--name", "prometheus", "--role", "ingest",
        "--indicator", "checkout.*", "--expires-in", "90d",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    token_id = token.split("_")[1]
    assert token.startswith("accord_")
    assert token not in created.stderr
    listed = await asyncio.to_thread(accord, database_url, "tokens", "list")
    assert token_id in listed.stdout
    assert "prometheus" in listed.stdout
    assert token not in listed.stdout
    revoked = await asyncio.to_thread(accord, database_url, "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert token_id not in (await asyncio.to_thread(accord, database_url, "tokens", "list")).stdout
    assert token_id in (await asyncio.to_thread(accord, database_url, "tokens", "list", "--revoked")).stdout
    bad = await asyncio.to_thread(accord, database_url, "tokens", "create", "--name", "x", "--role", "root")
    assert bad.returncode == 1
    assert "role" in bad.stderr


async def test_the_local_admin_token_is_kept_while_it_is_in_force(database_url: str, tmp_path: Path) -> None:
    url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    first = await asyncio.to_thread(local_admin_token, url, tmp_path)
    assert stat.S_IMODE((tmp_path / LOCAL_ADMIN_FILE).stat().st_mode) == 0o600
    assert await asyncio.to_thread(local_admin_token, url, tmp_path) == first
    assert (await asyncio.to_thread(accord, database_url, "tokens", "revoke", first.split("_")[1])).returncode == 0
    second = await asyncio.to_thread(local_admin_token, url, tmp_path)
    assert second != first
    assert (tmp_path / LOCAL_ADMIN_FILE).read_text().strip() == second
