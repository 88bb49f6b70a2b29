"""What a Remediation keeps of its signal: enough for humans and the record, bounded.

Matching and target templating see the whole signal at ingest; the stored copy is for
`kubectl describe`, Slack and reports, so a sender's 500 KiB of labels never becomes a
500 KiB object in etcd. Whatever is cut is said, so a reader knows the copy is partial.
"""

from __future__ import annotations

from remediator.api.models import Signal

MAX_LABELS = 32
MAX_ANNOTATIONS = 16
MAX_KEY_CHARS = 128
MAX_LABEL_VALUE_CHARS = 256
MAX_ANNOTATION_VALUE_CHARS = 1024
MAX_TEXT_CHARS = 1024  # name, summary, severity, fingerprint, starts_at
KEPT_FIRST = ("alertname", "namespace", "severity")  # what humans look for, kept before the rest
CUT_MARK = "…"


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit - len(CUT_MARK)] + CUT_MARK


def _bounded(entries: dict[str, str], what: str, max_entries: int, max_value: int) -> tuple[dict[str, str], list[str]]:
    keys = [k for k in entries if len(k) <= MAX_KEY_CHARS]
    notes = []
    if len(keys) < len(entries):
        notes.append(f"{len(entries) - len(keys)} {what} with keys over {MAX_KEY_CHARS} characters dropped")
    keys.sort(key=lambda k: (k not in KEPT_FIRST, k))
    if len(keys) > max_entries:
        notes.append(f"kept {max_entries} of {len(keys)} {what}")
        keys = keys[:max_entries]
    clipped = sum(len(entries[k]) > max_value for k in keys)
    if clipped:
        notes.append(f"{clipped} {what} value(s) cut to {max_value} characters")
    return {k: _clip(entries[k], max_value) for k in keys}, notes


def stored_signal(signal: Signal) -> tuple[Signal, list[str]]:
    """The signal as a Remediation stores it, and what was cut (empty when nothing was)."""
    labels, label_notes = _bounded(signal.labels, "labels", MAX_LABELS, MAX_LABEL_VALUE_CHARS)
    annotations, annotation_notes = _bounded(signal.annotations, "annotations", MAX_ANNOTATIONS,
                                             MAX_ANNOTATION_VALUE_CHARS)
    texts = {"name": signal.name, "fingerprint": signal.fingerprint, "severity": signal.severity,
             "summary": signal.summary, "starts_at": signal.starts_at or ""}
    long = sorted(field for field, value in texts.items() if len(value) > MAX_TEXT_CHARS)
    text_notes = [f"{', '.join(long)} cut to {MAX_TEXT_CHARS} characters"] if long else []
    stored = signal.model_copy(update={
        "labels": labels, "annotations": annotations,
        **{field: _clip(texts[field], MAX_TEXT_CHARS) for field in long}})
    return stored, label_notes + annotation_notes + text_notes
