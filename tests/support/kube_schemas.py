"""JSON schemas for kubeconform, generated from a live apiserver's OpenAPI v3 (there is no internet to fetch them).

The apiserver publishes one OpenAPI v3 document per group-version (/openapi/v3/apis/apps/v1 ...); each kind
is a component schema tagged with `x-kubernetes-group-version-kind`, referring to others by
`#/components/schemas/NAME`. kubeconform wants one standalone JSON schema per kind, found through its
`-schema-location` template, and in strict mode rejects fields the schema does not name. So each kind's file
carries the kind's schema at its root and, under `definitions`, every component it reaches; objects that list
their properties get `additionalProperties: false` unless they keep unknown fields on purpose.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

# kubeconform's template: .Group is the apiVersion before "/" ("v1" for the core group), .ResourceKind is lower case.
LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}{{ .StrictSuffix }}.json"
COMPONENTS = "#/components/schemas/"
DEFINITIONS = "#/definitions/"


def schema_path(group: str, version: str, kind: str) -> str:
    """Where LOCATION makes kubeconform look for a kind's strict schema."""
    return f"{group or version}/{kind.lower()}_{version}-strict.json"


def group_version(path: str) -> tuple[str, str]:
    """("", "v1") for the index path "api/v1", ("apps", "v1") for "apis/apps/v1"."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        return "", parts[1]
    if parts[0] == "apis" and len(parts) == 3:
        return parts[1], parts[2]
    raise ValueError(f"not a group-version path: {path!r}")


def kinds_of(document: dict, group: str, version: str) -> dict[str, str]:
    """kind -> component name, for the kinds of `group`/`version` this document serves (meta types such as
    DeleteOptions list every group-version; only this document's own count)."""
    schemas = document.get("components", {}).get("schemas", {})
    return {gvk["kind"]: name for name, schema in schemas.items()
            for gvk in schema.get("x-kubernetes-group-version-kind", [])
            if (gvk.get("group", ""), gvk["version"]) == (group, version)}


def references(schema: Any) -> set[str]:
    """Component names a schema refers to directly."""
    if isinstance(schema, dict):
        found = set()
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(COMPONENTS):
                found.add(value[len(COMPONENTS):])
            else:
                found |= references(value)
        return found
    if isinstance(schema, list):
        return set().union(*(references(item) for item in schema)) if schema else set()
    return set()


def reachable(schemas: dict[str, dict], root: str) -> list[str]:
    """Every component `root` reaches through $ref, itself included, in a stable order."""
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(sorted(references(schemas[name]) - seen))
    return sorted(seen)


def strict(schema: Any) -> Any:
    """A copy in which every object that lists its properties refuses others, and $refs point at `definitions`."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(COMPONENTS):
            out[key] = DEFINITIONS + value[len(COMPONENTS):]
        elif key in ("properties", "definitions"):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key == "description" or key.startswith("x-kubernetes-") and key != "x-kubernetes-preserve-unknown-fields":
            continue  # prose and apiserver-only rules make the files large and mean nothing to kubeconform
        else:
            out[key] = strict(value)
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def standalone(document: dict, component: str) -> dict:
    """The strict, self-contained JSON schema of one kind of a group-version document."""
    schemas = document["components"]["schemas"]
    root = strict(copy.deepcopy(schemas[component]))
    root["definitions"] = {name: strict(schemas[name]) for name in reachable(schemas, component)}
    return root


def write_schemas(documents: dict[str, dict], directory: Path) -> list[str]:
    """One file per kind under `directory`, laid out for LOCATION, from {index path: document};
    returns the relative paths written."""
    written = []
    for index_path, document in sorted(documents.items()):
        group, version = group_version(index_path)
        for kind, component in sorted(kinds_of(document, group, version).items()):
            path = directory / schema_path(group, version, kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(standalone(document, component)))
            written.append(str(path.relative_to(directory)))
    return written


def fetch_documents(api_client) -> dict[str, dict]:
    """Every group-version OpenAPI v3 document the apiserver serves (the edge: HTTP through the admin client)."""
    def get(path: str) -> dict:
        method, url, headers, body, _ = api_client.param_serialize(
            "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        resp = api_client.call_api(method, url, header_params=headers, body=body)
        resp.read()
        return json.loads(resp.data)

    index = get("/openapi/v3")["paths"]
    return {path: get(entry["serverRelativeURL"]) for path, entry in sorted(index.items())
            if path.startswith("api/") or path.startswith("apis/") and path.count("/") == 2}
