"""The generated CRDs make a real apiserver reject bad objects with messages that name the field.

The bad documents are the ones the offline validator is tested with
(tests/unit/test_api_validation.py), so both enforcers are held to one table.
Objects are created with dryRun=All: validation runs in full, nothing is stored.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.api.validation import validate_document
from remediator.api.models import RemediationStatus
from tests.support.waiting import wait_for
from tests.unit.test_api_validation import (
    BAD_POLICIES,
    BAD_RUNBOOKS,
    BAD_SLOS,
    SHIPPED,
    Bad,
    broken,
    good_node_runbook,
    good_policy,
    good_runbook,
    good_slo,
)

pytestmark = pytest.mark.integration

GROUP, VERSION = "remediator.dev", "v1alpha1"
PLURALS = {"Runbook": "runbooks", "RemediationPolicy": "remediationpolicies", "Remediation": "remediations",
           "ServiceLevelObjective": "servicelevelobjectives"}


def create(kube_api, namespace: str | None, doc: dict, dry_run: bool = True) -> dict:
    api = client.CustomObjectsApi(kube_api)
    kw = {"dry_run": "All"} if dry_run else {}
    plural = PLURALS[doc["kind"]]
    if namespace is None:
        return api.create_cluster_custom_object(GROUP, VERSION, plural, doc, **kw)
    return api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc, **kw)


def rejection(call) -> list[tuple[str, str]]:
    """(field, message) of each cause of a 422 Invalid, as the apiserver gives them."""
    with pytest.raises(ApiException) as raised:
        call()
    assert raised.value.status == 422, raised.value.body
    causes = json.loads(raised.value.body)["details"]["causes"]
    return [(c.get("field", ""), c.get("message", "")) for c in causes]


@pytest.fixture(scope="module")
def ns(kube_api):
    """One namespace for the module: its objects are dry runs, and test ids hold '[', which names cannot."""
    core = client.CoreV1Api(kube_api)
    name = f"t-crd-validation-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={"remediator.dev/test": "true"})))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def assert_named(causes: list[tuple[str, str]], bad: Bad) -> None:
    assert any(field == bad.path and bad.says in message for field, message in causes), causes


# ---------------------------------------------------------------- accepted


@pytest.mark.parametrize("make", [good_runbook, good_node_runbook], ids=["workload", "node"])
def test_a_good_runbook_is_accepted(kube_api, crds, ns, make):
    created = create(kube_api, ns, make())
    assert created["spec"]["guard"] == {"cooldown": "10m", "maxRunsPerHour": 3, "maxConcurrentPerTarget": 1}
    assert created["spec"]["steps"][0]["timeout"] == "5m", "defaults from the models are applied"


def test_a_good_policy_is_accepted(kube_api, crds, ns):
    doc = good_policy()
    doc["metadata"]["name"] = ns
    assert create(kube_api, None, doc)["spec"]["mode"] == "enforce"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_runbooks_and_policies_are_accepted(kube_api, crds, ns, path):
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            create(kube_api, None if doc["kind"] == "RemediationPolicy" else ns, doc)


@pytest.fixture(scope="module")
def slo_crd(kube_api, crds):
    ext = client.ApiextensionsV1Api(kube_api)
    wait_for(lambda: any(c.type == "Established" and c.status == "True" for c in
                         ext.read_custom_resource_definition(f"servicelevelobjectives.{GROUP}").status.conditions
                         or []), what="CRD servicelevelobjectives established")


def test_a_good_slo_is_accepted(kube_api, slo_crd, ns):
    assert create(kube_api, ns, good_slo())["spec"]["window"] == "30d"


# ---------------------------------------------------------------- rejected, naming the field


@pytest.mark.parametrize("bad", BAD_SLOS, ids=lambda b: b.id)
def test_a_bad_slo_is_refused_by_the_apiserver_naming_the_field_as_validate_does(kube_api, slo_crd, ns, bad):
    doc = broken(good_slo, bad, name=unique("slo"))
    causes = rejection(lambda: create(kube_api, ns, doc))
    assert_named(causes, bad)
    offline = {(p.path, p.message) for p in validate_document(doc)}
    for path, message in offline:
        assert any(field == path and message in said for field, said in causes), (offline, causes)


@pytest.mark.parametrize("bad", [b for b in BAD_RUNBOOKS if b.apiserver], ids=lambda b: b.id)
def test_a_bad_runbook_is_rejected_naming_the_field(kube_api, crds, ns, bad):
    doc = broken(good_runbook, bad)
    assert_named(rejection(lambda: create(kube_api, ns, doc)), bad)


@pytest.mark.parametrize("bad", [b for b in BAD_POLICIES if b.apiserver], ids=lambda b: b.id)
def test_a_bad_policy_is_rejected_naming_the_field(kube_api, crds, ns, bad):
    doc = broken(good_policy, bad, name=unique(ns))
    assert_named(rejection(lambda: create(kube_api, None, doc)), bad)


@pytest.mark.parametrize("bad", [b for b in BAD_RUNBOOKS + BAD_POLICIES if "must" in b.says and b.apiserver],
                         ids=lambda b: b.id)
def test_the_apiserver_and_the_offline_validator_say_the_same_thing(kube_api, crds, ns, bad):
    make = good_policy if bad in BAD_POLICIES else good_runbook
    doc = broken(make, bad, name=unique(ns))
    causes = rejection(lambda: create(kube_api, None if make is good_policy else ns, doc))
    offline = {(p.path, p.message) for p in validate_document(doc)}
    for path, message in offline:
        if "RE2" in message:  # the reason comes from RE2 there and Python's re here; the rule's words match
            message = message.split(" (")[0]
        assert any(field == path and message in said for field, said in causes), (offline, causes)


def test_kubectl_apply_of_a_bad_runbook_fails_with_a_clear_message(crds, namespace, tool):
    doc = broken(good_runbook, next(b for b in BAD_RUNBOOKS if b.id == "min above max"))
    proc = subprocess.run([tool("kubectl"), "-n", namespace, "apply", "-f", "-"], input=yaml.safe_dump(doc),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert ("spec.steps[1].scale: Invalid value: \"object\": minReplicas must be <= maxReplicas "
            "(minReplicas 5 > maxReplicas 3)") in proc.stderr


def test_kubectl_refuses_unknown_fields(crds, namespace, tool):
    doc = broken(good_runbook, next(b for b in BAD_RUNBOOKS if b.id == "unknown field"))
    proc = subprocess.run([tool("kubectl"), "-n", namespace, "apply", "-f", "-"], input=yaml.safe_dump(doc),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert 'unknown field "spec.steps[0].foo"' in proc.stderr


# ---------------------------------------------------------------- Remediation: the operator's record


def remediation(namespace: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Remediation", "metadata": {"name": "web-crashloop"},
        "spec": {"signal": {"source": "alertmanager", "name": "KubePodCrashLooping",
                            "labels": {"pod": "web-1"}},
                 "runbook": {"name": "web", "namespace": namespace},
                 "target": {"kind": "Deployment", "namespace": namespace, "name": "web"}},
    }


def test_a_remediation_spec_is_immutable_and_its_status_is_the_operators(kube_api, crds, namespace, tool):
    api = client.CustomObjectsApi(kube_api)
    create(kube_api, namespace, remediation(namespace), dry_run=False)
    status = {"status": {"phase": "Succeeded", "targetDisplay": "Deployment/web",
                         "timeToRecoverSeconds": 93.5,
                         "risk": {"score": 20, "level": "low", "reasons": ["a healthy rollout restarted"]}}}
    # as the operator writes it: the model adds the duration text next to the seconds
    status = {"status": RemediationStatus.model_validate(status["status"]).wire()}
    api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "remediations", "web-crashloop",
                                              status)

    causes = rejection(lambda: api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "remediations", "web-crashloop", {"spec": {"target": {"name": "other"}}}))
    assert ("spec", 'Invalid value: "object": spec is immutable: create a new object instead') in causes

    table = subprocess.run([tool("kubectl"), "-n", namespace, "get", "remediations"],
                           capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "RUNBOOK", "TARGET", "RISK", "CAUSE", "AGE", "TTR"]
    row = table[1].split()
    assert (row[:5], row[-1]) == (["web-crashloop", "Succeeded", "web", "Deployment/web", "low"], "1m34s")


def test_a_remediation_status_outside_the_state_machine_is_refused(kube_api, crds, namespace):
    api = client.CustomObjectsApi(kube_api)
    create(kube_api, namespace, remediation(namespace), dry_run=False)
    causes = rejection(lambda: api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "remediations", "web-crashloop", {"status": {"phase": "Bogus"}}))
    assert any(field == "status.phase" and 'Unsupported value: "Bogus"' in m for field, m in causes), causes
