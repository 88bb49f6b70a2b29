"""Slack edge: post and update approval messages (slack_sdk WebClient), verify interaction callbacks.

The bot token and signing secret are read from mounted files (rotation is
picked up) and never logged. Callbacks are verified with slack_sdk's
SignatureVerifier (HMAC over `v0:timestamp:body`, 5-minute window); a
replayed callback (same signature) is recognised and never votes twice.
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

from ..secrets import FileSecret

log = logging.getLogger("remediator.slack")


class SlackUnavailable(RuntimeError):
    pass


@dataclass
class SlackConfig:
    bot_token: FileSecret
    signing_secret: FileSecret
    base_url: str = "https://slack.com/api/"

    @property
    def enabled(self) -> bool:
        return self.bot_token.value() is not None

    def client(self) -> WebClient:
        token = self.bot_token.value()
        if token is None:
            raise SlackUnavailable("no Slack bot token configured")
        return WebClient(token=token.decode(), base_url=self.base_url, timeout=5)


def post_message(cfg: SlackConfig, channel: str, text: str, blocks: list[dict]) -> tuple[str, str]:
    try:
        resp = cfg.client().chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as e:
        raise SlackUnavailable(f"chat.postMessage failed: {e.response.get('error')}") from None
    return resp["channel"], resp["ts"]


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
    if secret is None or not timestamp or not signature or not timestamp.isdigit():
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
    except (UnicodeDecodeError, KeyError, IndexError, TypeError, ValueError) as e:
        raise BadCallback(f"not a block_actions payload from a remediator message ({type(e).__name__})") from None
    if click.decision not in ("approve", "deny") or not click.user or not click.remediation:
        raise BadCallback("unknown action")
    return click
