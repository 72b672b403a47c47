"""Shared by the deploy checks: where the chart is, how helm runs, and what a missing tool means.

(A module of its own, not conftest: the test directories have no __init__.py, so `conftest`
names a different file depending on what was collected first.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "accord"
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.30.0"
MONITORING_API = "monitoring.coreos.com/v1"

Render = Callable[..., list[dict[str, Any]]]


def unavailable(message: str) -> NoReturn:
    """A tool cannot be had: skip locally, fail under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing tool is a failure)")
    pytest.skip(message)


def load_tools() -> ModuleType:
    """deploy/tools.py, which is a script rather than a package module."""
    spec = importlib.util.spec_from_file_location("accord_deploy_tools", ROOT / "deploy" / "tools.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Helm keeps no state between these commands; throwaway dirs keep it out of $HOME.
    home = Path(tempfile.gettempdir()) / "accord-helm"
    env = {**os.environ, **{f"HELM_{d}_HOME": str(home / d.lower()) for d in ("CACHE", "CONFIG", "DATA")}}
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False, env=env, timeout=60)
