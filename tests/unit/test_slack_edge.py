"""Slack callbacks: parsing refuses anything but our buttons, replays are recognised, signatures checked."""

import json
import time
from urllib.parse import urlencode

import pytest
from e2e.slack_standin import sign

from remediator.api.models import ApprovalState, RemediationStatus, Vote
from remediator.approvals.messages import button_value, decided_blocks
from remediator.approvals.slack import BadCallback, ReplayGuard, SlackConfig, parse_click, verify
from remediator.secrets import FileSecret


def body(value: str, user: str = "U1") -> bytes:
    payload = {"type": "block_actions", "user": {"id": user}, "actions": [{"action_id": "approve", "value": value}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_click_on_our_button_parses_into_a_vote():
    click = parse_click(body(button_value("shop", "am-1", "approve", "r1")))
    assert (click.user, click.namespace, click.remediation, click.decision) == ("U1", "shop", "am-1", "approve")


@pytest.mark.parametrize("raw", [b"", b"payload=%7B", body("not json"), body(json.dumps({"ns": "a"})),
                                 body(button_value("shop", "am-1", "delete-everything", "r1")), b"\xff\xfe",
                                 body("[" * 5000 + "]" * 5000),  # the json module recurses per level
                                 body(button_value("../kube-system", "am-1", "approve", "r1")),
                                 body(button_value("shop", "am-1/status", "approve", "r1")),
                                 body(button_value("shop", "am-\ud800", "approve", "r1"))])
def test_anything_else_is_a_bad_callback(raw):
    with pytest.raises(BadCallback):
        parse_click(raw)


def test_the_same_signature_twice_within_the_window_is_a_replay():
    guard = ReplayGuard(window_seconds=300)
    assert guard.first_time("v0=abc", now=1000)
    assert not guard.first_time("v0=abc", now=1100)
    assert guard.first_time("v0=abc", now=1400), "outside the window the timestamp check refuses it anyway"


def test_signatures_are_checked_with_the_secret_from_its_file(tmp_path):
    (tmp_path / "secret").write_text("s3cret\n")
    cfg = SlackConfig(FileSecret(None), FileSecret(str(tmp_path / "secret")))
    ts, raw = str(int(time.time())), "payload=x"
    assert verify(cfg, raw.encode(), ts, sign("s3cret", ts, raw))
    assert not verify(cfg, raw.encode(), ts, sign("other", ts, raw))
    assert not verify(cfg, raw.encode(), "not-a-number", sign("s3cret", ts, raw))
    assert not verify(cfg, raw.encode(), str(int(time.time()) - 301), sign("s3cret", str(int(time.time()) - 301), raw))


def test_a_body_that_is_not_utf8_is_refused_not_an_error(tmp_path):
    (tmp_path / "secret").write_text("s3cret")
    cfg = SlackConfig(FileSecret(None), FileSecret(str(tmp_path / "secret")))
    assert not verify(cfg, b"\x80payload", str(int(time.time())), "v0=" + "0" * 64)


def test_the_decided_message_names_the_voters():
    status = RemediationStatus(phase="Succeeded", approval=ApprovalState(votes=[
        Vote(user="U1", source="slack", decision="approve", at="2026-11-25T12:00:00Z")]))
    assert "<@U1> approved" in str(decided_blocks("am-1", status))


@pytest.mark.parametrize("timestamp,signature", [
    ("²", "v0=" + "0" * 64),  # a digit to str.isdigit, not to int()
    ("9" * 5000, "v0=" + "0" * 64),  # past int()'s digit limit
    (str(int(time.time())), "v0=ünïcode"),  # hmac.compare_digest refuses non-ASCII text
], ids=["superscript-digit", "5000-digits", "non-ascii-signature"])  # the same ids in every xdist worker
def test_headers_only_python_finds_numeric_or_textual_are_refused_not_an_error(tmp_path, timestamp, signature):
    (tmp_path / "secret").write_text("s3cret")
    cfg = SlackConfig(FileSecret(None), FileSecret(str(tmp_path / "secret")))
    assert not verify(cfg, b"payload=x", timestamp, signature)


def hostile_remediation():
    from remediator.api.models import ApprovalState, RemediationSpec, RemediationStatus, RiskAssessment

    spec = RemediationSpec.model_validate({
        "signal": {"source": "alertmanager", "name": "<!channel>", "summary": "see <https://evil.example|Approve>"},
        "runbook": {"name": "rb", "namespace": "shop"}, "target": {"kind": "Deployment", "name": "web"}})
    status = RemediationStatus(
        phase="AwaitingApproval", risk=RiskAssessment.model_validate(
            {"level": "high", "score": 70, "reasons": ["label team=<!subteam^S123>"]}),
        planned_changes=["metadata.labels[x]: '<@U999>' -> None"], reason="<!everyone>",
        approval=ApprovalState(request_id="req-7", required=1, level="high"))
    return spec, status


def test_alert_text_reaches_slack_escaped_never_as_a_mention_or_a_link():
    from remediator.approvals.messages import decided_blocks, request_blocks

    spec, status = hostile_remediation()
    text = json.dumps(request_blocks("shop", "web-1", spec, status) + decided_blocks("web-1", status))
    for raw in ("<!channel>", "<https://evil", "<!subteam", "<@U999>", "<!everyone>"):
        assert raw not in text, raw
    assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|Approve&gt;" in text


def test_the_buttons_carry_the_request_id_they_vote_on():
    from remediator.approvals.messages import request_blocks

    spec, status = hostile_remediation()
    actions = next(b for b in request_blocks("shop", "web-1", spec, status) if b["type"] == "actions")
    clicks = [parse_click(body(button["value"])) for button in actions["elements"]]
    assert {(c.decision, c.request_id) for c in clicks} == {("approve", "req-7"), ("deny", "req-7")}


def test_a_callback_that_could_not_be_recorded_may_be_delivered_again():
    from remediator.approvals.slack import ReplayGuard

    guard = ReplayGuard()
    assert guard.first_time("v0=abc", now=100.0)
    assert not guard.first_time("v0=abc", now=101.0), "a replay"
    guard.forget("v0=abc")  # the vote was not stored (503): Slack or the user may send it again
    assert guard.first_time("v0=abc", now=102.0)
