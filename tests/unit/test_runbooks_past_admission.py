"""A Runbook the apiserver should have refused (stored before a CRD upgrade, or by an apiserver without the CRD's
rules) costs its own namespace at most: it is logged once and ignored, and one Runbook's anomaly trigger that
cannot be evaluated never stops the others'."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from remediator.controller.anomalies import AnomalyWatcher
from remediator.controller.ingest import RunbookCache
from remediator.controller.webhooks import REASON_CHARS, REASONS_ANSWERED, answered_reasons
from remediator.core.match.templating import TemplateError, render_name

STEPS = [{"name": "restart", "action": "restartRollout"}]


def anomaly_runbook(step: str = "5m") -> dict:
    return {"triggers": [{"anomaly": {"query": "rate(x[5m])", "baseline": {"lookback": "1h", "step": step}}}],
            "target": {"kind": "Deployment", "name": "web"}, "steps": STEPS}


def test_an_invalid_stored_runbook_is_ignored_and_logged_once_not_at_every_event(caplog):
    cache = RunbookCache()
    spec = {**anomaly_runbook(), "steps": [{"name": "r", "action": "restartRollout", "timeout": "999999999d"}]}
    with caplog.at_level(logging.WARNING, logger="remediator.ingest"):
        for _ in range(3):
            cache.put("aaa", "forever", 1, spec)
    assert cache.in_namespace("aaa") == [] and "999999d" in cache.invalid[("aaa", "forever")]
    assert [r.getMessage() for r in caplog.records] == ["runbook ignored: invalid"]


def test_one_anomaly_trigger_that_cannot_be_evaluated_does_not_stop_the_others():
    cache = RunbookCache()
    cache.put("aaa", "broken", 1, anomaly_runbook(step="0s"))  # 0 < step: a rule the apiserver checks
    cache.put("shop", "latency", 1, anomaly_runbook())
    queried = []
    watcher = AnomalyWatcher(SimpleNamespace(runbooks=cache, prometheus=None))
    watcher.evaluate = lambda key, watch, at: queried.append(key[:2])
    watcher.report_baselines = lambda namespace, name: None
    watcher.evaluate_due()
    assert queried == [("shop", "latency")]


def test_a_long_target_template_is_shown_cut_in_the_reasons_and_the_sender_hears_a_bounded_answer():
    template = "{{ labels.deployment }}" + "x" * 5000 + "{{"
    try:
        render_name(template, {"deployment": "web"})
    except TemplateError as e:
        assert len(str(e)) < 400, len(str(e))
    else:
        raise AssertionError("an unclosed placeholder renders nothing")
    reasons = answered_reasons(["r" * 100_000] * 50)
    assert len(reasons) == REASONS_ANSWERED + 1 and reasons[-1] == "and 40 more"
    assert max(len(r) for r in reasons) == REASON_CHARS
