"""A workload revision number as a tenant may have written it (an annotation on a ReplicaSet): plain data."""

from __future__ import annotations

# Kubernetes parses revisions as int64; str.isdigit() alone accepts "²" (int() then raises) and thousands of
# digits (int() refuses over 4300), so one tenant's ReplicaSet could break a loop that reads every namespace's.
MAX_DIGITS = 18


def revision_number(text: object) -> int | None:
    """The revision an annotation holds, or None when it is not a plain decimal number of at most 18 digits."""
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        return None
    return int(text)
