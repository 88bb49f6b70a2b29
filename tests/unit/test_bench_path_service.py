"""The benchmark splits signal -> action into the apiserver's own time on each call of the path, from the
apiserver's request histogram read before and after the round."""

from __future__ import annotations

from e2e.bench.signal_to_action import PATH_CALLS, path_service


def served(seconds_per_call: dict[str, tuple[float, float]]) -> dict[tuple, list[float]]:
    return {PATH_CALLS[stage]: [seconds, count] for stage, (seconds, count) in seconds_per_call.items()}


def test_the_path_floor_adds_the_round_means_of_create_the_slower_read_persist_and_act():
    before = served({"create": (1.0, 100), "read": (0.5, 100), "dry_run": (0.2, 50), "persist": (3.0, 300),
                     "act": (0.4, 100)})
    after = served({"create": (1.8, 300), "read": (0.9, 300), "dry_run": (1.0, 250), "persist": (4.2, 500),
                    "act": (1.4, 300)})
    means = path_service(before, after)
    assert means == {"create": 4.0, "read": 2.0, "dry_run": 4.0, "persist": 6.0, "act": 5.0, "floor": 19.0}


def test_a_call_the_round_never_made_leaves_the_floor_unknown_and_unreadable_metrics_give_none():
    before = served({stage: (0.0, 0) for stage in PATH_CALLS})
    after = served({**{stage: (0.1, 10) for stage in PATH_CALLS}, "dry_run": (0.0, 0)})
    assert path_service(before, after)["floor"] is None and path_service(before, after)["dry_run"] is None
    assert path_service(None, after) is None
