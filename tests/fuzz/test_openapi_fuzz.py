"""Property-based fuzzing of every documented operation with schemathesis.

Generated requests go through the WSGI app against the real test database; every
answer must be a documented status with a documented content type and body, and never
a 5xx. `make fuzz` raises the example count; the normal suite runs a bounded pass.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.auth import make_admin
from webapp.core.db import Database

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_conforms_and_never_fails_on_the_server(app: Flask) -> None:
    # schemathesis' pytest plugin (from_fixture) does not run under pytest 9, so the
    # operations are driven through hypothesis directly; same checks, same strategies.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    admin = _Admin(app)
    failures: dict[str, str] = {}
    calls: dict[str, int] = {}

    for result in schema.get_all_operations():
        # An operation the spec cannot express raises here, and the test fails as it should.
        operation = result.ok()  # type: ignore[union-attr]
        # Positive cases follow the schema (they must be accepted or fail as documented);
        # negative cases break it on purpose (they must be a documented 4xx, never a 5xx).
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"
            calls[label] = 0
            try:
                _fuzz(operation, mode, label, calls, admin)
            except Unsatisfiable:
                # An operation without inputs (GET /health) has nothing to break.
                if mode is GenerationMode.POSITIVE:
                    raise
                del calls[label]
            except Exception as error:
                failures[label] = f"{type(error).__name__}: {error}"

    total = sum(calls.values())
    print(f"\nfuzz: {total} generated requests over {len(calls)} operations: {calls}")
    assert len(calls) >= 27, calls  # every route is documented and fuzzed
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


class _Admin:
    """An admin's bearer token for every generated call, so the fuzzer reaches the write paths.

    A generated call may revoke it (sign out, a new password, a deactivation, a delete):
    after a 401 the next call signs in afresh, and a new admin is made when the old one can
    no longer. Signing in only then, not before every call, halves the fuzz's run time.
    """

    PASSWORD = "fuzz-admin-password"

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.numbers = itertools.count(1)
        self.email = self._new_admin()
        self.cached: dict[str, str] | None = None

    def forget_token_after(self, status: int) -> None:
        if status == 401:
            self.cached = None

    def _new_admin(self) -> str:
        email = f"fuzz-admin-{next(self.numbers)}@example.com"
        body = {"email": email, "full_name": "Fuzz Admin", "password": self.PASSWORD}
        response = self.client.post("/api/v1/users", json=body)
        assert response.status_code == 201, response.get_json()
        database: Database = self.app.extensions["database"]
        with database.new_session() as session:
            make_admin(session, int(response.get_json()["id"]))
        return email

    def headers(self) -> dict[str, str]:
        if self.cached is not None:
            return self.cached
        for _ in range(2):
            response = self.client.post(
                "/api/v1/tokens", json={"email": self.email, "password": self.PASSWORD}
            )
            if response.status_code == 201:
                self.cached = {"Authorization": f"Bearer {response.get_json()['token']}"}
                return self.cached
            self.email = self._new_admin()
        raise AssertionError(f"cannot sign the fuzz admin in: {response.get_json()}")


def _fuzz(operation: Any, mode: GenerationMode, label: str, calls: dict[str, int], admin: _Admin) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("FUZZ_DERANDOMIZE", "1") == "1",
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def exercise(case: Any) -> None:
        calls[label] += 1
        response = case.call(headers=admin.headers())
        admin.forget_token_after(response.status_code)
        case.validate_response(response, checks=CHECKS)

    exercise()
