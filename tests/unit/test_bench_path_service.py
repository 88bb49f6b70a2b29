"""The benchmark sets signal -> action beside the apiserver's own time on each kind of call of the path, read from
the apiserver's request histogram before and after the round."""

from __future__ import annotations

from e2e.bench.signal_to_action import PATH_CALLS, apiserver_service_times, path_service, service_times_of

METRICS = """\
# HELP apiserver_request_duration_seconds [STABLE] Response latency distribution in seconds
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="PATCH",version="v1",le="0.005"} 7
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="PATCH",version="v1"} 0.5
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="PATCH",version="v1"} 100
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="PATCH",version="v1beta1"} 0.1
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="PATCH",version="v1beta1"} 10
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="All",group="apps",resource="deployments",scope="resource",subresource="",verb="PATCH",version="v1"} 0.2
apiserver_request_duration_seconds_count{component="apiserver",dry_run="All",group="apps",resource="deployments",scope="resource",subresource="",verb="PATCH",version="v1"} 50
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="remediator.dev",resource="remediations",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 3
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="remediator.dev",resource="remediations",scope="resource",subresource="status",verb="PUT",version="v1alpha1"} 300
apiserver_request_count_sum{verb="PUT"} 99
"""


def served(seconds_per_call: dict[str, tuple[float, float]]) -> dict[tuple, list[float]]:
    return {PATH_CALLS[stage]: [seconds, count] for stage, (seconds, count) in seconds_per_call.items()}


def test_the_histogram_is_read_by_verb_resource_subresource_and_dry_run_summed_over_other_labels():
    times = service_times_of(METRICS)
    assert times[PATH_CALLS["patch"]] == [0.6, 110.0]
    assert times[PATH_CALLS["dry_run"]] == [0.2, 50.0]
    assert times[PATH_CALLS["status_write"]] == [3.0, 300.0]
    assert len(times) == 3, "buckets, HELP/TYPE lines and other metrics are not read as the histogram's sum or count"


def test_the_path_floor_adds_the_round_means_of_the_slowest_of_create_read_and_dry_run_a_status_write_and_a_patch():
    before = served({"create": (1.0, 100), "read": (0.5, 100), "dry_run": (0.2, 50), "status_write": (3.0, 300),
                     "patch": (0.4, 100)})
    after = served({"create": (1.8, 300), "read": (0.9, 300), "dry_run": (1.2, 250), "status_write": (4.2, 500),
                    "patch": (1.4, 300)})
    assert path_service(before, after) == {"create": 4.0, "read": 2.0, "dry_run": 5.0, "status_write": 6.0,
                                           "patch": 5.0, "floor": 16.0}


def test_a_call_the_round_never_made_or_counters_that_went_back_leave_the_floor_unknown():
    before = served({stage: (1.0, 10) for stage in PATH_CALLS})
    after = served({**{stage: (1.1, 20) for stage in PATH_CALLS}, "dry_run": (1.0, 10), "patch": (0.5, 15)})
    means = path_service(before, after)
    assert means["floor"] is None and means["dry_run"] is None and means["patch"] is None, means
    assert path_service(None, after) is None


class Answer:
    def __init__(self, status: int, text: str):
        self.status, self.text = status, text

    def read(self) -> bytes:
        return self.text.encode()


class ApiAnswering:
    """An ApiClient whose one call gets `answer` (the real client does not raise on a 403 when the answer is
    read raw)."""

    def __init__(self, answer: Answer):
        self.answer = answer

    def param_serialize(self, **_):
        return ("GET", "https://apiserver/metrics", {}, None, None)

    def call_api(self, *_):
        return self.answer


def test_a_forbidden_metrics_endpoint_gives_no_figures_and_says_why(capsys):
    forbidden = Answer(403, '{"kind":"Status","reason":"Forbidden","message":"forbidden: /metrics"}')
    assert apiserver_service_times(ApiAnswering(forbidden)) is None
    assert "not readable: HTTP 403" in capsys.readouterr().err
    assert apiserver_service_times(ApiAnswering(Answer(200, METRICS)))[PATH_CALLS["status_write"]] == [3.0, 300.0]
