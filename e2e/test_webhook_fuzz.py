"""Fuzz the real operator's webhooks with generated bodies: the answer each kind of body is due, never a partial
Remediation.

Bodies range from random bytes through arbitrary JSON to Alertmanager- and Grafana-shaped payloads with hostile
values (huge or odd labels, bad times, wrong types); Slack callbacks are signed with the real secret
so the parser behind the signature check is exercised too. Every body is sent twice: in one piece, and over a
bare socket cut in two TCP segments REMEDIATOR_FUZZ_PAUSE seconds apart (default 0.02), as a slow network
delivers it. A 503 is allowed only as "retry": the same body is sent again and must then get its due answer.
Counts come from REMEDIATOR_FUZZ_EXAMPLES (default 10,000: 8,000 Alertmanager bodies and 2,000 signed or forged
Slack callbacks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediator.api.models import RemediationSpec, RemediationStatus
from tests.support.operator import OperatorProcess
from tests.support.raw_http import post_in_segments

# runs alone: thousands of alerts: storm hold-off counts every namespace
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]

EXAMPLES = int(os.environ.get("REMEDIATOR_FUZZ_EXAMPLES", "10000"))
PAUSE = float(os.environ.get("REMEDIATOR_FUZZ_PAUSE", "0.005"))  # TCP_NODELAY: each segment is sent on its own
RETRIES = 5
SLACK_SECRET = "fuzz-signing-secret"
ALERTNAMES = [f"Alert{i}" for i in range(19)] + ["FuzzMatch"]


@pytest.fixture(scope="module")
def fuzz_target(kube_api, kubeconfig, tmp_path_factory, crds):
    """One operator for the whole module, with limits high enough that the fuzzer is never throttled."""
    from kubernetes import client

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
    print(f"\nwebhook fuzz: HTTP codes {dict(sorted(state['codes'].items()))}, retried after 503: "
          f"{state.get('retried', 0)}, bodies by kind {state.get('kinds')} {state.get('slack')}, "
          f"{len(cluster.remediations())} Remediations created")
    op.stop()
    cluster.cleanup()
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
    grafana = well_formed.flatmap(lambda p: st.fixed_dictionaries(
        {"orgId": st.integers(0, 10**6)}, optional={"title": text(), "state": st.sampled_from(["alerting", "ok"]),
                                                  "message": text(200)}).map(lambda g: {**p, **g, "version": "1"}))
    return st.one_of(well_formed.map(lambda p: ("well-formed", json.dumps(p).encode())),
                     well_formed.map(lambda p: ("well-formed", json.dumps(p).encode())),
                     grafana.map(lambda p: ("grafana", json.dumps(p).encode())),
                     hostile.map(lambda p: ("hostile", json.dumps(p).encode())),
                     json_values.map(lambda v: ("json", json.dumps(v).encode())),
                     st.binary(max_size=300).map(lambda b: ("bytes", b)))


# The answer each kind of body is due. Strangers share a small budget (1/s, burst 10), so a forged callback
# gets 401 while that lasts and 429 after.
DUE = {"well-formed": {200}, "grafana": {200}, "hostile": {400}, "json": {400}, "bytes": {400},
       "signed": {400}, "forged": {401, 429}, "signed-not-utf8": {401, 429}}  # Slack signs UTF-8 only


def utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def settle(state: dict, kind: str, send) -> None:
    """Send until the answer is not 503 ("retry"), then check it is the one this kind of body is due."""
    for _ in range(RETRIES):
        code, text = send()
        state["codes"][code] = state["codes"].get(code, 0) + 1
        if code != 503:
            break
        state["retried"] = state.get("retried", 0) + 1
        time.sleep(0.2)
    assert code in DUE[kind], (kind, code, text[:500])


def whole(session: requests.Session, url: str, body: bytes, headers: dict):
    def send():
        resp = session.post(url, data=body, headers=headers, timeout=30)
        return resp.status_code, resp.text
    return send


def in_two_segments(port: int, path: str, body: bytes, headers: dict, percent: int):
    def send():
        resp = post_in_segments(port, path, body, headers, cuts=[len(body) * percent // 100], pause=PAUSE)
        return resp.status, resp.body.decode("utf-8", "replace")
    return send


def test_generated_alert_bodies_whole_or_in_segments_get_their_due_answer_and_no_partial_remediation(fuzz_target):
    op, cluster, session, state = fuzz_target
    url = f"{op.url}/webhooks/alertmanager"
    headers = {"Authorization": f"Bearer {op.token}", "Content-Type": "application/json"}

    @settings(max_examples=EXAMPLES * 4 // 5, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(kind_and_body=alertmanager_body(cluster.ns), percent=st.integers(1, 99))
    def post(kind_and_body: tuple[str, bytes], percent: int) -> None:
        kind, body = kind_and_body
        state["kinds"][kind] = state["kinds"].get(kind, 0) + 1
        settle(state, kind, whole(session, url, body, headers))
        settle(state, kind, in_two_segments(op.port, "/webhooks/alertmanager", body, headers, percent))

    state["kinds"] = {}
    post()
    assert sum(state["kinds"].values()) >= EXAMPLES * 4 // 5
    assert min(state["kinds"].get(k, 0) for k in ("well-formed", "grafana", "hostile", "json", "bytes")) > 0, \
        state["kinds"]
    created = cluster.remediations()
    assert created, "some generated alerts matched the fuzz Runbook"
    for item in created:  # every Remediation the fuzz created is whole and valid
        spec = RemediationSpec.model_validate(item["spec"])
        assert spec.runbook.name == "fuzz" and spec.target.namespace == cluster.ns
        RemediationStatus.model_validate(item.get("status") or {})
        assert item["metadata"]["labels"]["remediator.dev/runbook"] == "fuzz"


def test_generated_slack_callbacks_whole_or_in_segments_get_400_when_signed_and_401_when_forged(fuzz_target):
    op, cluster, session, state = fuzz_target
    url = f"{op.url}/webhooks/slack/interactions"
    action = st.fixed_dictionaries({"action_id": st.sampled_from(["approve", "deny", "other"]) | text(),
                                    "value": text(80) | st.just(json.dumps({"namespace": cluster.ns,
                                                                            "remediation": "x"}))})
    payloads = st.fixed_dictionaries(
        {"type": st.sampled_from(["block_actions", "view_submission"]) | text()},
        optional={"user": st.fixed_dictionaries({"id": text()}) | text(), "actions": st.lists(action, max_size=2),
                  "container": st.dictionaries(text(), text(), max_size=3)})
    forms = st.one_of(payloads.map(lambda p: urlencode({"payload": json.dumps(p)}).encode()),
                      st.dictionaries(text(), text(), max_size=3).map(lambda d: urlencode(d).encode()),
                      st.binary(max_size=200))

    @settings(max_examples=EXAMPLES // 5, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(body=forms, signed=st.booleans(), percent=st.integers(1, 99))
    def post(body: bytes, signed: bool, percent: int) -> None:
        ts = str(int(time.time()))
        digest = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": f"v0={digest}" if signed else "v0=" + "0" * 64}
        kind = ("signed" if utf8(body) else "signed-not-utf8") if signed else "forged"
        state["slack"][kind] = state["slack"].get(kind, 0) + 1
        settle(state, kind, whole(session, url, body, headers))
        settle(state, kind, in_two_segments(op.port, "/webhooks/slack/interactions", body, headers, percent))

    state["slack"] = {}
    post()
    assert min(state["slack"].get(k, 0) for k in ("signed", "forged")) > 0, state["slack"]
