"""A validating admission webhook on loopback that holds one request while armed: how a test makes a Flux apply
be in flight at a moment it chooses.

kustomize-controller applies in stages (fluxcd/pkg/ssa ApplyAllStaged): CRDs, ClusterRoles and Namespaces
first (a server-side dry run of each, through admission), then, once they are done, everything else. A
ClusterRole in the Kustomization carrying the gate's label is dry-run through this webhook at the start of
every reconcile: while armed, the gate holds that request, so the reconcile has read its Kustomization and Git's
manifests but has not yet looked at the Deployment. Released, it goes on and applies Git's Deployment.

    gate = AdmissionGate(tmp_path); gate.install(api, "my-gate")   # label objects {gate.LABEL: "my-gate"}
    gate.arm(); assert gate.held.wait(30)    # a reconcile is in flight, held
    ...; gate.release()
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.http_stub import QuietHandler

LABEL = "remediator.dev/admission-gate"
MAX_HOLD = 25.0  # seconds; under the webhook's timeoutSeconds (30, the apiserver's maximum)


class AdmissionGate:
    def __init__(self, workdir: Path):
        cert, key = workdir / "gate.crt", workdir / "gate.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        self.ca = cert.read_bytes()
        self.armed, self.held, self.released = threading.Event(), threading.Event(), threading.Event()
        self.requests: list[dict] = []  # every AdmissionReview request seen: kind, name, dryRun, user, at
        self.held_at: float | None = None
        self.released_at: float | None = None
        gate = self

        class Handler(QuietHandler):
            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                request = review.get("request") or {}
                gate.requests.append({"name": request.get("name"), "dryRun": request.get("dryRun"),
                                      "user": (request.get("userInfo") or {}).get("username"),
                                      "at": time.monotonic()})
                if gate.armed.is_set():
                    gate.armed.clear()  # one request only: the reconcile in flight
                    gate.held_at = time.monotonic()
                    gate.held.set()
                    gate.released.wait(MAX_HOLD)
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": {"uid": request.get("uid"), "allowed": True}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.name: str | None = None

    def install(self, api: client.ApiClient, name: str) -> None:
        """A ValidatingWebhookConfiguration sending CREATE/UPDATE of ClusterRoles labelled `LABEL: name` here."""
        self.name = name
        client.AdmissionregistrationV1Api(api).create_validating_webhook_configuration({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "gate.remediator.dev",
                "clientConfig": {"url": f"https://127.0.0.1:{self.port}/gate",
                                 "caBundle": base64.b64encode(self.ca).decode()},
                "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["clusterroles"]}],
                "objectSelector": {"matchLabels": {LABEL: name}},
                "sideEffects": "None",  # so dry runs are sent too
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 30,
                "failurePolicy": "Ignore",
            }]})

    def arm(self) -> None:
        """Hold the next request (until `release`, at most MAX_HOLD)."""
        self.released.clear()
        self.held.clear()
        self.held_at = self.released_at = None
        self.armed.set()

    def release(self) -> None:
        self.armed.clear()
        self.released_at = time.monotonic()
        self.released.set()

    def close(self, api: client.ApiClient) -> None:
        self.release()
        if self.name:
            try:
                client.AdmissionregistrationV1Api(api).delete_validating_webhook_configuration(self.name)
            except ApiException as e:
                if e.status != 404:
                    raise
        self.server.shutdown()
        self.server.server_close()


def cluster_role(name: str) -> dict:
    """A ClusterRole granting nothing, labelled for the gate `name`: what Flux dry-runs first in each reconcile."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {LABEL: name}}, "rules": []}
