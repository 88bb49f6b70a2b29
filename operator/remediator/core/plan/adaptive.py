"""Adaptive ladders (a Runbook with `adaptive: true`): try first what has worked on this kind of signal.

Each step's record on a signal type (source and name, e.g. alertmanager/HighErrorRate)
is a Beta(1 + successes, 1 + failures) posterior over its chance to recover the
target. Steps are ordered by the posterior mean plus an exploration bonus (the
posterior's standard deviation, capped at EXPLORATION_CAP), so an untried step
gets a bounded chance and a proven one is not displaced by noise. Deterministic:
the same records give the same order, which the Remediation explains.

Never past the policy's risk limits: only steps whose declared risk the policy
lets run without approval move; any other step keeps its place in the ladder
(and still passes its own guards and approval gate when its turn comes).
Skipped steps (cause conditions) keep their places too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import hashlib

from remediator.api.models import (
    MAX_SIGNAL_TYPE_LENGTH,
    RISK_LEVELS,
    PlannedStep,
    RemediationSpec,
    RemediationStatus,
    RunbookStatus,
)

EXPLORATION_CAP = 0.1


@dataclass(frozen=True)
class StepOutcomes:
    attempts: int = 0
    successes: int = 0

    @property
    def alpha(self) -> int:
        return 1 + self.successes

    @property
    def beta(self) -> int:
        return 1 + self.attempts - self.successes

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def score(self) -> float:
        a, b = self.alpha, self.beta
        spread = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        return self.mean + min(EXPLORATION_CAP, spread)


def signal_type(spec: RemediationSpec) -> str:
    """source/name; a name too long for the Runbook's status keeps a prefix and a digest of the whole."""
    whole = f"{spec.signal.source}/{spec.signal.name}"
    if len(whole) <= MAX_SIGNAL_TYPE_LENGTH:
        return whole
    digest = hashlib.sha256(whole.encode()).hexdigest()[:16]
    return f"{whole[:MAX_SIGNAL_TYPE_LENGTH - 18]}#{digest}"


def verdicts(status: RemediationStatus) -> Iterable[tuple[str, bool]]:
    """(step name, recovered) of each applied step with a verdict: what the ladder learns from."""
    for step in status.steps:
        if step.applied_at and step.phase not in ("Intended", "Applied", "Verifying"):
            yield step.name, step.phase == "Succeeded"


def history(stats: RunbookStatus, signal: str) -> dict[str, StepOutcomes]:
    """Per step name: applied attempts and verified successes on this signal type, from the Runbook's status
    (where each ended Remediation is folded once, so deleting old Remediations loses nothing)."""
    for seen in stats.signal_stats:
        if seen.signal == signal:
            return {s.name: StepOutcomes(s.succeeded + s.failed, s.succeeded) for s in seen.steps}
    return {}


@dataclass(frozen=True)
class Ordering:
    steps: list[PlannedStep]  # in runbook index order, each with its `order` in the ladder
    changed: bool
    explanation: str


def order(steps: Sequence[PlannedStep], outcomes: Mapping[str, StepOutcomes], signal: str,
          unattended: Sequence[str]) -> Ordering:
    """Reorder the movable steps by score; `unattended` are the risk levels the policy lets run without approval."""
    movable = [s for s in steps if not s.skip and s.risk in unattended]
    slots = [i for i, s in enumerate(steps) if not s.skip and s.risk in unattended]
    ranked = sorted(movable, key=lambda s: (-outcomes.get(s.name, StepOutcomes()).score, s.index))
    ladder = list(steps)
    for slot, step in zip(slots, ranked):
        ladder[slot] = step
    placed = [s.model_copy(update={"order": position}) for position, s in enumerate(ladder)]
    changed = [s.index for s in ladder] != [s.index for s in steps]
    return Ordering(sorted(placed, key=lambda s: s.index), changed,
                    explain(ladder, steps, outcomes, signal, unattended, changed))


def tally(name: str, outcomes: Mapping[str, StepOutcomes]) -> str:
    seen = outcomes.get(name, StepOutcomes())
    return f"{name} {seen.successes}/{seen.attempts}" if seen.attempts else f"{name} untried"


def explain(ladder: Sequence[PlannedStep], original: Sequence[PlannedStep], outcomes: Mapping[str, StepOutcomes],
            signal: str, unattended: Sequence[str], changed: bool) -> str:
    record = ", ".join(tally(s.name, outcomes) for s in ladder if not s.skip)
    pinned = [s.name for s in original if not s.skip and s.risk not in unattended]
    held = (f"; {', '.join(pinned)} kept in place: {'its' if len(pinned) == 1 else 'their'} risk needs approval"
            if pinned else "")
    if not changed:
        return f"adaptive order on {signal}: runbook order kept ({record}){held}"
    first = next(s for s in ladder if not s.skip)
    seen = outcomes.get(first.name, StepOutcomes())
    why = (f"{seen.successes}/{seen.attempts} successes on this signal" if seen.attempts
           else "untried on this signal, explored")
    others = ", ".join(tally(s.name, outcomes) for s in ladder if not s.skip and s is not first)
    return (f"adaptive order on {signal}: tried {first.name} first: {why}"
            f"{' vs ' + others if others else ''}; ladder {' → '.join(s.name for s in ladder)}{held}")


def unattended_levels(needs_approval_at: Mapping[str, bool]) -> list[str]:
    """The risk levels that run without approval, lowest first, stopping at the first that needs one."""
    levels = []
    for level in RISK_LEVELS:
        if needs_approval_at.get(level, True):
            break
        levels.append(level)
    return levels
