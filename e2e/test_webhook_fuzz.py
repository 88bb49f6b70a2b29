"""Fuzz the real operator's webhooks with generated bodies: never a 5xx, never a partial Remediation.

Bodies range from random bytes through arbitrary JSON to Alertmanager-shaped payloads with hostile
values (huge or odd labels, bad times, wrong types); Slack callbacks are signed with the real secret
so the parser behind the signature check is exercised too. Counts come from REMEDIATOR_FUZZ_EXAMPLES
(default 10,000: 8,000 Alertmanager bodies and 2,000 signed or forged Slack callbacks).
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2e.slack_standin import sign
from remediator.api.models import RemediationSpec, RemediationStatus
from tests.support.operator import OperatorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES = int(os.environ.get("REMEDIATOR_FUZZ_EXAMPLES", "10000"))
SLACK_SECRET = "fuzz-signing-secret"
ALERTNAMES = [f"Alert{i}" for i in range(19)] + ["FuzzMatch"]


@pytest.fixture(scope="module")
def fuzz_target(kube_api, kubeconfig, tmp_path_factory, crds):
    """One operator for the whole module, with limits high enough that the fuzzer is never throttled."""
    from kubernetes import client

    from tests.conftest import release_operator_finalizers
    from tests.integration.conftest import Cluster

    namespace = f"fuzz-{int(time.time())}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": namespace}})
    cluster = Cluster(kube_api, namespace)
    cluster.apply_policy({"mode": "dryRun"})
    cluster.apply_runbook("fuzz", {
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "FuzzMatch"}]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "restart", "action": "restartRollout"}]})
    workdir = tmp_path_factory.mktemp("fuzz")
    (workdir / "slack-token").write_text("xoxb-unused")
    (workdir / "slack-secret").write_text(SLACK_SECRET)
    op = OperatorProcess(kubeconfig, [namespace], workdir, extra_args=[
        "--webhook-rate", "1000000", "--webhook-burst", "1000000",
        "--slack-token-file", str(workdir / "slack-token"), "--slack-signing-secret-file",
        str(workdir / "slack-secret"), "--slack-api-url", "http://127.0.0.1:9/api/"])
    op.start()
    session = requests.Session()
    state = {"codes": {}}
    yield op, cluster, session, state
    print(f"\nwebhook fuzz: HTTP codes {dict(sorted(state['codes'].items()))}, "
          f"{len(cluster.remediations())} Remediations created")
    op.stop()
    cluster.cleanup()
    release_operator_finalizers(kube_api, namespace)
    client.CoreV1Api(kube_api).delete_namespace(namespace)


def text(max_size: int = 40):
    return st.text(max_size=max_size) | st.sampled_from(["", "web", "{{ labels.x }}", "../etc", "a" * 300,
                                                          "web-1", "Web", "ünï", "\x00", "0001-01-01T00:00:00Z"])


def labels(namespace: str):
    return st.fixed_dictionaries(
        {"alertname": st.sampled_from(["FuzzMatch"] * 4 + ALERTNAMES) | text(),
         "namespace": st.sampled_from([namespace] * 4 + ["kube-system", "other"]) | text()},
        optional={"deployment": st.sampled_from(["web", "api", "Not_DNS", ""]) | text(),
                  "severity": text()}).flatmap(
        lambda base: st.dictionaries(text(20), text(), max_size=5).map(lambda extra: {**extra, **base}))


TIMES = ["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456789+02:00", "0001-01-01T00:00:00Z"]


def alert(namespace: str, well_formed: bool):
    """Alertmanager-shaped alerts: well formed (hostile values only), or with any field wrong or missing."""
    times = st.sampled_from(TIMES) if well_formed else st.sampled_from([*TIMES, "yesterday", "", None, 12])
    required = {"labels": labels(namespace), "status": st.sampled_from(["firing", "resolved"]), "startsAt": times}
    if not well_formed:
        required = {"labels": labels(namespace) | st.none() | st.integers()}
    return st.fixed_dictionaries(
        required,
        optional={"status": st.sampled_from(["firing", "resolved", "pending", None]),
                  "annotations": st.dictionaries(text(), text(200), max_size=3) | st.just("x"),
                  "endsAt": times, "fingerprint": text(30) | st.integers(), "generatorURL": text()}
        if not well_formed else
        {"annotations": st.dictionaries(text(), text(200), max_size=3), "endsAt": times,
         "fingerprint": text(30), "generatorURL": text()})


def alertmanager_body(namespace: str):
    json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | text(),
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text(), inner, max_size=4),
                               max_leaves=12)
    well_formed = st.fixed_dictionaries(
        {"version": st.just("4"), "status": st.sampled_from(["firing", "resolved"]),
         "alerts": st.lists(alert(namespace, True), min_size=1, max_size=3)},
        optional={"receiver": text(), "groupKey": text(), "truncatedAlerts": st.integers(0, 5),
                  "groupLabels": st.dictionaries(text(), text(), max_size=2), "externalURL": text()})
    hostile = st.fixed_dictionaries(
        {"alerts": st.lists(alert(namespace, False), max_size=3) | json_values},
        optional={"version": st.sampled_from(["4", "3", 4, None]), "status": st.sampled_from(["firing", "resolved", 7]),
                  "receiver": text(), "truncatedAlerts": st.integers(-1, 5)})
    return st.one_of(well_formed.map(lambda p: json.dumps(p).encode()),
                     well_formed.map(lambda p: json.dumps(p).encode()),
                     hostile.map(lambda p: json.dumps(p).encode()),
                     json_values.map(lambda v: json.dumps(v).encode()),
                     st.binary(max_size=300))


def check(state: dict, response: requests.Response) -> None:
    state["codes"][response.status_code] = state["codes"].get(response.status_code, 0) + 1
    assert response.status_code < 500, (response.status_code, response.text[:500])


def test_generated_alertmanager_bodies_never_get_a_5xx_nor_leave_a_partial_remediation(fuzz_target):
    op, cluster, session, state = fuzz_target
    url = f"{op.url}/webhooks/alertmanager"
    headers = {"Authorization": f"Bearer {op.token}", "Content-Type": "application/json"}

    @settings(max_examples=EXAMPLES * 4 // 5, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(body=alertmanager_body(cluster.ns))
    def post(body: bytes) -> None:
        check(state, session.post(url, data=body, headers=headers, timeout=30))

    post()
    assert sum(state["codes"].values()) >= EXAMPLES * 4 // 5
    assert state["codes"].get(200, 0) > 0 and state["codes"].get(400, 0) > 0, state["codes"]
    created = cluster.remediations()
    assert created, "some generated alerts matched the fuzz Runbook"
    for item in created:  # every Remediation the fuzz created is whole and valid
        spec = RemediationSpec.model_validate(item["spec"])
        assert spec.runbook.name == "fuzz" and spec.target.namespace == cluster.ns
        RemediationStatus.model_validate(item.get("status") or {})
        assert item["metadata"]["labels"]["remediator.dev/runbook"] == "fuzz"


def test_generated_signed_slack_callbacks_never_get_a_5xx(fuzz_target):
    op, cluster, session, state = fuzz_target
    url = f"{op.url}/webhooks/slack/interactions"
    action = st.fixed_dictionaries({"action_id": st.sampled_from(["approve", "deny", "other"]) | text(),
                                    "value": text(80) | st.just(json.dumps({"namespace": cluster.ns,
                                                                            "remediation": "x"}))})
    payloads = st.fixed_dictionaries(
        {"type": st.sampled_from(["block_actions", "view_submission"]) | text()},
        optional={"user": st.fixed_dictionaries({"id": text()}) | text(), "actions": st.lists(action, max_size=2),
                  "container": st.dictionaries(text(), text(), max_size=3)})
    forms = st.one_of(payloads.map(lambda p: urlencode({"payload": json.dumps(p)})),
                      st.dictionaries(text(), text(), max_size=3).map(urlencode),
                      st.binary(max_size=200).map(lambda b: b.decode("latin-1")))

    @settings(max_examples=EXAMPLES // 5, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(form=forms, signed=st.booleans())
    def post(form: str, signed: bool) -> None:
        ts = str(int(time.time()))
        signature = sign(SLACK_SECRET, ts, form) if signed else "v0=" + "0" * 64
        check(state, session.post(url, data=form.encode("latin-1", "replace"), timeout=30, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature}))

    post()
