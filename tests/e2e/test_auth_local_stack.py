"""`accord run` creates a local admin token on first start, prints it with the URLs, keeps it in the data
folder and prints the same one on the next start; the stack refuses requests without it."""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_local_stack import Stack

from accord.tokens import LOCAL_ADMIN_FILE

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for name in ("ACCORD_API_AUTH", "ACCORD_INGEST_AUTH"):
        monkeypatch.delenv(name, raising=False)  # auth on, as `make run` has it
    data_dir = Path(tempfile.mkdtemp(prefix="accord-stack-"))
    data_dir.chmod(0o755)  # PostgreSQL runs as an unprivileged account when the tests run as root
    s = Stack(data_dir)
    try:
        yield s
    finally:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.send_signal(signal.SIGINT)
            s.proc.wait(timeout=120)
        shutil.rmtree(data_dir, ignore_errors=True)


def printed_token(stack: Stack) -> str:
    tokens = re.findall(r"^admin token: (\S+)$", stack.text(), re.MULTILINE)
    assert tokens, stack.text()[-2000:]
    return str(tokens[-1])


async def test_make_run_prints_a_local_admin_token_and_keeps_it(stack: Stack) -> None:
    await stack.start()
    token = printed_token(stack)
    assert (stack.data_dir / LOCAL_ADMIN_FILE).read_text().strip() == token
    async with httpx.AsyncClient(base_url=stack.url("API")) as client:
        assert (await client.get("/v1/agreements")).status_code == 401
        r = await client.get("/v1/agreements", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    assert stack.proc is not None
    stack.proc.send_signal(signal.SIGINT)
    assert await stack.wait_exit() == 0
    await stack.start()
    assert printed_token(stack) == token
