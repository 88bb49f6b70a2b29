"""Which RemediationPolicy governs a namespace.

Policies are cluster-scoped and written by cluster admins. A policy applies
to a namespace when one of its `namespaces` globs matches (empty = all) and
its `namespaceSelector` (if any) matches the namespace's labels. When several
apply, the most specific governs (the namespace named exactly, then a glob,
then a selector, then a policy for all namespaces; ties by name), except that
any `dryRun` among them wins: safe by default.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from remediator.api.models import LabelSelector, RemediationPolicySpec
from remediator.core.quantity import to_bytes


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        value = labels.get(req.key)
        ok = {
            "In": present and value in req.values,
            "NotIn": not present or value not in req.values,
            "Exists": present,
            "DoesNotExist": not present,
        }[req.operator]
        if not ok:
            return False
    return True


def applies(spec: RemediationPolicySpec, namespace: str, labels: Mapping[str, str]) -> bool:
    globs_ok = not spec.namespaces or any(fnmatch.fnmatchcase(namespace, g) for g in spec.namespaces)
    return globs_ok and selector_matches(spec.namespace_selector, labels)


def specificity(spec: RemediationPolicySpec, namespace: str) -> int:
    if namespace in spec.namespaces:
        return 3
    if spec.namespaces:
        return 2
    return 1 if spec.namespace_selector is not None else 0


def effective_policy(policies: Sequence[tuple[str, Mapping]], namespace: str,
                     labels: Mapping[str, str] | None = None) -> RemediationPolicySpec | None:
    labels = labels or {}
    matching = []
    for name, raw in sorted(policies, key=lambda p: p[0]):
        try:
            spec = RemediationPolicySpec.model_validate(raw)
        except ValueError:
            continue  # the CRD schema refuses these; a stale invalid object must not widen rights
        if applies(spec, namespace, labels):
            matching.append((name, spec))
    if not matching:
        return None
    chosen = min(matching, key=lambda m: (-specificity(m[1], namespace), m[0]))[1]
    if any(spec.mode == "dryRun" for _, spec in matching):
        chosen = chosen.model_copy(update={"mode": "dryRun"})
    return chosen


@dataclass(frozen=True)
class Caps:
    """Hard limits an action must respect whatever the runbook asks: the strictest applicable bound wins."""

    max_replicas: int | None = None
    max_memory: str | None = None
    max_pods: int | None = None


def caps_for(policy: RemediationPolicySpec | None, namespace: str) -> Caps:
    # No policy: the default policy's caps (maxPods), not none: safe by default.
    policy = policy or RemediationPolicySpec()
    entries = [b for b in policy.bounds
               if not b.namespaces or any(fnmatch.fnmatchcase(namespace, g) for g in b.namespaces)]
    replicas = [b.max_replicas for b in entries if b.max_replicas is not None]
    memories = [b.max_memory for b in entries if b.max_memory is not None]
    return Caps(
        max_replicas=min(replicas) if replicas else None,
        max_memory=min(memories, key=to_bytes) if memories else None,
        max_pods=policy.blast_radius.max_pods,
    )
