"""A local stand-in for the Slack Web API and for Slack's signed interaction callbacks.

The operator talks to it with the real slack_sdk WebClient (base_url pointed
here): chat.postMessage, chat.update, conversations.history and
usergroups.users.list are served and recorded. As in Slack, a channel given by
name (#ops) is answered with its id (C...), messages keep their `metadata`
(event_type + event_payload), and conversations.history takes only a channel
id, returns newest first from `oldest` on, pages with a cursor, and includes
metadata when asked (`include_all_metadata`). As Slack does, every answer carries the token's scopes in the
`x-oauth-scopes` header (and the method's in `x-accepted-oauth-scopes`), and a method whose scope the token
lacks answers `missing_scope` with `needed` and `provided`; auth.test needs none. `click` then plays the user: it
POSTs a `payload=` form body signed exactly as Slack signs it (v0
HMAC-SHA256 over "v0:<timestamp>:<body>").

    python -m e2e.slack_standin --port 8765   # serve until interrupted
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from urllib.parse import urlencode

import requests
from aiohttp import web


# The scope each served method needs (a bot token; conversations.history of a private channel needs groups:history)
METHOD_SCOPES = {"chat.postMessage": "chat:write", "chat.update": "chat:write",
                 "conversations.history": "channels:history", "usergroups.users.list": "usergroups:read",
                 "auth.test": ""}
ALL_SCOPES = ("chat:write", "channels:history", "groups:history", "usergroups:read")


class SlackStandIn:
    def __init__(self, bot_token: str = "xoxb-standin", user_groups: dict[str, list[str]] | None = None,
                 scopes: tuple[str, ...] = ALL_SCOPES):
        self.bot_token = bot_token
        self.scopes = tuple(scopes)  # what the app was installed with
        self.user_groups = user_groups or {}
        self.messages: dict[tuple[str, str], dict] = {}  # (channel, ts) -> latest message
        self.calls: list[tuple[str, dict]] = []
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # ---------------------------------------------------------------- Web API

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.method == "GET":
            args = dict(request.query)
        elif request.content_type == "application/json":
            args = await request.json()
        else:
            args = dict(await request.post())
        with self._lock:
            self.calls.append((method, args))
        handler = {"chat.postMessage": self.post_message, "chat.update": self.update,
                   "conversations.history": self.history, "usergroups.users.list": self.group_users,
                   "auth.test": self.auth_test}.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        needed = METHOD_SCOPES[method]
        if method == "conversations.history" and str(args.get("channel", "")).startswith("G"):
            needed = "groups:history"
        headers = {"x-oauth-scopes": ",".join(self.scopes), "x-accepted-oauth-scopes": needed}
        if needed and needed not in self.scopes:
            return web.json_response({"ok": False, "error": "missing_scope", "needed": needed,
                                      "provided": ",".join(self.scopes)}, headers=headers)
        return web.json_response(handler(args), headers=headers)

    def auth_test(self, args: dict) -> dict:
        """As Slack answers a bot token: who it is, and no scopes in the body (they are in the header)."""
        return {"ok": True, "url": "https://standin.slack.com/", "team": "Stand-in", "user": "remediator",
                "team_id": "T0STANDIN", "user_id": "U0REMEDIATOR", "bot_id": "B0STANDIN", "is_enterprise_install": False}

    @staticmethod
    def channel_id(channel: str) -> str:
        """Slack answers with the channel's id whether it was named (#ops, ops) or given by id."""
        if re.fullmatch(r"[CGD][A-Z0-9]{6,}", channel):
            return channel
        return "C" + hashlib.sha256(channel.lstrip("#").encode()).hexdigest()[:10].upper()

    def post_message(self, args: dict) -> dict:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        channel = self.channel_id(args["channel"])
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = {"type": "message", "text": args.get("text", ""), "blocks": self.blocks(args), "ts": ts,
                   "bot_id": "B0STANDIN"}
        metadata = self.decoded(args.get("metadata"))
        if metadata:
            message["metadata"] = metadata
        if args.get("thread_ts"):  # only a broadcast reply shows in conversations.history, as in Slack
            message["thread_ts"] = args["thread_ts"]
            message["reply_broadcast"] = str(args.get("reply_broadcast", "")).lower() in ("1", "true")
        with self._lock:
            self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def history(self, args: dict) -> dict:
        """conversations.history: a channel id only; newest first; `oldest`/`limit`/`cursor`; metadata on request."""
        channel = args.get("channel", "")
        if channel != self.channel_id(channel):
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        limit = max(1, min(int(args.get("limit") or 100), 999))
        start = int(args.get("cursor") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = sorted((m for (c, ts), m in self.messages.items() if c == channel and float(ts) > oldest),
                           key=lambda m: float(m["ts"]), reverse=True)
        page = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"}
                for m in found[start:start + limit]]
        more = start + limit < len(found)
        return {"ok": True, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def update(self, args: dict) -> dict:
        key = (args.get("channel", ""), args.get("ts", ""))  # chat.update takes the channel id, as Slack's
        with self._lock:
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = {**self.messages[key], "text": args.get("text", ""), "blocks": self.blocks(args),
                                  "updated": True}
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def group_users(self, args: dict) -> dict:
        group = args.get("usergroup", "")
        if group not in self.user_groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.user_groups[group]}

    @staticmethod
    def decoded(value):
        """Form-encoded calls send blocks and metadata as JSON strings, JSON calls as objects."""
        return json.loads(value) if isinstance(value, str) and value else value

    def blocks(self, args: dict) -> list:
        return self.decoded(args.get("blocks")) or []

    # ---------------------------------------------------------------- lifecycle

    def start(self, port: int = 0) -> "SlackStandIn":
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_route("*", "/api/{method}", self.api)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", port)
            self._loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=serve, daemon=True, name="slack-standin").start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def find(self, predicate) -> dict | None:
        with self._lock:
            return next((dict(m, channel=c) for (c, _), m in self.messages.items() if predicate(m)), None)


# ---------------------------------------------------------------- the user's side


def sign(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def click_body(message: dict, action_id: str, user: str) -> str:
    """The form body Slack posts when `user` clicks the button `action_id` of `message`."""
    actions = next(b for b in message["blocks"] if b.get("type") == "actions")
    button = next(e for e in actions["elements"] if e.get("action_id") == action_id)
    payload = {
        "type": "block_actions", "user": {"id": user, "username": user.lower()},
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": message.get("channel")},
        "actions": [{"action_id": action_id, "block_id": actions.get("block_id"), "value": button["value"],
                     "type": "button", "action_ts": str(time.time())}],
        "response_url": "http://127.0.0.1/unused", "trigger_id": f"trigger-{time.time_ns()}",
    }
    return urlencode({"payload": json.dumps(payload)})


def post_click(url: str, secret: str, body: str, timestamp: int | None = None,
               signature: str | None = None) -> requests.Response:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": signature or sign(secret, ts, body)}
    return requests.post(url, data=body.encode(), headers=headers, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--bot-token", default="xoxb-standin")
    args = parser.parse_args()
    standin = SlackStandIn(args.bot_token).start(args.port)
    print(f"Slack stand-in on {standin.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
