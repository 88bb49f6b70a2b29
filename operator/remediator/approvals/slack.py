"""Slack edge: post and update approval messages (slack_sdk WebClient), verify interaction callbacks.

The bot token and signing secret are read from mounted files (rotation is
picked up) and never logged. Callbacks are verified with slack_sdk's
SignatureVerifier (HMAC over `v0:timestamp:body`, 5-minute window); a
replayed callback (same signature) is recognised and never votes twice.

Posting is made idempotent with Slack's own message metadata: each request
message carries its request id (`metadata.event_payload.request_id`), and
before posting, the channel's history since the request opened is searched
for it (conversations.history, include_all_metadata), so an operator that
crashed between chat.postMessage and saving the ts adopts the message it
posted instead of posting a second live one. History needs a channel id
(C...), not a #name, and the channels:history scope.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from ..core.match.templating import dns1123_subdomain_problem
from ..core.match.tenancy import can_be_a_namespace
from ..secrets import FileSecret

log = logging.getLogger("remediator.slack")


class SlackUnavailable(RuntimeError):
    pass


@dataclass
class SlackConfig:
    bot_token: FileSecret
    signing_secret: FileSecret
    base_url: str = "https://slack.com/api/"
    refused: str | None = None  # why Slack features are off although a token is set (check_scopes)

    @property
    def enabled(self) -> bool:
        return self.refused is None and self.bot_token.value() is not None

    def client(self) -> WebClient:
        token = self.bot_token.value()
        if token is None:
            raise SlackUnavailable("no Slack bot token configured")
        return WebClient(token=token.decode(), base_url=self.base_url, timeout=5)


# Every scope a Web API call of this module needs (charts/remediator/slack-app-manifest.yaml asks for exactly
# these): chat.postMessage/chat.update; conversations.history of a public channel; usergroups.users.list.
REQUIRED_SCOPES = {"chat:write": "post and update approval and escalation messages",
                   "channels:history": "find a message already posted, so none is posted twice",
                   "usergroups:read": "check an approver's Slack user groups (allowedSlackGroups)"}
OPTIONAL_SCOPES = {"groups:history": "approval or escalation channels that are private"}


def check_scopes(cfg: SlackConfig) -> tuple[list[str], list[str]]:
    """(missing required scopes, missing optional ones), each "scope (what it is for)". auth.test answers no
    scopes in its body: Slack sends the token's scopes in the `x-oauth-scopes` header of every Web API answer.
    Raises SlackUnavailable when Slack cannot be asked or refuses the token."""
    try:
        resp = cfg.client().auth_test()
    except SlackApiError as e:
        raise SlackUnavailable(f"auth.test failed: {e.response.get('error')}") from None
    except (OSError, ValueError, AttributeError) as e:  # ValueError/AttributeError: an answer that is no JSON object
        raise SlackUnavailable(f"auth.test failed: {e}") from None
    header = next((v for k, v in (resp.headers or {}).items() if k.lower() == "x-oauth-scopes"), None)
    if header is None:  # e.g. a proxy dropped it: no scope is known missing
        raise SlackUnavailable("auth.test answered without an x-oauth-scopes header")
    if isinstance(header, list):
        header = ",".join(header)
    granted = {s.strip() for s in (header or "").split(",") if s.strip()}
    return ([f"{s} ({why})" for s, why in REQUIRED_SCOPES.items() if s not in granted],
            [f"{s} ({why})" for s, why in OPTIONAL_SCOPES.items() if s not in granted])


def refuse_without_scopes(cfg: SlackConfig) -> str | None:
    """At start-up: turn Slack features off, saying why, when the token lacks a scope they need (approvals then
    go through `remediator approve` / RemediationApprovals, escalations through Alertmanager and Events)."""
    if cfg.bot_token.value() is None:
        return None
    try:
        missing, optional = check_scopes(cfg)
    except SlackUnavailable as e:
        log.warning("could not check the Slack token's scopes; Slack features stay on", extra={"error": str(e)})
        return None
    if optional:
        log.warning("the Slack app lacks optional scopes", extra={"missing": optional})
    if missing:
        cfg.refused = ("Slack features are off: the bot token lacks the scope(s) " + ", ".join(missing) +
                       "; add them to the Slack app (charts/remediator/slack-app-manifest.yaml lists them) "
                       "and reinstall it")
        log.error(cfg.refused)
    return cfg.refused


REQUEST_EVENT = "remediator_approval_request"
HISTORY_SKEW_SECONDS = 120  # our clock and Slack's may differ; look a little further back
CANNOT_LOOK = frozenset({"channel_not_found", "missing_scope", "not_in_channel", "invalid_arguments"})


def post_message(cfg: SlackConfig, channel: str, text: str, blocks: list[dict],
                 request_id: str | None = None, thread_ts: str | None = None) -> tuple[str, str]:
    """A reply in a thread is also broadcast to the channel: conversations.history, where
    `find_request_message` looks, lists no other replies."""
    metadata = {"event_type": REQUEST_EVENT, "event_payload": {"request_id": request_id}} if request_id else None
    threading_args = {"thread_ts": thread_ts, "reply_broadcast": True} if thread_ts else {}
    try:
        resp = cfg.client().chat_postMessage(channel=channel, text=text, blocks=blocks, metadata=metadata,
                                             **threading_args)
    except SlackApiError as e:
        raise SlackUnavailable(f"chat.postMessage failed: {e.response.get('error')}") from None
    return resp["channel"], resp["ts"]


def find_request_message(cfg: SlackConfig, channel: str, request_id: str, since: float) -> tuple[str, str] | None:
    """(channel, ts) of the message already posted for `request_id`, or None when there is none (or we cannot
    look: a #name instead of a channel id, a missing scope; then the caller posts, at-least-once)."""
    try:
        pages = cfg.client().conversations_history(channel=channel, oldest=f"{since - HISTORY_SKEW_SECONDS:.6f}",
                                                   include_all_metadata=True, limit=200)
        for page in pages:  # slack_sdk follows response_metadata.next_cursor
            for message in page.get("messages") or []:
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == REQUEST_EVENT and \
                        (metadata.get("event_payload") or {}).get("request_id") == request_id:
                    return channel, message["ts"]
    except SlackApiError as e:
        error = e.response.get("error")
        if error in CANNOT_LOOK:
            log.warning("cannot search the approval channel's history; a crash before saving a message's ts "
                        "may post it twice", extra={"channel": channel, "error": error})
            return None
        raise SlackUnavailable(f"conversations.history failed: {error}") from None
    return None


def update_message(cfg: SlackConfig, channel: str, ts: str, text: str, blocks: list[dict]) -> None:
    try:
        cfg.client().chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
    except SlackApiError as e:
        raise SlackUnavailable(f"chat.update failed: {e.response.get('error')}") from None


def user_groups(cfg: SlackConfig, user: str, candidate_groups: list[str]) -> list[str]:
    """The candidate user groups `user` belongs to (usergroups.users.list per group)."""
    member_of = []
    for group in candidate_groups:
        try:
            users = cfg.client().usergroups_users_list(usergroup=group).get("users", [])
        except SlackApiError as e:
            log.warning("could not list a Slack user group", extra={"group": group, "error": e.response.get("error")})
            continue
        if user in users:
            member_of.append(group)
    return member_of


class ReplayGuard:
    """Signatures seen within the acceptance window; a second sight is a replay."""

    def __init__(self, window_seconds: int = 300, limit: int = 100_000):
        self.window = window_seconds
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, signature: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self.window
                                  or len(self._seen) > self.limit):
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True

    def forget(self, signature: str) -> None:
        """A callback we could not record (e.g. apiserver trouble) may be delivered again."""
        with self._lock:
            self._seen.pop(signature, None)


@dataclass(frozen=True)
class Click:
    user: str
    namespace: str
    remediation: str
    decision: str
    request_id: str  # the approval request the message was posted for


class BadCallback(ValueError):
    pass


def verify(cfg: SlackConfig, body: bytes, timestamp: str | None, signature: str | None) -> bool:
    secret = cfg.signing_secret.value()
    if secret is None or not timestamp or not signature:
        return False
    # The SDK's int() and hmac.compare_digest raise on what str.isdigit lets through ("²", 5,000 digits)
    # and on a non-ASCII signature: only what Slack sends gets that far.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12 and signature.isascii()):
        return False
    try:
        body.decode("utf-8")  # Slack signs UTF-8 form bodies; the SDK's verifier raises on anything else
    except UnicodeDecodeError:
        return False
    return SignatureVerifier(secret.decode()).is_valid(body, timestamp, signature)


def parse_click(body: bytes) -> Click:
    """The vote in an interaction callback (form field `payload`, JSON), or BadCallback saying why."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload = json.loads(form["payload"][0])
        action = payload["actions"][0]
        value = json.loads(action["value"])
        click = Click(user=str(payload["user"]["id"]), namespace=str(value["ns"]), remediation=str(value["name"]),
                      decision=str(value["decision"]), request_id=str(value.get("req") or ""))
    except (UnicodeDecodeError, KeyError, IndexError, TypeError, ValueError, RecursionError) as e:
        raise BadCallback(f"not a block_actions payload from a remediator message ({type(e).__name__})") from None
    if click.decision not in ("approve", "deny") or not click.user or not click.remediation:
        raise BadCallback("unknown action")
    # our buttons name a Remediation as the apiserver does: anything else was not made by us
    if not can_be_a_namespace(click.namespace) or dns1123_subdomain_problem(click.remediation):
        raise BadCallback("the action names no Remediation")
    return click
