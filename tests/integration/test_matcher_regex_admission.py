"""A matcher regex the apiserver admits is one the engine runs, and one it refuses the engine refuses too."""

from __future__ import annotations

import pytest
from kubernetes.client.rest import ApiException

from remediator.core.match.regexes import regex_problem
from tests.integration.test_crd_validation import create, ns  # noqa: F401  (ns: the module's namespace)
from tests.unit.test_api_validation import good_runbook

pytestmark = pytest.mark.integration

PATTERNS = [
    "web-.*", r"\pL+", r"\p{Greek}", r"a\z", "(?P<n>x)", "(?<n>x)", "[[:alpha:]]+", "", r"\Q.*\E", "(?U)a+",
    r"(\w|\w)*!", r"\\C", "a{1000}",
    "web-(", "a)|(b", "[z-a]", "(?=x)", "(?<!x)y", r"(a)\1", "a++", "a**", "*", "a{1001}", r"\C", r"x\Cy",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_apiserver_admits_exactly_the_regexes_the_engine_runs(kube_api, crds, ns, pattern):  # noqa: F811
    doc = good_runbook()
    doc["spec"]["triggers"][0]["alert"]["matchers"] = [{"name": "service", "op": "=~", "value": pattern}]
    try:
        create(kube_api, ns, doc)
        admitted = True
    except ApiException as e:
        assert e.status == 422, e.body
        assert "valid RE2 regular expression" in e.body, e.body
        admitted = False
    assert admitted is (regex_problem(pattern) is None), regex_problem(pattern)
