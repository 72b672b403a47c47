"""The README's walkthrough, run as written: its `sh` blocks, taken from README.md itself (so the two
cannot drift), against a fresh `accord run` on non-default ports, each block's answer checked
against the `json`/`text` block the README shows after it.

A `json` claim is a subset of the block's last JSON answer (objects: the keys shown; lists: every
item; numbers to 1e-6; "…" any non-null value). A claim that is a list of objects is matched by
the block's JSON lines, each item by one of them (an event stream). A `text` claim's lines must
each be a line of the output (case-insensitive).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support import BIN, wait_until

from accord.localstack import die_with_parent, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ANY = "…"


@dataclass
class Block:
    step: str
    script: str
    claim: tuple[str, str] | None  # (language, text) of the block the README shows after it


def walkthrough_blocks(readme: str) -> list[Block]:
    """The walkthrough's sh blocks in order, with the step they belong to and the claim after each."""
    section = readme.split("## A five-minute walkthrough", 1)[1].split("\n## ", 1)[0]
    fences = list(re.finditer(r"^```(\w+)\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL))
    blocks: list[Block] = []
    for n, fence in enumerate(fences):
        if fence.group(1) != "sh":
            continue
        steps = re.findall(r"^\*\*(\d+b?)\. ", section[: fence.start()], flags=re.MULTILINE)
        after = fences[n + 1] if n + 1 < len(fences) else None
        claim = None
        if after is not None and after.group(1) in ("json", "text"):
            between = section[fence.end() : after.start()]
            if not between.strip():
                claim = (after.group(1), after.group(2))
        blocks.append(Block(steps[-1] if steps else "?", fence.group(2), claim))
    return blocks


def json_documents(text: str) -> list[Any]:
    """Every JSON value in `text`, in order (other text skipped)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except ValueError:
                i += 1
                continue
            out.append(value)
            i = end
        else:
            i += 1
    return out


def matches(claim: Any, actual: Any) -> bool:
    if claim == ANY:
        return actual is not None
    if isinstance(claim, dict):
        return isinstance(actual, dict) and all(k in actual and matches(v, actual[k]) for k, v in claim.items())
    if isinstance(claim, list):
        return (
            isinstance(actual, list)
            and len(claim) == len(actual)
            and all(matches(c, a) for c, a in zip(claim, actual, strict=True))
        )
    if isinstance(claim, float) or isinstance(actual, float):
        return isinstance(actual, int | float) and abs(actual - claim) <= 1e-6 * max(1.0, abs(claim))
    return bool(claim == actual)


def check(block: Block, output: str) -> None:
    assert block.claim is not None
    language, text = block.claim
    if language == "text":
        lines = {line.strip().lower() for line in output.splitlines()}
        for line in text.strip().splitlines():
            assert line.strip().lower() in lines, f"step {block.step}: {line!r} not in\n{output}"
        return
    claim = json.loads(text)
    documents = json_documents(output)
    assert documents, f"step {block.step}: no JSON in\n{output}"
    if isinstance(claim, list) and all(isinstance(c, dict) for c in claim):  # a stream: each item in some line
        for item in claim:
            assert any(matches(item, d) for d in documents), f"step {block.step}: nothing matches {item}\n{output}"
        return
    assert matches(claim, documents[-1]), f"step {block.step}: {claim}\nis not in\n{json.dumps(documents[-1])}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`accord run` on a fresh data dir and non-default ports; the environment a newcomer's shell has."""
    data_dir = Path(tempfile.mkdtemp(prefix="accord-walkthrough-"))
    data_dir.chmod(0o755)  # PostgreSQL runs as an unprivileged account when the tests run as root
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update({f"ACCORD_{name}_PORT": str(free_port()) for name in ("PG", "KAFKA", "API", "INGEST", "EVALUATOR")})
    env["ACCORD_DATA_DIR"] = str(data_dir)
    log = data_dir / "run.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "accord"), "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"accord run exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return "Accord is ready" in log.read_text(errors="replace")

        asyncio.run(wait_until(ready, timeout=120, what=f"accord run to be ready (log {log})"))
        yield env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        subprocess.run([str(BIN / "accord"), "stop", "--force"], env=env, check=False, timeout=120, capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def in_the_walkthroughs_monthly_maintenance(now: datetime) -> bool:
    """Step 2's agreement excludes the first Sunday of every month, 02:00-04:00 Berlin time: measurements
    posted then do not count, and the claimed numbers would not hold."""
    local = now.astimezone(ZoneInfo("Europe/Berlin"))
    return local.weekday() == 6 and local.day <= 7 and 2 <= local.hour < 4


def test_the_readme_walkthrough_does_what_it_says(stack: dict[str, str], tmp_path: Path) -> None:
    if in_the_walkthroughs_monthly_maintenance(datetime.now(UTC)):
        pytest.skip("inside the walkthrough agreement's monthly maintenance window: nothing would count")
    blocks = walkthrough_blocks((ROOT / "README.md").read_text())
    assert [b.step for b in blocks][:3] == ["?", "1", "2"]  # the admin token's export, then the steps
    assert sum(b.claim is not None for b in blocks) >= 10
    # One shell for the whole walkthrough (step 2's variables serve the later steps), run where the
    # README is (`.venv/bin/accord`), its ports those of this second stack, as a reader must adapt them.
    venv = ROOT / ".venv"
    workdir = tmp_path / "walk"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(venv if venv.exists() else BIN.parent)
    marker = "@@accord-walkthrough-block@@"
    script = ["set -o pipefail"]
    for n, block in enumerate(blocks):
        body = block.script.replace("localhost:8000", f"localhost:{stack['ACCORD_API_PORT']}")
        body = body.replace("localhost:8001", f"localhost:{stack['ACCORD_INGEST_PORT']}")
        body = body.replace("localhost:8002", f"localhost:{stack['ACCORD_EVALUATOR_PORT']}")
        body = body.replace(".accord/admin-token", f"{stack['ACCORD_DATA_DIR']}/admin-token")
        script += [f"echo {marker}{n}", body, f"echo {marker}status=$?"]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=workdir,
        env=stack,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    outputs = re.split(rf"{marker}\d+\n", done.stdout)[1:]
    assert len(outputs) == len(blocks), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    for block, chunk in zip(blocks, outputs, strict=True):
        output, _, status = chunk.rpartition(f"{marker}status=")
        code = int(status.split()[0])
        allowed = {0, 124} if "timeout " in block.script else {0}  # `timeout 5 accord events tail` ends by timeout
        assert code in allowed, f"step {block.step} exited {code}:\n{block.script}\n{output}\n{done.stderr}"
        assert output.strip() or block.script.startswith("export "), (
            f"step {block.step} printed nothing:\n{block.script}\n{done.stderr}"
        )
        if block.claim is not None:
            check(block, output)
