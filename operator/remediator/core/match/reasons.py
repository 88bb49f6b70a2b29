"""Why a Remediation was made (its Runbook, its target, what of the signal was cut), carried from its creation.

The status cannot be written with the object (the status subresource drops it on create), and writing it right
after would put a second write, and its watch event, between a signal and the plan. So the intake writes the
reasons into an annotation of the created object, and the loop's first status write copies them to
`status.matchReasons`. The annotation is read as untrusted text: anything but a JSON list of strings is ignored,
and what is kept is bounded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

ANNOTATION = "remediator.dev/match-reasons"
MAX_REASONS = 20
MAX_REASON_CHARS = 500  # a reason quotes label values, which a sender chooses
MAX_TEXT_CHARS = 64 * 1024  # what the intake writes is far below; anything longer is not its


def bounded(reasons: Sequence[str]) -> list[str]:
    return [reason[:MAX_REASON_CHARS] for reason in reasons[:MAX_REASONS]]


def annotation(reasons: Sequence[str]) -> str:
    return json.dumps(bounded(reasons), ensure_ascii=False)


def from_text(raw: object) -> tuple[str, ...]:
    """The reasons the intake wrote; () when there are none or the text is not what it writes (anyone who may
    annotate the Remediation may have written it)."""
    if not isinstance(raw, str) or len(raw) > MAX_TEXT_CHARS:
        return ()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the parser goes
        return ()
    if not isinstance(value, list) or not all(isinstance(reason, str) for reason in value):
        return ()
    return tuple(bounded(value))
