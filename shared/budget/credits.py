"""Service credits owed for a reporting period's compliance (docs/design.md §2.4: service-credit tiers)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise


def validate_credit_tiers(tiers: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Tiers as (below_fraction, credit_percent) sorted by fraction, descending; ValueError unless monotonic.

    Monotonic: a lower compliance threshold never owes less credit than a higher one.
    """
    ordered = tuple(sorted(((float(b), float(c)) for b, c in tiers), reverse=True))
    for below, credit in ordered:
        if not 0 < below <= 1:
            raise ValueError(f"a credit tier's threshold must lie in (0, 1], got {below}")
        if not 0 <= credit <= 100:
            raise ValueError(f"a credit tier's credit must be a percentage in [0, 100], got {credit}")
    for (high, high_credit), (low, low_credit) in pairwise(ordered):
        if high == low:
            raise ValueError(f"two credit tiers share the threshold {high}")
        if low_credit < high_credit:
            raise ValueError(f"credit tiers must not owe less below {low} than below {high}")
    return ordered


def credit_owed(compliance: float | None, tiers: Sequence[tuple[float, float]]) -> float:
    """The credit percent of the lowest tier threshold `compliance` falls below; 0 when none (or no data)."""
    owed = 0.0
    if compliance is None:
        return owed
    for below, credit in validate_credit_tiers(tiers):
        if compliance < below:
            owed = credit
    return owed
