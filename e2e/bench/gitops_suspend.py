"""The extra cost of pausing a GitOps owner on the way from signal to action, beside the plain path.

    python -m e2e.bench.gitops_suspend [--incidents N] [--output FILE]

On the real local control plane (REMEDIATOR_CLUSTER_NAME / KUBECONFIG as the tests) and the real operator
process, two throw-away namespaces with N one-replica Deployments each and a restartRollout Runbook:
- plain: Deployments no reconciler marks;
- suspend: each Deployment carries the kustomize.toolkit.fluxcd.io labels of its own Flux Kustomization
  (real CRDs from Flux's module; no Flux controller is needed to pause an object) and the namespace's policy
  says gitops.flux=suspend: planning reads the owner and its source, acting reads them again and PATCHes
  spec.suspend (and a reconcile request) before the action; the action follows once the Kustomization has
  handled that request (status.lastHandledReconcileAt), written here, as kustomize-controller does at the end
  of the reconcile the request starts, by a watch of the namespace's Kustomizations.
Latency = Alertmanager POST -> the action's `remediator.dev/action-keys` annotation seen on the Deployment by a
watch (one monotonic clock). Reports p50/p90/max of each path and the difference of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kubernetes import client, config, utils, watch

from remediator.core.plan import gitops
from tests.support.operator import OperatorProcess, alert, alert_payload
from tests.support.workloads import deployment

GROUP, VERSION = "remediator.dev", "v1alpha1"
NO_APPROVALS = {"approval": {"rules": [{"level": lvl, "approvers": 0} for lvl in ("low", "medium", "high", "critical")]}}
WIDE = {"concurrency": {"maxActive": 100, "maxPerNamespace": 100}, "stormHoldoff": {"targets": 1000},
        "circuitBreaker": {"failures": 1000}, "blastRadius": {"maxPods": 100, "maxPercent": 100}}
RUNBOOK = {"triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
           "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
           "steps": [{"name": "restart", "action": "restartRollout", "risk": "low", "verify": {}}],
           "guard": {"maxRunsPerHour": 100}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def setup(api, ns: str, n: int, owned: bool) -> None:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": ns}})
    custom.create_cluster_custom_object(GROUP, VERSION, "remediationpolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "RemediationPolicy", "metadata": {"name": ns},
        "spec": {"namespaces": [ns], **NO_APPROVALS, **WIDE, **({"gitops": {"flux": "suspend"}} if owned else {})}})
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "runbooks", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Runbook", "metadata": {"name": "restart", "namespace": ns},
        "spec": RUNBOOK})
    for i in range(n):
        labels = {f"{gitops.FLUX_KUSTOMIZE}/name": f"app-{i}", f"{gitops.FLUX_KUSTOMIZE}/namespace": ns} \
            if owned else {}
        if owned:
            custom.create_namespaced_custom_object(*gitops.KINDS["Kustomization"][:2], ns, "kustomizations", {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": f"app-{i}", "namespace": ns},
                "spec": {"interval": "10m", "prune": False, "path": "./",
                         "sourceRef": {"kind": "GitRepository", "name": "repo"}}})
            # what kustomize-controller would record: the operator pauses only an owner that lists the target
            custom.patch_namespaced_custom_object_status(
                *gitops.KINDS["Kustomization"][:2], ns, "kustomizations", f"app-{i}",
                {"status": {"inventory": {"entries": [{"id": f"{ns}_web-{i}_apps_Deployment", "v": "v1"}]}}})
        utils.create_from_dict(api, deployment(f"web-{i}", replicas=1, labels=labels), namespace=ns)


def cleanup(api, namespaces: list[str]) -> None:
    """Leave the cluster as found: the policies (cluster-wide concurrency counts every open Remediation), the
    Remediations' finalizers (no operator runs to release them) and the namespaces."""
    custom = client.CustomObjectsApi(api)
    for ns in namespaces:
        custom.delete_cluster_custom_object(GROUP, VERSION, "remediationpolicies", ns)
        for item in custom.list_namespaced_custom_object(GROUP, VERSION, ns, "remediations")["items"]:
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "remediations", item["metadata"]["name"],
                                                  {"metadata": {"finalizers": None}})
        client.CoreV1Api(api).delete_namespace(ns)


def handle_requests(api, ns: str, stop: threading.Event) -> None:
    """Play kustomize-controller's part in the settle wait: copy each Kustomization's reconcile request to
    status.lastHandledReconcileAt (its finalizeStatus does so even for a suspended object)."""
    custom = client.CustomObjectsApi(api)
    group, version, plural = gitops.KINDS["Kustomization"]
    while not stop.is_set():
        for event in watch.Watch().stream(custom.list_namespaced_custom_object, group, version, ns, plural,
                                          timeout_seconds=10):
            obj = event["object"]
            asked = (obj["metadata"].get("annotations") or {}).get(gitops.RECONCILE_REQUESTED)
            if asked and (obj.get("status") or {}).get("lastHandledReconcileAt") != asked:
                custom.patch_namespaced_custom_object_status(group, version, ns, plural, obj["metadata"]["name"],
                                                             {"status": {"lastHandledReconcileAt": asked}})
            if stop.is_set():
                return


def round_trip(api, operator: OperatorProcess, ns: str, n: int) -> list[float]:
    seen: dict[str, float] = {}
    done = threading.Event()

    def follow():
        for event in watch.Watch().stream(client.AppsV1Api(api).list_namespaced_deployment, ns, timeout_seconds=300):
            obj = event["object"]
            if "remediator.dev/action-keys" in (obj.metadata.annotations or {}):
                seen.setdefault(obj.metadata.name, time.monotonic())
            if len(seen) == n:
                done.set()
                return

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(1)
    sent = {}
    for i in range(n):
        sent[f"web-{i}"] = time.monotonic()
        operator.post_alerts(alert_payload([alert(ns, f"web-{i}", fingerprint=uuid.uuid4().hex[:12])]))
        time.sleep(0.5)
    done.wait(300)
    return [seen[name] - t for name, t in sent.items() if name in seen]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=10)
    parser.add_argument("--output")
    args = parser.parse_args()
    from e2e.cluster import control_plane, versions

    kubeconfig = os.environ.get("KUBECONFIG") or str(control_plane.up())
    os.environ["KUBECONFIG"] = kubeconfig
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                          str(Path(__file__).resolve().parents[2] / "charts" / "remediator" / "crds"), timeout=120)
    # Flux's own Kustomization CRD, from its module (downloaded, not built: the bench needs no controller)
    bases = json.loads(subprocess.run(["go", "mod", "download", "-json",
                                       f"github.com/fluxcd/kustomize-controller@{versions.FLUX_KUSTOMIZE}"],
                                      capture_output=True, text=True, check=True, timeout=600).stdout)["Dir"]
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", f"{bases}/config/crd/bases",
                          timeout=120)
    api = config.new_client_from_config(kubeconfig)
    run = uuid.uuid4().hex[:6]
    plain, owned = f"bench-plain-{run}", f"bench-suspend-{run}"
    setup(api, plain, args.incidents, owned=False)
    setup(api, owned, args.incidents, owned=True)
    with tempfile.TemporaryDirectory() as work:
        operator = OperatorProcess(str(kubeconfig), [plain, owned], Path(work), forked=False).start()
        stop = threading.Event()
        threading.Thread(target=handle_requests, args=(api, owned, stop), daemon=True).start()
        try:
            results = {"plain": round_trip(api, operator, plain, args.incidents),
                       "suspend": round_trip(api, operator, owned, args.incidents)}
        finally:
            stop.set()
            operator.stop()
            cleanup(api, [plain, owned])
    report = {name: {"n": len(v), "p50": percentile(v, 0.5), "p90": percentile(v, 0.9), "max": max(v)}
              for name, v in results.items() if v}
    if len(report) == 2:
        report["suspendExtraP50Seconds"] = report["suspend"]["p50"] - report["plain"]["p50"]
        report["suspendExtraMedianOfMeans"] = statistics.mean(results["suspend"]) - statistics.mean(results["plain"])
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
