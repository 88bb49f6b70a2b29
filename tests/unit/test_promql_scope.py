"""Tenant PromQL is confined to its namespace, prom-label-proxy style, or refused with a reason."""

from __future__ import annotations

import promql_parser
import pytest

from remediator.core.match.promql_scope import MAX_QUERY_LENGTH, scope


def selectors_of(query: str) -> list[str]:
    found = []

    def seen(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append(sorted(f"{m.name}={m.value}" for m in node.matchers.matchers if m.name == "namespace"))
    promql_parser.walk(promql_parser.parse(query), pre_visit=seen)
    return found


@pytest.mark.parametrize("query", [
    "up",
    "rate(http_requests_total{job=\"web\"}[5m])",
    "sum(rate(errors[5m])) / sum(rate(requests{namespace=\"shop\"}[5m]))",
    "histogram_quantile(0.95, sum by (le) (rate(latency_bucket[5m])))",
    "max_over_time(rate(x[5m])[1h:1m]) > bool 3",
    "topk(3, foo) or absent(bar offset 5m)",
    "-foo * on(pod) group_left(node) kube_pod_info",
    "label_replace(foo, \"namespace\", \"other\", \"\", \"\")",
])
def test_every_selector_of_a_tenant_query_reads_only_its_own_namespace(query):
    scoped = scope(query, "shop")
    assert not scoped.refused, scoped.reason
    namespaces = selectors_of(scoped.query)
    assert namespaces and all(found == ["namespace=shop"] for found in namespaces), scoped.query


def test_a_query_without_a_namespace_gets_it_injected_and_says_so():
    scoped = scope('rate(http_requests_total{job="web"}[5m])', "shop")
    assert scoped.query == 'rate(http_requests_total{job="web",namespace="shop"}[5m])'
    assert 'given namespace="shop"' in scoped.reason


@pytest.mark.parametrize("query, words", [
    ('sum(rate(errors{namespace="payments"}[5m]))', "reads namespace 'payments'"),
    ('errors / on() requests{namespace="payments"}', "reads namespace 'payments'"),
    ('errors{namespace=~"shop|payments"}', "with =~"),
    ('errors{namespace=~"shop"}', "with =~"),
    ('errors{namespace!="shop"}', "with !="),
    ('errors{namespace!~"kube-.*"}', "with !~"),
    ('errors{job="a" or namespace="payments"}', "'or' between matchers"),
    ('errors{job="x\\" or namespace=\\"payments"}', "could not be confined"),
    ("max_over_time(rate(x[5m])[1h:])", "explicit resolution"),
    ("sum(rate(errors[5m]", "not valid PromQL"),
    ("x" * (MAX_QUERY_LENGTH + 1), "over the limit"),
])
def test_a_query_reaching_another_namespace_or_that_cannot_be_scoped_is_refused_with_a_reason(query, words):
    scoped = scope(query, "shop")
    assert scoped.refused and words in scoped.reason, scoped


def test_a_query_already_naming_its_own_namespace_is_sent_as_written():
    query = 'sum(rate(errors{namespace="shop"}[5m]))'
    scoped = scope(query, "shop")
    assert scoped.query == query and "given" not in scoped.reason


def problems_of(text: str) -> list[str]:
    from remediator.api.validation import validate_text
    return [str(p) for doc in validate_text(text) for p in doc.problems]


RUNBOOK = """
apiVersion: remediator.dev/v1alpha1
kind: Runbook
metadata: {{name: rb{namespace}}}
spec:
  triggers: [{{anomaly: {{query: '{anomaly}'}}}}]
  target: {{kind: Deployment, name: web}}
  steps:
    - {{name: restart, action: restartRollout, verify: {{promql: {{query: '{verify}', threshold: 1}}}}}}
"""


def test_remediator_validate_refuses_a_runbook_whose_promql_reads_another_namespace():
    text = RUNBOOK.format(namespace=", namespace: shop", anomaly='rate(errors{namespace="payments"}[5m])',
                          verify='errors{namespace=~".+"}')
    found = problems_of(text)
    assert any(p.startswith("spec.triggers[0].anomaly.query: refused for tenant PromQL") and "'payments'" in p
               for p in found), found
    assert any(p.startswith("spec.steps[0].verify.promql.query") and "=~" in p for p in found), found
    fine = RUNBOOK.format(namespace=", namespace: shop", anomaly='rate(errors{namespace="shop"}[5m])',
                          verify="errors")
    assert problems_of(fine) == []


def test_without_a_namespace_in_the_file_only_what_no_namespace_may_do_is_refused():
    named = RUNBOOK.format(namespace="", anomaly='rate(errors{namespace="shop"}[5m])', verify="errors")
    assert problems_of(named) == [], "applied in shop it is fine: the apiserver-side namespace decides"
    regex = RUNBOOK.format(namespace="", anomaly='rate(errors{namespace!="shop"}[5m])', verify="errors")
    assert any("with !=" in p for p in problems_of(regex))


def test_remediator_validate_refuses_an_slo_whose_query_reads_another_namespace():
    text = """
apiVersion: remediator.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: api, namespace: shop}
spec:
  service: api
  target: {kind: Deployment, name: api}
  objective: 99.9
  sli:
    badTotal:
      bad: 'sum(rate(http_requests_total{namespace="payments",code=~"5.."}[{{ window }}]))'
      total: 'sum(rate(http_requests_total{namespace="{{ namespace }}"}[{{ window }}]))'
"""
    found = problems_of(text)
    assert len(found) == 1 and found[0].startswith("spec.sli.badTotal.bad") and "'payments'" in found[0], found
