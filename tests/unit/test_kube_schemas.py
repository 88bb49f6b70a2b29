"""The converter from the apiserver's OpenAPI v3 documents to kubeconform's strict standalone schemas."""

from __future__ import annotations

import json

import pytest

from tests.support.kube_schemas import (
    group_version,
    kinds_of,
    reachable,
    schema_path,
    standalone,
    strict,
    write_schemas,
)

REF = "#/components/schemas/"

APPS_V1 = {"components": {"schemas": {
    "io.k8s.api.apps.v1.Deployment": {
        "type": "object", "description": "long prose",
        "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Deployment"}],
        "properties": {"apiVersion": {"type": "string"},
                       "spec": {"allOf": [{"$ref": REF + "io.k8s.api.apps.v1.DeploymentSpec"}], "default": {}}}},
    "io.k8s.api.apps.v1.DeploymentSpec": {
        "type": "object",
        "properties": {"replicas": {"type": "integer"},
                       "strategy": {"$ref": REF + "io.k8s.api.apps.v1.DeploymentStrategy"},
                       "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
    "io.k8s.api.apps.v1.DeploymentStrategy": {"type": "object", "properties": {"type": {"type": "string"}}},
    "io.k8s.api.apps.v1.Unrelated": {"type": "object", "properties": {"x": {"type": "string"}}},
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions": {
        "type": "object", "properties": {"kind": {"type": "string"}},
        "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "DeleteOptions"},
                                            {"group": "apps", "version": "v1", "kind": "DeleteOptions"}]},
}}}


def test_index_paths_name_the_core_group_and_named_groups():
    assert group_version("api/v1") == ("", "v1")
    assert group_version("apis/apps/v1") == ("apps", "v1")
    with pytest.raises(ValueError, match="apis/apps"):
        group_version("apis/apps")


def test_schema_paths_follow_kubeconforms_template_for_core_and_named_groups():
    # kubeconform fills .Group with what precedes "/" in apiVersion, so the core group's is "v1"
    assert schema_path("", "v1", "ConfigMap") == "v1/configmap_v1-strict.json"
    assert schema_path("remediator.dev", "v1alpha1", "Runbook") == "remediator.dev/runbook_v1alpha1-strict.json"


def test_a_document_lists_only_its_own_group_versions_kinds():
    assert kinds_of(APPS_V1, "apps", "v1") == {"Deployment": "io.k8s.api.apps.v1.Deployment",
                                                "DeleteOptions": "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"}
    assert kinds_of(APPS_V1, "", "v1") == {"DeleteOptions": "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"}


def test_only_components_a_kind_reaches_are_carried_along():
    names = reachable(APPS_V1["components"]["schemas"], "io.k8s.api.apps.v1.Deployment")
    assert names == ["io.k8s.api.apps.v1.Deployment", "io.k8s.api.apps.v1.DeploymentSpec",
                     "io.k8s.api.apps.v1.DeploymentStrategy"]


def test_objects_with_properties_refuse_unknown_fields_but_maps_and_open_objects_stay_open():
    out = strict({"type": "object", "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}},
        "nested": {"type": "object", "properties": {"b": {"type": "string"}}}}})
    assert out["additionalProperties"] is False
    assert out["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in out["properties"]["raw"]
    assert out["properties"]["nested"]["additionalProperties"] is False


def test_a_field_named_like_a_keyword_is_kept_as_a_property():
    out = strict({"type": "object", "properties": {"description": {"type": "string"}, "$ref": {"type": "string"}}})
    assert set(out["properties"]) == {"description", "$ref"}


def test_a_standalone_schema_points_its_refs_at_its_own_definitions():
    doc = standalone(APPS_V1, "io.k8s.api.apps.v1.Deployment")
    text = json.dumps(doc)
    assert "#/components/schemas/" not in text and "long prose" not in text
    assert doc["properties"]["spec"]["allOf"] == [{"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}]
    assert set(doc["definitions"]) == {"io.k8s.api.apps.v1.Deployment", "io.k8s.api.apps.v1.DeploymentSpec",
                                       "io.k8s.api.apps.v1.DeploymentStrategy"}
    assert doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"]["additionalProperties"] is False


def test_every_kind_gets_a_file_where_kubeconform_looks(tmp_path):
    written = write_schemas({"apis/apps/v1": APPS_V1}, tmp_path)
    assert written == ["apps/deleteoptions_v1-strict.json", "apps/deployment_v1-strict.json"]
    assert json.loads((tmp_path / "apps/deployment_v1-strict.json").read_text())["additionalProperties"] is False
