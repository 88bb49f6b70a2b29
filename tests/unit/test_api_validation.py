"""Offline validation (remediator.api.validation) rejects what the apiserver rejects, naming the field.

BAD_RUNBOOKS, BAD_POLICIES and BAD_SLOS are shared with tests/integration/test_crd_validation.py,
which sends the same documents to a real apiserver: one table, two enforcers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from remediator.api.validation import Problem, validate_document, validate_text

ROOT = Path(__file__).resolve().parents[2]


def good_runbook() -> dict:
    """A Runbook that uses every trigger kind and most actions, and is valid."""
    return {
        "apiVersion": "remediator.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": "web"},
        "spec": {
            "triggers": [
                {"alert": {"matchers": [{"name": "alertname", "value": "KubePodCrashLooping"},
                                        {"name": "pod", "op": "=~", "value": "web-.*"},
                                        {"name": "letters", "op": "!~", "value": r"\pL+"}]}},
                {"sloBurn": {"slo": "web-availability"}},
                {"podState": {"states": ["CrashLoopBackOff"], "selector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["web"]},
                    {"key": "canary", "operator": "DoesNotExist"}]}}},
                {"anomaly": {"query": "p95_latency", "baseline": {"method": "ewma", "ewmaAlpha": 0.3}}},
            ],
            "target": {"kind": "Deployment", "name": "{{ labels.deployment }}"},
            "steps": [
                {"name": "restart", "action": "restartRollout"},
                {"name": "scale-up", "action": "scale", "risk": "medium",
                 "scale": {"minReplicas": 2, "maxReplicas": 6}},
                {"name": "rollback", "action": "rollback", "risk": "high", "timeout": "10m"},
                {"name": "delete-failing", "action": "deletePod", "deletePod": {"onlyFailing": True}},
                {"name": "more-memory", "action": "raiseMemory", "raiseMemory": {"maxLimit": "2Gi"}},
            ],
        },
    }


def good_node_runbook() -> dict:
    return {
        "apiVersion": "remediator.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": "node"},
        "spec": {
            "triggers": [{"alert": {"matchers": [{"name": "alertname", "value": "NodeNotReady"}]}}],
            "target": {"kind": "Node", "name": "{{ labels.node }}"},
            "steps": [{"name": "drain", "action": "cordonDrain", "risk": "high",
                       "drain": {"timeout": "10m"}}],
        },
    }


def good_policy() -> dict:
    return {
        "apiVersion": "remediator.dev/v1alpha1",
        "kind": "RemediationPolicy",
        "metadata": {"name": "default"},
        "spec": {
            "mode": "enforce",
            "approval": {"rules": [{"level": "low", "onTimeout": "proceed"},
                                   {"level": "high", "approvers": 1, "onTimeout": "deny"},
                                   {"level": "critical", "approvers": 2, "onTimeout": "escalate"}]},
            "freezeWindows": [{"name": "xmas", "start": "2025-12-24T00:00:00Z",
                               "end": "2025-12-27T00:00:00.5+01:00"}],
            "bounds": [{"namespaces": ["prod-*"], "maxMemory": "4Gi", "maxReplicas": 20}],
        },
    }


@dataclass(frozen=True)
class Bad:
    """A mistake, where it is reported, and text both enforcers put in the message."""

    id: str
    change: Callable[[dict], object]
    path: str
    says: str
    apiserver: bool = True  # False: the apiserver words this one differently (e.g. unknown fields)


def steps(spec: dict) -> list:
    return spec["steps"]


def matcher(spec: dict) -> dict:
    return spec["triggers"][0]["alert"]["matchers"][1]


def requirement(spec: dict, i: int) -> dict:
    return spec["triggers"][2]["podState"]["selector"]["matchExpressions"][i]


def anomaly(spec: dict) -> dict:
    return spec["triggers"][3]["anomaly"]


def window(spec: dict) -> dict:
    return spec["freezeWindows"][0]


REGEX_RULE = "value must be a valid RE2 regular expression when op is =~ or !~"
SELECTOR_RULE = "values must be non-empty when operator is In or NotIn, and empty for Exists or DoesNotExist"
QUANTITY_RULE = "must be a positive memory quantity such as 512Mi or 2Gi"
RFC3339_RULE = "must be an RFC 3339 time with an offset"
ANOMALY_STEP_RULE = "step must be above 0 and at most lookback, and lookback at most 3650d"

BAD_RUNBOOKS: tuple[Bad, ...] = (
    Bad("empty steps", lambda s: s.update(steps=[]), "spec.steps", "should have at least 1 items"),
    Bad("unknown action", lambda s: steps(s)[0].update(action="reboot"),
        "spec.steps[0].action", 'Unsupported value: "reboot"'),
    Bad("bad risk", lambda s: steps(s)[0].update(risk="extreme"),
        "spec.steps[0].risk", 'Unsupported value: "extreme"'),
    Bad("unknown cause kind", lambda s: steps(s)[0].update(when={"causeKinds": ["imageChange"]}),
        "spec.steps[0].when.causeKinds[0]", 'Unsupported value: "imageChange"'),
    Bad("bad duration", lambda s: steps(s)[0].update(timeout="5 minutes"),
        "spec.steps[0].timeout", '"5 minutes"'),
    Bad("min above max", lambda s: steps(s)[1]["scale"].update(minReplicas=5, maxReplicas=3),
        "spec.steps[1].scale", "minReplicas must be <= maxReplicas (minReplicas 5 > maxReplicas 3)"),
    Bad("invalid regex", lambda s: matcher(s).update(value="web-(unclosed"),
        "spec.triggers[0].alert.matchers[1]", REGEX_RULE),
    Bad("regex that unanchors itself", lambda s: matcher(s).update(value="a)|(b"),
        "spec.triggers[0].alert.matchers[1]", REGEX_RULE),
    Bad("lookahead, which RE2 lacks", lambda s: matcher(s).update(op="!~", value="(?=web)"),
        "spec.triggers[0].alert.matchers[1]", REGEX_RULE),
    Bad("unsupported target kind", lambda s: s["target"].update(kind="CronJob"),
        "spec.target.kind", 'Unsupported value: "CronJob"'),
    Bad("two kinds in one trigger", lambda s: s["triggers"][1].update(alert={"matchers": [{"name": "a"}]}),
        "spec.triggers[1]", "a trigger sets exactly one of alert, sloBurn, podState, anomaly, nodeCondition"),
    Bad("a trigger of no kind", lambda s: s["triggers"].append({}),
        "spec.triggers[4]", "a trigger sets exactly one of alert, sloBurn, podState, anomaly, nodeCondition"),
    Bad("a node condition trigger on a workload",
        lambda s: s["triggers"].append({"nodeCondition": {"type": "Ready", "for": "5m"}}),
        "spec.triggers", "a nodeCondition trigger needs target.kind Node (target.kind Deployment)"),
    Bad("a node condition of no type's grammar",
        lambda s: s["triggers"].append({"nodeCondition": {"type": "Ready now!"}}),
        "spec.triggers[4].nodeCondition.type", "should match", apiserver=False),
    Bad("scale step without scale", lambda s: steps(s)[1].pop("scale"),
        "spec.steps[1].scale", "scale is required when action is scale"),
    Bad("raiseMemory step without raiseMemory", lambda s: steps(s)[4].pop("raiseMemory"),
        "spec.steps[4].raiseMemory", "raiseMemory is required when action is raiseMemory"),
    Bad("scale params on a restart step", lambda s: steps(s)[0].update(scale={"maxReplicas": 3}),
        "spec.steps[0].scale", "scale is only allowed when action is scale (action is restartRollout)"),
    Bad("drain params on a rollback step", lambda s: steps(s)[2].update(drain={}),
        "spec.steps[2].drain", "drain is only allowed when action is cordonDrain (action is rollback)"),
    Bad("duplicate step names", lambda s: steps(s)[1].update(name="restart"),
        "spec.steps", "steps must have unique names (restart is used more than once)"),
    Bad("cordonDrain on a Deployment", lambda s: steps(s).append({"name": "drain", "action": "cordonDrain"}),
        "spec.steps", "action cordonDrain needs target.kind Node (step drain, target.kind Deployment)"),
    Bad("scale on a DaemonSet", lambda s: s["target"].update(kind="DaemonSet"),
        "spec.steps",
        "action scale needs target.kind Deployment or StatefulSet (step scale-up, target.kind DaemonSet)"),
    Bad("rollback on a Pod", lambda s: (s["target"].update(kind="Pod"), s["steps"].pop(1)),
        "spec.steps",
        "action rollback needs target.kind Deployment, StatefulSet, DaemonSet or Rollout "
        "(step rollback, target.kind Pod)"),
    Bad("memory limit that is no quantity", lambda s: steps(s)[4]["raiseMemory"].update(maxLimit="2 GB"),
        "spec.steps[4].raiseMemory.maxLimit", f"maxLimit {QUANTITY_RULE} (got 2 GB)"),
    Bad("memory limit of zero", lambda s: steps(s)[4]["raiseMemory"].update(maxLimit="0Gi"),
        "spec.steps[4].raiseMemory.maxLimit", f"maxLimit {QUANTITY_RULE}"),
    Bad("In without values", lambda s: requirement(s, 0).pop("values"),
        "spec.triggers[2].podState.selector.matchExpressions[0].values", f"{SELECTOR_RULE} (operator is In)"),
    Bad("Exists with values", lambda s: requirement(s, 1).update(values=["x"]),
        "spec.triggers[2].podState.selector.matchExpressions[1].values",
        f"{SELECTOR_RULE} (operator is DoesNotExist)"),
    Bad("anomaly clearing above firing", lambda s: anomaly(s).update(threshold=2, clearThreshold=2.5),
        "spec.triggers[3].anomaly.clearThreshold",
        "clearThreshold must be below threshold (clearThreshold 2.5, threshold 2)"),
    Bad("ewmaAlpha with medianMad", lambda s: anomaly(s)["baseline"].update(method="medianMad"),
        "spec.triggers[3].anomaly.baseline.ewmaAlpha",
        "ewmaAlpha is only allowed when method is ewma (method is medianMad)"),
    # longer than "for ever": added to now, it would be no date
    Bad("a step timeout past for ever", lambda s: steps(s)[0].update(timeout="999999999d"),
        "spec.steps[0].timeout", "at most 999999d"),
    Bad("a node condition held past for ever", lambda s: s["triggers"].append(
        {"nodeCondition": {"type": "Ready", "for": "200000w"}}), "spec.triggers[4].nodeCondition.for",
        "at most 999999d"),
    Bad("an anomaly step of zero", lambda s: anomaly(s)["baseline"].update(step="0s"),
        "spec.triggers[3].anomaly.baseline.step", ANOMALY_STEP_RULE),
    Bad("an anomaly step longer than its lookback", lambda s: anomaly(s)["baseline"].update(step="2h", lookback="1h"),
        "spec.triggers[3].anomaly.baseline.step", f"{ANOMALY_STEP_RULE} (step 2h, lookback 1h)"),
    Bad("an anomaly lookback past ten years", lambda s: anomaly(s)["baseline"].update(lookback="600w"),
        "spec.triggers[3].anomaly.baseline.step", f"{ANOMALY_STEP_RULE} (step "),
    # what YAML makes of a careless value: the apiserver takes no string for a number or a flag, nor does validate
    Bad("replicas as text", lambda s: steps(s)[1]["scale"].update(maxReplicas="3"),
        "spec.steps[1].scale.maxReplicas", "integer"),
    Bad("a flag as text", lambda s: s.update(suspend="yes"), "spec.suspend", "boolean"),
    Bad("a target name template with a filter", lambda s: s["target"].update(name="{{ labels.deployment | upper }}"),
        "spec.target.name", "should match"),
    Bad("a target name no object can have", lambda s: s["target"].update(name="Web_App"),
        "spec.target.name", "should match"),
    Bad("a target name template of a megabyte", lambda s: s["target"].update(name="{{ labels.deployment }}" + "x" * 600),
        "spec.target.name", "512"),
    Bad("too many steps",
        lambda s: s.update(steps=[{"name": f"s{i}", "action": "restartRollout"} for i in range(21)]),
        "spec.steps", "21"),
    Bad("unknown field", lambda s: steps(s)[0].update(foo=1),
        "spec.steps[0].foo", "unknown field", apiserver=False),
)

BAD_POLICIES: tuple[Bad, ...] = (
    Bad("two rules for one level", lambda s: s["approval"]["rules"].append({"level": "high", "approvers": 2}),
        "spec.approval.rules", "approval rules must have one rule per level (high has more than one)"),
    Bad("proceed on timeout at high risk", lambda s: s["approval"]["rules"][1].update(onTimeout="proceed"),
        "spec.approval.rules[1].onTimeout",
        "onTimeout proceed is only allowed for level low or medium (level is high)"),
    Bad("freeze window ending before it starts", lambda s: window(s).update(end="2025-12-23T00:00:00Z"),
        "spec.freezeWindows[0].end",
        "end must be after start (start 2025-12-24T00:00:00Z, end 2025-12-23T00:00:00Z)"),
    Bad("freeze window start that is no time", lambda s: window(s).update(start="tomorrow"),
        "spec.freezeWindows[0].start", f"start {RFC3339_RULE}, e.g. 2025-12-24T00:00:00Z (got tomorrow)"),
    Bad("freeze window end without an offset", lambda s: window(s).update(end="2025-12-27T00:00:00"),
        "spec.freezeWindows[0].end", f"end {RFC3339_RULE}"),
    Bad("freeze window in month 13", lambda s: window(s).update(start="2025-13-01T00:00:00Z"),
        "spec.freezeWindows[0].start", f"start {RFC3339_RULE}"),
    Bad("bounds memory that is no quantity", lambda s: s["bounds"][0].update(maxMemory="lots"),
        "spec.bounds[0].maxMemory", f"maxMemory {QUANTITY_RULE} (got lots)"),
    Bad("unknown mode", lambda s: s.update(mode="yolo"), "spec.mode", 'Unsupported value: "yolo"'),
    Bad("six approvers", lambda s: s["approval"]["rules"][1].update(approvers=6),
        "spec.approval.rules[1].approvers", "less than or equal to 5"),
)

def good_slo() -> dict:
    return {
        "apiVersion": "remediator.dev/v1alpha1",
        "kind": "ServiceLevelObjective",
        "metadata": {"name": "web-availability"},
        "spec": {
            "service": "web", "target": {"kind": "Deployment", "name": "web"}, "objective": 99.9, "window": "30d",
            "sli": {"badTotal": {"bad": 'sum(rate(http_requests_total{code=~"5..",service="{{ service }}"}'
                                        '[{{window}}]))',
                                 "total": 'sum(rate(http_requests_total{service="{{ service }}"}[{{ window }}]))'}},
            "alerting": {"windows": [{"severity": "page", "longWindow": "1h", "shortWindow": "5m", "burnRate": 14.4},
                                     {"severity": "ticket", "longWindow": "3d", "shortWindow": "6h",
                                      "burnRate": 1}]},
            "evaluationInterval": "30s", "minWindow": "1m",
        },
    }


def sli(spec: dict) -> dict:
    return spec["sli"]["badTotal"]


def burn_window(spec: dict, i: int = 0) -> dict:
    return spec["alerting"]["windows"][i]


BAD_SLOS: tuple[Bad, ...] = (
    Bad("an SLI with a fixed range", lambda s: sli(s).update(bad="sum(rate(http_requests_total[5m]))"),
        "spec.sli.badTotal.bad", "bad must use '{{ window }}'"),
    Bad("an SLI total with a fixed range", lambda s: sli(s).update(total="sum(rate(x[1h]))"),
        "spec.sli.badTotal.total", "total must use '{{ window }}'"),
    Bad("an SLI with an unknown placeholder", lambda s: sli(s).update(bad="rate(x{a=\"{{ pod }}\"}[{{ window }}])"),
        "spec.sli.badTotal.bad", "bad may have '{{' and '}}' only around a placeholder"),
    Bad("a good SLI with a stray brace", lambda s: s.update(sli={"goodTotal": {
        "good": "rate(x[{{ window }}]) }}", "total": "rate(y[{{ window }}])"}}),
        "spec.sli.goodTotal.good", "good may have '{{' and '}}' only around a placeholder"),
    Bad("both goodTotal and badTotal", lambda s: s["sli"].update(goodTotal={
        "good": "rate(x[{{ window }}])", "total": "rate(y[{{ window }}])"}),
        "spec.sli", "set exactly one of goodTotal or badTotal"),
    Bad("a short window as long as its long window", lambda s: burn_window(s).update(shortWindow="60m"),
        "spec.alerting.windows[0].shortWindow",
        "shortWindow must be shorter than longWindow (shortWindow 60m, longWindow 1h)"),
    Bad("a short window in days longer than hours", lambda s: burn_window(s, 1).update(shortWindow="4d"),
        "spec.alerting.windows[1].shortWindow",
        "shortWindow must be shorter than longWindow (shortWindow 4d, longWindow 3d)"),
    Bad("a long window beyond the SLO window", lambda s: s.update(window="2d"),
        "spec.alerting",
        "every alerting window's longWindow must be at most the SLO window: the budget would be judged over more "
        "than it covers (longWindow 3d, window 2d)"),
    Bad("a zero evaluation interval", lambda s: s.update(evaluationInterval="0s"),
        "spec.evaluationInterval", "evaluationInterval must be longer than 0s (got 0s)"),
    Bad("a zero minimum window", lambda s: s.update(minWindow="0m0s"),
        "spec.minWindow", "minWindow must be longer than 0s (got 0m0s)"),
)

SHIPPED = sorted((ROOT / "runbooks").glob("*.yaml")) + sorted((ROOT / "policies").glob("*.yaml"))


def broken(make: Callable[[], dict], bad: Bad, name: str | None = None) -> dict:
    doc = copy.deepcopy(make())
    bad.change(doc["spec"])
    if name:
        doc["metadata"]["name"] = name
    return doc


def reported(problems: list[Problem], bad: Bad) -> bool:
    return any(p.path == bad.path and bad.says in p.message for p in problems)


# ---------------------------------------------------------------- valid documents


@pytest.mark.parametrize("make", [good_runbook, good_node_runbook, good_policy, good_slo])
def test_a_valid_document_has_no_problems(make):
    assert validate_document(make()) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_runbooks_and_policies_are_valid(path):
    documents = validate_text(path.read_text())
    assert documents, f"{path} holds no remediator document"
    assert [str(p) for d in documents for p in d.problems] == []


# ---------------------------------------------------------------- each rule, named by its field


@pytest.mark.parametrize("bad", BAD_RUNBOOKS, ids=lambda b: b.id)
def test_a_bad_runbook_is_rejected_naming_the_field(bad):
    problems = validate_document(broken(good_runbook, bad))
    assert reported(problems, bad), [str(p) for p in problems]


@pytest.mark.parametrize("bad", BAD_POLICIES, ids=lambda b: b.id)
def test_a_bad_policy_is_rejected_naming_the_field(bad):
    problems = validate_document(broken(good_policy, bad))
    assert reported(problems, bad), [str(p) for p in problems]


@pytest.mark.parametrize("bad", BAD_SLOS, ids=lambda b: b.id)
def test_a_bad_slo_is_rejected_naming_the_field(bad):
    problems = validate_document(broken(good_slo, bad))
    assert reported(problems, bad), [str(p) for p in problems]


@pytest.mark.parametrize("bad", BAD_SLOS, ids=lambda b: b.id)
def test_the_slo_evaluator_refuses_what_validate_refuses(bad):
    from pydantic import ValidationError

    from remediator.api.slo import ServiceLevelObjectiveSpec

    with pytest.raises(ValidationError) as refused:
        ServiceLevelObjectiveSpec.model_validate(broken(good_slo, bad)["spec"])
    assert bad.says.split(" (")[0] in str(refused.value)


def test_scale_step_with_min_above_max_is_rejected_naming_the_field():
    doc = good_runbook()
    doc["spec"]["steps"][1]["scale"] = {"minReplicas": 5, "maxReplicas": 3}
    assert [str(p) for p in validate_document(doc)] == [
        "spec.steps[1].scale: minReplicas must be <= maxReplicas (minReplicas 5 > maxReplicas 3)"]


def test_an_invalid_regex_is_reported_with_the_reason_it_does_not_compile():
    doc = good_runbook()
    doc["spec"]["triggers"][0]["alert"]["matchers"][1]["value"] = "web-(unclosed"
    [problem] = validate_document(doc)
    assert problem.path == "spec.triggers[0].alert.matchers[1]"
    assert "missing )" in problem.message  # RE2's own reason, as the apiserver gives it


def test_an_invalid_regex_with_an_equality_op_is_just_a_string():
    doc = good_runbook()
    doc["spec"]["triggers"][0]["alert"]["matchers"][1].update(op="=", value="web-(")
    assert validate_document(doc) == []


def test_rules_still_run_on_well_formed_parts_when_another_part_is_malformed():
    doc = good_runbook()
    doc["spec"]["steps"][0]["risk"] = "extreme"
    doc["spec"]["steps"][1]["scale"] = {"minReplicas": 5, "maxReplicas": 3}
    paths = {p.path for p in validate_document(doc)}
    assert paths == {"spec.steps[0].risk", "spec.steps[1].scale"}


def test_defaults_apply_before_rules_as_on_the_apiserver():
    doc = good_runbook()
    doc["spec"]["steps"][1]["scale"] = {"maxReplicas": 0}  # minReplicas defaults to 1, and maxReplicas >= 1
    problems = [str(p) for p in validate_document(doc)]
    assert any(p.startswith("spec.steps[1].scale.maxReplicas: ") for p in problems), problems


# ---------------------------------------------------------------- documents and files


def test_other_api_groups_are_not_ours_to_validate():
    assert validate_document({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"nonsense": 1}}) == []


def test_an_unknown_kind_or_version_of_ours_is_an_error():
    typo = {"apiVersion": "remediator.dev/v1alpha1", "kind": "Runbok"}
    assert [p.path for p in validate_document(typo)] == ["kind"]
    doc = good_policy()
    doc["apiVersion"] = "remediator.dev/v1"
    assert [p.path for p in validate_document(doc)] == ["apiVersion"]


def test_a_document_without_name_or_spec_says_so():
    paths = [p.path for p in validate_document({"apiVersion": "remediator.dev/v1alpha1", "kind": "Runbook"})]
    assert paths == ["metadata.name", "spec"]


def test_a_multi_document_file_reports_each_of_our_documents_by_position_kind_and_name():
    bad = broken(good_runbook, BAD_RUNBOOKS[4], name="bad-scale")
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    text = yaml.safe_dump_all([good_policy(), deployment, None, bad])
    documents = validate_text(text)
    assert [(d.label, d.valid) for d in documents] == [
        ("doc 1 (RemediationPolicy/default)", True), ("doc 4 (Runbook/bad-scale)", False)]


def test_a_document_without_api_version_is_reported_not_skipped():
    [document] = validate_text("kind: Runbook\nmetadata: {name: x}\nspec: {}\n")
    assert [p.path for p in document.problems] == ["apiVersion"]


def test_a_document_that_is_not_a_mapping_is_reported():
    [document] = validate_text("- just\n- a list\n")
    assert document.problems[0].path == "(document)"
