"""What the handlers share in one operator process."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from kubernetes import client

from ..approvals.slack import SlackConfig
from ..kube import Resources
from ..secrets import FileSecret
from ..signals.changes import ChangeJournal
from .ingest import RunbookCache


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # empty = all namespaces
    tick_seconds: float = 1.0
    peering_name: str = "remediator"
    peering_priority: int = 0
    webhook_port: int = 8080
    alertmanager_token_file: str | None = None
    slack_token_file: str | None = None
    slack_signing_secret_file: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    change_window: timedelta = timedelta(hours=1)  # how far back the change journal looks for a probable cause


@dataclass
class OperatorContext:
    api: client.ApiClient
    settings: Settings = field(default_factory=Settings)
    runbooks: RunbookCache = field(default_factory=RunbookCache)
    failing_pods: dict[tuple[str, str], dict] = field(default_factory=dict)  # (namespace, name) -> pod
    slack: SlackConfig | None = None
    changes: ChangeJournal | None = None

    def __post_init__(self) -> None:
        if self.changes is None:
            self.changes = ChangeJournal(window=self.settings.change_window)
        if self.slack is None:
            self.slack = SlackConfig(FileSecret(self.settings.slack_token_file),
                                     FileSecret(self.settings.slack_signing_secret_file), self.settings.slack_api_url)

    @property
    def resources(self) -> Resources:
        return Resources(self.api)

    def serves(self, namespace: str) -> bool:
        import fnmatch

        return not self.settings.namespaces or any(
            fnmatch.fnmatchcase(namespace, pattern) for pattern in self.settings.namespaces)
