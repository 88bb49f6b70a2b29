"""The hostile tenant: team B may create Runbooks in its own namespace and reach Alertmanager's API, and
tries every route it has to act in team A or to stall the operator. None succeeds; each attempt is
refused with a reason, counted in `remediator_refusals_total`, and `/healthz` answers within 1 s throughout.

Real parts only: the operator process, the apiserver (team B acts with a ServiceAccount token of its own),
two real Alertmanagers (team B's, delivering to B's route with B's token, and a cluster-level one with the
shared token that B can also post to), and real sockets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e.monitoring import Alertmanager, Prometheus
from e2e.slack_standin import post_click
from tests.integration.conftest import GROUP, VERSION, Cluster
from tests.integration.test_operator_loop import NO_APPROVALS, rollback_runbook
from tests.integration.test_tenancy import refusals, team_b  # noqa: F401 (team_b is a fixture)
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.waiting import wait_for

# runs alone: floods the operator: storm hold-off and concurrency count every namespace
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]

TOKEN_SECRET = "remediator-webhook-token"
SIGNING_SECRET = "hostile-suite-signing-secret"
CATASTROPHIC = r"(\w|\w)*!"  # exponential under a backtracking engine; linear under RE2


class HealthWatch:
    """Polls /healthz every 100 ms in a thread; keeps the slowest answer and every failure."""

    def __init__(self, url: str):
        self.url = url
        self.slowest = 0.0
        self.failures: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ok = requests.get(f"{self.url}/healthz", timeout=5).ok
                if not ok:
                    self.failures.append("not ok")
            except requests.RequestException as e:
                self.failures.append(type(e).__name__)
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.polls += 1
            self._stop.wait(0.1)

    def __enter__(self) -> "HealthWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def give_token(tenant: Cluster) -> str:
    token = uuid.uuid4().hex
    tenant.core.create_namespaced_secret(tenant.ns, {"metadata": {"name": TOKEN_SECRET},
                                                     "stringData": {"token": token}})
    return token


def tenant_client(kube_api: client.ApiClient, tenant: Cluster) -> client.ApiClient:
    """Team B as the apiserver knows it: a ServiceAccount that may only create (and read) Runbooks in B."""
    rbac = client.RbacAuthorizationV1Api(kube_api)
    tenant.core.create_namespaced_service_account(tenant.ns, {"metadata": {"name": "tenant-b"}})
    rbac.create_namespaced_role(tenant.ns, {
        "metadata": {"name": "runbook-author"},
        "rules": [{"apiGroups": [GROUP], "resources": ["runbooks"], "verbs": ["create", "get", "list"]}]})
    rbac.create_namespaced_role_binding(tenant.ns, {
        "metadata": {"name": "runbook-author"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "runbook-author"},
        "subjects": [{"kind": "ServiceAccount", "name": "tenant-b", "namespace": tenant.ns}]})
    token = tenant.core.create_namespaced_service_account_token(
        "tenant-b", tenant.ns, {"spec": {"expirationSeconds": 3600}}).status.token
    cfg = client.Configuration()
    admin = kube_api.configuration
    cfg.host, cfg.ssl_ca_cert, cfg.verify_ssl = admin.host, admin.ssl_ca_cert, admin.verify_ssl
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def refusal_counts(operator: OperatorProcess) -> dict[str, float]:
    counts = {}
    for line in requests.get(f"{operator.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("remediator_refusals_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


def raw_post(port: int, path: str, token: str, body: bytes, pause: float = 0.0,
             declared: int | None = None) -> int:
    """One HTTP request over a socket, the body split in two segments `pause` apart; the status code."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) if declared is None else declared}\r\n"
            f"Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        half = len(body) // 2
        s.sendall(head + body[:half])
        time.sleep(pause)
        try:
            s.sendall(body[half:])
        except OSError:
            pass  # the server may answer (413) before reading it all
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def arena(kube_api, cluster, team_b, crds, tmp_path, kubeconfig):  # noqa: F811 (the fixture)
    """Team A with a bad rollout its Runbook would roll back (no approval needed: anything that got through
    would act), team B beside it with its own token and Alertmanager, one operator serving both."""
    team_a = cluster
    for tenant in (team_a, team_b):
        tenant.apply_policy(NO_APPROVALS)
    team_a.apply_runbook("bad-rollout", rollback_runbook())
    team_a.deploy("web", replicas=2)
    team_a.bad_rollout("web")
    wait_for(lambda: len(team_a.revisions()) == 2, what="team A's bad revision")
    team_b.deploy("web", replicas=1)
    a_token, b_token = give_token(team_a), give_token(team_b)

    prometheus = Prometheus(tmp_path / "prometheus")
    prometheus.start()
    (tmp_path / "signing-secret").write_text(SIGNING_SECRET)
    (tmp_path / "slack-token").write_text("xoxb-unused")
    op = OperatorProcess(kubeconfig, [team_a.ns, team_b.ns], tmp_path, extra_args=[
        "--slack-signing-secret-file", str(tmp_path / "signing-secret"),
        "--slack-token-file", str(tmp_path / "slack-token"), "--prometheus-url", prometheus.url])
    op.start()
    b_token_file = tmp_path / "b-token"
    b_token_file.write_text(b_token)
    b_alertmanager = Alertmanager(tmp_path / "am-b", f"{op.url}/webhooks/alertmanager/{team_b.ns}", b_token_file)
    shared_alertmanager = Alertmanager(tmp_path / "am-shared", f"{op.url}/webhooks/alertmanager", op.token_file)
    b_alertmanager.start()
    shared_alertmanager.start()
    a_deployment = team_a.apps.read_namespaced_deployment("web", team_a.ns)
    yield {"a": team_a, "b": team_b, "op": op, "a_token": a_token, "b_token": b_token,
           "b_api": tenant_client(kube_api, team_b), "am_b": b_alertmanager, "am_shared": shared_alertmanager,
           "a_generation": a_deployment.metadata.generation,
           "a_image": a_deployment.spec.template.spec.containers[0].image}
    for daemon in (b_alertmanager, shared_alertmanager, prometheus):
        daemon.stop()
    op.stop()
    team_b.cleanup()


def post_to_alertmanager(am: Alertmanager, labels: dict) -> None:
    """What anyone who reaches Alertmanager's v2 API can do: post an alert with labels of their choice."""
    resp = requests.post(f"{am.url}/api/v2/alerts", json=[{
        "labels": labels, "annotations": {"summary": "forged"}, "generatorURL": "http://attacker.local"}],
        timeout=10)
    assert resp.status_code == 200, resp.text


def grew(operator: OperatorProcess, reason: str, before: dict[str, float], timeout: float = 60) -> float:
    return wait_for(lambda: refusal_counts(operator).get(reason, 0.0) > before.get(reason, 0.0) and
                    refusal_counts(operator)[reason], timeout=timeout,
                    what=f"remediator_refusals_total{{reason={reason!r}}} to grow")


def test_tenant_b_cannot_act_in_tenant_a_or_stall_the_operator_by_any_route_it_has(arena):
    a, b, op = arena["a"], arena["b"], arena["op"]
    b_custom = client.CustomObjectsApi(arena["b_api"])
    before = refusal_counts(op)
    attempts: list[str] = []

    with HealthWatch(op.url) as health:
        # 1. A Runbook whose regex would backtrack for ever, then alertnames that feed it.
        b_custom.create_namespaced_custom_object(GROUP, VERSION, b.ns, "runbooks", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook", "metadata": {"name": "stall"},
            "spec": {**rollback_runbook(),
                     "triggers": [{"alert": {"matchers": [{"name": "alertname", "op": "=~",
                                                           "value": CATASTROPHIC}]}}]}})
        long_name = "a" * 4096
        for labels in ({"alertname": long_name, "namespace": b.ns, "deployment": "web"},
                       {"alertname": long_name, "namespace": a.ns, "deployment": "web"}):
            post_to_alertmanager(arena["am_b"], labels)
        resp = requests.post(f"{op.url}/webhooks/alertmanager/{b.ns}", timeout=10,
                             headers={"Authorization": f"Bearer {arena['b_token']}"},
                             json=alert_payload([alert(b.ns, "web", alertname=long_name)]))
        assert resp.status_code == 200, resp.text
        attempts.append("regex stall")

        # 2. Through B's own Alertmanager, an alert labelled with A's namespace.
        post_to_alertmanager(arena["am_b"], {"alertname": "HighErrorRate", "namespace": a.ns,
                                             "deployment": "web", "severity": "page"})
        grew(op, "namespace-mismatch", before)
        attempts.append("label/path disagreement")

        # 3. Through the cluster-level Alertmanager (shared token), which B can reach too.
        post_to_alertmanager(arena["am_shared"], {"alertname": "HighErrorRate", "namespace": a.ns,
                                                  "deployment": "web", "severity": "page"})
        grew(op, "shared-token-for-tenant", before)
        attempts.append("shared route for an opted-in namespace")

        # 4. Straight at A's route, with B's token, with none, with bytes that are not UTF-8.
        for header in (f"Bearer {arena['b_token']}", "", "Bearer \xff\xfe"):
            resp = requests.post(f"{op.url}/webhooks/alertmanager/{a.ns}", timeout=10,
                                 headers={"Authorization": header.encode("latin-1")} if header else {},
                                 json=alert_payload([alert(a.ns, "web")]))
            assert resp.status_code == 401, (header, resp.text)
        assert refusal_counts(op).get("unauthenticated-webhook", 0) >= before.get("unauthenticated-webhook", 0) + 3
        attempts.append("A's route with B's token")

        # 5. Huge, slow and split bodies on B's own route.
        assert raw_post(op.port, f"/webhooks/alertmanager/{b.ns}", arena["b_token"],
                        b"[" * 10, declared=8 << 20) == 413
        grew(op, "body-too-large", before)
        split = alert_payload([alert(b.ns, "web", fingerprint="5p1it")])
        assert raw_post(op.port, f"/webhooks/alertmanager/{b.ns}", arena["b_token"],
                        json.dumps(split).encode(), pause=0.05) == 200, "a split delivery is a delivery"
        attempts.append("huge and split bodies")

        # 6. The API itself: B may not create Remediations or votes, in A or in B.
        for ns, plural, body in ((a.ns, "remediations", {"spec": {}}), (b.ns, "remediations", {"spec": {}}),
                                 (a.ns, "remediationapprovals", {"spec": {}})):
            with pytest.raises(ApiException) as refused:
                b_custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "Remediation" if plural == "remediations"
                    else "RemediationApproval", "metadata": {"name": "forged"}, **body})
            assert refused.value.status == 403, (ns, plural)
        attempts.append("direct Remediations and votes (RBAC)")

        # 7. A forged Slack callback that would approve in A: 401, and nothing written anywhere.
        resp = post_click(f"{op.url}/webhooks/slack/interactions", "not-the-secret",
                          forged_click(a.ns, "anything"))
        assert resp.status_code == 401, resp.text
        grew(op, "forged-slack-callback", before)
        attempts.append("forged Slack callback")

        # 8. B's own Runbooks reaching past their grants: an identity no policy lists, PromQL over A's series.
        for name, spec in (("borrow", {**rollback_runbook(), "serviceAccountName": "ci-admin",
                                       "triggers": [{"alert": {"matchers": [{"name": "alertname",
                                                                             "value": "Borrow"}]}}]}),
                           ("peek", {"triggers": [{"anomaly": {"query": f'up{{namespace="{a.ns}"}}',
                                                               "minSamples": 3}}],
                                     "target": {"kind": "Deployment", "name": "web"},
                                     "steps": [{"name": "restart", "action": "restartRollout"}]})):
            b_custom.create_namespaced_custom_object(GROUP, VERSION, b.ns, "runbooks", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook", "metadata": {"name": name}, "spec": spec})
        resp = requests.post(f"{op.url}/webhooks/alertmanager/{b.ns}", timeout=10,
                             headers={"Authorization": f"Bearer {arena['b_token']}"},
                             json=alert_payload([alert(b.ns, "web", alertname="Borrow", fingerprint="b0rr0w")]))
        assert resp.status_code == 200 and resp.json()["results"][0]["outcome"] == "created", resp.text
        borrowed = b.wait_phase(resp.json()["results"][0]["remediation"], {"Skipped", "Failed", "Succeeded"})
        assert borrowed["status"]["phase"] == "Skipped" and "allowedServiceAccounts" in borrowed["status"]["reason"]
        grew(op, "forbidden-identity", before)
        grew(op, "query-outside-namespace", before)
        attempts.append("borrowed identity and PromQL over another namespace")

        # 9. Invented namespaces by the thousand: refused cheaply, memory and LISTs bounded.
        for i in range(300):
            r = requests.post(f"{op.url}/webhooks/alertmanager/nowhere-{i}", timeout=10,
                              headers={"Authorization": f"Bearer {arena['b_token']}"},
                              json=alert_payload([alert(f"nowhere-{i}", "web")]))
            assert r.status_code in (401, 429), r.text
        attempts.append("invented namespaces")

        time.sleep(3)  # let anything that got through start acting

    assert not health.failures and health.slowest < 1.0, \
        f"/healthz: slowest {health.slowest:.3f}s over {health.polls} polls, failures {health.failures[:5]}"
    print(f"\n/healthz over the attack: {health.polls} polls, slowest {health.slowest * 1000:.0f} ms")
    assert a.remediations() == [], "nothing of B's made a Remediation in A"
    deployment = a.apps.read_namespaced_deployment("web", a.ns)
    assert deployment.metadata.generation == arena["a_generation"]
    assert deployment.spec.template.spec.containers[0].image == arena["a_image"]
    after = refusal_counts(op)
    print("refusals:", {k: after[k] - before.get(k, 0.0) for k in after if after[k] > before.get(k, 0.0)})
    assert len(attempts) == 9


def forged_click(namespace: str, name: str) -> str:
    from urllib.parse import urlencode
    value = json.dumps({"namespace": namespace, "name": name, "decision": "approve", "requestId": "x"})
    payload = {"type": "block_actions", "user": {"id": "U_MALLORY", "username": "mallory"},
               "actions": [{"action_id": "approve", "value": value}], "message": {"ts": "1.0"},
               "channel": {"id": "C1"}}
    return urlencode({"payload": json.dumps(payload)})
