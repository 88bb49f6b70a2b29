"""What every action shares: the request and result types, the error they raise,
and the bookkeeping of idempotency keys on the target.

Every action is keyed: the key of a request is written on the target in the
same request as the change (annotation `remediator.dev/action-keys`, the last
ten keys, comma-separated), so "is it done?" is answered by the cluster, not by
the memory of a process that may have died in between. A request whose key is
already recorded does nothing and says so (`replayed=True`).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from remediator.api.models import Evidence, ObjectRef, Step
from remediator.core.durations import format_time

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

KEYS_ANNOTATION = "remediator.dev/action-keys"
# deletePod records, on the pods' owner, which pod UIDs each key chose: {"key": ["uid", ...]}
DELETED_PODS_ANNOTATION = "remediator.dev/deleted-pods"
MAX_KEYS = 10
# Keys live in a comma-separated annotation: they must not contain a comma, and stay short.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,126}$")
CLUSTER_SCOPED_KINDS = frozenset({"Node"})
T = TypeVar("T")
Read = dict | Future | None  # a tick's read of the target: made, on its way (None once resolved: not made)


@dataclass(frozen=True)
class ActionRequest:
    """One step to apply to one target.

    `key` is the idempotency key (the same key for every retry of the same step
    of the same Remediation). `max_replicas`, `max_memory` and `max_pods` are
    the policy's caps, applied on top of the step's own bounds.
    """

    action: str
    target: ObjectRef
    key: str
    step: Step
    dry_run: bool = False
    max_replicas: int | None = None
    max_memory: str | None = None
    max_pods: int | None = None
    remediation: str = ""  # namespace/name of the acting Remediation: an autoscaler lease names its holder
    remediation_uid: str = ""
    # The target as the deciding tick read it (apiserver JSON; a Future while that read is on its way): an action
    # that reads JSON then writes guarded by its resourceVersion starts from it instead of a GET of its own; a 409
    # makes it read afresh.
    read: Read = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ActionResult:
    """What an action did (or, for a dry run, what the apiserver says it would do).

    done: the action reached its end (for a dry run: every would-be write was
          accepted). False means "in progress, call again with the same key"
          (a drain still waiting on a PodDisruptionBudget).
    replayed: the key was already recorded on the target, so this call changed
          nothing new (a drain replay continues where it stopped).
    changes: field path -> {"before": ..., "after": ...}; empty when nothing changed.
    """

    done: bool
    replayed: bool
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)


class ActionError(Exception):
    """The action could not be applied. `status` is the apiserver's HTTP status when it refused
    (403, 404, 422 …), None when the refusal is ours; `message` is the apiserver's own text when
    it refused. `retryable` says whether the same request may succeed later."""

    def __init__(self, reason: str, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.retryable = retryable

    def __str__(self) -> str:
        status = f" {self.status}" if self.status else ""
        return f"{self.reason}{status}: {self.message}"


class Conflict(ActionError):
    """The target changed between our read and our write (HTTP 409): re-read and re-decide."""

    def __init__(self, message: str):
        super().__init__("Conflict", message, status=409, retryable=True)


# action name -> module of remediator.actions; each module has run(api, req) -> ActionResult
ACTION_MODULES = MappingProxyType(
    {
        "restartRollout": "restart",
        "scale": "scale",
        "rollback": "rollback",
        "deletePod": "delete_pod",
        "cordonDrain": "drain",
        "raiseMemory": "memory",
    }
)


def execute(api: ApiClient, req: ActionRequest) -> ActionResult:
    """Apply `req` with the action it names; idempotent per `req.key`."""
    module = ACTION_MODULES.get(req.action)
    if module is None:
        raise ActionError(
            "UnknownAction", f"no action named {req.action!r}; known: {', '.join(ACTION_MODULES)}"
        )
    problem = invalid_request(req)
    if problem:
        raise ActionError("InvalidRequest", problem)
    # imported on use: the action modules import this one
    return importlib.import_module(f"remediator.actions.{module}").run(api, req)


def invalid_request(req: ActionRequest) -> str | None:
    """Why the request cannot be applied as it stands, or None."""
    if not _KEY.match(req.key):
        return f"idempotency key must match {_KEY.pattern}: {req.key!r}"
    if req.target.kind not in CLUSTER_SCOPED_KINDS and not req.target.namespace:
        return f"{req.target.kind} {req.target.name}: the target's namespace must be set"
    if req.step.action != req.action:
        return f"request for {req.action} carries a {req.step.action} step"
    return None


# ---------------------------------------------------------------- keys


def recorded_keys(annotations: Mapping[str, str] | None) -> list[str]:
    """The keys already recorded on an object, oldest first."""
    raw = (annotations or {}).get(KEYS_ANNOTATION, "")
    return [k for k in raw.split(",") if k]


def is_recorded(annotations: Mapping[str, str] | None, key: str) -> bool:
    return key in recorded_keys(annotations)


def keys_with(annotations: Mapping[str, str] | None, key: str) -> str:
    """The annotation value once `key` is recorded: appended, the last MAX_KEYS kept."""
    keys = [k for k in recorded_keys(annotations) if k != key] + [key]
    return ",".join(keys[-MAX_KEYS:])


# ---------------------------------------------------------------- results


def now_text() -> str:
    return format_time(datetime.now(UTC))


def evidence(kind: str, detail: str, value: str | None = None) -> Evidence:
    return Evidence(kind=kind, detail=detail, value=value, at=now_text())


def describe(ref: ObjectRef) -> str:
    return f"{ref.kind} {ref.namespace}/{ref.name}" if ref.namespace else f"{ref.kind} {ref.name}"


def replayed(req: ActionRequest, what: str) -> ActionResult:
    return ActionResult(
        done=True,
        replayed=True,
        message=f"{what} already applied to {describe(req.target)} under key {req.key}; nothing to do",
        evidence=[evidence("action", f"key {req.key} is recorded on {describe(req.target)}", req.key)],
    )


def require_kind(req: ActionRequest, kinds: tuple[str, ...]) -> None:
    if req.target.kind not in kinds:
        raise ActionError(
            "UnsupportedTarget",
            f"{req.action} works on {', '.join(kinds)}, not on {req.target.kind} {req.target.name}",
        )


def read_of(target, read: Read) -> dict | None:
    """`read` (waited for, if it is on its way) if it is of `target` (kind, name, namespace): anything else is not
    trusted, but read afresh."""
    if isinstance(read, Future):
        read = read.result()
    meta = (read or {}).get("metadata") or {}
    if read is None or read.get("kind") != target.kind or meta.get("name") != target.name or \
            meta.get("namespace") != target.namespace:
        return None
    return read



def reread_on_conflict(attempt: Callable[[], T], tries: int = 5) -> T:
    """Run read-decide-write `attempt` again when its write met a concurrent writer (409)."""
    last: Conflict | None = None
    for _ in range(tries):
        try:
            return attempt()
        except Conflict as e:
            last = e
    raise ActionError(
        "Conflict",
        f"the target kept changing under us ({tries} re-reads): {last.message}",
        status=409,
        retryable=True,
    )


# ---------------------------------------------------------------- diffs

# Our own bookkeeping is not a change anyone needs to approve.
BOOKKEEPING_ANNOTATIONS = frozenset({KEYS_ANNOTATION, DELETED_PODS_ANNOTATION})


def changes_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Leaf-level diff of two objects' spec, labels and annotations: path -> {before, after}."""

    def watched(obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k not in BOOKKEEPING_ANNOTATIONS
        }
        return {
            "metadata": {"labels": meta.get("labels") or {}, "annotations": annotations},
            "spec": obj.get("spec") or {},
        }

    old, new = flatten(watched(before)), flatten(watched(after))
    return {
        path: {"before": old.get(path), "after": new.get(path)}
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    }


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists of named items are keyed by name: containers[app]."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= flatten(v, _child(path, str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(i, Mapping) and "name" in i for i in value):
        out = {}
        for item in value:
            item_path = f"{path}[{item['name']}]"
            # an item with nothing but a name still shows up, so adding or removing it is a change
            out |= flatten({k: v for k, v in item.items() if k != "name"}, item_path) or {item_path: {}}
        return out
    return {path: value}


def _child(path: str, key: str) -> str:
    # annotation and label keys hold dots and slashes: bracket them so the path stays readable
    if "." in key or "/" in key:
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key
