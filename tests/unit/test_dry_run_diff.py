"""What a dry run would change, as humans see it (status.plannedChanges, the Slack message): no secrets."""

from __future__ import annotations

from remediator.actions.base import changes_between
from remediator.controller.guard_facts import change_lines
from remediator.signals.changes import digest


def template(password: str, image: str, replicas: int) -> dict:
    return {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                         f'{{"env":"DB_PASSWORD={password}"}}'}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image, "args": [f"--password={password}"],
                 "command": ["/bin/app", f"--token={password}"],
                 "env": [{"name": "DB_PASSWORD", "value": password}]}]}}}}


def test_env_values_annotations_and_args_appear_as_digests_never_as_values():
    lines = change_lines(changes_between(template("new-secret", "web:2", 3), template("old-secret", "web:1", 3)))
    text = "\n".join(lines)
    assert "new-secret" not in text and "old-secret" not in text
    assert (f"spec.template.spec.containers[app].env[DB_PASSWORD].value: "
            f"sha256:{digest('new-secret')} -> sha256:{digest('old-secret')}") in lines


def test_images_and_replicas_are_shown_as_they_are():
    lines = change_lines(changes_between(template("s", "web:2", 3), template("s", "web:1", 5)))
    assert "spec.replicas: 3 -> 5" in lines
    assert "spec.template.spec.containers[app].image: 'web:2' -> 'web:1'" in lines
