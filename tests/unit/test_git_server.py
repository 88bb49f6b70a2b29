"""The loopback Git server Flux's GitRepository reads: real git clients over a real socket."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from e2e.cluster import gitserver
from e2e.cluster.flux import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    root = tmp_path / "repos"
    proc = subprocess.Popen([sys.executable, "-m", "e2e.cluster.gitserver", "--root", str(root), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def answers():
        try:
            urllib.request.urlopen(url + "/", timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            return False
        return True

    wait_for(answers, timeout=20, what="the Git server answering")
    yield root, url
    proc.terminate()
    proc.wait(timeout=10)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)


def test_a_commit_is_cloned_over_http_and_the_next_commit_is_fetched(server, tmp_path):
    root, url = server
    repo = gitserver.create_repo(root, url, "app")
    first = repo.commit({"app/web.yaml": "image: web:1.0\n"}, "web 1.0")
    clone = tmp_path / "clone"
    proc = git("clone", "-q", repo.url, str(clone))
    assert proc.returncode == 0, proc.stderr
    assert (clone / "app" / "web.yaml").read_text() == "image: web:1.0\n"
    assert git("-C", str(clone), "rev-parse", "HEAD").stdout.strip() == first
    assert repo.flux_revision() == f"main@sha1:{first}"

    second = repo.commit({"app/web.yaml": "image: web:2.0\n"}, "web 2.0")
    assert second != first
    assert git("-C", str(clone), "pull", "-q").returncode == 0
    assert git("-C", str(clone), "rev-parse", "HEAD").stdout.strip() == second


def test_an_unknown_repository_is_a_404_a_path_out_of_the_root_a_client_error_and_pushing_is_refused(server, tmp_path):
    root, url = server
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/missing/info/refs?service=git-upload-pack", timeout=5)
    assert err.value.code == 404
    for escape in ("/../outside/info/refs", "/..%2foutside/info/refs", "/app/%2e%2e/%2e%2e/outside/info/refs"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}{escape}?service=git-upload-pack", timeout=5)
        assert err.value.code in (400, 404), escape
    repo = gitserver.create_repo(root, url, "app")
    repo.commit({"a": "1"}, "one")
    clone = tmp_path / "clone"
    assert git("clone", "-q", repo.url, str(clone)).returncode == 0
    (clone / "a").write_text("forged")
    assert git("-C", str(clone), "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qam", "x").returncode == 0
    assert git("-C", str(clone), "push", "-q", "origin", "HEAD:main").returncode != 0
    assert repo.git("show", "HEAD:a") == "1", "the served repository is read-only"
