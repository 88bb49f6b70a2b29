"""Tenant PromQL nested deeply (well under the 4,096-character limit) is scoped or refused with a reason, never a
RecursionError out of the scoper (which would crash an anomaly tick, a verification or `remediator validate`)."""

from __future__ import annotations

import pytest

from remediator.core.match.promql_scope import scope
from remediator.signals.prometheus import QueryRefused, scoped


@pytest.mark.parametrize("query", ["(" * 1000 + "up" + ")" * 1000, "-" * 1400 + "up"])
def test_a_query_nested_past_the_parsers_depth_is_refused_with_a_reason(query):
    assert len(query) < 4096
    assert scope(query, "team-b").reason == "query is nested too deeply"
    with pytest.raises(QueryRefused, match="nested too deeply"):
        scoped(query, "team-b")


def test_a_deep_but_parseable_query_is_still_confined():
    result = scope("abs(" * 800 + "up" + ")" * 800, "team-b")
    assert not result.refused and 'up{namespace="team-b"}' in result.query


def test_info_is_refused_because_it_reads_target_info_which_no_selector_names():
    result = scope("info(up)", "team-b")
    assert result.refused and "info()" in result.reason
