"""The operator checks its Slack token's scopes at start-up (Slack's `x-oauth-scopes` header, as the stand-in
sends it) and turns Slack features off with a clear message when one it needs is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from e2e.slack_standin import SlackStandIn

from remediator.approvals.slack import REQUIRED_SCOPES, SlackConfig, check_scopes, refuse_without_scopes
from remediator.secrets import FileSecret
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
MANIFEST = Path(__file__).resolve().parents[2] / "charts" / "remediator" / "slack-app-manifest.yaml"


def config(tmp_path, slack: SlackStandIn) -> SlackConfig:
    (tmp_path / "token").write_text(slack.bot_token)
    return SlackConfig(FileSecret(str(tmp_path / "token")), FileSecret(None), slack.base_url)


def test_a_token_with_every_scope_keeps_slack_on(tmp_path):
    slack = SlackStandIn().start()
    try:
        cfg = config(tmp_path, slack)
        assert check_scopes(cfg) == ([], [])
        assert refuse_without_scopes(cfg) is None and cfg.enabled
    finally:
        slack.stop()


def test_a_token_missing_a_scope_turns_slack_off_naming_the_scope_and_what_it_is_for(tmp_path):
    slack = SlackStandIn(scopes=("chat:write", "channels:history")).start()
    try:
        cfg = config(tmp_path, slack)
        why = refuse_without_scopes(cfg)
    finally:
        slack.stop()
    assert not cfg.enabled
    assert "usergroups:read" in why and "allowedSlackGroups" in why and "slack-app-manifest.yaml" in why


def test_the_shipped_slack_app_manifest_asks_for_exactly_the_scopes_the_code_needs():
    manifest = yaml.safe_load(MANIFEST.read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert set(REQUIRED_SCOPES) <= scopes <= set(REQUIRED_SCOPES) | {"groups:history"}
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] and interactivity["request_url"].endswith("/webhooks/slack/interactions")


@pytest.mark.slow
def test_the_operator_starts_with_slack_off_and_says_why_when_a_scope_is_missing(kubeconfig, namespace, crds,
                                                                                  tmp_path):
    slack = SlackStandIn(scopes=("chat:write",)).start()
    (tmp_path / "slack-token").write_text(slack.bot_token)
    op = OperatorProcess(kubeconfig, [namespace], tmp_path, extra_args=[
        "--slack-token-file", str(tmp_path / "slack-token"), "--slack-api-url", slack.base_url])
    try:
        op.start()
        assert wait_for(lambda: "Slack features are off" in op.log_path.read_text(), what="the refusal logged")
    finally:
        op.stop()
        slack.stop()
    said = op.log_path.read_text()
    assert "channels:history" in said and "usergroups:read" in said and "chat:write (" not in said
