"""--alert-resend: a careless value is refused at start-up, not spun on."""

from __future__ import annotations

import argparse

import pytest

from remediator.controller.main import add_run_arguments


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_run_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "0.01", "soon"])
def test_an_alert_resend_below_a_second_or_not_a_number_is_refused_at_start_up(value, capsys):
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse("--alert-resend", value)


def test_an_alert_resend_of_seconds_is_taken_and_the_default_is_a_minute(monkeypatch):
    monkeypatch.delenv("REMEDIATOR_ALERT_RESEND_SECONDS", raising=False)
    assert parse("--alert-resend", "2").alert_resend == 2.0
    assert parse().alert_resend == 60.0
