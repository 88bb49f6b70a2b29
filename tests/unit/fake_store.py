"""An in-memory Store (controller/store.py) for driving the real reconcile.Loop in unit tests.

The Remediation is kept as the apiserver keeps it: a status write must carry the current resourceVersion
(else it is refused, as a 409 would be), and every write bumps it. Actions are keyed as on a real target: a
key seen before is a replay that changes nothing. Time is the store's clock, moved by the test.
"""

from __future__ import annotations

import copy
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from remediator.actions.base import ActionError, ActionRequest, ActionResult
from remediator.approvals.slack import SlackUnavailable
from remediator.api.models import RemediationPolicySpec, RemediationSpec, RemediationStatus, RunbookSpec
from remediator.controller import reconcile
from remediator.controller.guard_facts import StepFacts
from remediator.core.plan import claims
from remediator.core.plan.guards import GuardDecision, GuardVerdict
from remediator.verification.observations import Observation, PodObservation, RolloutObservation

ALLOW = StepFacts(guards=GuardVerdict(True, [GuardDecision("cooldown", True, "cooldown: never ran")]))


class FakeStore:
    def __init__(self, spec: RemediationSpec, runbook: RunbookSpec | None, *, namespace: str = "shop",
                 name: str = "am-1", status: RemediationStatus | None = None,
                 policy: RemediationPolicySpec | None = None, now: datetime = datetime(2026, 11, 25, 12, tzinfo=UTC)):
        self.namespace, self.name, self.clock = namespace, name, now
        self.object: dict | None = {
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "resourceVersion": "1",
                         "creationTimestamp": "2026-11-25T11:59:58Z"},
            "spec": spec.wire(), "status": (status or RemediationStatus()).wire()}
        self.runbook_body = None if runbook is None else {
            "metadata": {"name": spec.runbook.name, "namespace": spec.runbook.namespace, "generation": 1},
            "spec": runbook.wire()}
        self.policy_spec = policy
        self.facts = ALLOW  # what the guards observe for the next step
        self.applied: list[str] = []  # keys an action changed the target for, in order
        self.calls: list[ActionRequest] = []  # every action call, replays included
        self.action_error: ActionError | None = None
        self.pending_action = False  # the action is in progress (e.g. a drain waiting on a PDB)
        self.holder: str | None = None  # uid of the Remediation holding the target's claim
        self.ready = True  # what the target looks like to a probe
        self.writes: list[RemediationStatus] = []  # statuses stored, in order
        self.refuse_next_writes = 0  # another writer was first this many times (409)
        self.reads = {"step_facts": 0, "history": 0, "probable_cause": 0, "policy": 0, "runbook": 0,
                      "remediation": 0, "target": 0}
        self.target_body: dict | None = {"kind": spec.target.kind, "metadata": {
            "name": spec.target.name, "namespace": spec.target.namespace, "resourceVersion": "7"}}
        self.given_reads: dict[str, list] = {"step_facts": [], "probable_cause": []}  # the `read` each was handed
        self.transitions: list[tuple[str, str]] = []
        self.slack_enabled = False
        self.slack_down = False
        self.slack_posts: list[str] = []
        self.slack_updates: list[str] = []
        self.ctx = SimpleNamespace(prometheus=None)  # what verification's PromQL readings look at

    # -- the Remediation

    def remediation(self, namespace: str, name: str) -> dict | None:
        self.reads["remediation"] += 1
        return copy.deepcopy(self.object)

    def write_status(self, body: dict) -> dict | None:
        if self.object is None:
            return None
        if self.refuse_next_writes or body["metadata"]["resourceVersion"] != self.object["metadata"]["resourceVersion"]:
            self.refuse_next_writes = max(0, self.refuse_next_writes - 1)
            return None
        self.touch(status=copy.deepcopy(body["status"]))
        self.writes.append(self.status)
        return copy.deepcopy(self.object)

    def touch(self, **fields) -> None:
        """Any write (ours or another writer's) bumps the resourceVersion."""
        assert self.object is not None
        version = str(int(self.object["metadata"]["resourceVersion"]) + 1)
        metadata = {**self.object["metadata"], **fields.pop("metadata", {}), "resourceVersion": version}
        self.object = {**self.object, **fields, "metadata": metadata}

    @property
    def status(self) -> RemediationStatus:
        assert self.object is not None
        return RemediationStatus.model_validate(self.object["status"])

    # -- what the decision reads

    def runbook(self, namespace: str, name: str) -> dict | None:
        self.reads["runbook"] += 1
        return copy.deepcopy(self.runbook_body)

    def policy(self, namespace: str) -> RemediationPolicySpec | None:
        self.reads["policy"] += 1
        return self.policy_spec

    def target(self, ref) -> dict | None:
        self.reads["target"] += 1
        return copy.deepcopy(self.target_body)

    def step_facts(self, name, spec, status, runbook, policy, now, read=None) -> StepFacts:
        self.reads["step_facts"] += 1
        self.given_reads["step_facts"].append(resolved(read))
        return self.facts

    def probable_cause(self, spec, created, now, read=None):
        self.reads["probable_cause"] += 1
        self.given_reads["probable_cause"].append(resolved(read))
        return None

    def history(self, spec, status, runbook):
        self.reads["history"] += 1
        return {}

    # -- what the effects do

    def claim(self, target, namespace, uid, name, duration: timedelta, now: datetime) -> claims.ClaimDecision:
        lease = claims.lease_name(target.kind, target.name)
        holder = self.holder if self.holder not in (None, uid) else None
        view = None if self.holder is None else claims.LeaseView(self.holder, "other" if holder else name, now,
                                                                 timedelta(minutes=5))
        decision = claims.decide(view, uid, name, holder is not None, lease_name=lease, namespace=namespace,
                                 target=f"{target.kind}/{target.name}", now=now, duration=duration)
        if decision.granted:
            self.holder = uid
        return decision

    def release(self, target, namespace, uid) -> None:
        if self.holder == uid:
            self.holder = None

    def act(self, namespace, account, request: ActionRequest) -> ActionResult:
        self.calls.append(request)
        if self.action_error is not None:
            raise self.action_error
        if self.pending_action:
            return ActionResult(done=False, replayed=False, message="waiting")
        replayed = request.key in self.applied
        if not replayed:
            self.applied.append(request.key)
        return ActionResult(done=True, replayed=replayed, message="restarted",
                            changes={} if replayed else {"spec.replicas": {"before": 1, "after": 2}})

    def observe(self, target, key=None) -> Observation:
        pod = PodObservation("web-1", "pod-uid", ready=self.ready)
        rollout = RolloutObservation("Deployment", 2, 2, 1, replicas=1, updated=1, ready=int(self.ready),
                                     available=int(self.ready))
        return Observation(self.clock, target, True, rollout, (pod,))

    def gitops_owner(self, owner):
        return None

    def transition(self, namespace, name, uid, target, before, after, now) -> None:
        self.transitions.append((before.phase, after.phase))

    def post_approval(self, channel, request_id, requested_at, text, blocks) -> tuple[str, str]:
        if self.slack_down:
            raise SlackUnavailable("chat.postMessage failed: service_unavailable")
        self.slack_posts.append(request_id or "")
        return channel, f"1700000000.{len(self.slack_posts):06d}"

    def update_approval(self, channel, ts, text, blocks) -> None:
        self.slack_updates.append(text)


def resolved(read):
    """A read handed over while on its way (a Future), as the one waiting for it gets it."""
    return read.result() if isinstance(read, Future) else read


def loop_on(store: FakeStore, monkeypatch) -> reconcile.Loop:
    """The real Loop on `store`, its clock the store's."""
    monkeypatch.setattr(reconcile, "utcnow", lambda: store.clock)
    return reconcile.Loop(store.ctx, store.namespace, store.name, store=store)
