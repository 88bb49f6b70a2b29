"""Which namespace an alert may act in (pure), the per-namespace token cache, and the bounded re-list."""

from __future__ import annotations

import base64
import tracemalloc

from kubernetes import client
from kubernetes.client.rest import ApiException

from remediator.controller.ingest import RunbookCache
from remediator.controller.tenant_tokens import TenantTokens, TooManyLookups
from remediator.core.match import tenancy
from remediator.core.match.rate_limit import Limit

# ---------------------------------------------------------------- the pure decision


def test_an_alert_on_a_namespaces_route_without_a_namespace_label_acts_in_the_paths_namespace():
    admission = tenancy.on_namespace_route("team-a", {"alertname": "X", "deployment": "web"})
    assert admission.labels == {"alertname": "X", "deployment": "web", "namespace": "team-a"}


def test_an_alert_on_a_namespaces_route_whose_label_agrees_is_admitted_unchanged():
    labels = {"alertname": "X", "namespace": "team-a"}
    assert tenancy.on_namespace_route("team-a", labels).labels == labels


def test_an_alert_on_a_namespaces_route_labelled_another_namespace_is_refused_naming_both():
    admission = tenancy.on_namespace_route("team-b", {"alertname": "X", "namespace": "team-a"})
    assert admission.labels is None and admission.reason == "namespace-mismatch"
    assert "'team-a'" in admission.refusal and "'team-b'" in admission.refusal


def test_the_shared_route_refuses_a_namespace_that_took_a_token_of_its_own():
    admission = tenancy.on_shared_route({"namespace": "team-a"}, opted_in=True)
    assert admission.labels is None and admission.reason == "shared-token-for-tenant"
    assert "/webhooks/alertmanager/team-a" in admission.refusal


def test_the_shared_route_serves_namespaces_without_a_token_of_their_own_and_alerts_without_a_namespace():
    assert tenancy.on_shared_route({"namespace": "team-c"}, opted_in=False).labels == {"namespace": "team-c"}
    assert tenancy.on_shared_route({"alertname": "NodeDown"}, opted_in=False).labels == {"alertname": "NodeDown"}


def test_only_an_rfc_1123_label_can_name_a_namespace():
    assert tenancy.can_be_a_namespace("team-a") and tenancy.can_be_a_namespace("a" * 63)
    for name in ("", "Team-A", "team_a", "-team", "team-", "a" * 64, "team/a", "team.a"):
        assert not tenancy.can_be_a_namespace(name), name


# ---------------------------------------------------------------- the token cache (a fake apiserver)


class FakeSecrets:
    """read_namespaced_secret over a dict; counts the reads."""

    def __init__(self, tokens: dict[str, str | None]):
        self.tokens = tokens
        self.reads = 0

    def read_namespaced_secret(self, name: str, namespace: str):
        self.reads += 1
        if namespace not in self.tokens:
            raise ApiException(status=404, reason="Not Found")
        value = self.tokens[namespace]
        data = None if value is None else {"token": base64.b64encode(value.encode()).decode()}
        return client.V1Secret(data=data)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tokens_over(secrets: FakeSecrets, clock: Clock, **kw) -> TenantTokens:
    tokens = TenantTokens(client.ApiClient(), "remediator-webhook-token", clock=clock, **kw)
    tokens.core = secrets
    return tokens


def test_a_namespaces_token_authenticates_only_that_namespace_and_a_rotation_takes_effect_after_the_ttl():
    secrets, clock = FakeSecrets({"team-a": "a-token", "team-b": "b-token"}), Clock()
    tokens = tokens_over(secrets, clock, ttl=10)
    assert tokens.matches("team-a", b"a-token") and not tokens.matches("team-a", b"b-token")
    assert not tokens.matches("team-c", b"a-token"), "no Secret, no token"
    secrets.tokens["team-a"] = "rotated"
    clock.now = 9
    assert tokens.matches("team-a", b"a-token"), "cached within the TTL"
    clock.now = 11
    assert tokens.matches("team-a", b"rotated") and not tokens.matches("team-a", b"a-token")


def test_a_secret_without_a_usable_token_opts_in_yet_authenticates_nothing():
    tokens = tokens_over(FakeSecrets({"team-a": None, "team-b": "   "}), Clock())
    for ns in ("team-a", "team-b"):
        assert tokens.token(ns).opted_in
        assert not tokens.matches(ns, b"") and not tokens.matches(ns, b"   ")


def test_invented_namespaces_cost_a_bounded_number_of_reads_and_of_cached_entries():
    secrets, clock = FakeSecrets({"team-a": "a-token"}), Clock()
    tokens = tokens_over(secrets, clock, max_namespaces=100, lookups=Limit(rate=50, burst=500))
    assert tokens.matches("team-a", b"a-token")
    refused = 0
    for i in range(5000):  # all within one instant, from as many addresses
        try:
            tokens.matches(f"ns-{i}", b"guess", caller=f"10.0.{i // 250}.{i % 250}")
        except TooManyLookups as e:
            refused += 1
            assert e.wait > 0
    assert secrets.reads == 500 and refused == 4501 and len(tokens._cache) <= 100
    clock.now = 1.0
    tokens.matches("ns-new", b"guess", caller="10.1.0.1")
    assert secrets.reads == 501, "the budget refills"


def test_one_caller_inventing_namespaces_spends_its_own_budget_before_everyones():
    secrets, clock = FakeSecrets({"team-a": "a-token"}), Clock()
    tokens = tokens_over(secrets, clock, max_namespaces=100, lookups=Limit(rate=50, burst=500))
    for i in range(100):
        try:
            tokens.matches(f"ns-{i}", b"guess", caller="10.0.0.66")
        except TooManyLookups:
            pass
    assert secrets.reads == 20, "the caller's burst, not the cluster's 500"
    assert tokens.matches("team-a", b"a-token", caller="10.0.0.7"), "another caller is served at once"


# ---------------------------------------------------------------- the standby's re-list


def test_invented_namespace_labels_cannot_make_a_list_each_nor_grow_the_cache():
    cache = RunbookCache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        relists = sum(cache.due_for_refresh(f"invented-{i}", now=i / 100_000) for i in range(100_000))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert relists <= 25, f"{relists} Runbook LISTs in one second for 100,000 invented namespaces"
    assert grown < 3_000_000, f"{grown} bytes kept for invented namespaces"


def test_a_namespace_is_relisted_at_most_once_per_five_seconds():
    cache = RunbookCache()
    assert cache.due_for_refresh("team-a", now=0.0)
    assert not cache.due_for_refresh("team-a", now=1.0)
    assert cache.due_for_refresh("team-a", now=5.01)


def test_the_shared_route_reads_no_secret_for_a_label_that_cannot_name_a_namespace_or_is_not_served():
    secrets = FakeSecrets({})
    tokens = tokens_over(secrets, Clock())
    for labels in ({"namespace": "../kube-system"}, {"namespace": "Team-A"}, {"alertname": "NodeDown"}):
        assert tokens.admit(labels, None, served=lambda ns: True).labels == labels
    assert tokens.admit({"namespace": "elsewhere"}, None, served=lambda ns: False).labels == {"namespace": "elsewhere"}
    assert secrets.reads == 0
