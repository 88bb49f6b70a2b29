"""A Git server on loopback for Flux's GitRepository: Debian git's `git http-backend` behind an aiohttp CGI front.

    python -m e2e.cluster.gitserver --root DIR --port PORT

Serves every repository under DIR read-only over smart HTTP (http://127.0.0.1:PORT/NAME). Tests write to the
repositories directly on disk (`Repo` below); only Flux's source-controller reads over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

BACKEND_NAMES = ("/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend")


def http_backend() -> str:
    for path in BACKEND_NAMES:
        if os.access(path, os.X_OK):
            return path
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    candidate = os.path.join(exec_path, "git-http-backend")
    if exec_path and os.access(candidate, os.X_OK):
        return candidate
    raise RuntimeError("git http-backend not found: install Debian's git (apt-get install git)")


def make_app(root: Path) -> web.Application:
    backend = http_backend()

    async def cgi(request: web.Request) -> web.StreamResponse:
        if ".." in request.path.split("/") or "\\" in request.path:
            # git http-backend answers 500 "aliased" to these; they are the client's fault
            return web.Response(status=400, text="path escapes the repository root")
        body = await request.read()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
        }
        proc = await asyncio.create_subprocess_exec(backend, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await proc.communicate(body)
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if proc.returncode != 0 and status == 200:
            return web.Response(status=500, text=f"git http-backend failed: {err.decode(errors='replace')}")
        return web.Response(status=status, body=payload, headers=headers)

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_route("*", "/{tail:.*}", cgi)
    return app


@dataclass
class Repo:
    """A repository served by the Git server: a work tree under its root; commits land on `main`."""

    path: Path
    url: str

    def commit(self, files: dict[str, str], message: str) -> str:
        """Write `files` (relative path -> text), commit them all; returns the commit's sha."""
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.revision()

    def revision(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def flux_revision(self) -> str:
        """The revision as Flux reports it in status.artifact.revision / lastAppliedRevision."""
        return f"main@sha1:{self.revision()}"

    def git(self, *args: str) -> str:
        env = dict(os.environ, GIT_AUTHOR_NAME="remediator tests", GIT_AUTHOR_EMAIL="tests@remediator.invalid",
                   GIT_COMMITTER_NAME="remediator tests", GIT_COMMITTER_EMAIL="tests@remediator.invalid")
        proc = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout


def create_repo(root: Path, base_url: str, name: str) -> Repo:
    """A new, empty repository `name` under the server's root (replacing one of that name)."""
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    repo = Repo(path, f"{base_url.rstrip('/')}/{name}")
    repo.git("init", "-q", "-b", "main")
    return repo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster.gitserver", description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    web.run_app(make_app(args.root), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
