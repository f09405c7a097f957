"""Every service's OpenAPI document describes every error answer as problem details."""

from __future__ import annotations

import pytest

from services.notify.main import spec as notify_spec
from services.oversight.main import spec as oversight_spec
from services.proposals.main import spec as proposals_spec
from services.voting.main import spec as voting_spec
from tests.support.auth import auth_settings
from yishi.runtime import create_app
from yishi.settings import Settings


@pytest.mark.parametrize("spec", [proposals_spec, voting_spec, oversight_spec, notify_spec])
def test_every_error_answer_is_documented_as_problem_details(spec):
    app = create_app(spec(), Settings(database_url="postgresql://unused", kafka_bootstrap="unused:9092",
                                      **auth_settings()))
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert {"Problem", "FieldError", "CommandProblem"} <= schemas.keys()
    assert "HTTPValidationError" not in schemas
    errors = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if int(code) >= 400:
                    errors += 1
                    assert list(response.get("content", {})) == ["application/problem+json"], (path, method, code)
            if "/commands/" in path:
                assert {"401", "403", "404", "409", "422", "429"} <= operation["responses"].keys(), path
    assert errors > 0
