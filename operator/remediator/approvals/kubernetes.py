"""`remediator approve|deny NAME`: a vote cast as yourself through the apiserver.

The identity comes from the apiserver (SelfSubjectReview), not from a flag,
and the admission policy re-checks it on create; RBAC on
`remediationapprovals` decides who may vote. A vote names the approval
request it is for (`spec.requestId`, by default the one open when you vote,
shown before voting); one object per voter and request, so voting twice is
refused by the apiserver (409).
"""

from __future__ import annotations

import hashlib
import secrets
import time

from kubernetes import client
from kubernetes.client.rest import ApiException

from ..api.models import API_VERSION, GROUP, VERSION


def whoami(api: client.ApiClient) -> tuple[str, list[str]]:
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"))
    info = review.status.user_info
    return info.username, list(info.groups or [])


def approval_name(remediation: str, request_id: str, user: str) -> str:
    return f"{remediation[:220]}-{request_id[:8]}-{hashlib.sha256(user.encode()).hexdigest()[:10]}"


def open_request(api: client.ApiClient, namespace: str, remediation: str) -> dict:
    """The Remediation's open approval request (status.approval), {} when there is none."""
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, "remediations",
                                                                    remediation)
    return (obj.get("status") or {}).get("approval") or {}


def cast_vote(api: client.ApiClient, namespace: str, remediation: str, decision: str, reason: str,
              wait_seconds: float = 15, request_id: str | None = None, suffix: str = "") -> dict:
    """Create the vote for `request_id` (default: the request open now) and wait for the operator's verdict."""
    user, groups = whoami(api)
    custom = client.CustomObjectsApi(api)
    request_id = request_id or open_request(api, namespace, remediation).get("requestId") or "none"
    name = approval_name(remediation, request_id, user) + suffix
    body = {"apiVersion": API_VERSION, "kind": "RemediationApproval",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"remediation": remediation, "requestId": request_id, "decision": decision, "reason": reason,
                     "user": user, "groups": groups}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "remediationapprovals", body)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "remediationapprovals", name)
        if (obj.get("status") or {}).get("outcome"):
            return obj
        time.sleep(0.5)
    return obj


def resolve_incident(api: client.ApiClient, namespace: str, remediation: str, note: str) -> dict:
    """The RemediationApproval that resolves this incident (bound to it by its uid), once the operator said."""
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, "remediations",
                                                                    remediation)
    # one object per attempt: a resolve refused while the operator still worked on it can be run again later
    return cast_vote(api, namespace, remediation, "resolve", note, request_id=obj["metadata"]["uid"],
                     suffix="-" + secrets.token_hex(3))


def resolve(args) -> int:
    """`remediator resolve NAME --note ...`: a RemediationApproval with decision "resolve", bound to this
    incident by its uid (a later incident of the same name is not resolved by it). Who you are is the
    apiserver's answer, re-checked by the admission policy; no flag can say otherwise."""
    from ..kube import load_api_client

    if len(args.note) > 1024:
        print(f"the note is {len(args.note)} characters; at most 1024")
        return 1
    try:
        done = resolve_incident(load_api_client(args.kubeconfig), args.namespace, args.remediation, args.note)
    except ApiException as e:
        print(f"refused by the apiserver ({e.status}): {e.reason}: {(e.body or '')[:500]}")
        return 1
    return exit_code(done, "resolution", ("accepted",))


def add_arguments(parser) -> None:
    parser.add_argument("remediation", metavar="NAME")
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--reason", default="")
    parser.add_argument("--request-id", default=None,
                        help="the approval request to vote on (status.approval.requestId); default: the open one")
    parser.add_argument("--kubeconfig", default=None)


def run(args, decision: str) -> int:
    from ..kube import load_api_client

    api = load_api_client(args.kubeconfig)
    try:
        request = open_request(api, args.namespace, args.remediation)
        request_id = args.request_id or request.get("requestId")
        print(f"voting {decision} on request {request_id} of {args.remediation}: "
              f"{request.get('level', '?')} risk, needs {request.get('required', '?')}, "
              f"deadline {request.get('deadline', '?')}")
        if request_id == request.get("requestId") and request.get("stepSummary"):
            print(f"it covers exactly {request['stepSummary']}; any later step asks again")
        obj = cast_vote(api, args.namespace, args.remediation, decision, args.reason, request_id=request_id)
    except ApiException as e:
        print(f"refused by the apiserver ({e.status}): {e.reason}: {(e.body or '')[:500]}")
        return 1
    return exit_code(obj, "vote", ("accepted", "duplicate"))


def exit_code(obj: dict, what: str, fine: tuple[str, ...]) -> int:
    """Print the operator's answer to a vote or resolution: 0 when it is one of `fine`, 2 when none yet."""
    status = obj.get("status") or {}
    if not status.get("outcome"):
        print(f"{what} created; the operator has not recorded it yet (is it running?)")
        return 2
    print(f"{status['outcome']}: {status.get('message', '')}")
    return 0 if status["outcome"] in fine else 1
