"""`accord openslo validate`: the import's checks offline, through accord's own entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import FOREIGN

from accord.cli import main


def test_validate_says_ok_for_a_file_that_imports_and_names_what_a_refused_one_breaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(FOREIGN)
    bad.write_text(FOREIGN.replace("conditions: [{conditionRef: fast}]", "conditions: []"))
    assert main(["openslo", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: ok" in out
    assert "note: DataSource 'prom' is kept for export" in out
    assert main(["openslo", "validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: would be refused" in out
    assert "documents.4.spec.conditions: exactly one condition per AlertPolicy (OpenSLO v1 rule)" in out
    assert main(["openslo", "validate", str(tmp_path / "missing.yaml")]) == 2
