"""The closed-loop demo: a bad rollout burns an SLO, remediator rolls it back after a Slack approval.

    bash e2e/run-demo                 # installs what it needs, then runs this
    bash e2e/run-demo --interactive   # you approve or deny at the terminal

Everything is real and local: the control plane (or the cluster KUBECONFIG
names), Prometheus and Alertmanager scraping the sample service, the operator
with its webhooks, and the Slack stand-in signing the approver's click as Slack
does. Exits 0 when the rollback is verified, non-zero with the reason otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from e2e.monitoring import Alertmanager, Prometheus, free_port
from e2e.slack_standin import SlackStandIn, click_body, post_click

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "e2e" / "demo"
CRDS = REPO / "charts" / "remediator" / "crds"
GROUP, VERSION = "remediator.dev", "v1alpha1"
GOOD_IMAGE, BAD_IMAGE = "registry.local/web:1.0", "registry.local/web:1.1-bad"
CHANNEL = "#demo-approvals"
SIGNING_SECRET = "demo-signing-secret-0123456789abcdef"
APPROVERS = {"S0DEMO": ["U_ALICE", "U_YOU"]}
TERMINAL = {"Succeeded", "Failed", "Escalated", "Denied", "Cancelled", "Skipped", "Expired"}


class DemoFailed(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {message}", flush=True)


def policy(namespace: str) -> dict:
    """High-risk steps need one approver from the demo's Slack group; lower ones act alone."""
    rules = [{"level": "low", "approvers": 0}, {"level": "medium", "approvers": 0},
             *({"level": level, "approvers": 1, "allowedSlackGroups": ["S0DEMO"], "timeout": "10m",
                "onTimeout": "deny"} for level in ("high", "critical"))]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RemediationPolicy", "metadata": {"name": namespace},
            "spec": {"namespaces": [namespace], "approval": {"slackChannel": CHANNEL, "rules": rules}}}


def web_deployment() -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "revisionHistoryLimit": 10, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                         {"name": "app", "image": GOOD_IMAGE,
                          "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]}}}}


class Demo:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.ns = args.namespace
        self.workdir = workdir
        self.clock = Clock()
        self.say = self.clock.say
        self.processes: list[subprocess.Popen] = []
        self.stoppers: list = []

    # ------------------------------------------------------------ setup

    def cluster(self) -> str:
        if os.environ.get("KUBECONFIG") and not self.args.local:
            self.say(f"using the cluster in KUBECONFIG={os.environ['KUBECONFIG']}")
            return os.environ["KUBECONFIG"]
        from e2e.cluster import control_plane
        kubeconfig = str(control_plane.up())
        self.say(f"local control plane ready: {control_plane.ready_nodes()} KWOK nodes")
        return kubeconfig

    def kubectl(self, *args: str) -> None:
        from e2e.cluster import control_plane
        kubectl = os.environ.get("KUBECTL") or str(control_plane.tools_dir() / "kubectl")
        proc = subprocess.run([kubectl, "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise DemoFailed(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")

    def fresh_namespace(self) -> None:
        core = client.CoreV1Api(self.api)
        try:
            core.read_namespace(self.ns)
        except ApiException as e:
            if e.status != 404:
                raise
        else:
            self.say(f"removing the previous run's namespace {self.ns}")
            for plural in ("remediations", "servicelevelobjectives"):  # a stopped operator's kopf finalizers
                try:
                    items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)["items"]
                except ApiException:
                    items = []
                for item in items:
                    self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, plural,
                                                               item["metadata"]["name"],
                                                               {"metadata": {"finalizers": None}})
            core.delete_namespace(self.ns)
            self.wait(lambda: not self.namespace_exists(), 120, "the old namespace to go")
        core.create_namespace({"metadata": {"name": self.ns}})

    def namespace_exists(self) -> bool:
        try:
            client.CoreV1Api(self.api).read_namespace(self.ns)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def apply_custom(self, body: dict, plural: str, namespaced: bool = True) -> None:
        if namespaced:
            body = {**body, "metadata": {**body["metadata"], "namespace": self.ns}}
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)
            return
        try:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, body["metadata"]["name"])
        except ApiException as e:
            if e.status != 404:
                raise
        self.custom.create_cluster_custom_object(GROUP, VERSION, plural, body)

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        self.processes.append(proc)
        return proc

    def start_operator(self, prometheus_url: str, slack_url: str) -> str:
        port = free_port()
        secrets = {"alertmanager-token": "demo-alertmanager-token", "slack-token": "xoxb-standin",
                   "slack-signing-secret": SIGNING_SECRET}
        for name, value in secrets.items():
            (self.workdir / name).write_text(value)
        self.operator = self.spawn("operator", [
            sys.executable, "-m", "remediator", "run", "--kubeconfig", self.kubeconfig, "--namespace", self.ns,
            "--port", str(port), "--peering", "none", "--tick", "0.5", "--log-format", "text",
            "--prometheus-url", prometheus_url,
            "--alertmanager-token-file", str(self.workdir / "alertmanager-token"),
            "--slack-token-file", str(self.workdir / "slack-token"),
            "--slack-signing-secret-file", str(self.workdir / "slack-signing-secret"),
            "--slack-api-url", slack_url])
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            if self.operator.poll() is not None:
                raise DemoFailed(f"the operator exited; see {self.workdir / 'operator.log'}")
            try:
                return requests.get(f"{url}/healthz", timeout=1).ok
            except requests.RequestException:
                return False
        self.wait(healthy, 60, "the operator's /healthz")
        return url

    def wait(self, probe, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.5)
        raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")

    # ------------------------------------------------------------ the story

    def run(self) -> int:
        self.kubeconfig = self.cluster()
        self.api = config.new_client_from_config(config_file=self.kubeconfig)
        self.custom = client.CustomObjectsApi(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
        self.fresh_namespace()
        self.apps.create_namespaced_deployment(self.ns, web_deployment())
        self.wait(lambda: (self.apps.read_namespaced_deployment("web", self.ns).status.ready_replicas or 0) == 3,
                  120, "web 3/3 Ready")
        self.say(f"deployed {self.ns}/web: 3 replicas of {GOOD_IMAGE}")

        exporter_port = free_port()
        self.spawn("sample-service", [sys.executable, "-m", "e2e.sample_service", "--namespace", self.ns,
                                      "--deployment", "web", "--port", str(exporter_port),
                                      "--kubeconfig", self.kubeconfig])
        slack = SlackStandIn(user_groups=APPROVERS).start()
        self.stoppers.append(slack.stop)
        rules = self.workdir / "slo-rules.yaml"
        rules.write_text(subprocess.run(
            [sys.executable, "-m", "remediator", "slo", "rules", "-f", str(DEMO / "slo.yaml"), "-n", self.ns],
            capture_output=True, text=True, check=True).stdout)
        alertmanager = Alertmanager(self.workdir / "alertmanager", "http://127.0.0.1:1/unset",
                                    self.workdir / "alertmanager-token")
        prometheus = Prometheus(self.workdir / "prometheus", targets=[f"127.0.0.1:{exporter_port}"],
                                rule_files=[rules], alertmanager=alertmanager.url)
        operator_url = self.start_operator(prometheus.url, slack.base_url)
        alertmanager.receiver_url = f"{operator_url}/webhooks/alertmanager"
        for daemon in (alertmanager, prometheus):
            daemon.start()
            self.stoppers.append(daemon.stop)
        self.say(f"Prometheus {prometheus.url} scrapes the sample service every 1s; Alertmanager "
                 f"{alertmanager.url} delivers to the operator {operator_url}; Slack stand-in {slack.base_url}")

        self.apply_custom(policy(self.ns), "remediationpolicies", namespaced=False)
        self.apply_custom(yaml.safe_load((DEMO / "slo.yaml").read_text()), "servicelevelobjectives")
        self.apply_custom(yaml.safe_load((DEMO / "runbook.yaml").read_text()), "runbooks")
        self.say("applied RemediationPolicy (high risk needs 1 Slack approval), "
                 "ServiceLevelObjective web-availability (99%), Runbook web-slo-burn (rollback)")
        self.wait(lambda: self.breaching() == ("False", "WithinBudget"), 90, "the SLO's first evaluation")
        self.say(f"SLO within budget: {self.burn_summary()}")

        self.say(f"injecting a bad rollout: web -> {BAD_IMAGE}")
        self.apps.patch_namespaced_deployment("web", self.ns, {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": BAD_IMAGE}]}}}})
        return self.follow(slack, operator_url)

    def follow(self, slack: SlackStandIn, operator_url: str) -> int:
        seen_phase, breach_said, clicked = None, False, False
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            if not breach_said and self.breaching()[1] == "PageBurnRate":
                self.say(f"SLO burning: {self.burn_summary()}")
                breach_said = True
            remediation = self.remediation()
            status = (remediation or {}).get("status") or {}
            phase = status.get("phase")
            if phase and phase != seen_phase:
                seen_phase = phase
                self.describe(remediation, phase)
            if phase == "AwaitingApproval" and not clicked:
                message = slack.find(lambda m: remediation["metadata"]["name"] in m["text"])
                if message:
                    clicked = self.approve(message, operator_url)
            if phase in TERMINAL:
                return self.finish(remediation)
            time.sleep(0.5)
        raise DemoFailed(f"no outcome within {self.args.timeout:.0f}s (last phase {seen_phase})")

    def describe(self, remediation: dict, phase: str) -> None:
        status, name = remediation["status"], remediation["metadata"]["name"]
        if phase == "Planned" or (phase in ("AwaitingApproval", "Acting") and status.get("risk")):
            risk = status.get("risk") or {}
            plan = ", ".join(s["name"] for s in status.get("plan", []) if not s.get("skip"))
            self.say(f"Remediation {name}: {phase}; plan [{plan}], risk {risk.get('score')}/100 "
                     f"({risk.get('level')})")
            for reason in risk.get("reasons", [])[:6]:
                print(f"           - {reason}")
        else:
            self.say(f"Remediation {name}: {phase}: {status.get('reason', '')}"[:400])

    def approve(self, message: dict, operator_url: str) -> bool:
        self.say(f"approval requested in Slack {CHANNEL}: \"{message['text']}\"")
        user, action = "U_ALICE", "approve"
        if self.args.interactive:
            answer = input("           approve the rollback? [y/N] ").strip().lower()
            user, action = "U_YOU", "approve" if answer in ("y", "yes") else "deny"
        response = post_click(f"{operator_url}/webhooks/slack/interactions", SIGNING_SECRET,
                              click_body(message, action, user))
        self.say(f"{user} clicked {action.title()} (a signed Slack callback): HTTP {response.status_code} "
                 f"{response.json().get('outcome', '')}")
        return True

    def finish(self, remediation: dict) -> int:
        status = remediation["status"]
        image = self.apps.read_namespaced_deployment("web", self.ns).spec.template.spec.containers[0].image
        for step in status.get("steps", []):
            for evidence in step.get("evidence", [])[:4]:
                print(f"           evidence: {evidence['detail'][:300]}")
        self.say(f"web now runs {image}")
        self.report()
        if status["phase"] != "Succeeded":
            raise DemoFailed(f"the remediation ended {status['phase']}: {status.get('reason', '')}")
        if image != GOOD_IMAGE:
            raise DemoFailed(f"web runs {image}, not the good {GOOD_IMAGE}")
        self.say(f"recovered and verified in {status.get('timeToRecoverSeconds')}s from the start of the burn")
        return 0

    def report(self) -> None:
        from remediator.cli import COMMANDS
        if not any(c.name == "report" for c in COMMANDS):
            return
        print(flush=True)
        subprocess.run([sys.executable, "-m", "remediator", "report", "--kubeconfig", self.kubeconfig,
                        "--namespace", self.ns], cwd=REPO, timeout=120)

    # ------------------------------------------------------------ reading state

    def slo_status(self) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "servicelevelobjectives",
                                                        "web-availability").get("status") or {}

    def breaching(self) -> tuple[str, str]:
        c = next((c for c in self.slo_status().get("conditions", []) if c["type"] == "Breaching"), {})
        return c.get("status", ""), c.get("reason", "")

    def burn_summary(self) -> str:
        status = self.slo_status()
        burns = ", ".join(f"{b['window']} {b['burnRate']:.2g}x" for b in status.get("burnRates", [])
                          if b.get("burnRate") is not None)
        firing = "; ".join(a["reason"] for a in status.get("alerts", []) if a["severity"] == "page")
        return firing or f"burn rates {burns}"

    def remediation(self) -> dict | None:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "remediations")["items"]
        return items[0] if items else None

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for stop in reversed(self.stoppers):
            stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bash e2e/run-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactive", action="store_true", help="approve or deny at the terminal")
    parser.add_argument("--namespace", default="remediator-demo")
    parser.add_argument("--timeout", type=float, default=300, help="seconds from the bad rollout to an outcome")
    parser.add_argument("--local", action="store_true", help="use the local control plane even if KUBECONFIG is set")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="remediator-demo-"))
    demo = Demo(args, workdir)
    try:
        return demo.run()
    except DemoFailed as e:
        demo.say(f"FAILED: {e} (logs in {workdir})")
        return 1
    finally:
        demo.close()


if __name__ == "__main__":
    sys.exit(main())
