"""Settings refused at start: each service names the variable and why, exits 2, shows no traceback and never
the refused value (it may be a secret); and the api's period-closer interval, a number of seconds in (0, 1 day]."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.api.settings import ApiSettings

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("service", ["accord-api", "accord-ingest", "accord-evaluator"])
def test_a_service_with_refused_settings_names_each_and_exits_2_without_a_traceback(service: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "mysql://admin:s3cret-password@db/accord",
        "ACCORD_LOG_LEVEL": "LOUD",
        "ACCORD_API_REPORT_CLOSE_INTERVAL_SECONDS": "nan",
    }
    done = subprocess.run([BIN / service], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr
    assert f"{service}: invalid setting DATABASE_URL: DATABASE_URL must be a postgresql:// URL" in done.stderr
    assert f"{service}: invalid setting ACCORD_LOG_LEVEL: a log level is one of" in done.stderr
    if service == "accord-api":
        assert "invalid setting ACCORD_API_REPORT_CLOSE_INTERVAL_SECONDS: Input should be" in done.stderr


def test_the_closer_runs_every_30_seconds_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCORD_API_REPORT_CLOSE_INTERVAL_SECONDS", raising=False)
    assert ApiSettings().report_close_interval_seconds == 30.0
    monkeypatch.setenv("ACCORD_API_REPORT_CLOSE_INTERVAL_SECONDS", "0.5")
    assert ApiSettings().report_close_interval_seconds == 0.5


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "86401", "1e9", "30s", ""])
def test_an_interval_that_is_not_a_sane_number_of_seconds_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ACCORD_API_REPORT_CLOSE_INTERVAL_SECONDS", value)
    with pytest.raises(ValidationError, match="report_close_interval_seconds"):
        ApiSettings()
