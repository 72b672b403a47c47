"""`accord run` creates a local admin token on first start, prints it with the URLs, keeps it in the data
folder and prints the same one on the next start; the stack refuses requests without it."""

from __future__ import annotations

import re
import signal

import httpx
import pytest
from support import Stack

from accord.tokens import LOCAL_ADMIN_FILE

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _auth_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACCORD_API_AUTH", "ACCORD_INGEST_AUTH"):
        monkeypatch.delenv(name, raising=False)  # auth on, as `make run` has it


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
