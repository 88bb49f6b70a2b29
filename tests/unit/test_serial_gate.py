"""The gate that lets a `serial` module run alone while pytest-xdist workers share one cluster: two workers are
two gates on one directory (each its own open files, so their flocks contend as two processes' would)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.serial_gate import SerialGate

WAIT = 0.3  # long enough for a thread that is not blocked to have gone through


class FakeItem:
    def __init__(self, path: str, serial_test: bool = False, serial_module: bool = False):
        self.path = Path(path)
        self.module = SimpleNamespace(get_closest_marker=lambda name: name if serial_module else None)
        self.serial = serial_test or serial_module

    def get_closest_marker(self, name):
        return name if name == "serial" and self.serial else None

    def getparent(self, cls):
        assert cls is pytest.Module
        return self.module


def entered_in_background(gate: SerialGate, item: FakeItem) -> threading.Event:
    done = threading.Event()
    threading.Thread(target=lambda: (gate.enter(item), done.set()), daemon=True).start()
    return done


def test_tests_that_are_not_serial_run_side_by_side(tmp_path):
    one, two = SerialGate(tmp_path), SerialGate(tmp_path)
    one.enter(FakeItem("a.py"))
    assert entered_in_background(two, FakeItem("b.py")).wait(WAIT)


def test_a_serial_module_waits_for_the_running_test_and_then_holds_off_every_other_until_its_last_test_ends(
        tmp_path):
    one, two = SerialGate(tmp_path), SerialGate(tmp_path)
    plain = FakeItem("plain.py")
    first, last = FakeItem("serial.py", serial_module=True), FakeItem("serial.py", serial_module=True)
    one.enter(plain)
    serial_in = entered_in_background(two, first)
    assert not serial_in.wait(WAIT), "a serial module starts while another test runs"
    one.leave(plain, None)
    assert serial_in.wait(5)

    two.leave(first, last)  # between the module's tests: still alone
    other_in = entered_in_background(one, FakeItem("other.py"))
    assert not other_in.wait(WAIT), "another test ran between a serial module's tests"
    two.enter(last)
    two.leave(last, FakeItem("next.py"))
    assert other_in.wait(5)


def test_a_waiting_serial_module_goes_before_tests_that_arrive_after_it(tmp_path):
    one, two, three = SerialGate(tmp_path), SerialGate(tmp_path), SerialGate(tmp_path)
    running = FakeItem("running.py")
    one.enter(running)
    serial_in = entered_in_background(two, FakeItem("serial.py", serial_module=True))
    assert not serial_in.wait(WAIT)
    late_in = entered_in_background(three, FakeItem("late.py"))
    assert not late_in.wait(WAIT), "a test arriving after a waiting serial module went first"
    one.leave(running, None)
    assert serial_in.wait(5) and not late_in.wait(WAIT)
    two.leave(FakeItem("serial.py", serial_module=True), None)
    assert late_in.wait(5)


def test_a_serial_test_in_a_plain_module_lets_the_next_test_of_its_module_share_again(tmp_path):
    one, two = SerialGate(tmp_path), SerialGate(tmp_path)
    alone, after = FakeItem("chaos.py", serial_test=True), FakeItem("chaos.py")
    one.enter(alone)
    other_in = entered_in_background(two, FakeItem("other.py"))
    assert not other_in.wait(WAIT)
    one.leave(alone, after)
    assert other_in.wait(5)
    one.enter(after)  # shared: does not wait for the other test
