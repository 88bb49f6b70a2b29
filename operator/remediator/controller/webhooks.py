"""HTTP edge: the Alertmanager receiver, health and metrics endpoints.

Answers fast: authenticate, parse, create or patch Remediations, reply.
Bad bodies get 400 with a reason, missing or wrong tokens 401, oversized
bodies 413; apiserver trouble 503 so Alertmanager retries (safe: creates
are deduplicated by name). Never a 500 for anything a sender can send.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from dataclasses import dataclass, field

from aiohttp import web
from kubernetes.client.rest import ApiException
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from ..approvals.slack import BadCallback, ReplayGuard, SlackConfig, parse_click, verify
from ..core import tenancy
from ..core.rate_limit import Limit, RateLimiter, retry_after_header
from ..records.metrics import REFUSALS
from ..secrets import FileSecret
from ..signals.alertmanager import PayloadError, fingerprint, parse_payload, to_signal
from .approvals import audit_refused_callback, record_slack_click
from .ingest import Intake
from .tenant_tokens import TenantTokens, TooManyLookups

log = logging.getLogger("remediator.webhooks")

MAX_BODY_BYTES = 1 << 20
STRANGER_LIMIT = Limit(rate=1, burst=10)
LOOKUPS_SPENT = 503  # Alertmanager retries a 5xx, never a 4xx: a real tenant's alert must not be dropped

WEBHOOK_REQUESTS = Counter("remediator_webhook_requests_total", "Webhook requests by endpoint and HTTP code",
                           ["endpoint", "code"])
SIGNALS = Counter("remediator_signals_total", "Signals ingested by source and outcome", ["source", "outcome"])


@dataclass
class WebhookConfig:
    intake: Intake
    alertmanager_token: FileSecret
    tenant_tokens: TenantTokens | None = None  # per-namespace routes; None: only the shared route
    ctx: object = None  # the OperatorContext, for votes
    slack: SlackConfig | None = None
    replays: ReplayGuard = field(default_factory=ReplayGuard)
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


def rate_limited(endpoint: str, wait: float, why: str, code: int = 429) -> web.Response:
    REFUSALS.labels("rate-limited").inc()
    return reply(endpoint, code, headers={"Retry-After": retry_after_header(wait)}, error=f"{why}; retry in {wait:.1f}s")


def reply(endpoint: str, code: int, headers: dict | None = None, **body) -> web.Response:
    WEBHOOK_REQUESTS.labels(endpoint, str(code)).inc()
    return web.json_response(body, status=code, headers=headers)


def bearer(request: web.Request) -> bytes:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else b""


async def read_json(request: web.Request, endpoint: str) -> tuple[object | None, web.Response | None]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None, reply(endpoint, 413, error=f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = await request.content.read(MAX_BODY_BYTES + 1)
    except (ConnectionError, asyncio.IncompleteReadError):
        return None, reply(endpoint, 400, error="body could not be read")
    if len(raw) > MAX_BODY_BYTES:
        return None, reply(endpoint, 413, error=f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as e:
        return None, reply(endpoint, 400, error=f"body is not JSON: {e}")


async def authenticate(cfg: WebhookConfig, request: web.Request, namespace: str | None) -> bool:
    """The shared token on the shared route; on a namespace's own route, only that namespace's token."""
    if namespace is None:
        return cfg.alertmanager_token.matches(bearer(request))
    return cfg.tenant_tokens is not None and cfg.intake.served(namespace) and \
        await cfg.off_loop(cfg.tenant_tokens.matches, namespace, bearer(request))


def make_alertmanager_handler(cfg: WebhookConfig):
    endpoint = "alertmanager"

    async def handle(request: web.Request) -> web.Response:
        namespace = request.match_info.get("namespace")  # set on /webhooks/alertmanager/<namespace>
        try:
            authenticated = await authenticate(cfg, request, namespace)
        except ApiException as e:
            log.error("could not read a namespace's webhook token", extra={"namespace": namespace,
                                                                          "status": e.status})
            return reply(endpoint, 503, error=f"apiserver answered {e.status}; retry later")
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
            return reply(endpoint, 400, error=str(e))
        try:
            results = await cfg.off_loop(ingest_all, cfg, payload, namespace)
        except TooManyLookups as e:
            return rate_limited(endpoint, e.wait, "too many namespaces not seen lately", LOOKUPS_SPENT)
        except ApiException as e:
            log.error("apiserver refused an ingest", extra={"status": e.status, "reason": e.reason})
            return reply(endpoint, 503, error=f"apiserver answered {e.status}; retry later")
        except Exception as e:  # network trouble talking to the apiserver
            log.error("ingest failed", exc_info=e)
            return reply(endpoint, 503, error="could not record the alerts; retry later")
        if all(r["outcome"] == "refused" for r in results):  # nothing to retry: the same alerts are refused again
            return reply(endpoint, 400, error="every alert was refused", results=results)
        return reply(endpoint, 200, results=results)

    return handle


def ingest_all(cfg: WebhookConfig, payload, path_namespace: str | None = None) -> list[dict]:
    out = []
    for alert in payload.alerts:
        admission = admit(cfg, alert.labels, path_namespace)
        if admission.labels is None:
            REFUSALS.labels(admission.reason).inc()
            SIGNALS.labels("alertmanager", "refused").inc()
            log.warning("alert refused", extra={"route": path_namespace or "shared", "reason": admission.refusal})
            out.append({"fingerprint": fingerprint(alert), "outcome": "refused", "remediation": None,
                        "reasons": [admission.refusal]})
            continue
        signal = to_signal(alert.model_copy(update={"labels": dict(admission.labels)}))
        res = cfg.intake.firing(signal) if alert.status == "firing" else cfg.intake.resolved(signal)
        SIGNALS.labels("alertmanager", res.outcome).inc()
        out.append({"fingerprint": signal.fingerprint, "outcome": res.outcome, "remediation": res.name,
                    "reasons": list(res.reasons)})
    return out


def admit(cfg: WebhookConfig, labels: dict[str, str], path_namespace: str | None) -> tenancy.Admission:
    if cfg.tenant_tokens is None:
        return tenancy.Admission(labels)
    return cfg.tenant_tokens.admit(labels, path_namespace, cfg.intake.served)


VOTE_CODES = {"accepted": 200, "duplicate": 200, "refused-not-allowed": 403, "refused-already-decided": 409,
              "refused-expired": 409, "refused-unknown-remediation": 404, "refused-contended": 503}


def make_slack_handler(cfg: WebhookConfig):
    """Slack interactivity: verify, then persist the vote in the Remediation before answering."""
    endpoint = "slack"

    async def handle(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return reply(endpoint, 413, error="body too large")
        raw = await request.content.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            return reply(endpoint, 413, error="body too large")
        signature = request.headers.get("X-Slack-Signature")
        verified = cfg.slack is not None and verify(cfg.slack, raw, request.headers.get("X-Slack-Request-Timestamp"),
                                                    signature)
        throttled = cfg.throttle(endpoint, request, verified)
        if throttled:
            return throttled
        if not verified:
            REFUSALS.labels("forged-slack-callback").inc()
            log.warning("slack callback refused: bad signature or stale timestamp", extra={"peer": request.remote})
            await audit(cfg, raw, "refused a callback with a bad signature or a stale timestamp")
            return reply(endpoint, 401, error="signature or timestamp invalid")
        try:
            click = parse_click(raw)
        except BadCallback as e:
            return reply(endpoint, 400, error=str(e))
        if not cfg.replays.first_time(signature or ""):
            await cfg.off_loop(audit_refused_callback, cfg.ctx, click.namespace, click.remediation,
                                    f"slack:{click.user} {click.decision}: replayed callback ignored")
            return reply(endpoint, 200, outcome="replay", message="this callback was already received")
        try:
            outcome, message = await cfg.off_loop(record_slack_click, cfg.ctx, cfg.slack, click)
        except ApiException as e:
            return reply(endpoint, 503, error=f"apiserver answered {e.status}; click again")
        return reply(endpoint, VOTE_CODES.get(outcome, 409), outcome=outcome, message=message)

    return handle


async def audit(cfg: WebhookConfig, raw: bytes, message: str) -> None:
    """A refused callback goes into the timeline of the Remediation it claims to be about, if any."""
    try:
        click = parse_click(raw)
        await cfg.off_loop(audit_refused_callback, cfg.ctx, click.namespace, click.remediation,
                                f"slack:{click.user} {click.decision}: {message}")
    except Exception as e:  # auditing is best effort; the answer stays 401
        log.warning("could not audit a refused callback", extra={"error": type(e).__name__})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(cfg: WebhookConfig, with_metrics: bool = True) -> web.Application:
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
