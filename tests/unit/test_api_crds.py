"""The generated CRDs are structural, carry every rule where its model sits, and print useful columns."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from remediator.api import crds
from remediator.api.crds import KINDS, SchemaError, crd, structural
from remediator.api.models import DURATION_PATTERN, TARGET_KINDS, Model, RemediationStatus, RunbookStatus, StepStats
from remediator.api.slo import ServiceLevelObjectiveStatus
from remediator.api.rules import RULES, cel_validation
from remediator.api.validation import model_under

STRUCTURAL_KEYS = {
    "type", "description", "properties", "required", "items", "additionalProperties", "enum", "default",
    "format", "pattern", "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "x-kubernetes-validations",
}


def by_kind(name: str) -> dict:
    return crd(next(k for k in KINDS if k.kind == name))


def version(doc: dict) -> dict:
    [only] = doc["spec"]["versions"]
    return only


def schema_of(name: str) -> dict:
    return version(by_kind(name))["schema"]["openAPIV3Schema"]


def nodes(schema: dict, path: str = "") -> Iterator[tuple[str, dict]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def at(schema: dict, path: str) -> dict:
    for part in path.strip(".").split("."):
        if part.endswith("[]"):
            schema = schema["properties"][part[:-2]]["items"]
        else:
            schema = schema["properties"][part]
    return schema


def model_nodes(model: type[BaseModel], schema: dict, path: str = "") -> Iterator[tuple[type, str, dict]]:
    """(model, path, schema node) for the model and every model under it, following the field aliases."""
    yield model, path, schema
    for name, info in model.model_fields.items():
        child, many = model_under(info.annotation)
        if child is None:
            continue
        key = info.alias or name
        sub = schema["properties"][key]
        yield from model_nodes(child, sub["items"] if many else sub, f"{path}.{key}{'[]' if many else ''}")


# ---------------------------------------------------------------- the registry


def test_every_kind_is_served_and_stored_in_v1alpha1_with_a_status_subresource():
    for kind in KINDS:
        doc = crd(kind)
        assert doc["metadata"]["name"] == f"{kind.plural}.remediator.dev"
        assert doc["spec"]["group"] == "remediator.dev"
        v = version(doc)
        served = (v["name"], v["served"], v["storage"], v["subresources"])
        assert served == ("v1alpha1", True, True, {"status": {}})


def test_scopes_are_namespaced_except_the_cluster_policy():
    assert {k.kind: k.scope for k in KINDS if k.kind != "ServiceLevelObjective"} == {
        "Runbook": "Namespaced", "RemediationPolicy": "Cluster", "Remediation": "Namespaced",
        "RemediationApproval": "Namespaced"}


def test_the_slo_kind_is_registered_exactly_when_its_models_exist():
    spec = importlib.util.find_spec("remediator.api.slo")
    module = importlib.import_module("remediator.api.slo") if spec else None
    present = module is not None and all(
        hasattr(module, n) for n in ("ServiceLevelObjectiveSpec", "ServiceLevelObjectiveStatus"))
    assert ("ServiceLevelObjective" in {k.kind for k in KINDS}) is present


def test_one_file_per_crd_named_by_group_and_plural():
    assert sorted(crds.generated_files()) == sorted(f"remediator.dev_{k.plural}.yaml" for k in KINDS)


def test_generation_is_stable():
    assert crds.generated_files() == crds.generated_files()


# ---------------------------------------------------------------- structural schema


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_schema_node_is_structural(kind):
    for path, node in nodes(schema_of(kind)):
        assert set(node) <= STRUCTURAL_KEYS, f"{path}: {set(node) - STRUCTURAL_KEYS}"
        assert "type" in node, f"{path}: no type"
        if node["type"] == "object" and path != ".metadata":
            assert ("properties" in node) != ("additionalProperties" in node), path
        if node["type"] == "array":
            assert "items" in node, path


def test_optional_fields_are_not_required_and_required_ones_are():
    step = at(schema_of("Runbook"), "spec.steps[]")
    assert set(step["required"]) == {"name", "action"}
    assert "scale" in step["properties"] and "scale" not in step["required"]
    assert at(schema_of("Runbook"), "spec.steps[].scale")["required"] == ["maxReplicas"]


def test_literals_become_enums():
    runbook = schema_of("Runbook")
    assert at(runbook, "spec.steps[].risk")["enum"] == ["low", "medium", "high", "critical"]
    assert at(runbook, "spec.target.kind")["enum"] == list(TARGET_KINDS)
    assert "cordonDrain" in at(runbook, "spec.steps[].action")["enum"]


def test_every_duration_carries_the_duration_pattern():
    runbook = schema_of("Runbook")
    for path in ("spec.steps[].timeout", "spec.guard.cooldown", "spec.triggers[].anomaly.for",
                 "spec.steps[].verify.promql.for", "spec.triggers[].podState.gracePeriod"):
        assert at(runbook, path)["pattern"] == DURATION_PATTERN, path


def test_field_constraints_carry_over_with_openapi_v3_exclusive_bounds():
    runbook = schema_of("Runbook")
    assert at(runbook, "spec.steps")["minItems"] == 1 and at(runbook, "spec.steps")["maxItems"] == 20
    assert at(runbook, "spec.steps[].name")["maxLength"] == 63
    factor = at(runbook, "spec.steps[].raiseMemory.factor")
    assert (factor["minimum"], factor["exclusiveMinimum"], factor["maximum"]) == (1, True, 4)


def test_maps_become_additional_properties():
    labels = at(schema_of("Remediation"), "spec.signal.labels")
    assert labels == {"type": "object", "additionalProperties": {"type": "string"}}


def test_defaults_are_kept_and_empty_ones_dropped():
    runbook = schema_of("Runbook")
    assert at(runbook, "spec.steps[].risk")["default"] == "low"
    guard = {"cooldown": "10m", "maxRunsPerHour": 3, "maxConcurrentPerTarget": 1}
    assert at(runbook, "spec.guard")["default"] == guard
    assert "default" not in at(runbook, "spec.description")
    assert "default" not in at(runbook, "spec.triggers[].podState.selector")


def test_lists_and_strings_that_cel_walks_are_bounded():
    runbook, policy = schema_of("Runbook"), schema_of("RemediationPolicy")
    for schema, path in [(runbook, "spec.triggers"), (runbook, "spec.triggers[].alert.matchers"),
                         (runbook, "spec.triggers[].podState.selector.matchExpressions"),
                         (runbook, "spec.steps"), (policy, "spec.approval.rules"),
                         (policy, "spec.freezeWindows"), (policy, "spec.bounds")]:
        assert "maxItems" in at(schema, path), path
    for schema, path in [(runbook, "spec.triggers[].alert.matchers[].value"),
                         (runbook, "spec.steps[].raiseMemory.maxLimit"), (runbook, "spec.steps[].name"),
                         (policy, "spec.freezeWindows[].start"), (policy, "spec.bounds[].maxMemory")]:
        assert "maxLength" in at(schema, path), path


def test_a_union_is_refused_rather_than_turned_into_something_else():
    class Either(Model):
        value: int | str

    with pytest.raises(SchemaError, match="union"):
        structural(Either)


def test_a_set_is_refused_since_the_apiserver_forbids_unique_items():
    class Tags(Model):
        tags: set[str]

    with pytest.raises(SchemaError, match="uniqueItems"):
        structural(Tags)


# ---------------------------------------------------------------- rules where their model sits


def test_every_rule_is_on_the_schema_of_its_model_everywhere_the_model_is_used():
    placed = 0
    for kind in KINDS:
        spec = schema_of(kind.kind)["properties"]["spec"]
        for model, path, node in model_nodes(kind.spec, spec, "spec"):
            for rule in (r for r in RULES if r.model is model):
                assert cel_validation(rule) in node.get("x-kubernetes-validations", []), f"{path}: {rule.cel}"
                placed += 1
    assert placed >= len(RULES)


def test_cel_rules_come_only_from_the_rule_table_or_the_models_themselves():
    from_table = [cel_validation(r) for r in RULES]
    for kind in KINDS:
        for path, node in nodes(schema_of(kind.kind)):
            for validation in node.get("x-kubernetes-validations", []):
                own = validation.get("rule") == "self == oldSelf" or kind.kind == "ServiceLevelObjective" or \
                    validation == crds.DURATION_BOUND
                assert validation in from_table or own, f"{kind.kind}{path}: {validation}"


def test_a_rule_about_a_field_points_the_apiserver_at_that_field():
    scale = at(schema_of("Runbook"), "spec.steps[]")["x-kubernetes-validations"]
    required = next(v for v in scale if v["rule"] == "self.action != 'scale' || has(self.scale)")
    assert (required["fieldPath"], required["reason"]) == (".scale", "FieldValueRequired")


def test_messages_with_values_are_format_expressions_the_apiserver_can_afford():
    scale = at(schema_of("Runbook"), "spec.steps[].scale")["x-kubernetes-validations"]
    assert scale[:1] == [{
        "rule": "self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must be <= maxReplicas",
        "messageExpression": "'minReplicas must be <= maxReplicas (minReplicas %s > maxReplicas %s)'"
                             ".format([self.minReplicas, self.maxReplicas])",
    }]


def test_the_regex_rule_compiles_the_value_without_letting_or_absorb_the_error():
    [rule] = at(schema_of("Runbook"), "spec.triggers[].alert.matchers[]")["x-kubernetes-validations"]
    assert "|| true" not in rule["rule"] and "''.matches(has(self.value) ? self.value : '')" in rule["rule"]


def test_a_remediation_spec_is_immutable():
    rules = schema_of("Remediation")["properties"]["spec"]["x-kubernetes-validations"]
    assert {"rule": "self == oldSelf", "message": "spec is immutable: create a new object instead"} in rules
    assert all("oldSelf" not in v["rule"] for k in ("Runbook", "RemediationPolicy")
               for _, n in nodes(schema_of(k)) for v in n.get("x-kubernetes-validations", []))


# ---------------------------------------------------------------- printer columns


def columns(kind: str) -> list[dict]:
    return version(by_kind(kind))["additionalPrinterColumns"]


def test_kubectl_get_remediations_shows_phase_runbook_target_risk_cause_age_and_ttr():
    shown = [(c["name"], c["jsonPath"]) for c in columns("Remediation") if not c.get("priority")]
    assert shown == [("Phase", ".status.phase"), ("Runbook", ".spec.runbook.name"),
                     ("Target", ".status.targetDisplay"), ("Risk", ".status.risk.level"),
                     ("Cause", ".status.probableCause.kind"), ("Age", ".metadata.creationTimestamp"), ("TTR", ".status.timeToRecover")]


def test_kubectl_get_policies_shows_the_mode():
    assert [c["name"] for c in columns("RemediationPolicy") if not c.get("priority")] == ["Mode", "Age"]


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_printer_column_points_at_a_field_of_the_schema(kind):
    schema = schema_of(kind)
    for column in columns(kind):
        path = column["jsonPath"].replace("[0]", "[]")
        if path == ".metadata.creationTimestamp":
            continue
        node = at(schema, path)
        expected = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
        assert expected[column["type"]] == node["type"], column


@pytest.mark.parametrize("model, number, value, field, text", [
    (RemediationStatus, "timeToRecoverSeconds", 30.266, "timeToRecover", "30s"),
    (RemediationStatus, "timeToRecoverSeconds", 125.0, "timeToRecover", "2m5s"),
    (RunbookStatus, "medianTimeToRecoverSeconds", 90000.0, "medianTimeToRecover", "1d1h"),
    (ServiceLevelObjectiveStatus, "errorBudgetRemaining", -5.50433, "budgetLeft", "-550%"),
    (ServiceLevelObjectiveStatus, "errorBudgetRemaining", 0.75, "budgetLeft", "75%"),
])
def test_printer_column_text_is_written_next_to_its_number_by_every_writer(model, number, value, field, text):
    wire = model.model_validate({number: value}).wire()
    assert (wire[number], wire[field]) == (value, text)
    stale = model.model_validate({**wire, field: "stale"})  # read back from the apiserver, then written again
    assert stale.wire()[field] == text
    assert field not in model().wire()


def test_runbook_step_results_read_successes_over_steps_with_a_verdict():
    status = RunbookStatus(step_stats=[StepStats(name="restart", succeeded=3, failed=1),
                                       StepStats(name="rollback", succeeded=1)])
    assert status.wire()["stepResults"] == "restart 3/4, rollback 1/1"


@pytest.mark.parametrize("model, number, value", [
    (RemediationStatus, "timeToRecoverSeconds", float("inf")),
    (ServiceLevelObjectiveStatus, "errorBudgetRemaining", float("nan")),
    (ServiceLevelObjectiveStatus, "errorBudgetRemaining", -1e40),
])
def test_a_number_with_no_short_text_leaves_the_text_out_rather_than_a_status_the_apiserver_refuses(
        model, number, value):
    wire = model.model_validate({number: value}).model_dump(by_alias=True, exclude_none=True)
    assert not ({"timeToRecover", "budgetLeft"} & set(wire))


def test_every_duration_people_write_is_bounded_by_the_apiserver_and_none_the_operator_writes():
    for kind in KINDS:
        bounded = [(path, node) for path, node in nodes(schema_of(kind.kind)["properties"]["spec"])
                   if node.get("pattern") == DURATION_PATTERN]
        carries = [crds.DURATION_BOUND in node.get("x-kubernetes-validations", []) for _, node in bounded]
        if kind.kind in crds.WRITTEN_BY_PEOPLE:
            assert bounded and all(carries), kind.kind
        else:
            assert not any(carries), f"{kind.kind}: a rule on every status write buys nothing"
