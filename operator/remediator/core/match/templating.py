"""Target names rendered from signal labels: "{{ labels.deployment }}", "web-{{ labels.service }}".

Alert labels are untrusted input (anyone who can push to Alertmanager can set
them), so this is deliberately not Jinja and not an expression language:

- the only placeholder is `{{ labels.NAME }}`, NAME a Prometheus label name;
  anything else between braces is a syntax error, never evaluated;
- substitution is a single pass: a label value that itself looks like a
  placeholder is copied as text, never rendered again;
- the result must be a DNS-1123 subdomain (the rule for Deployment, Pod and
  Node names), so a crafted label can never produce "../x", "a/b", an empty
  name, upper case, spaces or anything longer than 253 characters. The
  namespace is never templated: it always comes from the Runbook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Prometheus label names: [a-zA-Z_][a-zA-Z0-9_]*
_PLACEHOLDER = re.compile(r"\{\{\s*labels\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
DNS1123_SUBDOMAIN_MAX = 253
_SHOWN_CHARS = 80  # how much of an untrusted value we echo back into reasons


class TemplateError(ValueError):
    """The template is malformed, needs a label the signal lacks, or renders an invalid name."""


def template_labels(template: str) -> tuple[str, ...]:
    """The label names a template reads, in order of first use; TemplateError if malformed."""
    _check_syntax(template)
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(template):
        seen.setdefault(match.group(1))
    return tuple(seen)


def render_name(template: str, labels: Mapping[str, str]) -> str:
    """Fill `{{ labels.X }}` from `labels` and check the result is a valid object name."""
    _check_syntax(template)
    missing = [name for name in template_labels(template) if name not in labels]
    if missing:
        have = ", ".join(sorted(labels)) or "none"
        raise TemplateError(
            f"target name template {_shown(template)} needs label {missing[0]!r}, "
            f"which the signal does not carry (labels present: {have})"
        )
    rendered = _PLACEHOLDER.sub(lambda match: str(labels[match.group(1)]), template)
    problem = dns1123_subdomain_problem(rendered)
    if problem:
        used = ", ".join(f"{name}={_shown(labels[name])}" for name in template_labels(template))
        source = f" (from {used})" if used else ""
        raise TemplateError(
            f"target name {_shown(rendered)} rendered from {_shown(template)}{source} "
            f"is not a valid DNS-1123 name: {problem}"
        )
    return rendered


def dns1123_subdomain_problem(name: str) -> str | None:
    """Why `name` is not a valid DNS-1123 subdomain, or None when it is."""
    if not name:
        return "it is empty"
    if len(name) > DNS1123_SUBDOMAIN_MAX:
        return f"it is {len(name)} characters long, the limit is {DNS1123_SUBDOMAIN_MAX}"
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        return (
            "only lower-case letters, digits, '-' and '.' are allowed, and each dot-separated "
            "part must start and end with a letter or digit"
        )
    return None


def _check_syntax(template: str) -> None:
    if not isinstance(template, str) or not template:
        raise TemplateError(f"target name template must be a non-empty string, got {_shown(template)}")
    leftover = _PLACEHOLDER.sub("", template)
    for token in ("{{", "}}", "{%", "%}", "{#", "#}"):
        if token in leftover:
            raise TemplateError(
                f"target name template {_shown(template)} has {_shown(token)} outside a placeholder: "
                "only '{{ labels.NAME }}' is supported (no expressions, filters or statements)"
            )


def _shown(value: str) -> str:
    text = str(value)
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + "…"
    return repr(text)
