"""Property-based fuzzing of the API from its OpenAPI schema (schemathesis): no 5xx, and every response
(refusals too) has a documented status, content type and body schema. Bounded and derandomised: a fixed
number of generated requests per operation, the same ones on every run."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance

pytestmark = pytest.mark.slow  # every test here uses the trained run of conftest.py

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [("GET", "/api/model", 3), ("GET", "/api/examples", 3), ("POST", "/api/edit", 60), ("POST", "/api/bounds", 40)]


@pytest.fixture(scope="module")
def api_schema(web_app):
    return schemathesis.openapi.from_asgi("/openapi.json", web_app)


def test_the_schema_lists_every_operation(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == {(m, p) for m, p, _ in OPERATIONS}


@pytest.mark.parametrize("method, path, examples", OPERATIONS)
def test_fuzz(api_schema, method, path, examples):
    operation = api_schema[path][method]
    seen = []

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(checks=CHECKS)
        seen.append(response.status_code)

    run()
    assert seen and max(seen) < 500


@pytest.mark.parametrize("path, examples", [("/api/edit", 40), ("/api/bounds", 20)])
def test_fuzz_a_run_with_continuous_factors(morpho_app, path, examples):
    """The same checks on a run whose factors T and I are continuous (numbers in the edit request)."""
    operation = schemathesis.openapi.from_asgi("/openapi.json", morpho_app)[path]["POST"]
    seen = []

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        seen.append(case.call_and_validate(checks=CHECKS).status_code)

    run()
    assert seen and max(seen) < 500


def test_the_schema_names_the_runs_factors_and_values(web_app, client):
    """The edit request's schema lists the run's factors and their values (what the fuzzer draws from): a
    request made of the first value the schema allows for each factor, alone, is an edit that succeeds."""
    props = web_app.openapi()["components"]["schemas"]["EditRequest"]["properties"]
    do = props["do"]
    assert do["propertyNames"]["enum"] == ["D", "C", "B"]
    for f in do["propertyNames"]["enum"]:
        value = do["properties"][f]["enum"][0]
        r = client.post("/api/edit", json={"example": props["example"]["anyOf"][0]["maximum"], "do": {f: value}, "k": 1})
        assert r.status_code == 200, (f, value, r.text)
