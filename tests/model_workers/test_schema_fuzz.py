"""Schemathesis against a live model worker: no 5xx, every answer matches the schema.

As for the gateway, the schema comes from the same app factory in-process and
a test checks that the running worker serves exactly that document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from abgate.processes import Child
from core.settings import Settings
from model_workers.runtime import Prediction
from model_workers.server import create_worker_app

pytestmark = pytest.mark.integration


@dataclass
class SchemaOnly:
    """Names the served version for the app factory; the live worker does the predicting."""

    model: str = "demo"
    version: str = "v1"
    n_features: int = 10
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict(self, rows: list[list[float]]) -> list[Prediction]:
        raise AssertionError("the schema-only runtime never predicts")


OPENAPI = create_worker_app(Settings(), SchemaOnly()).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_worker_serves_this_schema(worker_v1: Child) -> None:
    assert requests.get(f"{worker_v1.url}/openapi.json", timeout=10).json() == OPENAPI


@schema.parametrize()
@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_worker_answers_conform_to_its_schema(case: schemathesis.Case, worker_v1: Child) -> None:
    # The feature count is the model's, not the schema's: such input gets a
    # documented 400, so "schema-valid input is accepted" is the one check left out.
    case.call_and_validate(base_url=worker_v1.url, excluded_checks=[positive_data_acceptance])
