"""Which ended Remediations the retention sweep deletes, and why the others stay."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from remediator.api.models import RemediationPolicySpec
from remediator.api.validation import spec_problems
from remediator.cli import main
from remediator.core.report import maturity, retention
from remediator.core.report.maturity import Inventory, Record, Scope
from tests.unit.test_maturity import T0, obj

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
THIRTY_DAYS = timedelta(days=30)


def remediation(name: str, phase: str = "Succeeded", folded: bool = True, finished_days_ago: float | None = 31,
                namespace: str = "shop", deleting: bool = False) -> retention.Candidate:
    finished = None if finished_days_ago is None else NOW - timedelta(days=finished_days_ago)
    return retention.Candidate(namespace, name, "7", f"{namespace}/web", phase, folded, finished, deleting)


def test_only_ended_folded_remediations_past_the_retention_are_selected_with_their_version():
    candidates = [remediation("old"), remediation("recent", finished_days_ago=29),
                  remediation("unfolded", folded=False), remediation("open", phase="Acting", finished_days_ago=None),
                  remediation("escalated", phase="Escalated")]
    chosen = retention.select(candidates, lambda c: (THIRTY_DAYS, "the retention"), NOW)
    assert [(v.name, v.resource_version) for v in chosen] == [("old", "7"), ("escalated", "7")]
    assert chosen[0].reason == "ended 31d ago, past 30d (the retention)"


def test_each_kept_remediation_says_why_it_stays():
    reasons = {c.name: retention.judge(c, (THIRTY_DAYS, "the retention"), NOW).reason for c in [
        remediation("recent", finished_days_ago=29), remediation("unfolded", folded=False),
        remediation("open", phase="Verifying", finished_days_ago=None), remediation("deleting", deleting=True),
        remediation("timeless", finished_days_ago=None)]}
    assert reasons == {"recent": "ended 29d ago, kept for 30d (the retention)",
                       "unfolded": "ended, its outcome not yet folded into its Runbook",
                       "open": "open", "deleting": "being deleted already", "timeless": "ended at an unknown time"}


def test_the_retention_is_the_one_of_each_remediations_namespace():
    candidates = [remediation("a", namespace="short", finished_days_ago=2),
                  remediation("b", namespace="long", finished_days_ago=2)]
    per_namespace = {"short": (timedelta(days=1), "the retention"), "long": (THIRTY_DAYS, "the retention")}
    assert [v.name for v in retention.select(candidates, lambda c: per_namespace[c.namespace], NOW)] == ["a"]


def test_a_remediation_a_guard_still_counts_stays_past_a_shorter_retention():
    hour = RemediationPolicySpec.model_validate({"retention": {"terminalRemediations": "1h"},
                                                 "circuitBreaker": {"window": "6h"}})
    assert retention.kept_for(hour, "10m") == (timedelta(hours=6), "the circuit breaker's window")
    assert retention.kept_for(hour, "1d") == (timedelta(days=1), "its Runbook's cooldown")
    assert retention.kept_for(None, "10m") == (THIRTY_DAYS, "the retention")
    three_hours_ago = remediation("breaker-counts-it", phase="Failed", finished_days_ago=0.125)
    assert retention.judge(three_hours_ago, retention.kept_for(hour, None), NOW).reason == \
        "ended 3h ago, kept for 6h (the circuit breaker's window)"


def test_a_remediation_its_runbooks_statistics_do_not_count_yet_stays_whatever_its_age():
    verdict = retention.judge(remediation("uncounted", finished_days_ago=400), retention.UNTIL_COUNTED, NOW)
    assert not verdict.delete and verdict.reason == "kept until its Runbook's signalStats count it"


def test_an_ended_remediation_without_a_finish_time_ages_from_its_start_or_creation():
    from remediator.core.plan.guard_inputs import past_remediation

    no_finish = past_remediation({"metadata": {"name": "no-finish", "creationTimestamp": "2026-10-01T00:00:00Z"},
                                  "status": {"phase": "Succeeded"}})
    assert retention.judge(retention.Candidate.of("shop", no_finish, folded=True), (THIRTY_DAYS, "the retention"),
                           NOW).delete


def test_the_policy_keeps_ended_remediations_thirty_days_by_default_and_refuses_less_than_an_hour():
    assert RemediationPolicySpec().retention.terminal_remediations == "30d"
    week = [("short", {"namespaces": ["shop"], "retention": {"terminalRemediations": "7d"}})]
    assert retention.retention_of(week, "shop", {}) == timedelta(days=7)
    assert retention.retention_of(week, "uncovered", {}) == THIRTY_DAYS, "no policy: the default"
    problems = spec_problems(RemediationPolicySpec, {"retention": {"terminalRemediations": "30m"}})
    assert any("terminalRemediations must be at least 1h (got 30m)" in str(p) for p in problems), problems
    assert not spec_problems(RemediationPolicySpec, {"retention": {"terminalRemediations": "2w"}})


# ---------------------------------------------------------------- the report over what retention keeps


def test_a_report_over_the_default_window_gives_the_same_figures_once_older_remediations_are_deleted():
    from remediator.core.plan.guard_inputs import past_remediation

    now = T0 + timedelta(days=60)
    history = [{**obj(f"r{day}-{phase}", phase, ttr=600.0 * (1 + day % 5), started=T0 + timedelta(days=day, hours=1)),
                "metadata": {"name": f"r{day}-{phase}", "namespace": "shop", "uid": f"u{day}{phase}"}}
               for day in range(60) for phase in ("Succeeded", "Escalated", "Denied")]
    history.append({**obj("straddles", ttr=3 * 86400.0, started=now - timedelta(days=30, hours=1)),
                    "metadata": {"name": "straddles", "namespace": "shop"}})  # started before the window
    history.append({**obj("open", "Acting", started=T0), "metadata": {"name": "open", "namespace": "shop"}})
    for o in history:
        o["status"]["foldedIntoRunbook"] = True
    candidates = [retention.Candidate.of("shop", past_remediation(o), folded=True) for o in history]
    gone = {v.name for v in retention.select(candidates, lambda c: (THIRTY_DAYS, "the retention"), now)}
    kept = [o for o in history if o["metadata"]["name"] not in gone]
    assert len(gone) > 80 and "open" not in gone, "most of the history went"
    window = Scope(since=now - THIRTY_DAYS)  # `remediator report`'s default --since 30d

    def figures(objects):
        return maturity.report([Record.from_object(o) for o in objects], Inventory(known=False), window).to_dict()
    assert figures(kept) == figures(history)
    assert figures(kept)["figures"]["incidents"] == 30 * 3
    assert retention.coverage_note(window.since, now, THIRTY_DAYS) is None


def test_a_report_reaching_back_past_the_retention_says_its_figures_are_incomplete(tmp_path, capsys):
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"kind": "List", "items": [
        {**obj("r1"), "kind": "Remediation"},
        {"kind": "RemediationPolicy", "metadata": {"name": "short"},
         "spec": {"namespaces": ["shop"], "retention": {"terminalRemediations": "7d"}}}]}))
    assert main(["report", "-f", str(export), "--since", "30d"]) == 0
    out = capsys.readouterr().out
    assert "note: ended Remediations are deleted 7d after they finish (RemediationPolicy " \
           "spec.retention.terminalRemediations): incidents that ended before " in out
    assert "so figures from " in out and " to then are incomplete" in out
    assert main(["report", "-f", str(export), "--since", "7d", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []


# ---------------------------------------------------------------- Remediation objects stay small


def test_a_long_timeline_note_is_cut_not_refused_and_the_schema_bounds_the_timeline():
    from remediator.api.models import MAX_TIMELINE, MAX_TIMELINE_MESSAGE, RemediationStatus
    from remediator.core.engine.state import note

    status = note(RemediationStatus(), "Refused", "why " * 2000, NOW)
    assert len(status.timeline[0].message) == MAX_TIMELINE_MESSAGE and status.timeline[0].message.endswith("…")
    read_back = RemediationStatus.model_validate({"timeline": [{"at": "t", "kind": "k", "message": "y" * 5000}]})
    assert len(read_back.timeline[0].message) == MAX_TIMELINE_MESSAGE, "an old long note still reads"
    schema = RemediationStatus.model_json_schema(by_alias=True)
    assert schema["properties"]["timeline"]["maxItems"] == MAX_TIMELINE
    assert schema["properties"]["steps"]["maxItems"] == 20


def test_a_resolved_signals_note_keeps_a_full_timeline_within_its_bound():
    from remediator.api.models import TIMELINE_LIMIT, Signal
    from remediator.controller.ingest import ingest_resolved
    from remediator.core.engine import state

    signal = Signal(source="alertmanager", name="HighErrorRate", fingerprint="f1", starts_at="2026-12-01T10:00:00Z",
                    labels={"alertname": "HighErrorRate", "namespace": "shop"}, summary="the error rate fell back")
    full = [{"at": "2026-12-01T10:00:00Z", "kind": "Note", "message": f"n{i}"} for i in range(TIMELINE_LIMIT)]

    class OneRemediation:
        written: dict = {}

        def get(self, kind, name, namespace):
            return {"metadata": {"name": name, "namespace": namespace}, "status": {"timeline": list(full)}}

        def replace_status(self, kind, namespace, name, body):
            self.written = body["status"]

    resources = OneRemediation()
    assert ingest_resolved(resources, signal).outcome == "resolved"
    timeline = resources.written["timeline"]
    assert len(timeline) == TIMELINE_LIMIT and timeline[-1]["kind"] == "SignalResolved"
    assert timeline[0]["kind"] == state.TRUNCATED_KIND


# ---------------------------------------------------------------- the sweep follows peering


def test_the_sweep_runs_every_ten_minutes_unless_told_otherwise():
    import argparse

    from remediator.controller.main import add_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    assert parser.parse_args([]).retention_sweep == 600.0
    assert parser.parse_args(["--retention-sweep", "30"]).retention_sweep == 30.0


def test_a_standby_never_sweeps_and_a_replica_made_active_sweeps_at_once_not_a_period_later(monkeypatch):
    import asyncio
    from collections import Counter
    from types import SimpleNamespace

    from remediator.controller import retention as shell
    from remediator.controller.context import Settings

    sweeps: list[object] = []
    monkeypatch.setattr(shell, "sweep", lambda ctx, served, active: sweeps.append(served) or Counter())
    monkeypatch.setattr(shell, "STANDBY_POLL_SECONDS", 0.01)
    monkeypatch.setattr(shell, "FIRST_SWEEP_AFTER", 0.0)
    ctx = SimpleNamespace(settings=Settings(namespaces=("shop",), retention_sweep_seconds=600))
    active = {"now": False}

    async def scenario():
        task = asyncio.create_task(shell.sweep_periodically(ctx, lambda: active["now"], lambda: ["shop"]))
        await asyncio.sleep(0.1)
        assert sweeps == [], "a standby deletes nothing"
        active["now"] = True
        await asyncio.sleep(0.1)
        task.cancel()

    from remediator.records.metrics import RETENTION_SWEEP_SECONDS

    def timed() -> float:
        return sum(bucket.get() for bucket in RETENTION_SWEEP_SECONDS._buckets)
    before = timed()
    asyncio.run(scenario())
    assert sweeps == [["shop"]], "one sweep of the served namespaces, then the next a period later"
    assert timed() == before + 1, "the sweep was not timed"


def test_the_first_sweep_waits_out_the_start_up_burst(monkeypatch):
    import asyncio
    from collections import Counter
    from types import SimpleNamespace

    from remediator.controller import retention as shell
    from remediator.controller.context import Settings

    sweeps: list[object] = []
    monkeypatch.setattr(shell, "sweep", lambda ctx, served, active: sweeps.append(served) or Counter())
    monkeypatch.setattr(shell, "FIRST_SWEEP_AFTER", 0.3)
    ctx = SimpleNamespace(settings=Settings(retention_sweep_seconds=600))

    async def scenario():
        task = asyncio.create_task(shell.sweep_periodically(ctx, lambda: True, lambda: []))
        await asyncio.sleep(0.1)
        before = list(sweeps)
        await asyncio.sleep(0.4)
        task.cancel()
        return before

    assert asyncio.run(scenario()) == [] and sweeps == [None], "none at start; one once the delay is over"


def test_a_runbook_whose_statistics_may_not_be_written_keeps_its_incidents_and_holds_back_no_other(monkeypatch):
    from types import SimpleNamespace

    from kubernetes.client.rest import ApiException

    from remediator.controller import retention as shell

    written: list[str] = []

    def patch_status(group, version, namespace, plural, name, body):
        if name == "refused":
            raise ApiException(status=403, reason="Forbidden: only the operator writes a Runbook status")
        written.append(name)

    monkeypatch.setattr(shell, "ended_of", lambda ctx, namespace, names: {n: [] for n in names})
    ctx = SimpleNamespace(resources=SimpleNamespace(custom=SimpleNamespace(
        patch_namespaced_custom_object_status=patch_status)))
    runbooks = [{"metadata": {"name": n, "resourceVersion": "1"}, "status": {}} for n in ("refused", "web")]
    assert shell.complete_signal_stats(ctx, "shop", runbooks) == {"web"}, \
        "the refused Runbook counted as complete (its incidents would be deleted uncounted) or stopped the sweep"
    assert written == ["web"]


def test_a_namespace_deleted_during_the_sweep_keeps_its_incidents_and_holds_back_no_other(monkeypatch):
    from types import SimpleNamespace

    from kubernetes.client.rest import ApiException

    from remediator.controller import retention as shell
    from remediator.core.report import retention as core

    def labels(ctx, namespace):
        if namespace == "gone":
            raise ApiException(status=404, reason="namespaces gone not found")
        return {}

    monkeypatch.setattr(shell, "labels_of_namespace", labels)
    monkeypatch.setattr(shell, "complete_signal_stats", lambda ctx, namespace, runbooks: set())
    ctx = SimpleNamespace(resources=SimpleNamespace(list=lambda kind, namespace=None: []))
    keep_of = shell.keep_lookup(ctx).of
    assert keep_of(remediation("a", namespace="gone")) == core.UNTIL_COUNTED
    assert keep_of(remediation("b", namespace="shop")) != core.UNTIL_COUNTED, \
        "the other namespace's policy was not applied"


def ended_remediation(i: int, runbook: str = "web", step: dict | None = None) -> dict:
    """As the operator leaves one (~5 KB, most of it the timeline), every string its own (as decoded JSON)."""
    finished = (NOW - timedelta(days=31)).isoformat().replace("+00:00", "Z")
    obj = {"metadata": {"name": f"r{i}", "namespace": "shop", "uid": f"uid-r{i}", "resourceVersion": "7",
                        "creationTimestamp": "2026-10-01T00:00:00Z"},
           "status": {"phase": "Succeeded", "foldedIntoRunbook": True, "finishedAt": finished}}
    obj["spec"] = {"runbook": {"namespace": "shop", "name": runbook},
                   "target": {"kind": "Deployment", "name": f"web-{i}"},
                   "signal": {"source": "alertmanager", "name": "HighErrorRate", "fingerprint": f"f{i}"}}
    obj["status"].update(steps=[step or {"index": 0, "name": "restart", "action": "restartRollout",
                                         "phase": "Succeeded", "idempotencyKey": f"k{i}",
                                         "appliedAt": "2026-10-01T00:00:00Z"}],
                         timeline=[{"at": "2026-10-01T00:00:00Z", "kind": "Observed", "message": f"{i}-{j} " * 60}
                                   for j in range(12)])
    return obj


def paged_context(objects: Callable[[int], dict], total: int, **custom):
    from types import SimpleNamespace

    def listed(group, version, namespace, plural, limit, _continue="0"):
        start = int(_continue)
        nxt = start + limit
        return {"items": [objects(i) for i in range(start, min(nxt, total))],
                "metadata": {"continue": str(nxt) if nxt < total else None}}
    return SimpleNamespace(resources=SimpleNamespace(custom=SimpleNamespace(list_namespaced_custom_object=listed,
                                                                            **custom)))


def test_the_backfill_over_thousands_of_ended_remediations_holds_one_page_of_them_at_a_time():
    import tracemalloc

    from remediator.controller import retention as shell

    total = 3000
    page = sum(len(json.dumps(ended_remediation(i))) for i in range(shell.PAGE))
    ctx = paged_context(ended_remediation, total)
    tracemalloc.start()
    try:
        records = shell.ended_of(ctx, "shop", {"web"})["web"]
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(records) == total
    assert held / total < 1024, f"{held / total:.0f} bytes kept per Remediation: its status was kept whole"
    assert peak - held < 4 * page, f"{(peak - held) / 2**20:.1f} MiB beyond what is kept: more than a page read at once"
    assert records[0].verdicts == (("restart", True),)


def test_an_ended_remediation_that_cannot_be_read_keeps_its_runbook_incomplete_and_holds_back_no_other():
    from remediator.controller import retention as shell

    written: list[str] = []

    def patch_status(group, version, namespace, plural, name, body):
        written.append(name)

    def objects(i: int) -> dict:  # r1, of "web", has a step no version of the operator writes
        return ended_remediation(i, runbook="web" if i < 2 else "api",
                                 step={"index": 0, "name": "restart"} if i == 1 else None)
    ctx = paged_context(objects, 4, patch_namespaced_custom_object_status=patch_status)
    runbooks = [{"metadata": {"name": n, "resourceVersion": "1"}, "status": {}} for n in ("web", "api")]
    assert shell.complete_signal_stats(ctx, "shop", runbooks) == {"api"}, \
        "web counted as complete without r1 (r1 would be deleted uncounted), or the sweep stopped"
    assert written == ["api"]
