"""What the handlers share in one operator process."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

from kubernetes import client

from ..actions.base import ActionRequest, ActionResult, Read, execute
from ..approvals.slack import SlackConfig
from ..kube import Resources, impersonating
from ..secrets import FileSecret
from ..signals.changes import ChangeJournal
from ..signals.prometheus import MAX_BYTES, MAX_SERIES, Prometheus
from ..records import metrics
from ..records.rollout_counts import RolloutCounter
from .caches import Caches
from .escalation import Alertmanager, AwaitingHealthyPods, OpenAlerts
from .ingest import Intake, RunbookCache


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # empty = all namespaces
    tick_seconds: float = 1.0
    peering_name: str = "remediator"
    peering_priority: int = 0
    webhook_port: int = 8080
    alertmanager_token_file: str | None = None
    tenant_token_secret: str = "remediator-webhook-token"  # per-namespace webhook tokens; "" turns them off
    slack_token_file: str | None = None
    slack_signing_secret_file: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    prometheus_url: str | None = None
    webhook_rate: float = 200.0  # requests/s per authenticated caller
    webhook_burst: int = 1000
    action_service_account: str | None = None  # impersonated for actions when a Runbook names none
    prometheus_token_file: str | None = None
    change_window: timedelta = timedelta(hours=1)  # how far back the change journal looks for a probable cause
    prometheus_max_series: int = MAX_SERIES  # an answer with more series is refused
    prometheus_max_bytes: int = MAX_BYTES  # an answer with more bytes is refused
    metrics_port: int = 0  # 0: /metrics on webhook_port
    configmap_journal: bool = True  # watch ConfigMaps for the change journal (needs read rights on them)
    retention_sweep_seconds: float = 600.0  # between sweeps for ended Remediations past their retention
    alertmanager_url: str | None = None  # where RemediationEscalated alerts go; None: Slack and Events only
    alertmanager_api_token_file: str | None = None  # bearer token for it (optional)
    alert_resend_seconds: float = 60.0  # an open escalation alert is re-sent this often (endsAt: 3 re-sends ahead)
    autoscaler_sweep_seconds: float = 10.0
    # Where the claims on cluster-scoped targets (Nodes) live: one Lease per Node for the whole cluster,
    # whatever namespace the Remediation is in. The chart sets its release namespace.
    claims_namespace: str = "default"
    gitops_sweep_seconds: float = 10.0  # between checks of the GitOps owners our Remediations hold paused
    counts_namespace: str = "default"  # where the rollout counts' ConfigMaps live (the chart: its namespace)
    counts_flush_seconds: float = 30.0  # at most one write of a namespace's rollout counts per this period


@dataclass
class OperatorContext:
    api: client.ApiClient
    settings: Settings = field(default_factory=Settings)
    runbooks: RunbookCache = field(default_factory=RunbookCache)
    caches: Caches = field(default_factory=Caches)  # policies, namespace labels, Remediations (see caches.py)
    failing_pods: dict[tuple[str, str], dict] = field(default_factory=dict)  # (namespace, name) -> pod
    slack: SlackConfig | None = None
    prometheus: Prometheus | None = None
    intake: Intake | None = None
    changes: ChangeJournal | None = None
    alertmanager: Alertmanager | None = None
    open_alerts: OpenAlerts = field(default_factory=OpenAlerts)
    awaiting_healthy_pods: AwaitingHealthyPods = field(default_factory=AwaitingHealthyPods)
    rollout_counts: RolloutCounter | None = None
    _impersonated: dict[tuple[str, str], client.ApiClient] = field(default_factory=dict)

    def __post_init__(self) -> None:
        metrics.count_requests(self.api)
        if self.changes is None:
            self.changes = ChangeJournal(window=self.settings.change_window)
        if self.rollout_counts is None:
            self.rollout_counts = RolloutCounter(self.api, self.settings.counts_namespace)
        if self.changes.on_rollout is None:
            self.changes.on_rollout = self.rollout_counts.seen
        if self.intake is None:
            self.intake = Intake(Resources(self.api), self.runbooks, self.serves)
        if self.prometheus is None and self.settings.prometheus_url:
            self.prometheus = Prometheus(self.settings.prometheus_url,
                                         bearer_token=FileSecret(self.settings.prometheus_token_file),
                                         max_series=self.settings.prometheus_max_series,
                                         max_bytes=self.settings.prometheus_max_bytes)
        if self.alertmanager is None and self.settings.alertmanager_url:
            self.alertmanager = Alertmanager(self.settings.alertmanager_url,
                                             FileSecret(self.settings.alertmanager_api_token_file),
                                             pause=min(30.0, self.settings.alert_resend_seconds))
        if self.slack is None:
            self.slack = SlackConfig(FileSecret(self.settings.slack_token_file),
                                     FileSecret(self.settings.slack_signing_secret_file), self.settings.slack_api_url)

    def acting_account(self, service_account: str | None) -> str | None:
        """The ServiceAccount actions (and their dry runs) run as: the Runbook's, else the configured default;
        None: the operator's own identity."""
        return service_account or self.settings.action_service_account or None

    def own_read(self, service_account: str | None, read: Read) -> Read:
        """The operator's read of the target, for an action that runs as the operator; an impersonated tenant
        reads for itself, so its RBAC (get included) bounds the step as it always did."""
        return None if self.acting_account(service_account) else read

    def run_action(self, namespace: str, service_account: str | None, request: ActionRequest) -> ActionResult:
        """Run an action (or its dry run) as the acting account, from the request's read only if that is ours."""
        request = replace(request, read=self.own_read(service_account, request.read))
        return execute(self.action_api(namespace, service_account), request)

    def action_api(self, namespace: str, service_account: str | None) -> client.ApiClient:
        """The client actions run with: the acting account impersonated, else the operator's own."""
        account = self.acting_account(service_account)
        if account is None:
            return self.api
        key = (namespace, account)
        if key not in self._impersonated:
            self._impersonated[key] = metrics.count_requests(impersonating(self.api, namespace, account))
        return self._impersonated[key]

    @property
    def resources(self) -> Resources:
        return Resources(self.api)

    def serves(self, namespace: str) -> bool:
        import fnmatch

        return not self.settings.namespaces or any(
            fnmatch.fnmatchcase(namespace, pattern) for pattern in self.settings.namespaces)
