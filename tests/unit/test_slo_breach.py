"""An SLO's firing alerts become sloBurn signals with a stable identity per breach."""

from remediator.api.models import Trigger
from remediator.api.slo import FiringAlert, ServiceLevelObjectiveSpec, ServiceLevelObjectiveStatus
from remediator.core.match import matching
from remediator.core.slo.slo_breach import breach_signals, ended_breaches

SPEC = ServiceLevelObjectiveSpec.model_validate({
    "service": "web", "target": {"kind": "Deployment", "name": "web"}, "objective": 99.0,
    "sli": {"badTotal": {"bad": 'sum(rate(req{code=~"5.."}[{{ window }}]))', "total": "sum(rate(req[{{ window }}]))"}},
})


def alert(severity: str, since: str, long_window: str = "1h") -> FiringAlert:
    return FiringAlert(severity=severity, long_window=long_window, short_window="5m", threshold=14.4,
                       long_burn_rate=20, short_burn_rate=30, reason=f"{severity} burn", since=since)


def status(*alerts: FiringAlert) -> ServiceLevelObjectiveStatus:
    return ServiceLevelObjectiveStatus(alerts=list(alerts))


def test_each_firing_severity_gives_one_signal_most_severe_first():
    signals = breach_signals("web-availability", "shop", SPEC,
                             status(alert("ticket", "2026-11-25T10:00:00Z", "3d"), alert("page", "2026-11-25T10:05:00Z"),
                                    alert("page", "2026-11-25T10:02:00Z", "6h")))
    assert [s.severity for s in signals] == ["page", "ticket"]
    page = signals[0]
    assert page.source == "sloBurn" and page.name == "web-availability"
    assert page.starts_at == "2026-11-25T10:02:00Z"  # the earliest window that fires
    assert page.labels["namespace"] == "shop" and page.labels["deployment"] == "web"


def test_the_same_breach_keeps_its_identity_across_evaluations():
    first = breach_signals("slo", "shop", SPEC, status(alert("page", "2026-11-25T10:00:00Z")))[0]
    again = breach_signals("slo", "shop", SPEC, status(alert("page", "2026-11-25T10:00:00Z")))[0]
    later = breach_signals("slo", "shop", SPEC, status(alert("page", "2026-11-25T11:00:00Z")))[0]
    assert (first.fingerprint, first.starts_at) == (again.fingerprint, again.starts_at)
    assert later.starts_at != first.starts_at


def test_nothing_firing_gives_no_signal():
    assert breach_signals("slo", "shop", SPEC, status()) == []


def test_a_severity_that_stops_firing_is_ended_with_the_identity_it_fired_with():
    before = status(alert("page", "2026-11-25T10:00:00Z"), alert("ticket", "2026-11-25T09:00:00Z", "3d"))
    after = status(alert("ticket", "2026-11-25T09:00:00Z", "3d"))
    ended = ended_breaches("slo", "shop", SPEC, before, after)
    assert [(s.severity, s.starts_at) for s in ended] == [("page", "2026-11-25T10:00:00Z")]


def test_a_breach_signal_matches_a_runbook_slo_burn_trigger_of_that_severity():
    signal = breach_signals("slo", "shop", SPEC, status(alert("page", "2026-11-25T10:00:00Z")))[0]
    page = matching.trigger_matches(Trigger.model_validate({"sloBurn": {"slo": "slo", "severity": "page"}}), signal)
    ticket = matching.trigger_matches(Trigger.model_validate({"sloBurn": {"slo": "slo", "severity": "ticket"}}), signal)
    assert page.matched and not ticket.matched
