"""Every JSON log line written during a Remediation's tick names that Remediation."""

from __future__ import annotations

import contextvars
import io
import json
import logging

from remediator.controller.main import JsonFormatter
from remediator.records.logs import RemediationFilter, current_remediation


def json_lines(emit) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RemediationFilter())
    logger = logging.getLogger("remediator.test-structured")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_logged_inside_a_tick_carries_the_remediation_name():
    def tick(logger):
        current_remediation.set("shop/am-1")
        logger.warning("slack unavailable")
        logger.warning("explicit", extra={"remediation": "books/am-2"})

    lines = json_lines(lambda logger: contextvars.copy_context().run(tick, logger))
    assert [(line["message"], line["remediation"]) for line in lines] == [
        ("slack unavailable", "shop/am-1"), ("explicit", "books/am-2")]


def test_a_line_outside_any_tick_names_no_remediation():
    lines = json_lines(lambda logger: logger.info("webhooks listening"))
    assert "remediation" not in lines[0] and lines[0]["level"] == "INFO"
