"""What a release may delete without reading: the Leases this process wrote last, bounded."""

from remediator.controller.claims import WrittenLeases


def test_a_lease_written_is_remembered_for_its_holder_only():
    written = WrittenLeases()
    written.wrote("shop", "web", "uid-1", "41")
    assert written.version_held_by("shop", "web", "uid-1") == "41"
    assert written.version_held_by("shop", "web", "uid-2") is None
    assert written.version_held_by("billing", "web", "uid-1") is None


def test_a_lease_written_again_or_forgotten_holds_its_last_answer():
    written = WrittenLeases()
    written.wrote("shop", "web", "uid-1", "41")
    written.wrote("shop", "web", "uid-2", "57")
    assert written.version_held_by("shop", "web", "uid-1") is None and \
        written.version_held_by("shop", "web", "uid-2") == "57"
    written.forget("shop", "web", "uid-1")  # a release by the holder before
    assert written.version_held_by("shop", "web", "uid-2") == "57"
    written.forget("shop", "web", "uid-2")
    assert written.version_held_by("shop", "web", "uid-2") is None


def test_a_holder_without_a_uid_holds_nothing_remembered():
    assert WrittenLeases().version_held_by("shop", "web", "") is None


def test_the_leases_remembered_are_bounded_and_the_oldest_forgotten_first():
    written = WrittenLeases(size=2)
    for i in range(3):
        written.wrote("shop", f"web-{i}", "uid", str(i))
    assert [written.version_held_by("shop", f"web-{i}", "uid") for i in range(3)] == [None, "1", "2"]
