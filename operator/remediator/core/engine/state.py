"""The Remediation state machine, its deterministic names and keys, and time to recover.

Phases and the moves between them (anything not listed is illegal):

    from               to
    Pending            Planned; Skipped (nothing to do)
    Planned            Acting; AwaitingApproval (the step needs approval);
                       Skipped (guards block, dry run); Escalated (every step skipped)
    AwaitingApproval   Acting (approved, or a timeout that proceeds); Denied; Expired;
                       Escalated (a timeout that escalates); Skipped (nothing left to run)
    Acting             Verifying; Acting or AwaitingApproval (the step could not be
                       applied: climb to the next); Escalated (ladder exhausted);
                       Skipped (guards block right before the first action)
    Verifying          Succeeded; Acting or AwaitingApproval (climb to the next step);
                       Escalated (ladder exhausted)
    any non-terminal   Cancelled (signal resolved, runbook gone); Failed

Terminal phases (Succeeded, Failed, Escalated, Denied, Cancelled, Skipped,
Expired) have no way out: a new incident is a new Remediation.

No step runs twice: moving into Acting or AwaitingApproval from Acting or
Verifying needs a step (the `step` argument, else `current_step`) that has no
step record yet. Skipped means "did nothing", so it is refused once any step
has a record other than Skipped (an Intended step may have been called).

`transition` never mutates: it returns a new status with the phase, reason,
a timeline entry (the timeline keeps the last TIMELINE_LIMIT entries, led by
a marker saying how many were dropped), the conditions (Progressing,
AwaitingApproval, Recovered), startedAt on the first move, finishedAt on a
terminal one, and time to recover on success (unless the caller already set it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from remediator.api.models import (
    TERMINAL_PHASES,
    TIMELINE_LIMIT,
    Condition,
    RemediationPhase,
    RemediationStatus,
    TimelineEntry,
)
from remediator.core.durations import format_time, parse_time

TRANSITIONS: dict[str, frozenset[str]] = {
    "Pending": frozenset({"Planned", "Skipped", "Cancelled", "Failed"}),
    "Planned": frozenset({"AwaitingApproval", "Acting", "Skipped", "Escalated", "Cancelled", "Failed"}),
    "AwaitingApproval": frozenset({"Acting", "Denied", "Expired", "Escalated", "Skipped", "Cancelled", "Failed"}),
    "Acting": frozenset({"Verifying", "Acting", "AwaitingApproval", "Escalated", "Skipped", "Cancelled", "Failed"}),
    "Verifying": frozenset({"Acting", "AwaitingApproval", "Succeeded", "Escalated", "Cancelled", "Failed"}),
    **{phase: frozenset() for phase in TERMINAL_PHASES},
}
LADDER_PHASES = frozenset({"Acting", "Verifying"})
STEP_PHASES = frozenset({"Acting", "AwaitingApproval"})  # entering these names the step concerned
TRUNCATED_KIND = "TimelineTruncated"
_TRUNCATED_MESSAGE = re.compile(r"^(\d+) earlier entries dropped")

SOURCE_PREFIXES = {"alertmanager": "am", "podState": "pod", "sloBurn": "slo", "anomaly": "anom", "nodeCondition": "node",
                   "manual": "man"}


class IllegalTransition(ValueError):
    """A move the state machine does not allow; the message says which moves it does."""


def is_terminal(phase: str) -> bool:
    return phase in TERMINAL_PHASES


def allowed_transitions(phase: str) -> frozenset[str]:
    if phase not in TRANSITIONS:
        raise ValueError(f"unknown phase {phase!r}")
    return TRANSITIONS[phase]


def transition(
    status: RemediationStatus,
    to: RemediationPhase,
    reason: str,
    now: datetime,
    *,
    step: int | None = None,
    signal_starts_at: str | None = None,
) -> RemediationStatus:
    """A new status in phase `to`; IllegalTransition if the move is not allowed.

    `step` is the ladder step an Acting or AwaitingApproval phase is about;
    `signal_starts_at` (the signal's startsAt) is where time to recover starts.
    """
    if not reason.strip():
        raise ValueError("a transition needs a reason: every decision is explained")
    current_step = _checked_step(status, to, step)
    at = format_time(now)
    started_at = status.started_at or at
    update: dict = {
        "phase": to,
        "reason": reason,
        "current_step": current_step,
        "started_at": started_at,
        "timeline": append_timeline(status.timeline, TimelineEntry(at=at, kind=to, message=_moved(status, to, reason, step))),
        "conditions": updated_conditions(status.conditions, to, reason, at),
    }
    if is_terminal(to):
        update["finished_at"] = at
    if to == "Succeeded" and status.time_to_recover_seconds is None:
        recovered = time_to_recover(signal_starts_at, started_at, now)
        update["time_to_recover_seconds"] = None if recovered is None else recovered.total_seconds()
    return status.model_copy(deep=True, update=update)


def _checked_step(status: RemediationStatus, to: str, step: int | None) -> int | None:
    allowed = allowed_transitions(status.phase)
    if to not in TRANSITIONS:
        raise IllegalTransition(f"unknown phase {to!r}")
    if to not in allowed:
        options = ", ".join(sorted(allowed)) or "none: it is terminal"
        raise IllegalTransition(f"a Remediation cannot go from {status.phase} to {to} (allowed: {options})")
    if step is not None and step < 0:
        raise IllegalTransition(f"step index {step} is negative")
    target_step = status.current_step if step is None else step
    if to == "Acting" and target_step is None:
        raise IllegalTransition("entering Acting needs the step index it acts on")
    # Climbing from a step that ran: the step entered must be one that has not run yet.
    climbing = to in STEP_PHASES and status.phase in LADDER_PHASES
    if climbing and (target_step is None or any(r.index == target_step for r in status.steps)):
        raise IllegalTransition(
            f"{status.phase} -> {to} climbs the ladder: it needs a step that has not run yet, "
            f"got {target_step} (steps run: {sorted(r.index for r in status.steps)})"
        )
    if to == "Skipped":
        acted = [r.index for r in status.steps if r.phase != "Skipped"]
        if acted:
            raise IllegalTransition(
                f"Skipped means nothing was done, but step(s) {acted} already ran or may have: "
                "end with Escalated, Failed or Cancelled instead"
            )
    return target_step


def note(status: RemediationStatus, kind: str, message: str, now: datetime) -> RemediationStatus:
    """A new status with one more timeline entry and nothing else changed (a vote, an intent, a probe)."""
    if not kind or not message.strip():
        raise ValueError("a timeline note needs a kind and a message")
    entry = TimelineEntry(at=format_time(now), kind=kind, message=message)
    return status.model_copy(deep=True, update={"timeline": append_timeline(status.timeline, entry)})


def _moved(status: RemediationStatus, to: str, reason: str, step: int | None) -> str:
    about = f" (step {step})" if step is not None else ""
    return f"{status.phase} -> {to}{about}: {reason}"


def updated_conditions(conditions: Sequence[Condition], phase: str, reason: str, at: str) -> list[Condition]:
    """Progressing, AwaitingApproval and Recovered for `phase`; transition times move only on change."""
    terminal = is_terminal(phase)
    wanted = {
        "Progressing": "False" if terminal else "True",
        "AwaitingApproval": "True" if phase == "AwaitingApproval" else "False",
        "Recovered": "True" if phase == "Succeeded" else ("False" if terminal else "Unknown"),
    }
    old = {c.type: c for c in conditions}
    result = [c for c in conditions if c.type not in wanted]
    for kind, value in wanted.items():
        previous = old.get(kind)
        changed = previous is None or previous.status != value
        result.append(Condition(
            type=kind, status=value, reason=phase, message=reason,
            last_transition_time=at if changed else previous.last_transition_time,
        ))
    return result


def append_timeline(timeline: Sequence[TimelineEntry], entry: TimelineEntry,
                    limit: int = TIMELINE_LIMIT) -> list[TimelineEntry]:
    """The timeline plus `entry`, at most `limit` long: a leading marker counts what was dropped."""
    if limit < 2:
        raise ValueError("a timeline limit under 2 leaves no room for the marker and an entry")
    dropped = 0
    entries = list(timeline)
    if entries and entries[0].kind == TRUNCATED_KIND:
        found = _TRUNCATED_MESSAGE.match(entries[0].message)
        dropped = int(found.group(1)) if found else 0
        entries = entries[1:]
    entries.append(entry)
    if dropped == 0 and len(entries) <= limit:
        return entries
    excess = max(0, len(entries) - (limit - 1))
    dropped += excess
    kept = entries[excess:]
    marker = TimelineEntry(at=kept[0].at, kind=TRUNCATED_KIND,
                           message=f"{dropped} earlier entries dropped (the timeline keeps the last {limit - 1})")
    return [marker, *kept]


def time_to_recover(signal_starts_at: str | None, remediation_started_at: str | None,
                    recovered_at: datetime) -> timedelta | None:
    """From the signal's start (else the remediation's) to verified recovery; never negative."""
    for text in (signal_starts_at, remediation_started_at):
        if not text:
            continue
        try:
            began = parse_time(text)
        except ValueError:
            continue  # an unreadable startsAt falls back to the remediation's own start
        return max(timedelta(0), recovered_at - began)
    return None


def idempotency_key(remediation: str, step_index: int, action: str) -> str:
    """Stable key for one step's action: the same inputs give the same key on every replica and restart.

    Short, and valid as an annotation or label value: "<action>-<step>-<16 hex>".
    """
    if not remediation or step_index < 0 or not re.fullmatch(r"[A-Za-z]+", action or ""):
        raise ValueError(f"idempotency key needs a remediation, a step index >= 0 and an action name, "
                         f"got {remediation!r}, {step_index}, {action!r}")
    digest = hashlib.sha256(f"{remediation}\n{step_index}\n{action}".encode()).hexdigest()[:16]
    return f"{action[:40]}-{step_index}-{digest}"


def remediation_name(source: str, fingerprint: str, starts_at: str | None, namespace: str) -> str:
    """Deterministic DNS-1123 name, e.g. "am-3f9c…": duplicate deliveries of one incident collide on create.

    The incident is (source, namespace, fingerprint, startsAt): a re-fire of the
    same alert after it resolved has a new startsAt and so a new Remediation.
    """
    prefix = SOURCE_PREFIXES.get(source)
    if prefix is None:
        raise ValueError(f"unknown signal source {source!r} (known: {', '.join(SOURCE_PREFIXES)})")
    if not fingerprint:
        raise ValueError("a remediation name needs the signal's fingerprint: without it every signal would collide")
    if not namespace:
        raise ValueError("a remediation name needs the namespace the Remediation lives in")
    digest = hashlib.sha256(f"{source}\n{namespace}\n{fingerprint}\n{starts_at or ''}".encode()).hexdigest()
    return f"{prefix}-{digest[:20]}"
