"""Schemathesis against the control plane's own /openapi.json: generated requests to every
operation, valid and invalid, in the test namespace with an allowed user's token, must never
get a 5xx. Bad input is the caller's fault and must be answered as such (4xx with a reason)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

EXAMPLES = 15  # per operation and mode; ~30 operations


def test_no_generated_request_gets_a_server_error(api):
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "every kind's routes should be in /openapi.json"
    seen: dict[str, set[int]] = {}

    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case):
                if "namespace" in (case.path_parameters or {}):
                    case.path_parameters["namespace"] = api.namespace  # where the caller may act: into the handlers
                response = case.call(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
                seen.setdefault(operation.label, set()).add(response.status_code)
                case.validate_response(response, checks=(not_a_server_error,))

            try:
                check()
            except Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing invalid to send (no parameters)
    # The generated requests got past authentication into the handlers, not just 401s.
    assert any(200 <= s < 300 for codes in seen.values() for s in codes), seen
