import platform

import pytest

from remediator.controller import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the calls exist on glibc only")
def test_on_glibc_the_arena_cap_is_accepted():
    assert heap.limit_arenas(2) is True


def test_on_another_libc_the_heap_calls_are_skipped(monkeypatch):
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))
    assert heap.glibc() is None
    assert heap.limit_arenas(2) is False
    assert heap.trim() is False
