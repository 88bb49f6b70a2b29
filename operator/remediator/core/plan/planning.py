"""The remediation ladder: which steps run, which are skipped and why, and which comes next.

A step's `when` (a CauseCondition) ties it to the probable cause: "rollback
only when the cause is a rollout". `cause_kind` is what cause analysis found:
a kind such as "rollout", or "none" when it looked and found no candidate.
`None` means *unknown* (analysis did not run or could not decide), and then
every step carrying a `when` is skipped, negated conditions included: a
cause-specific step (a rollback) is only worth its risk when the cause is
known to fit, and "not a rollout" is no more known than "a rollout". Steps
without `when` always run. A `when` with no causeKinds constrains nothing.

`next_step` reads the ladder against the step records: resume a step that is
in flight (actions are idempotent), stop at the first verified success, else
climb to the first runnable step after the last one attempted. The ladder's
order is the steps' `order` when adaptive ordering set it (core.adaptive),
else their index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from remediator.api.models import CauseCondition, PlannedStep, RunbookSpec, Step, StepRecord

UNKNOWN_CAUSE = "unknown"
IN_FLIGHT_STEP_PHASES = frozenset({"Intended", "Applied", "Verifying"})


def plan(spec: RunbookSpec, cause_kind: str | None) -> list[PlannedStep]:
    """The ordered ladder for this cause, every step with its reason to run or to be skipped."""
    planned = []
    for index, step in enumerate(spec.steps):
        runs, why = condition_holds(step.when, cause_kind)
        planned.append(PlannedStep(
            index=index, name=step.name, action=step.action, risk=step.risk, skip=not runs,
            reason=f"{step.name} {'runs' if runs else 'skipped'}: {why}", step=step.model_copy(deep=True),
        ))
    return planned


def cause_free(spec: RunbookSpec) -> bool:
    """No step's choice depends on the probable cause (no `when`): the ladder is the same whatever it is."""
    return all(step.when is None or not step.when.cause_kinds for step in spec.steps)


def pinned_step(plan: Sequence[PlannedStep], index: int, runbook: RunbookSpec | None = None) -> Step | None:
    """Step `index` as it was at planning. A plan made before steps were pinned falls back to the live Runbook,
    if it still has that index; None when neither has it (the caller ends the ladder, never crashes)."""
    planned = next((p for p in plan if p.index == index), None)
    if planned is not None and planned.step is not None:
        return planned.step
    if runbook is not None and 0 <= index < len(runbook.steps):
        return runbook.steps[index]
    return None


def is_pinned(plan: Sequence[PlannedStep]) -> bool:
    return bool(plan) and all(p.step is not None for p in plan)


def action_identity(plan: Sequence[PlannedStep], runbook: RunbookSpec | None, pinned: str | None) -> str | None:
    """The ServiceAccount steps run as: the one pinned with the plan (an edit cannot swap the identity
    mid-incident); the live Runbook's before planning or for a plan made before pinning."""
    if is_pinned(plan) or runbook is None:
        return pinned
    return runbook.service_account_name


def condition_holds(when: CauseCondition | None, cause_kind: str | None) -> tuple[bool, str]:
    if when is None or not when.cause_kinds:
        return True, "no cause condition"
    wanted = "/".join(when.cause_kinds)
    scope = f"step runs only when the cause is not {wanted}" if when.negate else f"step runs only for {wanted}"
    if cause_kind is None:
        return False, f"probable cause is unknown, {scope}"
    fits = (cause_kind in when.cause_kinds) != when.negate
    return fits, f"probable cause is {cause_kind}, {scope}"


@dataclass(frozen=True)
class LadderStatus:
    state: Literal["notStarted", "inFlight", "next", "recovered", "exhausted"]
    next_index: int | None
    reason: str


def ladder_status(steps: Sequence[PlannedStep], records: Sequence[StepRecord]) -> LadderStatus:
    """Where the ladder stands: resume, climb, recovered (a step verified) or exhausted (escalate)."""
    by_index = {record.index: record for record in records}
    succeeded = [r for r in records if r.phase == "Succeeded"]
    if succeeded:
        first = min(succeeded, key=lambda r: r.index)
        return LadderStatus("recovered", None, f"step {first.index} ({first.name}) verified the recovery")
    in_flight = sorted((r for r in records if r.phase in IN_FLIGHT_STEP_PHASES), key=lambda r: r.index)
    if in_flight:
        step = in_flight[0]
        return LadderStatus("inFlight", step.index, f"step {step.index} ({step.name}) is {step.phase}: resume it")
    ladder = sorted(steps, key=position)
    rank = {step.index: p for p, step in enumerate(ladder)}
    tried = [i for i in by_index if i in rank]
    attempted = max(tried, key=rank.__getitem__, default=-1)
    for step in ladder:
        if (attempted < 0 or rank[step.index] > rank[attempted]) and not step.skip:
            if attempted < 0:
                return LadderStatus("notStarted", step.index, f"start with step {step.index} ({step.name})")
            last = by_index[attempted]
            return LadderStatus(
                "next", step.index,
                f"step {attempted} ({last.name}) ended {last.phase}: climb to step {step.index} ({step.name})",
            )
    if attempted < 0:
        return LadderStatus("exhausted", None, "every step is skipped: nothing to run")
    last = by_index[attempted]
    return LadderStatus("exhausted", None, f"step {attempted} ({last.name}) ended {last.phase} and no runnable step follows")


def position(step: PlannedStep) -> tuple[int, int]:
    """Where a step stands in the ladder: its adaptive `order` when set, else its index."""
    return (step.index if step.order is None else step.order, step.index)


def next_step(steps: Sequence[PlannedStep], records: Sequence[StepRecord]) -> int | None:
    """Index of the step to run (or resume) now; None when recovered or the ladder is exhausted."""
    return ladder_status(steps, records).next_index
