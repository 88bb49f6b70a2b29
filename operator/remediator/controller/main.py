"""`remediator run`: the operator process (kopf embedded, webhooks and metrics on one port)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from ..core.durations import parse_duration
from ..signals.prometheus import MAX_BYTES, MAX_SERIES
from ..records import logs, metrics, tracing
from . import heap
from .app import build_context, default_priority, run_operator
from .context import Settings


class JsonFormatter(logging.Formatter):
    """One JSON object per line, carrying whatever `extra=` the call gave (e.g. the remediation name)."""

    STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
               "logger": record.name, "message": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in self.STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def resend_seconds(text: str) -> float:
    """At least a second: 0, a negative or nan would spin the re-send sweep and page with endsAt = now."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 1 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be at least 1 second, not {text}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[],
                       help="watch this namespace (repeatable, globs allowed)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("REMEDIATOR_PORT", "8080")),
                        help="port of the webhooks, /metrics and /healthz")
    parser.add_argument("--alertmanager-token-file",
                        default=os.environ.get("REMEDIATOR_ALERTMANAGER_TOKEN_FILE"),
                        help="file holding the bearer token Alertmanager must present")
    parser.add_argument("--tenant-token-secret",
                        default=os.environ.get("REMEDIATOR_TENANT_TOKEN_SECRET", "remediator-webhook-token"),
                        help="name of the Secret (key `token`) a namespace's admins create to take alerts at "
                             "/webhooks/alertmanager/<namespace>; the shared token is then refused for it. "
                             "Empty: no per-namespace routes")
    parser.add_argument("--slack-token-file", default=os.environ.get("REMEDIATOR_SLACK_TOKEN_FILE"),
                        help="file holding the Slack bot token (approval messages); unset: no Slack")
    parser.add_argument("--slack-signing-secret-file",
                        default=os.environ.get("REMEDIATOR_SLACK_SIGNING_SECRET_FILE"),
                        help="file holding the Slack signing secret (verifies button clicks)")
    parser.add_argument("--slack-api-url", default=os.environ.get("REMEDIATOR_SLACK_API_URL",
                                                                  "https://slack.com/api/"))
    parser.add_argument("--prometheus-url", default=os.environ.get("REMEDIATOR_PROMETHEUS_URL"),
                        help="Prometheus HTTP API base URL: evaluates ServiceLevelObjectives and anomaly triggers, "
                             "and runs promql/sloRecovered verification; unset: those report that it is missing")
    parser.add_argument("--prometheus-token-file", default=os.environ.get("REMEDIATOR_PROMETHEUS_TOKEN_FILE"),
                        help="file holding a bearer token for Prometheus (optional)")
    parser.add_argument("--prometheus-max-series", type=int,
                        default=int(os.environ.get("REMEDIATOR_PROMETHEUS_MAX_SERIES", MAX_SERIES)),
                        help="an answer with more series than this is refused (a tenant's query is bounded)")
    parser.add_argument("--prometheus-max-bytes", type=int,
                        default=int(os.environ.get("REMEDIATOR_PROMETHEUS_MAX_BYTES", MAX_BYTES)),
                        help="an answer larger than this many bytes is refused")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("REMEDIATOR_METRICS_PORT", "0")),
                        help="serve /metrics on this port only (a NetworkPolicy can then admit just the "
                             "monitoring namespace to it); 0: on --port beside the webhooks")
    parser.add_argument("--no-configmap-journal", action="store_true",
                        default=os.environ.get("REMEDIATOR_CONFIGMAP_JOURNAL", "true").lower() == "false",
                        help="do not watch ConfigMaps for the change journal (when the operator may not read them)")
    parser.add_argument("--webhook-rate", type=float, default=float(os.environ.get("REMEDIATOR_WEBHOOK_RATE", 200)),
                        help="requests per second each authenticated webhook caller may send (then 429)")
    parser.add_argument("--webhook-burst", type=int, default=int(os.environ.get("REMEDIATOR_WEBHOOK_BURST", 1000)),
                        help="requests an authenticated caller may send at once before the rate applies")
    parser.add_argument("--action-service-account",
                        default=os.environ.get("REMEDIATOR_ACTION_SERVICE_ACCOUNT") or None,
                        help="ServiceAccount (in the Runbook's namespace) impersonated for actions when the "
                             "Runbook names none; unset: actions run with the operator's own identity")
    parser.add_argument("--peering", default=os.environ.get("REMEDIATOR_PEERING", "remediator"),
                        help="kopf peering name shared by the replicas; 'none' runs standalone")
    parser.add_argument("--priority", type=int, default=None,
                        help="peering priority (default: random, so replicas never tie)")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds until a Remediation that is acting or verifying is ticked again "
                             "(any event on it ticks it at once)")
    parser.add_argument("--change-window", default=os.environ.get("REMEDIATOR_CHANGE_WINDOW", "1h"),
                        help="how far before a breach a change can be its probable cause (e.g. 1h, 30m)")
    parser.add_argument("--claims-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                        help="namespace of the claims (Leases) on Nodes: one per Node for the whole cluster "
                             "(default: $POD_NAMESPACE, else default)")
    parser.add_argument("--counts-namespace", default=os.environ.get("POD_NAMESPACE", "default"),
                        help="namespace of the rollout counts (one ConfigMap per counted namespace) that DORA's "
                             "figures read (default: $POD_NAMESPACE, else default)")
    parser.add_argument("--counts-flush", type=float, default=30.0, metavar="SECONDS",
                        help="seconds between writes of the rollout counts (at most one write per namespace)")
    parser.add_argument("--gitops-sweep", type=float, default=10.0, metavar="SECONDS",
                        help="seconds between checks of paused GitOps owners (resume when Git moves on or the "
                             "lease ends)")
    parser.add_argument("--retention-sweep", type=float, default=600.0, metavar="SECONDS",
                        help="seconds between sweeps that delete ended Remediations past their policy's retention")
    parser.add_argument("--alertmanager-url", default=os.environ.get("REMEDIATOR_ALERTMANAGER_URL") or None,
                        help="Alertmanager base URL: when automation stops, a RemediationEscalated alert is sent "
                             "there (POST /api/v2/alerts) and resolved when the incident ends; unset: Slack and "
                             "Events only")
    parser.add_argument("--alertmanager-api-token-file",
                        default=os.environ.get("REMEDIATOR_ALERTMANAGER_API_TOKEN_FILE") or None,
                        help="file holding a bearer token for that Alertmanager (optional)")
    parser.add_argument("--alert-resend", type=resend_seconds,
                        default=os.environ.get("REMEDIATOR_ALERT_RESEND_SECONDS", "60"), metavar="SECONDS",
                        help="seconds between re-sends of an open escalation alert")
    parser.add_argument("--autoscaler-sweep", type=float, default=10.0, metavar="SECONDS",
                        help="seconds between sweeps that restore HPAs/ScaledObjects whose lease ended")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--log-format", choices=["json", "text"], default="json")


def run(args: argparse.Namespace) -> int:
    heap.limit_arenas()  # before any thread starts: later arenas are the ones it caps
    metrics.time_gc_pauses()
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler.setFormatter(JsonFormatter())
    handler.addFilter(logs.RemediationFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    tracing.configure()  # OTLP when the OTEL_* environment asks for it; nothing otherwise
    if args.kubeconfig:  # kopf's login (via the kubernetes client) and our client both read it from here
        os.environ["KUBECONFIG"] = args.kubeconfig
        from kubernetes.config import kube_config
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = args.kubeconfig  # read once at import, before we got here
    peering = args.peering.lower() != "none"
    settings = Settings(
        namespaces=tuple(args.namespace),
        tick_seconds=args.tick,
        peering_name=args.peering if peering else "",
        peering_priority=args.priority if args.priority is not None else default_priority(),
        webhook_port=args.port,
        alertmanager_token_file=args.alertmanager_token_file,
        tenant_token_secret=args.tenant_token_secret,
        slack_token_file=args.slack_token_file,
        slack_signing_secret_file=args.slack_signing_secret_file,
        slack_api_url=args.slack_api_url,
        prometheus_url=args.prometheus_url,
        prometheus_token_file=args.prometheus_token_file,
        prometheus_max_series=args.prometheus_max_series,
        prometheus_max_bytes=args.prometheus_max_bytes,
        metrics_port=args.metrics_port,
        configmap_journal=not args.no_configmap_journal,
        webhook_rate=args.webhook_rate,
        webhook_burst=args.webhook_burst,
        action_service_account=args.action_service_account,
        change_window=parse_duration(args.change_window),
        retention_sweep_seconds=args.retention_sweep,
        alertmanager_url=args.alertmanager_url,
        alertmanager_api_token_file=args.alertmanager_api_token_file,
        alert_resend_seconds=args.alert_resend,
        autoscaler_sweep_seconds=args.autoscaler_sweep,
        claims_namespace=args.claims_namespace,
        gitops_sweep_seconds=args.gitops_sweep,
        counts_namespace=args.counts_namespace,
        counts_flush_seconds=args.counts_flush,
    )
    ctx = build_context(settings, args.kubeconfig)
    asyncio.run(run_operator(ctx, peering=peering))
    return 0
