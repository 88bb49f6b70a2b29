"""`remediator approve|deny NAME`: a vote cast as yourself through the apiserver.

The identity comes from the apiserver (SelfSubjectReview), not from a flag,
and the admission policy re-checks it on create; RBAC on
`remediationapprovals` decides who may vote. One object per voter and
remediation, so voting twice is refused by the apiserver (409).
"""

from __future__ import annotations

import hashlib
import time

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..api.models import API_VERSION, GROUP, VERSION


def whoami(api: client.ApiClient) -> tuple[str, list[str]]:
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"))
    info = review.status.user_info
    return info.username, list(info.groups or [])


def approval_name(remediation: str, user: str) -> str:
    return f"{remediation[:230]}-{hashlib.sha256(user.encode()).hexdigest()[:10]}"


def cast_vote(api: client.ApiClient, namespace: str, remediation: str, decision: str, reason: str,
              wait_seconds: float = 15) -> dict:
    """Create the vote and wait for the operator to record what became of it."""
    user, groups = whoami(api)
    custom = client.CustomObjectsApi(api)
    name = approval_name(remediation, user)
    body = {"apiVersion": API_VERSION, "kind": "RemediationApproval",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"remediation": remediation, "decision": decision, "reason": reason, "user": user,
                     "groups": groups}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "remediationapprovals", body)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "remediationapprovals", name)
        if (obj.get("status") or {}).get("outcome"):
            return obj
        time.sleep(0.5)
    return obj


def add_arguments(parser) -> None:
    parser.add_argument("remediation", metavar="NAME")
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--reason", default="")
    parser.add_argument("--kubeconfig", default=None)


def run(args, decision: str) -> int:
    from ..kube import load_api_client

    api = load_api_client(args.kubeconfig)
    try:
        obj = cast_vote(api, args.namespace, args.remediation, decision, args.reason)
    except ApiException as e:
        print(f"refused by the apiserver ({e.status}): {e.reason}: {(e.body or '')[:500]}")
        return 1
    status = obj.get("status") or {}
    if not status.get("outcome"):
        print("vote created; the operator has not recorded it yet (is it running?)")
        return 2
    print(f"{status['outcome']}: {status.get('message', '')}")
    return 0 if status["outcome"] in ("accepted", "duplicate") else 1
