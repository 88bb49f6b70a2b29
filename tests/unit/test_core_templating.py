from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remediator.core.match.templating import (
    TemplateError,
    dns1123_subdomain_problem,
    render_name,
    template_labels,
)


@pytest.mark.parametrize("template, labels, expected", [
    ("{{ labels.deployment }}", {"deployment": "web"}, "web"),
    ("web-{{ labels.service }}", {"service": "api"}, "web-api"),
    ("{{labels.a}}-{{ labels.b }}", {"a": "x", "b": "y"}, "x-y"),
    ("{{   labels.node   }}", {"node": "ip-10-0-0-1.ec2.internal"}, "ip-10-0-0-1.ec2.internal"),
    ("static-name", {}, "static-name"),
    ("{{ labels.app_name }}", {"app_name": "checkout"}, "checkout"),
])
def test_render_name_fills_label_placeholders(template, labels, expected):
    assert render_name(template, labels) == expected


def test_missing_label_is_a_clear_error_naming_the_label_and_what_is_there():
    with pytest.raises(TemplateError, match=r"needs label 'deployment'.*labels present: alertname, namespace"):
        render_name("{{ labels.deployment }}", {"alertname": "Down", "namespace": "shop"})


@pytest.mark.parametrize("value", [
    "../kube-system", "a/b", "..", ".", "", "Web", "web_1", "web api", "-web", "web-", "kube-system/web",
    "web.", ".web", "a..b", "x" * 254, "web\n", "web%2f", "{{ labels.other }}",
])
def test_a_crafted_label_can_never_render_a_path_or_invalid_name(value):
    with pytest.raises(TemplateError, match="not a valid DNS-1123 name"):
        render_name("{{ labels.deployment }}", {"deployment": value, "other": "x"})


def test_the_error_names_the_label_and_its_value():
    with pytest.raises(TemplateError, match=r"deployment='\.\./etc'"):
        render_name("{{ labels.deployment }}", {"deployment": "../etc"})


def test_a_huge_hostile_value_is_truncated_in_the_error():
    with pytest.raises(TemplateError) as caught:
        render_name("{{ labels.d }}", {"d": "A" * 10_000})
    assert len(str(caught.value)) < 600


def test_substitution_is_a_single_pass_so_a_value_is_never_rendered_again():
    # Even a value that looks like a placeholder stays text (and then fails the name check).
    with pytest.raises(TemplateError, match="DNS-1123"):
        render_name("{{ labels.a }}", {"a": "{{ labels.b }}", "b": "web"})


@pytest.mark.parametrize("template", [
    "{{ labels.a | lower }}",
    "{{ labels['a'] }}",
    "{{ labels.a.b }}",
    "{{ a }}",
    "{{ labels.a + 'x' }}",
    "{% if x %}web{% endif %}",
    "{# comment #}web",
    "web-{{ labels.a",
    "web-}}",
    "{{ config.__class__ }}",
    "",
])
def test_anything_but_a_plain_label_lookup_is_a_syntax_error(template):
    with pytest.raises(TemplateError):
        render_name(template, {"a": "web", "x": "1"})


def test_template_labels_lists_each_label_once_in_order():
    assert template_labels("{{ labels.b }}-{{ labels.a }}-{{ labels.b }}") == ("b", "a")
    assert template_labels("fixed") == ()


@pytest.mark.parametrize("name, ok", [
    ("web", True), ("a", True), ("1", True), ("web-1.prod", True), ("x" * 253, True),
    ("x" * 254, False), ("", False), ("Web", False), ("web..x", False),
])
def test_dns1123_subdomain_problem(name, ok):
    assert (dns1123_subdomain_problem(name) is None) == ok


@given(st.text(max_size=80))
def test_whatever_the_label_the_result_is_a_dns1123_name_or_an_error(value):
    try:
        rendered = render_name("app-{{ labels.x }}", {"x": value})
    except TemplateError:
        return
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", rendered)
    assert "/" not in rendered and ".." not in rendered
