"""A Remediation stores a bounded copy of its signal and says what it cut."""

import json

from remediator.api.models import Signal
from remediator.core.match.stored_signal import MAX_LABEL_VALUE_CHARS, stored_signal


def test_a_small_signal_is_stored_as_it_came():
    signal = Signal(source="alertmanager", name="HighErrorRate", labels={"namespace": "shop", "pod": "web-1"},
                    annotations={"summary": "5xx over 5%"}, summary="5xx over 5%")
    assert stored_signal(signal) == (signal, [])


def test_a_half_mebibyte_signal_is_stored_in_a_few_kib_saying_what_was_cut():
    labels = {"alertname": "HighErrorRate", "namespace": "shop", "severity": "page",
              **{f"l{i:02d}": "v" * 4000 for i in range(61)}, "k" * 1024: "long key"}
    annotations = {f"a{i:02d}": "a" * 4000 for i in range(64)}
    signal = Signal(source="alertmanager", name="HighErrorRate", labels=labels, annotations=annotations,
                    summary="s" * 4000)
    assert len(signal.model_dump_json()) > 500_000
    kept, cut = stored_signal(signal)
    assert len(kept.model_dump_json()) < 40_000
    assert list(kept.labels)[:3] == ["alertname", "namespace", "severity"], "what humans look for stays"
    assert kept.labels["alertname"] == "HighErrorRate" and len(kept.labels["l00"]) == MAX_LABEL_VALUE_CHARS
    assert kept.labels["l00"].endswith("…") and len(kept.summary) == 1024
    assert cut == ["1 labels with keys over 128 characters dropped", "kept 32 of 64 labels",
                   "29 labels value(s) cut to 256 characters", "kept 16 of 64 annotations",
                   "16 annotations value(s) cut to 1024 characters", "summary cut to 1024 characters"]
    json.dumps(kept.wire())
