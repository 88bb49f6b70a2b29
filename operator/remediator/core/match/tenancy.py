"""Which namespace an alert may act in, given how it arrived. Pure: labels and facts in, a verdict out.

An alert's `namespace` label is written by whoever can put an alert into Alertmanager, so it binds
nothing by itself. A namespace's own receiver path (`/webhooks/alertmanager/<namespace>`, authenticated
with a token that namespace's admins keep in a Secret) is the binding; the label may only agree with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

NAMESPACE_LABEL = "namespace"
NAMESPACE_PATTERN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"  # an RFC 1123 label: what a namespace can be named
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def can_be_a_namespace(name: str) -> bool:
    return _NAMESPACE.fullmatch(name) is not None


@dataclass(frozen=True)
class Admission:
    labels: Mapping[str, str] | None  # the alert's labels, namespace bound; None when refused
    refusal: str = ""  # why, when refused
    reason: str = ""  # the refusal's short name, for remediator_refusals_total


def on_namespace_route(path_namespace: str, labels: Mapping[str, str]) -> Admission:
    """An alert delivered to a namespace's own route acts there: a missing label takes the path's namespace,
    a different one is refused."""
    claimed = labels.get(NAMESPACE_LABEL) or ""
    if claimed and claimed != path_namespace:
        return Admission(None, f"the alert's namespace label '{claimed}' is not '{path_namespace}', the "
                               f"namespace this receiver path and token are for", "namespace-mismatch")
    return Admission({**labels, NAMESPACE_LABEL: path_namespace})


def on_shared_route(labels: Mapping[str, str], opted_in: bool) -> Admission:
    """The shared token serves cluster-level senders, but never a namespace that took a token of its own:
    its admins chose that only their token may start its remediations."""
    namespace = labels.get(NAMESPACE_LABEL) or ""
    if namespace and opted_in:
        return Admission(None, f"namespace '{namespace}' takes alerts only at /webhooks/alertmanager/{namespace} "
                               f"with its own token, not with the shared one", "shared-token-for-tenant")
    return Admission(dict(labels))
