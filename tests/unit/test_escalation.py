"""When automation stops who hears, what the RemediationEscalated alert says, and when the incident is over."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from remediator.api.models import EscalationAlert, RemediationSpec, RemediationStatus, StepRecord
from remediator.controller.runbook_status import pending
from remediator.core import escalation

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
SPEC = RemediationSpec.model_validate({
    "signal": {"source": "alertmanager", "name": "HighErrorRate", "fingerprint": "f1"},
    "runbook": {"name": "bad-rollout", "namespace": "shop"},
    "target": {"kind": "Deployment", "name": "web", "namespace": "shop"}})


def ended(phase: str, reason: str = "step 'restart' verification failed; ladder exhausted", **kw) -> RemediationStatus:
    return RemediationStatus(phase=phase, reason=reason, started_at="2026-12-01T11:50:00Z",
                             finished_at="2026-12-01T11:55:00Z", **kw)


def test_escalated_failed_and_a_guard_refusal_while_firing_escalate_other_ends_do_not():
    assert escalation.escalates(ended("Escalated"))
    assert escalation.escalates(ended("Failed"))
    assert escalation.escalates(ended("Skipped", "guard blocked: cooldown 10m"))
    assert escalation.escalates(ended("Skipped", "no claim on the target right before acting: held"))
    assert not escalation.escalates(ended("Skipped", "guard blocked: cooldown 10m",
                                          signal_resolved_at="2026-12-01T11:56:00Z")), "nothing fires any more"
    assert not escalation.escalates(ended("Skipped", "guard blocked: x", dry_run=True)), "a dry run pages nobody"
    assert not escalation.escalates(ended("Skipped", "every step of the ladder is skipped"))
    for phase in ("Succeeded", "Cancelled", "Denied", "Expired"):
        assert not escalation.escalates(ended(phase)), phase


def test_a_verified_step_restores_service_by_the_operator_at_its_verdict():
    end = escalation.incident_end(ended("Succeeded"))
    assert (end.restored_at, end.restored_by) == ("2026-12-01T11:55:00Z", "operator")


def test_an_escalated_incident_is_restored_by_humans_when_its_signal_resolves_and_not_before():
    assert escalation.incident_end(ended("Escalated")) is None, "unresolved stays null"
    end = escalation.incident_end(ended("Escalated", signal_resolved_at="2026-12-01T12:30:00Z"))
    assert (end.restored_at, end.restored_by) == ("2026-12-01T12:30:00Z", "humans")
    assert escalation.incident_end(ended("Failed", signal_resolved_at="2026-12-01T12:30:00Z")).restored_by == "humans"


def test_an_incident_already_ended_or_not_handed_over_gets_no_end_here():
    assert escalation.incident_end(ended("Escalated", signal_resolved_at="2026-12-01T12:30:00Z",
                                         restored_at="2026-12-01T12:10:00Z", restored_by="humans")) is None
    assert escalation.incident_end(ended("Cancelled", signal_resolved_at="2026-12-01T11:56:00Z")) is None
    assert escalation.incident_end(ended("Skipped", "dry run: would restart", dry_run=True,
                                         signal_resolved_at="2026-12-01T11:56:00Z")) is None


def test_a_signal_resolved_before_the_ladder_ended_restores_at_the_end_not_before_it():
    end = escalation.incident_end(ended("Escalated", signal_resolved_at="2026-12-01T11:52:00Z"))
    assert end.restored_at == "2026-12-01T11:55:00Z"


def test_a_person_may_resolve_an_ended_unrestored_incident_only():
    assert escalation.may_resolve(ended("Escalated")).allowed
    assert escalation.may_resolve(ended("Denied")).allowed
    open_one = escalation.may_resolve(RemediationStatus(phase="Acting"))
    assert not open_one.allowed and "Acting" in open_one.reason
    done = escalation.may_resolve(ended("Escalated", restored_at="2026-12-01T12:00:00Z", restored_by="humans",
                                        resolved_by="kubernetes:alice"))
    assert not done.allowed and "kubernetes:alice" in done.reason
    assert not escalation.may_resolve(ended("Succeeded")).allowed, "the operator's verified end is not a person's"


def test_the_alert_names_the_incident_in_its_labels_and_says_what_was_tried_and_why_it_stopped():
    status = ended("Escalated", steps=[StepRecord.model_validate(
        {"index": 0, "name": "restart", "action": "restartRollout", "idempotencyKey": "k", "phase": "Failed"})])
    body = escalation.alert("shop", "r-1", SPEC, status, "page web on-call", "2026-12-01T11:55:00Z", NOW, MINUTE)
    assert body["labels"] == {"alertname": "RemediationEscalated", "namespace": "shop", "remediation": "r-1",
                              "runbook": "bad-rollout", "target": "Deployment/web", "severity": "page"}
    assert body["annotations"]["tried"] == "restart (restartRollout): Failed"
    assert "ladder exhausted" in body["annotations"]["stopped"]
    assert body["annotations"]["message"] == "page web on-call"
    assert body["startsAt"] == "2026-12-01T11:55:00Z"
    assert body["endsAt"] == "2026-12-01T12:03:00Z", "three re-sends ahead: a missed re-send does not resolve it"


def test_the_alert_of_a_restored_incident_ends_now_and_says_who_restored_it():
    status = ended("Escalated", restored_at="2026-12-01T11:59:00Z", restored_by="humans",
                   resolved_by="kubernetes:alice", resolution_note="scaled the db")
    body = escalation.alert("shop", "r-1", SPEC, status, "", "2026-12-01T11:55:00Z", NOW, MINUTE)
    assert body["endsAt"] == "2026-12-01T12:00:00Z"
    assert body["annotations"]["restored"] == "2026-12-01T11:59:00Z by kubernetes:alice: scaled the db"
    assert body["labels"]["alertname"] == "RemediationEscalated", "same labels: the same alert, resolved"


def test_huge_annotations_are_cut():
    body = escalation.alert("shop", "r-1", SPEC, ended("Escalated", "x" * 10_000), "y" * 10_000,
                            "2026-12-01T11:55:00Z", NOW, MINUTE)
    assert all(len(v) <= escalation.MAX_ANNOTATION for v in body["annotations"].values())


def test_the_alert_fires_once_is_re_sent_while_open_and_resolved_once_when_over():
    status = ended("Escalated")
    assert escalation.alert_due(status, NOW, MINUTE) == "fire"
    sent = status.model_copy(update={"escalation_alert": EscalationAlert(
        starts_at="2026-12-01T11:55:00Z", sent_at="2026-12-01T11:59:30Z")})
    assert escalation.alert_due(sent, NOW, MINUTE) is None
    assert escalation.alert_due(sent, NOW + MINUTE, MINUTE) == "fire"
    over = sent.model_copy(update={"restored_at": "2026-12-01T12:00:00Z"})
    assert escalation.alert_due(over, NOW, MINUTE) == "resolve"
    done = over.model_copy(update={"escalation_alert": over.escalation_alert.model_copy(
        update={"resolved_at": "2026-12-01T12:00:01Z"})})
    assert escalation.alert_due(done, NOW, MINUTE) is None
    assert escalation.alert_due(ended("Succeeded"), NOW, MINUTE) is None
    assert escalation.alert_due(ended("Escalated", restored_at="2026-12-01T12:00:00Z"), NOW, MINUTE) is None, \
        "resolved before it was ever sent: nothing to send"


def test_an_ended_remediation_stays_pending_until_its_end_and_its_alert_are_recorded():
    folded = {"phase": "Escalated", "foldedIntoRunbook": True, "finishedAt": "2026-12-01T11:55:00Z"}
    assert not pending(folded), "without Alertmanager nothing more is owed until the signal resolves"
    assert pending(folded, alerting=True)
    assert pending({**folded, "signalResolvedAt": "2026-12-01T12:00:00Z"})
    sent = {**folded, "escalationAlert": {"startsAt": "x", "sentAt": "y"}}
    assert not pending(sent, alerting=True), "re-sends are the sweep's, not every event's"
    over = {**sent, "restoredAt": "z", "restoredBy": "humans"}
    assert pending(over, alerting=True)
    assert not pending({**over, "escalationAlert": {"startsAt": "x", "sentAt": "y", "resolvedAt": "w"}},
                       alerting=True)
    assert pending({"phase": "Succeeded", "foldedIntoRunbook": True}), "restoredAt still owed"


class FlakyAlertmanager:
    """A real socket answering POST /api/v2/alerts with the given statuses in turn, recording the bodies."""

    def __init__(self, statuses: list[int]):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list = []
        answers, bodies = list(statuses), self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                self.send_response(answers.pop(0) if answers else 200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_alert_is_retried_on_a_5xx_and_not_on_a_400():
    import pytest

    from remediator.controller.escalation import Alertmanager, AlertmanagerUnavailable

    am = FlakyAlertmanager([503, 200])
    try:
        Alertmanager(am.url + "/").send([{"labels": {"alertname": "RemediationEscalated"}}])
        assert [path for path, _ in am.bodies] == ["/api/v2/alerts", "/api/v2/alerts"], "retried once, then sent"
    finally:
        am.close()
    am = FlakyAlertmanager([400, 200])
    try:
        with pytest.raises(AlertmanagerUnavailable, match="refused the alert \\(400\\)"):
            Alertmanager(am.url).send([{"labels": {}}])
        assert len(am.bodies) == 1, "a refusal is not retried"
    finally:
        am.close()


def test_an_unreachable_alertmanager_is_unavailable_after_the_retries():
    import pytest

    from remediator.controller.escalation import Alertmanager, AlertmanagerUnavailable

    am = FlakyAlertmanager([])
    url = am.url
    am.close()
    with pytest.raises(AlertmanagerUnavailable, match="unreachable"):
        Alertmanager(url, attempts=2).send([{}])


def test_an_incident_that_ended_long_ago_unpaged_is_not_paged_now():
    old = ended("Escalated")  # finished 11:55
    assert escalation.alert_due(old, NOW + timedelta(hours=2), MINUTE) is None, "no storm of stale pages"
    assert escalation.alert_due(old, NOW + timedelta(minutes=30), MINUTE) == "fire"


def test_a_dry_run_or_plain_skip_is_never_watched_for_an_alert():
    from remediator.controller.escalation import OpenAlerts

    alerts = OpenAlerts()
    for i, status in enumerate([{"phase": "Skipped", "dryRun": True, "reason": "guard blocked: x"},
                                {"phase": "Skipped", "reason": "every step of the ladder is skipped"},
                                {"phase": "Succeeded"}]):
        alerts.observe("ADDED", {"metadata": {"namespace": "shop", "name": f"r{i}"},
                                 "status": {**status, "foldedIntoRunbook": True}})
    alerts.observe("ADDED", {"metadata": {"namespace": "shop", "name": "esc"},
                             "status": {"phase": "Escalated", "foldedIntoRunbook": True}})
    assert alerts.keys() == [("shop", "esc")]
    alerts.observe("MODIFIED", {"metadata": {"namespace": "shop", "name": "esc"}, "status": {
        "phase": "Escalated", "foldedIntoRunbook": True, "restoredAt": "t",
        "escalationAlert": {"startsAt": "s", "sentAt": "t", "resolvedAt": "u"}}})
    assert alerts.keys() == []


POD_SPEC = RemediationSpec.model_validate({
    "signal": {"source": "podState", "name": "CrashLoopBackOff", "fingerprint": "p1"},
    "runbook": {"name": "crashloop", "namespace": "shop"},
    "target": {"kind": "Deployment", "name": "web", "namespace": "shop"}})


def test_a_pod_state_incident_handed_over_awaits_healthy_pods_until_its_end_is_known():
    wire = ended("Escalated").wire()
    assert escalation.awaits_healthy_pods("podState", wire)
    assert escalation.awaits_healthy_pods("podState", ended("Skipped", "guard blocked: cooldown 10m").wire())
    assert not escalation.awaits_healthy_pods("alertmanager", wire), "the alert's resolution ends that one"
    assert not escalation.awaits_healthy_pods("podState", {**wire, "signalResolvedAt": "2026-12-01T12:00:00Z"})
    assert not escalation.awaits_healthy_pods("podState", ended("Escalated", restored_at="2026-12-01T12:00:00Z",
                                                                restored_by="humans").wire())
    for phase in ("Succeeded", "Cancelled", "Verifying"):
        assert not escalation.awaits_healthy_pods("podState", ended(phase).wire()), phase


def test_a_workload_is_healthy_again_only_rolled_out_with_every_pod_ready():
    from remediator.verification.observations import pods_healthy
    from tests.unit.test_verdicts import healthy_pods, pod, rollout, seen

    assert pods_healthy(seen(0, rollout(), healthy_pods())) == (
        True, "successfully rolled out: 3/3 updated and available")
    crashing = pod("web-9", ready=False, waiting_reasons=("CrashLoopBackOff",))
    assert pods_healthy(seen(0, rollout(), (*healthy_pods()[:2], crashing))) == (
        False, "1 of 3 pods not Ready: web-9")
    assert not pods_healthy(seen(0, rollout(updated=2, replicas=3), healthy_pods()))[0], "old replicas remain"
    assert not pods_healthy(seen(0, rollout(generation=3), healthy_pods()))[0], "a new spec not yet observed"
    assert not pods_healthy(seen(0, rollout(desired=0, updated=0, available=0), ()))[0], "scaled to zero"
    assert not pods_healthy(seen(0, exists=False))[0]


class Remediations:
    """The apiserver's Remediations, as `controller.ingest.record_resolved` reads and writes them."""

    def __init__(self, *objects: dict):
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}

    def get(self, kind: str, name: str, namespace: str) -> dict | None:
        return self.objects.get((namespace, name))

    def replace_status(self, kind: str, namespace: str, name: str, body: dict) -> None:
        self.objects[(namespace, name)] = body


def test_the_pod_sweep_resolves_an_escalated_pod_incident_once_its_workload_is_healthy_and_then_forgets_it(
        monkeypatch):
    from types import SimpleNamespace

    from remediator.controller import handlers
    from remediator.controller.escalation import AwaitingHealthyPods
    from tests.unit.test_verdicts import healthy_pods, pod, rollout, seen

    def remediation(name: str, spec: RemediationSpec) -> dict:
        return {"metadata": {"namespace": "shop", "name": name}, "spec": spec.wire(),
                "status": ended("Escalated").wire()}
    store = Remediations(remediation("pod-1", POD_SPEC), remediation("am-1", SPEC))
    ctx = SimpleNamespace(api=None, resources=store, awaiting_healthy_pods=AwaitingHealthyPods(),
                          caches=SimpleNamespace(remediations=store.objects))
    for obj in store.objects.values():
        ctx.awaiting_healthy_pods.observe("ADDED", obj)
    assert ctx.awaiting_healthy_pods.keys() == [("shop", "pod-1")], "an alert's incident ends by its resolution"
    looked = []
    crashing = (pod("web-9", ready=False, waiting_reasons=("CrashLoopBackOff",)),)
    monkeypatch.setattr(handlers.probes, "observe", lambda api, target: looked.append(target) or
                        seen(0, rollout(), healthy_pods() if len(looked) > 1 else crashing))

    handlers.end_pod_incidents(ctx, now=0.0)
    assert "signalResolvedAt" not in store.objects[("shop", "pod-1")]["status"], "its pods still crash-loop"
    handlers.end_pod_incidents(ctx, now=10.0)
    status = store.objects[("shop", "pod-1")]["status"]
    assert status["signalResolvedAt"] and status["phase"] == "Escalated"
    assert status["timeline"][-1]["kind"] == "SignalResolved"
    assert status["timeline"][-1]["message"].startswith("Deployment/web: every pod healthy again")
    assert [(t.kind, t.name) for t in looked] == [("Deployment", "web")] * 2
    assert escalation.incident_end(RemediationStatus.model_validate(status)).restored_by == "humans"

    handlers.end_pod_incidents(ctx, now=20.0)  # resolved (its watch event not seen yet): not looked at again
    assert len(looked) == 2 and ctx.awaiting_healthy_pods.keys() == []


def pod_spec(target: dict, runbook_namespace: str = "shop") -> RemediationSpec:
    return RemediationSpec.model_validate({
        "signal": {"source": "podState", "name": "CrashLoopBackOff", "fingerprint": "p1"},
        "runbook": {"name": "crashloop", "namespace": runbook_namespace}, "target": target})


def test_a_pod_incident_is_looked_at_only_on_a_workload_of_its_own_namespace_with_a_name_an_object_can_have():
    def looked_at(target: dict, runbook_namespace: str = "shop"):
        found = escalation.pod_incident_target("shop", pod_spec(target, runbook_namespace))
        return found and (found.kind, found.namespace, found.name)

    assert looked_at({"kind": "Deployment", "name": "web", "namespace": "shop"}) == ("Deployment", "shop", "web")
    assert looked_at({"kind": "Rollout", "name": "web"}) == ("Rollout", "shop", "web"), "no namespace: its own"
    assert looked_at({"kind": "Pod", "name": "web-0"}) == ("Pod", "shop", "web-0")
    assert looked_at({"kind": "Deployment", "name": "web", "namespace": "bank"}) is None, "a forged spec"
    assert looked_at({"kind": "Deployment", "name": "web"}, runbook_namespace="bank") is None, "refused"
    assert looked_at({"kind": "Node", "name": "node-1"}) is None, "a Node's pods are no workload's"
    assert looked_at({"kind": "Deployment", "name": "w" * 100_000}) is None
    assert looked_at({"kind": "Deployment", "name": "Web/../../bank"}) is None


def test_the_pod_sweep_never_reads_another_namespace_nor_a_node_for_a_remediation_made_by_hand(monkeypatch):
    from types import SimpleNamespace

    from remediator.controller import handlers
    from remediator.controller.escalation import AwaitingHealthyPods

    refused = ended("Failed", "refused: spec.target.namespace is 'bank', but this Remediation lives in "
                              "namespace 'shop'").wire()
    forged = [{"metadata": {"namespace": "shop", "name": name}, "spec": spec, "status": status}
              for name, spec, status in (
                  ("other-ns", pod_spec({"kind": "Deployment", "name": "vault", "namespace": "bank"}).wire(), refused),
                  ("node", pod_spec({"kind": "Node", "name": "node-1"}).wire(), ended("Escalated").wire()),
                  ("no-spec", {"signal": {"source": "podState"}}, ended("Escalated").wire()))]
    store = Remediations(*forged)
    ctx = SimpleNamespace(api=None, resources=store, awaiting_healthy_pods=AwaitingHealthyPods(),
                          caches=SimpleNamespace(remediations=store.objects))
    looked = []
    monkeypatch.setattr(handlers.probes, "observe", lambda api, target: looked.append(target))
    for obj in forged:
        ctx.awaiting_healthy_pods.observe("ADDED", obj)
    assert ctx.awaiting_healthy_pods.keys() == []
    handlers.end_pod_incidents(ctx)
    assert looked == [] and ctx.awaiting_healthy_pods.keys() == []
    assert all("signalResolvedAt" not in o["status"] for o in store.objects.values())


def test_a_workload_that_stays_unhealthy_is_looked_at_less_often_and_a_sweep_looks_at_a_bounded_number():
    assert [escalation.next_look_in(m) for m in range(12)] == [10] * 7 + [20, 40, 80, 120, 120], \
        "every 10 s for the first minute after the hand-over"
    due = {"new": 0.0, "late": 5.0, "later": 1.0, "future": 31.0}
    assert escalation.looks_due(due, now=30.0) == ["new", "later", "late"], "the longest overdue first"
    assert escalation.looks_due(due, now=30.0, budget=2) == ["new", "later"]

    flood = {("evil", f"junk-{i}"): float(i) for i in range(1000)}  # forged, all long overdue
    taken = escalation.looks_due({**flood, ("shop", "web"): 30.0}, now=30.0, budget=3, tenant=lambda k: k[0])
    assert taken == [("evil", "junk-0"), ("shop", "web"), ("evil", "junk-1")], "taken in turn per namespace"


def test_thousands_of_escalated_pod_incidents_cost_a_bounded_number_of_reads_per_sweep(monkeypatch):
    """Measured on main: 3 reads per incident per sweep (its Remediation, its workload, its pods), every 10 s:
    3000 a sweep for 1000 incidents. Now no Remediation is read, a workload once for all its incidents."""
    from types import SimpleNamespace

    from remediator.controller import handlers
    from remediator.controller.escalation import AwaitingHealthyPods
    from tests.unit.test_verdicts import pod, rollout, seen

    class Counted(Remediations):
        gets = 0

        def get(self, kind, name, namespace):
            Counted.gets += 1
            return super().get(kind, name, namespace)

    objects = [{"metadata": {"namespace": "shop", "name": f"pod-{i}"}, "status": ended("Escalated").wire(),
                "spec": pod_spec({"kind": "Deployment", "name": f"web-{i // 2}", "namespace": "shop"}).wire()}
               for i in range(2000)]  # two incidents (CrashLoopBackOff, NotReady) on each of 1000 workloads
    store = Counted(*objects)
    ctx = SimpleNamespace(api=None, resources=store, awaiting_healthy_pods=AwaitingHealthyPods(),
                          caches=SimpleNamespace(remediations=store.objects))
    for obj in objects:
        ctx.awaiting_healthy_pods.observe("", obj)
    looked = []
    crashing = (pod("web-9", ready=False, waiting_reasons=("CrashLoopBackOff",)),)
    monkeypatch.setattr(handlers.probes, "observe", lambda api, target: looked.append(target.name) or
                        seen(0, rollout(), crashing))
    per_sweep = []
    for sweep in range(60):  # ten minutes
        before = len(looked)
        handlers.end_pod_incidents(ctx, now=sweep * 10.0)
        per_sweep.append(len(looked) - before)
    assert max(per_sweep) == escalation.LOOKS_PER_SWEEP and Counted.gets == 0
    assert len(set(looked)) == 1000, "every workload is looked at, in turn"
    assert looked.count("web-0") <= 600 / escalation.LOOK_AT_LEAST_EVERY + 1


def test_a_deleted_pod_incident_is_forgotten_even_when_its_deletion_was_not_watched(monkeypatch):
    from types import SimpleNamespace

    from remediator.controller import handlers
    from remediator.controller.escalation import AwaitingHealthyPods, OpenAlerts

    objects = [{"metadata": {"namespace": "shop", "name": name}, "status": ended("Escalated").wire(),
                "spec": POD_SPEC.wire()} for name in ("pod-1", "pod-2")]
    ctx = SimpleNamespace(api=None, awaiting_healthy_pods=AwaitingHealthyPods(), caches=SimpleNamespace(
        remediations={("shop", "pod-2")}))  # pod-1 deleted while the watch was re-listing
    for obj in objects:
        ctx.awaiting_healthy_pods.observe("", obj)
    looked = []
    monkeypatch.setattr(handlers.probes, "observe", lambda api, target: looked.append(target) or
                        (_ for _ in ()).throw(RuntimeError("apiserver down")))
    handlers.end_pod_incidents(ctx, now=0.0)
    assert ctx.awaiting_healthy_pods.keys() == [("shop", "pod-2")] and len(looked) == 1
    for sweep in range(1, 31):
        handlers.end_pod_incidents(ctx, now=sweep * 10.0)
    assert len(looked) == 10, "at 0, 10, ... 60, 80, 120, 200 s: a failed look backs off, no warning a sweep"

    alerts = OpenAlerts()
    alerts.observe("", {**objects[1], "status": {**objects[1]["status"], "foldedIntoRunbook": True}})
    assert alerts.keys() == [("shop", "pod-2")]
    handlers.remediation_seen(SimpleNamespace(intake=SimpleNamespace(incidents=SimpleNamespace(
        observe=lambda *a: None)), awaiting_healthy_pods=ctx.awaiting_healthy_pods, open_alerts=alerts),
        SimpleNamespace(seen=lambda *a: None), "DELETED", objects[1])
    assert ctx.awaiting_healthy_pods.keys() == [] and alerts.keys() == [], "nor its alert re-sent for ever"


def test_an_end_resolved_but_not_yet_recorded_is_work_a_replica_taking_over_finishes():
    """The operator killed between the sweep's record_resolved and runbook_status.finish: on restart the
    caches list it before the replica is active, so only the takeover's list of work (`unfinished`) can
    finish it; that list held only outcomes not yet folded, and this one was folded at its escalation."""
    from remediator.controller.caches import RemediationIndex, guard_fields

    def obj(name: str, **status) -> dict:
        return {"metadata": {"namespace": "shop", "name": name, "creationTimestamp": "2026-12-01T11:50:00Z"},
                "spec": POD_SPEC.wire(), "status": {**ended("Escalated").wire(), "foldedIntoRunbook": True,
                                                   **status}}
    owed = obj("owed", signalResolvedAt="2026-12-01T12:30:00Z")
    waiting, recorded = obj("waiting"), obj("recorded", signalResolvedAt="2026-12-01T12:30:00Z",
                                            restoredAt="2026-12-01T12:30:00Z", restoredBy="humans")
    dry_run = obj("dry-run", phase="Skipped", dryRun=True, reason="dry run", signalResolvedAt="2026-12-01T12:30:00Z")
    for status in (owed, waiting, recorded, dry_run):
        assert escalation.end_owed(status["status"]) == pending(status["status"]) == (status is owed), status
    index = RemediationIndex()
    index.replace([guard_fields(o) for o in (owed, waiting, recorded, dry_run)])
    assert index.unfinished()[1] == [("shop", "owed")]
    index.observe("MODIFIED", recorded)
    index.observe("MODIFIED", {**owed, "status": recorded["status"]})
    assert index.unfinished()[1] == []


def test_a_remediation_listed_before_the_replica_runs_its_work_is_remembered_without_an_error(caplog):
    from types import SimpleNamespace

    from remediator.controller import handlers
    from remediator.controller.escalation import AwaitingHealthyPods, OpenAlerts

    ctx = SimpleNamespace(intake=SimpleNamespace(incidents=SimpleNamespace(observe=lambda *a: None)),
                          serves=lambda namespace: True, open_alerts=OpenAlerts(),
                          awaiting_healthy_pods=AwaitingHealthyPods(), alertmanager=None)
    listed = {"metadata": {"namespace": "shop", "name": "pod-1"}, "spec": POD_SPEC.wire(),
              "status": {**ended("Escalated").wire(), "signalResolvedAt": "2026-12-01T12:30:00Z"}}
    handlers.remediation_seen(ctx, handlers.Ticks(ctx), "", listed)  # the caches' first listing: not active yet


def test_a_tenant_with_a_thousand_pod_incidents_waiting_holds_up_no_other_tenants_and_a_standby_looks_at_none(
        monkeypatch):
    from types import SimpleNamespace

    from remediator.controller import handlers
    from remediator.controller.escalation import AwaitingHealthyPods

    def incident(namespace: str, name: str) -> dict:
        return {"metadata": {"namespace": namespace, "name": name}, "status": ended("Escalated").wire(),
                "spec": RemediationSpec.model_validate({
                    "signal": {"source": "podState", "name": "CrashLoopBackOff", "fingerprint": name},
                    "runbook": {"name": "crashloop", "namespace": namespace},
                    "target": {"kind": "Deployment", "name": name, "namespace": namespace}}).wire()}
    objects = [incident("evil", f"junk-{i}") for i in range(1000)] + [incident("shop", "web")]
    ctx = SimpleNamespace(api=None, awaiting_healthy_pods=AwaitingHealthyPods(), caches=SimpleNamespace(
        remediations={(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects}))
    for obj in objects:
        ctx.awaiting_healthy_pods.observe("", obj)
    looked = []
    monkeypatch.setattr(handlers.probes, "observe", lambda api, target: looked.append(target.namespace) or
                        (_ for _ in ()).throw(RuntimeError("no such Deployment")))
    handlers.end_pod_incidents(ctx, now=0.0, active=lambda: False)
    assert looked == [], "a standby looks at nothing"
    handlers.end_pod_incidents(ctx, now=0.0)
    assert "shop" in looked and len(looked) == escalation.LOOKS_PER_SWEEP


def test_a_pod_incident_on_a_pod_of_a_workload_ends_when_that_workload_is_healthy_as_a_rollback_deletes_the_pod():
    def looked_at(name: str, **labels: str):
        spec = RemediationSpec.model_validate({
            "signal": {"source": "podState", "name": "CrashLoopBackOff", "fingerprint": "p1", "labels": labels},
            "runbook": {"name": "crashloop", "namespace": "shop"}, "target": {"kind": "Pod", "name": name}})
        found = escalation.pod_incident_target("shop", spec)
        return found.kind, found.namespace, found.name

    assert looked_at("web-7d9f8-x2x", deployment="web", pod="web-7d9f8-x2x") == ("Deployment", "shop", "web")
    assert looked_at("db-0", statefulset="db") == ("StatefulSet", "shop", "db")
    assert looked_at("db-0", statefulset="db", deployment="legacy") == ("StatefulSet", "shop", "db"), \
        "a label of the pod's own named deployment: not its owner"
    assert looked_at("agent-q7", daemonset="agent") == ("DaemonSet", "shop", "agent")
    assert looked_at("debug") == ("Pod", "shop", "debug"), "a bare pod is its own workload"
    assert looked_at("web--1", deployment="web-") == ("Pod", "shop", "web--1"), "no object has that name"


def test_an_ended_remediation_is_finished_from_the_object_its_watch_event_brought_and_read_only_after_a_409(
        monkeypatch):
    from types import SimpleNamespace

    from kubernetes.client.rest import ApiException

    from remediator.controller import runbook_status
    from remediator.controller.context import Settings

    seen = {"metadata": {"namespace": "shop", "name": "r1", "uid": "u1", "resourceVersion": "5"},
            "spec": SPEC.wire(), "status": ended("Succeeded").wire()}
    newer = {**seen, "metadata": {**seen["metadata"], "resourceVersion": "6"}}
    reads: list[str] = []
    writes: list[str] = []

    class Resources:
        def get(self, kind, name, namespace):
            reads.append(kind)
            return newer

        def replace_status(self, kind, namespace, name, body):
            writes.append(body["metadata"]["resourceVersion"])
            if body["metadata"]["resourceVersion"] != "6":
                raise ApiException(status=409, reason="Conflict")
            assert body["status"]["foldedIntoRunbook"] and body["status"]["restoredAt"]

    monkeypatch.setattr(runbook_status, "fold_into_runbook", lambda *a: None)  # the Runbook is gone
    ctx = SimpleNamespace(resources=Resources(), alertmanager=None, settings=Settings())
    runbook_status.finish(ctx, "shop", "r1", seen=newer)
    assert (reads, writes) == ([], ["6"]), "the watched object was read again before it was written"
    runbook_status.finish(ctx, "shop", "r1", seen=seen)
    assert (reads, writes) == (["Remediation"], ["6", "5", "6"]), "a stale one is read again after its 409"


def test_an_outcome_is_folded_from_the_cached_runbook_read_only_after_a_409_and_never_called_gone_by_the_cache(
        monkeypatch):
    from types import SimpleNamespace

    from kubernetes.client.rest import ApiException

    from remediator.controller import caches, runbook_status
    from remediator.controller.ingest import RunbookCache

    def runbook(rv: str) -> dict:
        return {"metadata": {"namespace": "shop", "name": "bad-rollout", "resourceVersion": rv},
                "spec": {"triggers": [], "steps": []}, "status": {}}
    reads: list[str] = []
    patched: list[str] = []

    def patch(api, method, path, body, content_type=None):
        patched.append(body["metadata"]["resourceVersion"])
        if body["metadata"]["resourceVersion"] != "8":
            raise ApiException(status=409, reason="Conflict")
        assert body["status"]["folded"] == ["u1"]

    monkeypatch.setattr(runbook_status, "request_json", patch)
    monkeypatch.setattr(runbook_status.RunbookSpec, "model_validate", classmethod(lambda cls, spec: spec))
    cache = RunbookCache()
    ctx = SimpleNamespace(api=None, runbooks=cache, caches=caches.Caches(), resources=SimpleNamespace(
        get=lambda kind, name, namespace: reads.append(kind) or current["body"]))
    ctx.caches.primed.set()
    current = {"body": runbook("8")}
    cache.put_object(runbook("8"))
    assert runbook_status.fold_into_runbook(ctx, SPEC, "u1", "r1", ended("Succeeded")) is not None
    assert (reads, patched) == ([], ["8"]), "the cached Runbook was read again"
    cache.put_object(runbook("7"))  # the watch behind a newer write
    runbook_status.fold_into_runbook(ctx, SPEC, "u1", "r1", ended("Succeeded"))
    assert (reads, patched) == (["Runbook"], ["8", "7", "8"])
    cache.remove("shop", "bad-rollout")  # not (yet) seen by the watch: read, not taken as gone
    runbook_status.fold_into_runbook(ctx, SPEC, "u1", "r1", ended("Succeeded"))
    assert (reads, patched[-1]) == (["Runbook", "Runbook"], "8")


def test_an_ended_remediation_is_folded_from_its_event_only_while_no_later_event_came(monkeypatch):
    from types import SimpleNamespace

    from remediator.controller import caches, handlers, runbook_status
    from remediator.controller.escalation import AwaitingHealthyPods, OpenAlerts

    given: list[object] = []
    monkeypatch.setattr(runbook_status, "finish", lambda ctx, namespace, name, seen=None: given.append(seen))
    monkeypatch.setattr(handlers, "CHORES", SimpleNamespace(submit=lambda fn, *args: fn(*args)))
    ctx = SimpleNamespace(caches=caches.Caches(), intake=SimpleNamespace(incidents=SimpleNamespace(
        observe=lambda *a: None)), serves=lambda namespace: True, open_alerts=OpenAlerts(),
        awaiting_healthy_pods=AwaitingHealthyPods(), alertmanager=None)
    event = {"metadata": {"namespace": "shop", "name": "r1", "resourceVersion": "5",
                          "creationTimestamp": "2026-12-01T11:50:00Z"},
             "spec": SPEC.wire(), "status": ended("Escalated").wire()}
    ctx.caches.remediations.observe("MODIFIED", event)
    ticks = SimpleNamespace(seen=lambda *a: None, active=lambda: True)
    handlers.remediation_seen(ctx, ticks, "MODIFIED", event)
    assert given == [event], "the chore read what its event brought"
    later = {**event, "metadata": {**event["metadata"], "resourceVersion": "6"}}
    ctx.caches.remediations.observe("MODIFIED", later)  # e.g. its signal resolved while the chore waited
    handlers.fold_outcome(ctx, "shop", "r1", event)
    assert given == [event, None], "a copy a later event superseded was worked from: it is read instead"
