"""Offline validation of remediator YAML with the apiserver's rules, for CI and `remediator validate`.

A document passes when the apiserver would accept it: the pydantic models
(which the CRD schemas are generated from) and the rules of
`remediator.api.rules` (which the CRDs carry as CEL). Each problem names the
field by its path in the document, as the apiserver does:

    spec.steps[1].scale: minReplicas must be <= maxReplicas (minReplicas 5 > maxReplicas 3)

Documents of other API groups (a Deployment next to a Runbook) are skipped.
Pure: text in, problems out; no kubernetes, no I/O beyond reading the file given.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .crds import KINDS
from .models import API_VERSION, DURATION_PATTERN, GROUP
from .rules import render_message, rules_for

# Models that check their own rules when parsed (api/slo.py) leave them to rule_problems here, which reports
# each at its field's path, as the apiserver does.
RULES_REPORTED_HERE = {"skip_rules": True}
SPEC_MODELS: Mapping[str, type[BaseModel]] = {kind.kind: kind.spec for kind in KINDS}


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Document:
    index: int  # 1-based position in its file
    kind: str
    name: str
    problems: tuple[Problem, ...]

    @property
    def label(self) -> str:
        return f"doc {self.index} ({self.kind or '?'}/{self.name or '?'})"

    @property
    def valid(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------- one document


def validate_document(doc: Any) -> list[Problem]:
    """Problems with one parsed document; [] when the apiserver would accept it (or it is not ours)."""
    if not isinstance(doc, Mapping):
        return [Problem("(document)", f"expected a mapping (an object), got {type(doc).__name__}")]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not is_ours(api_version):
        return []
    problems = []
    if api_version != API_VERSION:
        problems.append(Problem("apiVersion", f"unsupported version {api_version!r}: expected {API_VERSION}"))
    if kind not in SPEC_MODELS:
        known = ", ".join(sorted(SPEC_MODELS))
        return [*problems, Problem("kind", f"unknown kind {kind!r} in {GROUP}: expected one of {known}")]
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping) or not (metadata.get("name") or metadata.get("generateName")):
        problems.append(Problem("metadata.name", "Required value: name or generateName is required"))
    if "spec" not in doc:
        return [*problems, Problem("spec", "Required value")]
    found = spec_problems(SPEC_MODELS[kind], doc["spec"])
    if not found:
        found = promql_problems(doc["spec"], metadata.get("namespace") if isinstance(metadata, Mapping) else None)
    return [*problems, *found]


# A namespace no object has: with the document's namespace unknown, only refusals that hold in any namespace count.
SOME_NAMESPACE = "namespace-not-given"


def promql_problems(spec: Mapping, namespace: str | None) -> list[Problem]:
    """Tenant PromQL the operator would refuse to send (core.promql_scope): it must stay in its namespace."""
    from datetime import timedelta

    from ..core.slo.burn_rate import render_sli_query
    from ..core.match.promql_scope import scope

    queries = [(f"spec.triggers[{i}].anomaly.query", (t.get("anomaly") or {}).get("query"))
               for i, t in enumerate(spec.get("triggers") or [])]
    queries += [(f"spec.steps[{i}].verify.promql.query", ((s.get("verify") or {}).get("promql") or {}).get("query"))
                for i, s in enumerate(spec.get("steps") or [])]
    sli = spec.get("sli") or {}
    for kind, fields in (("goodTotal", ("good", "total")), ("badTotal", ("bad", "total"))):
        for field in fields:
            template = (sli.get(kind) or {}).get(field)
            if template:
                queries.append((f"spec.sli.{kind}.{field}", render_sli_query(
                    template, window=timedelta(minutes=5), namespace=namespace or SOME_NAMESPACE,
                    service=str(spec.get("service", "")), slo="slo")))
    problems = []
    for path, query in queries:
        if not query:
            continue
        result = scope(query, namespace or SOME_NAMESPACE)
        if result.refused and (namespace or "reads namespace" not in result.reason):
            problems.append(Problem(path, f"refused for tenant PromQL: {result.reason}"))
    return problems


def is_ours(api_version: Any) -> bool:
    return isinstance(api_version, str) and api_version.split("/")[0] == GROUP


def spec_problems(model: type[BaseModel], spec: Any) -> list[Problem]:
    try:
        model.model_validate(spec, context=RULES_REPORTED_HERE, strict=True)  # as the apiserver: "3" is no integer
        schema_problems: list[Problem] = []
    except ValidationError as e:
        schema_problems = [pydantic_problem("spec", error) for error in e.errors()]
    return dedupe([*schema_problems, *rule_problems(model, spec, "spec")])


def rule_problems(model: type[BaseModel], data: Any, path: str) -> list[Problem]:
    """The rules of `model` and of every model under it, on each part that is itself well formed.

    As the apiserver does, a rule is checked on the object as stored: defaults
    applied, unset optional fields absent (the model's wire form).
    """
    if not isinstance(data, Mapping):
        return []
    problems = []
    try:
        wire = model.model_validate(data, context=RULES_REPORTED_HERE).wire()
    except ValidationError:
        wire = None  # its own shape is wrong: pydantic said so; its parts may still be checked
    if wire is not None:
        for rule in rules_for(model):
            if not rule.holds(wire):
                problems.append(Problem(join(path, rule.field), render_message(rule, wire)))
    for name, info in model.model_fields.items():
        key = info.alias or name
        child, many = model_under(info.annotation)
        if child is None or key not in data:
            continue
        value = data[key]
        if many and isinstance(value, list):
            for i, item in enumerate(value):
                problems += rule_problems(child, item, f"{join(path, key)}[{i}]")
        elif not many:
            problems += rule_problems(child, value, join(path, key))
    return problems


def model_under(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the model a field holds, whether it is a list of them); (None, False) for scalars and maps."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return model_under(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = model_under(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin is list:
        child, _ = model_under(typing.get_args(annotation)[0])
        return child, child is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if name else path


def dedupe(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# ---------------------------------------------------------------- pydantic errors, in the apiserver's words


def pydantic_problem(prefix: str, error: Mapping[str, Any]) -> Problem:
    path = prefix
    for part in error["loc"]:
        path = f"{path}[{part}]" if isinstance(part, int) else join(path, str(part))
    return Problem(path, pydantic_message(error))


def pydantic_message(error: Mapping[str, Any]) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "Required value"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("literal_error", "enum"):
        supported = ", ".join(json.dumps(v) for v in re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"Unsupported value: {show(value)}: supported values: {supported}"
    if kind in ("too_short", "too_long") and isinstance(value, list):
        side, bound = (("at least", ctx.get("min_length")) if kind == "too_short"
                       else ("at most", ctx.get("max_length")))
        return f"Invalid value: {len(value)}: should have {side} {bound} items"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DURATION_PATTERN:
            return f"Invalid value: {show(value)}: must be a duration such as 30s, 5m, 1h30m or 7d"
        return f"Invalid value: {show(value)}: should match '{ctx.get('pattern')}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"Invalid value: {show(value)}: {message}" if is_scalar(value) else message


def show(value: Any) -> str:
    return json.dumps(value) if is_scalar(value) else type(value).__name__


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# ---------------------------------------------------------------- files


class UnreadableYaml(ValueError):
    """The text is not YAML; the message says where."""


def validate_text(text: str) -> list[Document]:
    """One entry per non-empty document of ours in a (multi-document) YAML text."""
    return [describe(index, doc) for index, doc in parse_documents(text) if is_ours_or_unknown(doc)]


def parse_documents(text: str) -> Iterator[tuple[int, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise UnreadableYaml(str(e).replace("\n", " ")) from None
    for index, doc in enumerate(docs, start=1):
        if doc is not None:
            yield index, doc


def is_ours_or_unknown(doc: Any) -> bool:
    """Skip other API groups' objects; keep ours, and anything too malformed to tell."""
    return not isinstance(doc, Mapping) or is_ours(doc.get("apiVersion")) or "apiVersion" not in doc


def describe(index: int, doc: Any) -> Document:
    if isinstance(doc, Mapping) and "apiVersion" not in doc:
        return Document(index, str(doc.get("kind") or ""), name_of(doc),
                        (Problem("apiVersion", f"Required value: expected {API_VERSION}"),))
    kind = str(doc.get("kind") or "") if isinstance(doc, Mapping) else ""
    return Document(index, kind, name_of(doc), tuple(validate_document(doc)))


def name_of(doc: Any) -> str:
    metadata = doc.get("metadata") if isinstance(doc, Mapping) else None
    if not isinstance(metadata, Mapping):
        return ""
    return str(metadata.get("name") or metadata.get("generateName") or "")
