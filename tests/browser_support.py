"""Shared setup of the browser tests: Debian chromium driven by Playwright, offline.

Importing this module skips the calling test module when Playwright or chromium is
missing (CI installs both, and fails on skipped tests).
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Chromium on a closed network: no background traffic, no first-run work
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = re.compile(r"(1[3-9]\d{9}|0570-\d{7})")

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (dev extra)"
)
if not Path(CHROMIUM).exists():  # pragma: no cover - CI installs it (.ci/bootstrap.sh)
    pytest.skip("Debian chromium is not installed", allow_module_level=True)


@contextmanager
def served(settings: Any) -> Iterator[str]:
    """The API (``create_app(settings)``) served by uvicorn in a thread on a free
    127.0.0.1 port, until the block ends; its base URL."""
    import uvicorn

    from api.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium (Debian's), headless and offline, for the module's tests."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()
