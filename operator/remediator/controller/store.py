"""What the Loop reads and does, as one narrow interface: `ClusterStore` on the apiserver (and the operator's
caches, Slack), an in-memory one in the unit tests (tests/unit/fake_store.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from kubernetes.client.rest import ApiException

from ..actions import base as actions
from ..actions.kube import WORKLOAD_KINDS, read_object_json
from ..approvals.slack import find_request_message, post_message, update_message
from ..api.models import ObjectRef, ProbableCause, RemediationPolicySpec, RemediationSpec, RemediationStatus, \
    RunbookSpec
from ..core.plan import adaptive, claims
from ..core.plan import gitops as gitops_plan
from ..records import events
from ..signals import changes
from ..verification import probes
from ..verification.observations import Observation
from . import claims as target_claims
from . import gitops, guard_facts, targets
from .context import OperatorContext
from .guard_facts import StepFacts


class Store(Protocol):
    """Everything one Remediation's Loop touches outside itself. Writes raise nothing on 404/409: they
    return None, and the Loop re-reads."""

    def remediation(self, namespace: str, name: str) -> dict | None: ...

    def write_status(self, body: dict) -> dict | None:
        """Replace the status, guarded by body's resourceVersion; None when gone or another writer was first."""

    def runbook(self, namespace: str, name: str) -> dict | None: ...

    def policy(self, namespace: str) -> RemediationPolicySpec | None: ...

    def target(self, ref: ObjectRef) -> dict | None:
        """A Deployment, StatefulSet or DaemonSet target as the apiserver has it now, read once for a tick's cause
        lookup, step facts, dry run and action; None for other kinds, or when it cannot be read (each of those
        then reads for itself, and meets the error where it always did)."""

    def step_facts(self, name: str, spec: RemediationSpec, status: RemediationStatus, runbook: RunbookSpec | None,
                   policy: RemediationPolicySpec | None, now: datetime, read: actions.Read = None) -> StepFacts: ...

    def probable_cause(self, spec: RemediationSpec, created: str | None, now: datetime,
                       read: actions.Read = None) -> ProbableCause | None: ...

    def history(self, spec: RemediationSpec, status: RemediationStatus,
                runbook: RunbookSpec | None) -> dict[str, adaptive.StepOutcomes] | None: ...

    def claim(self, target: ObjectRef, namespace: str, uid: str, name: str, duration: timedelta,
              now: datetime) -> claims.ClaimDecision: ...

    def release(self, target: ObjectRef, namespace: str, uid: str) -> None: ...

    def act(self, namespace: str, account: str | None, request: actions.ActionRequest) -> actions.ActionResult:
        """Run the action as `account`; raises actions.ActionError."""

    def observe(self, target: ObjectRef, key: str | None = None) -> Observation:
        """The target now; `key`: the step's idempotency key, which its action stamped on the target."""

    def pause(self, order: gitops_plan.Pause, now: datetime) -> datetime:
        """Pause the target's GitOps owner under the order's key (once); when it was paused.
        Raises actions.ActionError."""

    def gitops_owner(self, owner: gitops_plan.Owner) -> dict | None:
        """The GitOps owner's body as the apiserver has it now (None: gone), while waiting for it to settle."""

    def transition(self, namespace: str, name: str, uid: str | None, target: ObjectRef,
                   before: RemediationStatus, after: RemediationStatus, now: datetime) -> None:
        """Tell people (an Event) that the Remediation moved on."""

    @property
    def slack_enabled(self) -> bool: ...

    def post_approval(self, channel: str, request_id: str | None, requested_at: datetime | None, text: str,
                      blocks: list) -> tuple[str, str]:
        """Post the request, or adopt the message a lost write already posted: (channel, ts).
        Raises SlackUnavailable."""

    def update_approval(self, channel: str, ts: str, text: str, blocks: list) -> None: ...


class ClusterStore:
    """The Store of a running operator: reads through the functions the caches stand behind."""

    def __init__(self, ctx: OperatorContext):
        self.ctx = ctx

    def remediation(self, namespace: str, name: str) -> dict | None:
        return self.ctx.resources.get("Remediation", name, namespace)

    def write_status(self, body: dict) -> dict | None:
        meta = body["metadata"]
        try:
            return self.ctx.resources.replace_status("Remediation", meta["namespace"], meta["name"], body)
        except ApiException as e:
            if e.status in (404, 409):
                return None
            raise

    # The reads below go through reconcile's functions of those names, which the watch-fed caches stand behind
    # (imported when called: reconcile imports this module).
    def runbook(self, namespace: str, name: str) -> dict | None:
        from .reconcile import load_runbook

        return load_runbook(self.ctx, namespace, name)

    def policy(self, namespace: str) -> RemediationPolicySpec | None:
        from .reconcile import load_policy

        return load_policy(self.ctx, namespace)

    def target(self, ref) -> dict | None:
        if ref.kind not in WORKLOAD_KINDS:
            return None
        try:
            return read_object_json(self.ctx.api, ref.kind, ref.name, ref.namespace or "")
        except actions.ActionError:
            return None

    def step_facts(self, name, spec, status, runbook, policy, now, read=None) -> StepFacts:
        return guard_facts.step_facts(self.ctx, name, spec, status, runbook, policy, now, read)

    def probable_cause(self, spec, created, now, read=None) -> ProbableCause | None:
        return changes.find_cause(self.ctx.api, self.ctx.changes, spec, created, now,
                                  targets.of(self.ctx).pods_if_watched, read)

    def history(self, spec, status, runbook):
        from .reconcile import adaptive_history

        return adaptive_history(self.ctx, spec, status, runbook)

    def claim(self, target, namespace, uid, name, duration, now) -> claims.ClaimDecision:
        return target_claims.take(self.ctx.api, target, namespace, uid, name, duration, now,
                                  self.ctx.settings.claims_namespace)

    def release(self, target, namespace, uid) -> None:
        target_claims.release(self.ctx.api, target, namespace, uid, self.ctx.settings.claims_namespace)

    def act(self, namespace, account, request) -> actions.ActionResult:
        return self.ctx.run_action(namespace, account, request)

    def observe(self, target, key=None) -> Observation:
        return probes.observe(self.ctx.api, target, watched=targets.of(self.ctx), key=key)

    def pause(self, order, now) -> datetime:
        return gitops.pause(self.ctx, order, now)

    def gitops_owner(self, owner) -> dict | None:
        return gitops.get(self.ctx.api, gitops_plan.KINDS, owner.kind, owner.namespace, owner.name)

    def transition(self, namespace, name, uid, target, before, after, now) -> None:
        events.record_transition(self.ctx.api, namespace, name, uid, target, before, after, now)

    @property
    def slack_enabled(self) -> bool:
        return self.ctx.slack is not None and self.ctx.slack.enabled

    def post_approval(self, channel, request_id, requested_at, text, blocks) -> tuple[str, str]:
        slack = self.ctx.slack
        found = request_id and requested_at and find_request_message(slack, channel, request_id,
                                                                      requested_at.timestamp())
        return found or post_message(slack, channel, text, blocks, request_id)

    def update_approval(self, channel, ts, text, blocks) -> None:
        update_message(self.ctx.slack, channel, ts, text, blocks)
