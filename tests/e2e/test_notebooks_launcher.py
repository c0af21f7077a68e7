"""``bash .ci/bootstrap.sh notebooks``: one command opens JupyterLab for planners.

The command runs as a planner would run it (with a free port passed through); the
test waits for the URL it prints, then checks that JupyterLab answers on 127.0.0.1
with the printed token and refuses without it, serves notebooks/, listens on the
loopback address only, keeps the token off its command line and hands its kernels
the project's database (``GRIDMAP_DATA_DIR`` of the project, whose cluster the
command started). Then it is stopped.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"open:\s+(http://127\.0\.0\.1:(\d+)/lab\?token=(\S+))")
#: only a guard against a hung start (installing JupyterLab may take a while)
START_DEADLINE = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Launched:
    def __init__(self, tmp: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
        env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")
        self.proc = subprocess.Popen(
            ["bash", ".ci/bootstrap.sh", "notebooks", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.out.append(line)
            if m := pattern.search(line):
                return m
        raise AssertionError(f"no {pattern.pattern!r} in:\n{''.join(self.out)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[tuple[Launched, int]]:
    port = _free_port()
    lab = Launched(tmp_path, port)
    try:
        yield lab, port
    finally:
        lab.stop()


def _get(url: str, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.get(url, timeout=30, follow_redirects=False, **kw)


def test_notebooks_command_opens_jupyterlab(launched) -> None:  # type: ignore[no-untyped-def]
    lab, port = launched
    m = lab.wait_for(URL)
    url, printed_port, token = m.group(1), int(m.group(2)), m.group(3)
    assert printed_port == port, lab.out
    assert len(token) >= 24, token
    base = f"http://127.0.0.1:{port}"
    # up once JupyterLab says so
    lab.wait_for(re.compile(r"Jupyter Server .* is running at"))

    status = _get(f"{base}/api/status", params={"token": token})
    assert status.status_code == 200, status.text
    assert _get(url).status_code == 200
    assert (
        _get(f"{base}/api/status", headers={"Authorization": f"token {token}"})
    ).status_code == 200
    # without the token (or with a wrong one): refused
    assert _get(f"{base}/api/status").status_code == 403
    assert _get(f"{base}/api/status", params={"token": "x" * 32}).status_code == 403
    assert _get(f"{base}/api/contents").status_code == 403
    assert _get(f"{base}/lab").status_code != 200  # sent to the login page
    # it serves the planners' notebooks
    listing = _get(f"{base}/api/contents", params={"token": token}).json()
    names = {c["name"] for c in listing["content"]}
    assert "01_quickstart.ipynb" in names, names

    # bound to 127.0.0.1 only; the token is not on any command line (ps shows those)
    server = psutil.Process(lab.proc.pid)  # bash exec'ed jupyter: the same process
    family = [server, *server.children(recursive=True)]
    listening = [
        c.laddr
        for p in family
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(a.ip == "127.0.0.1" for a in listening), listening
    assert port in {a.port for a in listening}, listening
    assert not any(token in " ".join(p.cmdline()) for p in family)
    # its kernels (which start in notebooks/) get the project's own database
    env = server.environ()
    if (
        "GRIDMAP_DATABASE_URL" not in os.environ
        and "GRIDMAP_DATA_DIR" not in os.environ
    ):
        assert env["GRIDMAP_DATA_DIR"] == str(ROOT / ".gridmap"), env
    assert any(
        "embedded PostGIS running" in line or "GRIDMAP_DATABASE_URL is set" in line
        for line in lab.out
    ), lab.out
