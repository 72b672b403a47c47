"""The wheel carries what `accord migrate` needs, so the container image runs it without the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_wheel_holds_the_migrations_and_alembic_config(tmp_path: Path) -> None:
    # Built from a copy of what the Dockerfile copies, so no build/ folder is left in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("accord", "shared", "services"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("accord-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = sorted(p.name for p in (ROOT / "accord" / "migrations" / "versions").glob("*.py"))
    assert versions
    expected = {
        "accord/alembic.ini",
        "accord/migrations/env.py",
        "accord/migrations/script.py.mako",
        *(f"accord/migrations/versions/{name}" for name in versions),
    }
    assert expected <= names, sorted(expected - names)
    ini = zipfile.ZipFile(wheel).read("accord/alembic.ini").decode()
    assert "script_location = %(here)s/migrations" in ini  # resolved beside the installed alembic.ini
