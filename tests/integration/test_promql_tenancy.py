"""A tenant's PromQL cannot read another namespace's series, against a real Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml
from e2e.monitoring import Prometheus as PrometheusServer

from remediator.api.models import PromqlCheck
from remediator.signals.prometheus import Prometheus, QueryRefused
from remediator.verification.query_probes import read_promql

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_tenants_series(tmp_path_factory):
    """A real Prometheus recording `tenant_secret` for two namespaces: 1 in team-a, 42 in team-b."""
    workdir = tmp_path_factory.mktemp("prometheus")
    rules = workdir / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "tenants", "rules": [
        {"record": "tenant_secret", "expr": "vector(1)", "labels": {"namespace": "team-a"}},
        {"record": "tenant_secret", "expr": "vector(42)", "labels": {"namespace": "team-b"}}]}]}))
    server = PrometheusServer(workdir / "data-dir", rule_files=[rules])
    server.start()
    try:
        server.wait_for_series('tenant_secret{namespace="team-b"}')
        server.wait_for_series('tenant_secret{namespace="team-a"}')
        yield server.url
    finally:
        server.stop()


def test_a_runbooks_verify_query_reads_only_its_own_namespace(two_tenants_series):
    prom = Prometheus(two_tenants_series)
    assert prom.value("sum(tenant_secret)") == 43, "both tenants' series are there"
    assert prom.value("sum(tenant_secret)", namespace="team-a") == 1
    reading = read_promql(prom, PromqlCheck(query="sum(tenant_secret)", threshold=1), datetime.now(UTC), "team-a")
    assert reading.value == 1


def test_a_query_naming_another_namespace_is_refused_and_never_reaches_prometheus(two_tenants_series):
    prom = Prometheus(two_tenants_series)
    with pytest.raises(QueryRefused, match="reads namespace 'team-b'"):
        prom.value('sum(tenant_secret{namespace="team-b"})', namespace="team-a")
    reading = read_promql(prom, PromqlCheck(query='tenant_secret{namespace=~"team-.*"}', threshold=1),
                          datetime.now(UTC), "team-a")
    assert reading.value is None and "not sent" in reading.detail


def test_an_anomaly_triggers_history_is_only_its_own_namespaces(two_tenants_series):
    prom = Prometheus(two_tenants_series)
    now = datetime.now(UTC)
    series = prom.range("tenant_secret", now - timedelta(minutes=1), now, 1, namespace="team-a")
    assert series and {s.labels["namespace"] for s in series} == {"team-a"}


@pytest.mark.slow
def test_an_anomaly_trigger_reading_another_namespace_is_refused_and_its_runbook_says_why(
        kubeconfig, cluster, crds, tmp_path, two_tenants_series):
    from kubernetes import client

    from tests.support.operator import OperatorProcess
    from tests.support.waiting import wait_for

    op = OperatorProcess(kubeconfig, [cluster.ns], tmp_path, extra_args=["--prometheus-url", two_tenants_series])
    op.start()
    try:
        cluster.apply_runbook("peek", {
            "triggers": [{"anomaly": {"query": 'tenant_secret{namespace="team-b"}', "minSamples": 3}}],
            "target": {"kind": "Deployment", "name": "web"},
            "steps": [{"name": "restart", "action": "restartRollout"}]})

        def refused() -> list:
            return [e for e in client.EventsV1Api(cluster.api).list_namespaced_event(cluster.ns).items
                    if e.reason == "QueryRefused" and e.regarding.name == "peek"]
        [event] = wait_for(refused, timeout=60, what="a QueryRefused Event on the Runbook")
        assert "reads namespace 'team-b'" in event.note and event.type == "Warning"
        assert cluster.remediations() == []
    finally:
        op.stop()
