"""Request and response bodies of the api (pydantic), with examples for /docs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.terms import parse_window

T = TypeVar("T")

KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndicatorIn(Strict):
    key: str = Field(pattern=KEY_PATTERN, examples=["checkout.availability"])
    kind: Literal["ratio", "threshold"] = Field(examples=["ratio"])
    unit: str | None = Field(default=None, examples=["requests"])
    description: str = ""


class IndicatorOut(BaseModel):
    key: str
    kind: str
    unit: str | None
    description: str
    created_at: datetime


class AlertTierIn(Strict):
    name: str | None = None
    severity: Literal["page", "ticket"] = "page"
    long_window: str = Field(examples=["1h"])
    short_window: str = Field(examples=["5m"])
    factor: float = Field(gt=0, examples=[14.4])


class AlertPolicyIn(Strict):
    tiers: list[AlertTierIn] | None = Field(default=None, description="Burn-rate tiers; defaults from DESIGN §3.")
    min_events: int = Field(default=0, ge=0, description="Events needed in a page tier's long window to page.")
    budget_thresholds: list[float] = Field(default=[0.5, 0.75, 0.9, 1.0])

    @field_validator("budget_thresholds")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < t <= 1 for t in v):
            raise ValueError("budget thresholds are fractions of the budget in (0, 1]")
        return sorted(set(v))


class ObjectiveIn(Strict):
    name: str = Field(min_length=1, examples=["Checkout availability"])
    indicator: str = Field(pattern=KEY_PATTERN, examples=["checkout.availability"])
    target: float = Field(gt=0, lt=1, examples=[0.999])
    window: str = Field(default="30d", examples=["30d"])
    alert_policy: AlertPolicyIn = Field(default_factory=AlertPolicyIn)

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        parse_window(v)
        return v


class AgreementIn(Strict):
    name: str = Field(min_length=1, examples=["Acme checkout SLA"])
    provider: str = Field(min_length=1, examples=["Shop Platform"])
    customer: str = Field(min_length=1, examples=["Acme Corp"])
    description: str = ""
    timezone: str = Field(default="UTC", examples=["Europe/Berlin"])
    objectives: list[ObjectiveIn] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA timezone") from None
        return v


class ObjectiveOut(BaseModel):
    id: uuid.UUID
    name: str
    indicator: str
    target: float
    window: str
    alert_policy: dict[str, Any]


class AgreementOut(BaseModel):
    id: uuid.UUID
    name: str
    provider: str
    customer: str
    description: str
    timezone: str
    revision: int
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    objectives: list[ObjectiveOut]


class Budget(BaseModel):
    allowed_events: float = Field(description="(1 - target) × total events in the window.")
    consumed_events: int = Field(description="Bad events in the window.")
    consumed: float = Field(description="Fraction of the budget consumed.")
    remaining: float = Field(description="1 - consumed; negative when overspent.")


class TierStatus(BaseModel):
    name: str
    severity: str
    factor: float
    long_burn_rate: float | None
    short_burn_rate: float | None
    firing: bool


class ObjectiveStatusOut(BaseModel):
    objective_id: uuid.UUID
    agreement_id: uuid.UUID
    name: str
    indicator: str
    target: float
    window: str
    sli: float | None = Field(description="good / total; null when there were no events (never 100 %).")
    good: int
    total: int
    budget: Budget
    burn_rate: float | None = Field(description="Burn rate over the whole window.")
    tiers: list[TierStatus]
    exhausted: bool
    last_measurement_at: datetime | None
    evaluated_at: datetime | None = Field(description="Event time the evaluator evaluated at (newest measurement).")


class AgreementStatusOut(BaseModel):
    agreement_id: uuid.UUID
    customer: str
    objectives: list[ObjectiveStatusOut]


class BreachEventOut(BaseModel):
    id: str
    type: str
    objective_id: uuid.UUID
    agreement_id: uuid.UUID
    customer: str
    time: datetime
    published: bool
    event: dict[str, Any]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")
