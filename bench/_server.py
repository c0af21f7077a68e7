"""Shared bench helpers: a free port, and waiting for a started server."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port(host: str) -> int:
    """A TCP port nothing listens on at ``host`` (for a server about to start)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_ready(
    base: str,
    proc: subprocess.Popen[bytes],
    timeout_s: float,
    *,
    path: str = "/conformance",
    every_s: float = 0.3,
) -> None:
    """Return once ``base + path`` answers 200; exit the bench if the server
    process ends first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited early (code {proc.returncode})")
        try:
            if httpx.get(f"{base}{path}", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(every_s)
    raise SystemExit(f"the server did not answer {path} within {timeout_s:.0f} s")
