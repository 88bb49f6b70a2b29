"""kopf's per-event diff base is built only for the kinds with change handlers (ours), not for every pod event."""

from __future__ import annotations

import json

import kopf

from remediator.controller.app import operator_settings

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                    "annotations": {"remediator.dev/last-handled-configuration": json.dumps({"spec": {"x": 1}})}},
       "spec": {"containers": [{"name": "app", "image": "web:1"}]}, "status": {"phase": "Running"}}
APPROVAL = {"apiVersion": "remediator.dev/v1alpha1", "kind": "RemediationApproval",
            "metadata": {"name": "vote-1", "namespace": "shop",
                         "annotations": {"remediator.dev/last-handled-configuration": json.dumps(
                             {"spec": {"decision": "approve"}})}},
            "spec": {"decision": "approve", "remediation": "r-1"}}


def test_a_pod_event_costs_kopf_no_copy_of_the_pod_and_no_parse_of_its_annotation():
    storage = operator_settings().persistence.diffbase_storage
    assert storage.fetch(body=kopf.Body(POD)) is None
    assert storage.build(body=kopf.Body(POD)) == {}


def test_our_own_kinds_keep_kopfs_diff_base_so_a_handled_approval_is_not_handled_again():
    storage = operator_settings().persistence.diffbase_storage
    assert storage.fetch(body=kopf.Body(APPROVAL)) == {"spec": {"decision": "approve"}}
    assert storage.build(body=kopf.Body(APPROVAL))["spec"] == APPROVAL["spec"]
    listed = {k: v for k, v in APPROVAL.items() if k != "apiVersion"}  # says not what it is: kopf's way
    assert storage.fetch(body=kopf.Body(listed)) == {"spec": {"decision": "approve"}}
