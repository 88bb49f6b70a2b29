"""The active replica's periodic chores: one loop that a failing pass does not end."""

from __future__ import annotations

import asyncio

from remediator.controller import chores


def run_for(seconds: float, **kwargs) -> None:
    async def scenario():
        task = asyncio.create_task(chores.every(**kwargs))
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(scenario())


def test_a_chore_whose_pass_fails_runs_again_next_period():
    passes: list[int] = []

    def flaky() -> None:
        passes.append(1)
        if len(passes) == 1:
            raise RuntimeError("apiserver 500")

    run_for(0.25, period=0.05, active=lambda: True, work=flaky, what="test sweep", first_after=0)
    assert len(passes) >= 3, "the first failure ended the chore"


def test_a_standby_does_no_chore_and_a_replica_made_active_works_within_the_standby_poll():
    active = {"now": False}
    passes: list[int] = []

    async def scenario():
        task = asyncio.create_task(chores.every(period=600, active=lambda: active["now"], work=lambda: passes.append(1),
                                                what="test sweep", first_after=0, standby_poll=0.02))
        await asyncio.sleep(0.1)
        assert passes == [], "a standby worked"
        active["now"] = True
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(scenario())
    assert passes == [1], "made active, it waited a whole period (or worked twice)"
