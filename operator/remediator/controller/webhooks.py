"""HTTP edge: the Alertmanager receiver, health and metrics endpoints.

Answers fast: authenticate, parse, create or patch Remediations, reply.
Bad bodies get 400 with a reason, missing or wrong tokens 401, oversized
bodies 413; whenever what was sent could not be recorded (a body that did
not arrive in time, apiserver trouble) 503, so Alertmanager retries (safe:
creates are deduplicated by name). Never a 500 for anything a sender can send.
An unverified Slack callback is counted and logged, never written anywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from kubernetes.client.rest import ApiException
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from ..approvals.slack import BadCallback, ReplayGuard, SlackConfig, parse_click, verify
from ..core.match import tenancy
from ..core.match.rate_limit import Limit, RateLimiter, retry_after_header
from ..records.metrics import REFUSALS
from ..secrets import FileSecret
from ..signals.alertmanager import PayloadError, fingerprint, parse_payload, to_signal
from .approvals import record_slack_click
from .ingest import Intake
from .tenant_tokens import TenantTokens, TooManyLookups

log = logging.getLogger("remediator.webhooks")

MAX_BODY_BYTES = 1 << 20
BODY_SECONDS = 10.0  # a sender that has not finished its body by then is gone or stalling us
STRANGER_LIMIT = Limit(rate=1, burst=10)
SLACK_BODY_BYTES = 64 << 10  # an interaction payload is a few KiB
SLACK_READS_AT_ONCE = 32  # unverified bodies in memory at once: at most 2 MiB, however many connections
LOOKUPS_SPENT = 503  # Alertmanager retries a 5xx, never a 4xx: a real tenant's alert must not be dropped

WEBHOOK_REQUESTS = Counter("remediator_webhook_requests_total", "Webhook requests by endpoint and HTTP code",
                           ["endpoint", "code"])
SIGNALS = Counter("remediator_signals_total", "Signals ingested by source and outcome", ["source", "outcome"])


@dataclass
class WebhookConfig:
    intake: Intake
    alertmanager_token: FileSecret
    tenant_tokens: TenantTokens | None = None  # per-namespace routes; None: only the shared route
    # whether a namespace exists, as the namespaces' watch knows: the shared route checks those first
    namespace_exists: Callable[[str], bool] = lambda namespace: True
    ctx: object = None  # the OperatorContext, for votes
    slack: SlackConfig | None = None
    replays: ReplayGuard = field(default_factory=ReplayGuard)
    slack_reads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(SLACK_READS_AT_ONCE))
    limiter: RateLimiter = field(default_factory=RateLimiter)
    caller_limit: Limit = field(default_factory=lambda: Limit(rate=200, burst=1000))  # authenticated callers
    stranger_limit: Limit = STRANGER_LIMIT

    # Webhook work has threads of its own: the Remediation loops' ticks (blocking apiserver calls) fill the
    # default pool during an incident, and an alert must not queue behind them.
    executor: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="webhook"))

    async def off_loop(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def throttle(self, endpoint: str, request: web.Request, authenticated: bool) -> web.Response | None:
        """429 once a caller spends its tokens; strangers (no valid token or signature) get very few, so a
        flood of them costs almost nothing and never eats the budget of the real sender."""
        limit = self.caller_limit if authenticated else self.stranger_limit
        wait = self.limiter.take((endpoint, authenticated, request.remote), limit, time.monotonic())
        if not wait:
            return None
        return rate_limited(endpoint, wait, "too many requests from this caller")


def rate_limited(endpoint: str, wait: float, why: str, code: int = 429, results: list | None = None) -> web.Response:
    REFUSALS.labels("rate-limited").inc()
    more = {} if results is None else {"results": results}
    return reply(endpoint, code, headers={"Retry-After": retry_after_header(wait)},
                 error=f"{why}; retry in {wait:.1f}s", **more)


def not_recorded(endpoint: str, error: Exception, what_now: str) -> web.Response:
    """503 when the operator could not record what it was sent: the sender retries (Alertmanager does on 5xx)."""
    if isinstance(error, ApiException):
        log.error("apiserver refused a webhook's write", extra={"endpoint": endpoint, "status": error.status,
                                                                "reason": error.reason})
        return reply(endpoint, 503, error=f"apiserver answered {error.status}; {what_now}")
    log.error("webhook could not record its input", extra={"endpoint": endpoint}, exc_info=error)
    return reply(endpoint, 503, error=what_now)


def reply(endpoint: str, code: int, headers: dict | None = None, **body) -> web.Response:
    WEBHOOK_REQUESTS.labels(endpoint, str(code)).inc()
    return web.json_response(body, status=code, headers=headers)


def bearer(request: web.Request) -> bytes:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    # aiohttp decodes header bytes with surrogateescape; encode them back the same way (a plain encode() raises)
    return token.strip().encode("utf-8", "surrogateescape") if scheme.lower() == "bearer" else b""


def refuse(endpoint: str, code: int, reason: str, error: str) -> web.Response:
    REFUSALS.labels(reason).inc()
    return reply(endpoint, code, error=error)


async def read_body(request: web.Request, endpoint: str,
                    limit: int = MAX_BODY_BYTES) -> tuple[bytes | None, web.Response | None]:
    """The whole body, however many TCP segments it arrives in, bounded in size and time.

    content.read(n) returns only what is buffered so far, so read until the end of the body, refusing as soon
    as more than `limit` bytes have come (never holding more than that in memory).
    """
    too_large = f"body larger than {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        return None, refuse(endpoint, 413, "body-too-large", too_large)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while chunk := await request.content.read(1 << 16):
                size += len(chunk)
                if size > limit:
                    return None, refuse(endpoint, 413, "body-too-large", too_large)
                chunks.append(chunk)
    except TimeoutError:  # not received, so not recorded: 503 makes a real sender on a bad network send it again
        return None, refuse(endpoint, 503, "body-too-slow",
                            f"body not received within {BODY_SECONDS:.0f}s; send it again")
    except (ConnectionError, HttpProcessingError):
        return None, refuse(endpoint, 400, "body-unreadable", "body could not be read")
    except RequestPayloadError as e:  # e.g. a Content-Encoding the body is not in: the sender's fault, not ours
        return None, refuse(endpoint, 400, "body-unreadable", f"body could not be decoded: {e}")
    return b"".join(chunks), None


async def read_json(request: web.Request, endpoint: str) -> tuple[object | None, web.Response | None]:
    raw, refused = await read_body(request, endpoint)
    if refused:
        return None, refused
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as e:
        return None, refuse(endpoint, 400, "malformed-webhook", f"body is not JSON: {e}")
    except RecursionError:  # the json module recurses per nesting level: "[" * 100000 is valid-looking input
        return None, refuse(endpoint, 400, "malformed-webhook", "body is nested too deeply")


async def authenticate(cfg: WebhookConfig, request: web.Request, namespace: str | None) -> bool:
    """The shared token on the shared route; on a namespace's own route, only that namespace's token."""
    if namespace is None:
        return cfg.alertmanager_token.matches(bearer(request))
    return cfg.tenant_tokens is not None and cfg.intake.served(namespace) and \
        await cfg.off_loop(cfg.tenant_tokens.matches, namespace, bearer(request), request.remote)


def make_alertmanager_handler(cfg: WebhookConfig):
    endpoint = "alertmanager"

    async def handle(request: web.Request) -> web.Response:
        namespace = request.match_info.get("namespace")  # set on /webhooks/alertmanager/<namespace>
        try:
            authenticated = await authenticate(cfg, request, namespace)
        except ApiException as e:  # the token could not be read: nothing was recorded, the sender retries
            return not_recorded(endpoint, e, "retry later")
        except TooManyLookups as e:
            return rate_limited(endpoint, e.wait, "too many namespaces not seen lately", LOOKUPS_SPENT)
        throttled = cfg.throttle(endpoint, request, authenticated)
        if throttled:
            return throttled
        if not authenticated:
            REFUSALS.labels("unauthenticated-webhook").inc()
            log.warning("alertmanager webhook refused: missing or wrong bearer token",
                        extra={"peer": request.remote})
            return reply(endpoint, 401, error="a valid bearer token is required")
        raw, refused = await read_json(request, endpoint)
        if refused:
            return refused
        try:
            payload = parse_payload(raw)
        except PayloadError as e:
            return refuse(endpoint, 400, "malformed-webhook", str(e))
        if payload.truncatedAlerts:
            log.warning("the sender left alerts of this group out (its receiver's max_alerts)",
                        extra={"left_out": payload.truncatedAlerts, "receiver": payload.receiver[:128]})
        try:
            results, wait = await cfg.off_loop(ingest_all, cfg, payload, namespace)
        except Exception as e:  # the apiserver refused or could not be reached: nothing may be lost
            return not_recorded(endpoint, e, "the alerts were not all recorded; retry later")
        if wait:  # the others are recorded: sent again, they are duplicates
            return rate_limited(endpoint, wait, "too many namespaces not seen lately", LOOKUPS_SPENT, results)
        if all(r["outcome"] == "refused" for r in results):  # nothing to retry: the same alerts are refused again
            return reply(endpoint, 400, error="every alert was refused", results=results)
        return reply(endpoint, 200, results=results)

    return handle


# Runbooks of other namespaces that an unmatched alert would have matched are named in its reasons (a hint for the
# platform team wiring its shared route) for this many alerts of a delivery: each costs a pass over every Runbook
HINTED_ALERTS = 20


def ingest_all(cfg: WebhookConfig, payload, path_namespace: str | None = None) -> tuple[list[dict], float]:
    """Each alert's outcome, and how long to wait before sending again those whose namespace could not be checked
    (0: none). Namespaces that exist are checked first, so alerts padded with invented ones still get through."""
    admissions: dict[int, tenancy.Admission] = {}
    wait = 0.0
    exists_first = sorted(range(len(payload.alerts)), key=lambda i: not cfg.namespace_exists(
        payload.alerts[i].labels.get(tenancy.NAMESPACE_LABEL) or ""))
    for i in exists_first:
        try:
            admissions[i] = admit(cfg, payload.alerts[i].labels, path_namespace)
        except TooManyLookups as e:  # past the budget: the namespaces checked already, or needing no check, go on
            wait = max(wait, e.wait)
    out, hints_left = [], HINTED_ALERTS if path_namespace is None else 0  # a tenant hears nothing of others
    for i, alert in enumerate(payload.alerts):
        admission = admissions.get(i)
        if admission is None:
            out.append({"fingerprint": fingerprint(alert), "outcome": "deferred", "remediation": None,
                        "reasons": ["too many namespaces to check at once: send it again"]})
            continue
        if admission.labels is None:
            REFUSALS.labels(admission.reason).inc()
            SIGNALS.labels(payload.sender, "refused").inc()
            log.warning("alert refused", extra={"route": path_namespace or "shared", "reason": admission.refusal})
            out.append({"fingerprint": fingerprint(alert), "outcome": "refused", "remediation": None,
                        "reasons": [admission.refusal]})
            continue
        signal = to_signal(alert.model_copy(update={"labels": dict(admission.labels)}))
        if alert.status == "firing":
            res = cfg.intake.firing(signal, hints=hints_left > 0)
            hints_left -= res.outcome == "unmatched" and bool(signal.labels.get(tenancy.NAMESPACE_LABEL))
        else:
            res = cfg.intake.resolved(signal)
        SIGNALS.labels(payload.sender, res.outcome).inc()
        out.append({"fingerprint": signal.fingerprint, "outcome": res.outcome, "remediation": res.name,
                    "reasons": answered_reasons(res.reasons)})
    return out, wait


REASONS_ANSWERED, REASON_CHARS = 10, 1024  # per alert: a delivery's answer stays a few MB at most


def answered_reasons(reasons) -> list[str]:
    """The reasons told to the sender, bounded (a namespace's many Runbooks each say why not)."""
    shown = [r if len(r) <= REASON_CHARS else r[:REASON_CHARS - 1] + "…" for r in list(reasons)[:REASONS_ANSWERED]]
    return shown + ([f"and {len(reasons) - REASONS_ANSWERED} more"] if len(reasons) > REASONS_ANSWERED else [])


def admit(cfg: WebhookConfig, labels: dict[str, str], path_namespace: str | None) -> tenancy.Admission:
    if cfg.tenant_tokens is None:
        return tenancy.Admission(labels)
    return cfg.tenant_tokens.admit(labels, path_namespace, cfg.intake.served)


VOTE_CODES = {"accepted": 200, "duplicate": 200, "refused-not-allowed": 403, "refused-already-decided": 409,
              "refused-expired": 409, "refused-stale": 409, "refused-unknown-remediation": 404,
              "refused-contended": 503}


def make_slack_handler(cfg: WebhookConfig):
    """Slack interactivity: verify, then persist the vote in the Remediation before answering."""
    endpoint = "slack"

    async def handle(request: web.Request) -> web.Response:
        # The signature covers the body, so it is read before anyone is known: few and small at a time.
        async with cfg.slack_reads:
            raw, refused = await read_body(request, endpoint, SLACK_BODY_BYTES)
        if refused:
            return refused
        signature = request.headers.get("X-Slack-Signature")
        verified = cfg.slack is not None and verify(cfg.slack, raw, request.headers.get("X-Slack-Request-Timestamp"),
                                                    signature)
        throttled = cfg.throttle(endpoint, request, verified)
        if throttled:
            return throttled
        if not verified:
            # Anyone can post here: no apiserver write, or a stranger could flood a Remediation's timeline
            # and contend with the operator's own writes. The counter and the log are the record.
            log.warning("slack callback refused: bad signature or stale timestamp", extra={"peer": request.remote})
            return refuse(endpoint, 401, "forged-slack-callback", "signature or timestamp invalid")
        try:
            click = parse_click(raw)
        except BadCallback as e:
            return refuse(endpoint, 400, "malformed-slack-callback", str(e))
        if not cfg.replays.first_time(signature or ""):
            # The original was recorded (or answered) already; a copy changes nothing, so writes nothing.
            REFUSALS.labels("replayed-slack-callback").inc()
            log.warning("slack callback replayed", extra={"peer": request.remote, "user": click.user[:64],
                                                          "remediation": f"{click.namespace}/{click.remediation}"[:300]})
            return reply(endpoint, 200, outcome="replay", message="this callback was already received")
        try:
            outcome, message = await cfg.off_loop(record_slack_click, cfg.ctx, cfg.slack, click)
        except Exception as e:
            cfg.replays.forget(signature or "")  # nothing was recorded: the same callback may come again
            return not_recorded(endpoint, e, "the vote was not recorded; click again")
        code = VOTE_CODES.get(outcome, 409)
        if code == 503:
            cfg.replays.forget(signature or "")
        return reply(endpoint, code, outcome=outcome, message=message)

    return handle


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class SendersMistakes(logging.Filter):
    """aiohttp answers a request it cannot parse (two Content-Lengths, a Content-Encoding it has no decoder for)
    with 400 itself, and logs it as an ERROR with a traceback, before any handler or rate limit sees the
    sender: anyone could fill the log. Counted instead (`malformed-http`). A body a handler could not decode
    (refused and counted there) is met again as aiohttp drains it after the answer: dropped too."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        for cause in (error, getattr(error, "__cause__", None)):
            if isinstance(cause, HttpProcessingError) and 400 <= (cause.code or 0) < 500:
                if cause is error:  # else a handler met it first, refused and counted it (`body-unreadable`)
                    REFUSALS.labels("malformed-http").inc()
                return False
        return True


SENDERS_MISTAKES = SendersMistakes()


def build_app(cfg: WebhookConfig, with_metrics: bool = True) -> web.Application:
    logging.getLogger("aiohttp.server").addFilter(SENDERS_MISTAKES)  # once: a filter is added only once
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    alertmanager = make_alertmanager_handler(cfg)
    app.router.add_post("/webhooks/alertmanager", alertmanager)
    app.router.add_post(f"/webhooks/alertmanager/{{namespace:{tenancy.NAMESPACE_PATTERN}}}", alertmanager)
    app.router.add_post("/webhooks/slack/interactions", make_slack_handler(cfg))
    app.router.add_get("/healthz", healthz)
    if with_metrics:
        app.router.add_get("/metrics", metrics)
    return app


def build_metrics_app() -> web.Application:
    """/metrics on a port of its own, so a NetworkPolicy can admit only the monitoring namespace to it."""
    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app
