from __future__ import annotations

import pytest

from remediator.api.models import Matcher, RunbookSpec, Signal
from remediator.core.match.matching import (
    RunbookEntry,
    Specificity,
    match_signal,
    matcher_holds,
    render_target,
    signal_namespace,
)

STEPS = [{"name": "restart", "action": "restartRollout"}]


def runbook(name: str, trigger: dict, *, namespace: str = "shop", target: str = "{{ labels.deployment }}",
            kind: str = "Deployment", priority: int = 0, suspend: bool = False, triggers=None) -> RunbookEntry:
    spec = RunbookSpec.model_validate({
        "triggers": triggers or [trigger], "target": {"kind": kind, "name": target}, "steps": STEPS,
        "priority": priority, "suspend": suspend,
    })
    return RunbookEntry(namespace=namespace, name=name, generation=1, spec=spec)


def alert_rb(name: str, *matchers: tuple[str, str, str], **kw) -> RunbookEntry:
    return runbook(name, {"alert": {"matchers": [{"name": n, "op": op, "value": v} for n, op, v in matchers]}}, **kw)


def alert(name: str = "KubePodCrashLooping", **labels: str) -> Signal:
    labels.setdefault("namespace", "shop")
    labels.setdefault("deployment", "web")
    return Signal(source="alertmanager", name=name, fingerprint="f1", labels={"alertname": name, **labels})


def rejected_reason(result, key: str) -> str:
    return dict(result.rejected)[key]


# ---------------------------------------------------------------- matcher semantics


@pytest.mark.parametrize("op, value, labels, holds", [
    ("=", "web", {"app": "web"}, True),
    ("=", "web", {"app": "web2"}, False),
    ("!=", "web", {"app": "web2"}, True),
    ("!=", "web", {"app": "web"}, False),
    ("=", "", {}, True),                       # a missing label equals ""
    ("!=", "", {}, False),                     # so != "" means "present and non-empty"
    ("!=", "", {"app": "x"}, True),
    ("=~", "web", {"app": "web-canary"}, False),  # anchored: not a substring search
    ("=~", "web.*", {"app": "web-canary"}, True),
    ("=~", "prod|staging", {"app": "prod"}, True),
    ("=~", "prod|staging", {"app": "preprod"}, False),  # anchoring covers the whole alternation
    ("=~", "prod|staging", {"app": "staging-2"}, False),
    ("=~", ".*", {}, True),                    # missing label "" matches .*
    ("=~", ".+", {}, False),
    ("!~", "web.*", {"app": "api"}, True),
    ("!~", "web.*", {"app": "webshop"}, False),
    ("!~", "web", {"app": "webshop"}, True),   # anchored for negative regex too
    ("=~", "web", {"app": "web\n"}, False),    # no sneaking a newline past the anchor
    ("=~", "(", {"app": "("}, False),          # invalid regex never matches
    ("!~", "(", {"app": "x"}, False),          # ... not even negatively
])
def test_matchers_follow_alertmanager_semantics(op, value, labels, holds):
    assert matcher_holds(Matcher(name="app", op=op, value=value), labels)[0] is holds


def test_invalid_regex_is_explained():
    holds, why = matcher_holds(Matcher(name="app", op="=~", value="(unclosed"), {"app": "x"})
    assert not holds and "invalid regex" in why


def test_alertname_defaults_to_the_signal_name_when_labels_lack_it():
    rb = alert_rb("r", ("alertname", "=", "Down"))
    signal = Signal(source="alertmanager", name="Down", fingerprint="f", labels={"namespace": "shop", "deployment": "w"})
    assert match_signal(signal, "shop", [rb]).runbook == rb


# ---------------------------------------------------------------- namespace rule (security)


def test_alert_labelled_with_another_namespace_never_retargets_runbook():
    rb = alert_rb("restart-crashloop", ("alertname", "=", "KubePodCrashLooping"), namespace="shop")
    signal = alert(namespace="payments", deployment="ledger")
    result = match_signal(signal, "payments", [rb])
    assert result.runbook is None and result.target is None
    assert "only handles signals about it" in rejected_reason(result, "shop/restart-crashloop")


def test_signal_whose_namespace_label_contradicts_where_it_was_received_is_refused_for_every_runbook():
    rb = alert_rb("r", ("alertname", "=", "KubePodCrashLooping"), namespace="shop")
    result = match_signal(alert(namespace="kube-system"), "shop", [rb])
    assert result.runbook is None
    assert "never retargets" in result.reasons[0]
    assert "never retargets" in rejected_reason(result, "shop/r")


def test_signal_about_no_namespace_matches_nothing():
    rb = alert_rb("r", ("alertname", "=", "Down"))
    signal = Signal(source="alertmanager", name="Down", labels={"alertname": "Down"})
    result = match_signal(signal, None, [rb])
    assert result.runbook is None and "concerns no namespace" in result.reasons[0]


def test_namespace_comes_from_the_label_when_the_edge_gives_none():
    assert signal_namespace(alert(namespace="shop"), None) == ("shop", None)
    assert signal_namespace(Signal(source="podState", name="OOMKilled"), "shop") == ("shop", None)


def test_target_namespace_is_always_the_runbooks_and_the_name_cannot_escape_it():
    rb = alert_rb("r", ("alertname", "=", "KubePodCrashLooping"))
    result = match_signal(alert(deployment="../../kube-system/coredns"), "shop", [rb])
    assert result.target is None and result.runbook is None
    assert any("DNS-1123" in r for r in result.reasons)


def test_winner_whose_target_cannot_render_does_not_hand_over_to_the_runner_up():
    specific = alert_rb("specific", ("alertname", "=", "KubePodCrashLooping"), ("team", "=", "a"),
                        target="{{ labels.service }}")
    generic = alert_rb("generic", ("alertname", "=", "KubePodCrashLooping"))
    result = match_signal(alert(team="a"), "shop", [generic, specific])
    assert result.runbook is None and not result.matched
    assert "needs label 'service'" in rejected_reason(result, "shop/specific")
    assert "more specific" in rejected_reason(result, "shop/generic")


# ---------------------------------------------------------------- choosing


def test_suspended_runbook_never_matches():
    rb = alert_rb("r", ("alertname", "=", "KubePodCrashLooping"), suspend=True)
    result = match_signal(alert(), "shop", [rb])
    assert result.runbook is None and rejected_reason(result, "shop/r") == "suspended"


def test_more_equality_matchers_beat_regex_matchers_which_beat_fewer_matchers():
    two_eq = alert_rb("two-eq", ("alertname", "=", "KubePodCrashLooping"), ("team", "=", "a"))
    eq_and_regex = alert_rb("eq-regex", ("alertname", "=", "KubePodCrashLooping"), ("team", "=~", "a|b"))
    one_eq = alert_rb("one-eq", ("alertname", "=", "KubePodCrashLooping"))
    regex_only = alert_rb("regex-only", ("alertname", "=~", "KubePod.*"), ("team", "=~", ".+"))
    candidates = [one_eq, regex_only, eq_and_regex, two_eq]
    assert match_signal(alert(team="a"), "shop", candidates).runbook == two_eq
    assert match_signal(alert(team="a"), "shop", [one_eq, regex_only, eq_and_regex]).runbook == eq_and_regex
    assert match_signal(alert(team="a"), "shop", [one_eq, regex_only]).runbook == one_eq


def test_every_candidate_gets_a_reason():
    winner = alert_rb("a-win", ("alertname", "=", "KubePodCrashLooping"), ("team", "=", "a"))
    loser = alert_rb("b-lose", ("alertname", "=", "KubePodCrashLooping"))
    wrong = alert_rb("c-wrong", ("alertname", "=", "Other"))
    elsewhere = alert_rb("d-else", ("alertname", "=", "KubePodCrashLooping"), namespace="other")
    result = match_signal(alert(team="a"), "shop", [winner, loser, wrong, elsewhere])
    assert result.runbook == winner
    assert {key for key, _ in result.rejected} == {"shop/b-lose", "shop/c-wrong", "other/d-else"}
    assert "alertname='KubePodCrashLooping'" in rejected_reason(result, "shop/c-wrong")
    assert "more specific (2 equality" in rejected_reason(result, "shop/b-lose")
    assert result.reasons[0].startswith("Runbook shop/a-win matches")
    assert result.reasons[-1] == "target is Deployment/shop/web"


def test_priority_breaks_a_tie_in_specificity_then_the_name_does():
    low = alert_rb("a-low", ("alertname", "=", "KubePodCrashLooping"), priority=1)
    high = alert_rb("z-high", ("alertname", "=", "KubePodCrashLooping"), priority=5)
    result = match_signal(alert(), "shop", [low, high])
    assert result.runbook == high and "higher priority (5 vs 1)" in rejected_reason(result, "shop/a-low")
    first = alert_rb("alpha", ("alertname", "=", "KubePodCrashLooping"))
    second = alert_rb("beta", ("alertname", "=", "KubePodCrashLooping"))
    for order in ([first, second], [second, first]):
        assert match_signal(alert(), "shop", order).runbook == first
    assert "name sorts first" in rejected_reason(match_signal(alert(), "shop", [second, first]), "shop/beta")


def test_a_runbook_with_several_triggers_counts_its_most_specific_match():
    both = runbook("both", {}, triggers=[
        {"alert": {"matchers": [{"name": "alertname", "value": "KubePodCrashLooping"}]}},
        {"alert": {"matchers": [{"name": "alertname", "value": "KubePodCrashLooping"},
                                {"name": "team", "value": "a"}, {"name": "tier", "value": "web"}]}},
    ])
    two = alert_rb("two", ("alertname", "=", "KubePodCrashLooping"), ("team", "=", "a"))
    assert match_signal(alert(team="a", tier="web"), "shop", [two, both]).runbook == both


def test_no_match_says_so():
    result = match_signal(alert(), "shop", [])
    assert result.runbook is None and result.reasons == ["no Runbook matches alertmanager signal 'KubePodCrashLooping'"]


# ---------------------------------------------------------------- other trigger kinds


def test_trigger_kinds_only_take_their_own_signal_source():
    rb = runbook("slo", {"sloBurn": {"slo": "checkout-availability"}})
    signal = alert("checkout-availability")
    result = match_signal(signal, "shop", [rb])
    assert result.runbook is None and "does not take alertmanager signals" in rejected_reason(result, "shop/slo")


@pytest.mark.parametrize("slo, severity, matches", [
    ("checkout", "page", True),
    ("checkout", "ticket", False),
    ("search", "page", False),
])
def test_slo_burn_trigger_matches_slo_name_and_severity(slo, severity, matches):
    rb = runbook("slo", {"sloBurn": {"slo": "checkout", "severity": "page"}}, target="web")
    signal = Signal(source="sloBurn", name=slo, severity=severity, labels={"namespace": "shop"})
    assert (match_signal(signal, "shop", [rb]).runbook == rb) is matches


@pytest.mark.parametrize("state, labels, matches", [
    ("CrashLoopBackOff", {"app": "web", "tier": "front"}, True),
    ("OOMKilled", {"app": "web", "tier": "front"}, False),
    ("CrashLoopBackOff", {"app": "api", "tier": "front"}, False),
    ("CrashLoopBackOff", {"app": "web"}, False),
    ("CrashLoopBackOff", {"app": "web", "tier": "front", "canary": "true"}, False),
])
def test_pod_state_trigger_matches_state_and_selector(state, labels, matches):
    rb = runbook("pods", {"podState": {
        "states": ["CrashLoopBackOff", "ImagePullBackOff"],
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]},
                                          {"key": "canary", "operator": "DoesNotExist"}]},
    }}, target="{{ labels.app }}")
    signal = Signal(source="podState", name=state, fingerprint="uid", labels={"namespace": "shop", **labels})
    result = match_signal(signal, "shop", [rb])
    assert (result.runbook == rb) is matches
    if matches:
        assert result.target.name == "web"


def test_pod_state_selector_explains_the_failed_requirement():
    rb = runbook("pods", {"podState": {"states": ["OOMKilled"], "selector": {
        "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]},
                             {"key": "owner", "operator": "Exists"}]}}}, target="web")
    signal = Signal(source="podState", name="OOMKilled", labels={"namespace": "shop", "track": "canary", "owner": "x"})
    assert "track not in ['canary']" in rejected_reason(match_signal(signal, "shop", [rb]), "shop/pods")
    signal = Signal(source="podState", name="OOMKilled", labels={"namespace": "shop"})
    assert "'owner' must exist" in rejected_reason(match_signal(signal, "shop", [rb]), "shop/pods")


def test_anomaly_trigger_matches_the_query_the_signal_scored():
    query = 'histogram_quantile(0.95, sum by (le) (rate(http_duration_bucket{job="web"}[5m])))'
    rb = runbook("latency", {"anomaly": {"query": query, "description": "p95 latency"}}, target="web")
    scored = Signal(source="anomaly", name="p95 latency", labels={"namespace": "shop"},
                    annotations={"query": "histogram_quantile(0.95,  sum by (le)\n (rate(http_duration_bucket"
                                          '{job="web"}[5m])))'})
    other = scored.model_copy(update={"annotations": {"query": "up == 0"}})
    assert match_signal(scored, "shop", [rb]).runbook == rb
    assert match_signal(other, "shop", [rb]).runbook is None


def test_manual_signals_are_not_matched_by_triggers():
    rb = alert_rb("r", ("alertname", "=~", ".*"))
    signal = Signal(source="manual", name="restart please", labels={"namespace": "shop", "deployment": "web"})
    assert match_signal(signal, "shop", [rb]).runbook is None


def test_node_targets_are_cluster_scoped():
    rb = alert_rb("drain", ("alertname", "=", "NodeDown"), kind="Node", target="{{ labels.node }}")
    target = render_target(rb, alert("NodeDown", node="ip-10-0-0-1.ec2.internal"))
    assert target.kind == "Node" and target.namespace is None and target.name == "ip-10-0-0-1.ec2.internal"


def test_specificity_orders_equalities_then_regexes_then_count():
    assert Specificity(2, 0, 2) > Specificity(1, 5, 6) > Specificity(1, 1, 2) > Specificity(1, 0, 3) > Specificity(1, 0, 1)


def test_crashloop_trigger_waits_for_its_minimum_restart_count():
    from remediator.api.models import PodStateTrigger, Signal
    from remediator.core.match.matching import pod_state_matches

    trigger = PodStateTrigger(states=["CrashLoopBackOff"], min_restarts=3)
    few = Signal(source="podState", name="CrashLoopBackOff", fingerprint="x", labels={"restarts": "2"})
    many = few.model_copy(update={"labels": {"restarts": "5"}})
    assert not pod_state_matches(trigger, few).matched
    assert "at least 3" in pod_state_matches(trigger, few).reason
    assert pod_state_matches(trigger, many).matched


def test_a_runbook_of_another_namespace_that_would_match_is_named_and_refused():
    from remediator.core.match.matching import RunbookEntry, foreign_matches

    spec = RunbookSpec.model_validate({
        "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "HighErrorRate"}]}}],
        "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
        "steps": [{"name": "restart", "action": "restartRollout"}]})
    team_a = RunbookEntry(namespace="team-a", name="errors", generation=1, spec=spec)
    signal = Signal(source="alertmanager", name="HighErrorRate",
                    labels={"alertname": "HighErrorRate", "namespace": "team-b", "deployment": "web"})
    assert foreign_matches(signal, "team-b", [team_a]) == [
        "Runbook team-a/errors matches the signal's labels but acts only in namespace 'team-a', "
        "and the signal is about 'team-b': refused"]
    assert foreign_matches(signal, "team-a", [team_a]) == []
