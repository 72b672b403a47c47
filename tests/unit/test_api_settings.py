"""The api's period-closer interval: a number of seconds above 0 and at most a day, refused otherwise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.api.settings import ApiSettings


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
