"""Why a drain is blocked, in the apiserver's own words: the PodDisruptionBudget named in an eviction's 429."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from remediator.actions.drain import refusing_budgets


def too_many_requests(causes: list[dict]) -> ApiException:
    e = ApiException(status=429, reason="Too Many Requests")
    e.body = json.dumps({"kind": "Status", "status": "Failure", "reason": "TooManyRequests", "code": 429,
                         "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                         "details": {"causes": causes}})
    return e


def test_the_budget_named_in_the_eviction_refusal_is_the_one_reported():
    refusal = too_many_requests([{"reason": "DisruptionBudget",
                                  "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}])
    assert refusing_budgets(refusal, "shop") == ["shop/web-pdb"]


def test_a_refusal_without_a_budget_cause_names_none():
    assert refusing_budgets(too_many_requests([]), "shop") == []
    assert refusing_budgets(None, "shop") == []
    broken = ApiException(status=429)
    broken.body = "not json"
    assert refusing_budgets(broken, "shop") == []
