"""Pod states become signals, one incident per workload, state and template revision."""

from datetime import datetime, timedelta, timezone

from remediator.signals.pods import owner_workload, pod_signals

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def pod(name="web-7d9f-abcde", waiting=None, last=None, ready="False", since="2026-11-25T11:59:00Z",
        template_hash="7d9f", restarts=5):
    cs = {"name": "app", "restartCount": restarts, "state": {"waiting": {"reason": waiting}} if waiting
          else {"running": {}}}
    if last:
        cs["lastState"] = {"terminated": {"reason": last, "finishedAt": since}}
    return {
        "metadata": {"name": name, "namespace": "shop", "uid": name,
                     "labels": {"app": "web", "pod-template-hash": template_hash},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": f"web-{template_hash}", "controller": True}]},
        "status": {"phase": "Running", "containerStatuses": [cs],
                   "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": since}]},
    }


def test_replicaset_owner_resolves_to_its_deployment():
    assert owner_workload(pod()) == ("Deployment", "web")


def test_crashlooping_pods_of_one_replicaset_share_one_incident_fingerprint():
    a = pod_signals(pod(name="web-7d9f-a", waiting="CrashLoopBackOff"), NOW)
    b = pod_signals(pod(name="web-7d9f-b", waiting="CrashLoopBackOff"), NOW)
    assert [s.name for s in a] == ["CrashLoopBackOff"]
    assert a[0].fingerprint == b[0].fingerprint
    assert a[0].labels["deployment"] == "web" and a[0].labels["namespace"] == "shop"


def test_a_new_template_revision_is_a_new_incident():
    a = pod_signals(pod(waiting="CrashLoopBackOff"), NOW)
    b = pod_signals(pod(waiting="CrashLoopBackOff", template_hash="8e0a"), NOW)
    assert a[0].fingerprint != b[0].fingerprint


def test_oomkilled_is_read_from_the_last_termination():
    states = [s.name for s in pod_signals(pod(waiting="CrashLoopBackOff", last="OOMKilled"), NOW)]
    assert states == ["OOMKilled", "CrashLoopBackOff"]


def test_not_ready_carries_how_long_so_each_runbook_applies_its_own_grace():
    young = pod(since=(NOW - timedelta(seconds=30)).isoformat())
    [signal] = pod_signals(young, NOW)
    assert signal.name == "NotReady" and signal.labels["notReadySeconds"] == "30"


def test_a_not_ready_trigger_matches_only_past_its_grace_period():
    from remediator.api.models import PodStateTrigger
    from remediator.core.match.matching import pod_state_matches

    trigger = PodStateTrigger(states=["NotReady"], grace_period="2m")
    young = pod_signals(pod(since=(NOW - timedelta(seconds=30)).isoformat()), NOW)[0]
    old = pod_signals(pod(since=(NOW - timedelta(minutes=5)).isoformat()), NOW)[0]
    assert not pod_state_matches(trigger, young).matched
    assert "grace period is 2m" in pod_state_matches(trigger, young).reason
    assert pod_state_matches(trigger, old).matched


def test_a_pod_label_named_namespace_cannot_retarget_the_signal():
    p = pod(waiting="CrashLoopBackOff")
    p["metadata"]["labels"]["namespace"] = "kube-system"
    assert pod_signals(p, NOW)[0].labels["namespace"] == "shop"


def test_terminating_pods_are_not_signals():
    p = pod(waiting="CrashLoopBackOff")
    p["metadata"]["deletionTimestamp"] = "2026-11-25T11:59:30Z"
    assert pod_signals(p, NOW) == []


def test_a_pod_incident_is_over_when_no_pod_of_its_revision_fails_any_more():
    from remediator.signals.pods import recovered

    was = pod(name="web-7d9f-a", waiting="CrashLoopBackOff")
    still = pod(name="web-7d9f-b", waiting="CrashLoopBackOff")
    assert recovered(was, [still], NOW) == [], "another pod of the revision still crash-loops"
    over = recovered(was, [pod(name="web-8e0a-c", waiting="CrashLoopBackOff", template_hash="8e0a")], NOW)
    assert [s.fingerprint for s in over] == [s.fingerprint for s in pod_signals(was, NOW)]
