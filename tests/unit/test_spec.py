"""shared.spec: the stored contract as typed, frozen values."""

from __future__ import annotations

import pydantic
import pytest
from support import agreement_spec, objective_spec

from shared.budget import Comparison
from shared.spec import AgreementDocument, ObjectiveSpec, Threshold


def test_a_change_is_validated_into_the_spec_and_the_original_stays() -> None:
    spec = objective_spec(target=0.99)
    changed = spec.changed(threshold={"op": "<=", "value": 300}, target=0.9)
    assert changed.threshold == Threshold(op=Comparison.LE, value=300.0)
    assert (changed.target, spec.target, spec.threshold) == (0.9, 0.99, None)
    with pytest.raises(pydantic.ValidationError):
        spec.changed(threshold={"op": "==", "value": 1})
    with pytest.raises(pydantic.ValidationError):
        spec.target = 0.5  # type: ignore[misc]


def test_a_stored_spec_round_trips_and_has_no_defaults_to_reapply() -> None:
    agreement = agreement_spec(timezone="Europe/Berlin")
    objective = objective_spec(target=0.99, window="month")
    document = AgreementDocument.model_validate(
        {**agreement.to_json(), "archived_at": None, "objectives": [{**objective.to_json(), "id": str(_ID)}]}
    )
    assert AgreementDocument.model_validate_json(document.model_dump_json()) == document
    assert document.spec() == agreement
    found = document.objective(_ID)
    assert found is not None
    assert found.spec() == objective
    with pytest.raises(pydantic.ValidationError):
        ObjectiveSpec.model_validate({"name": "o", "indicator": "i", "target": 0.9, "window": "1d"})


_ID = "00000000-0000-0000-0000-000000000001"
