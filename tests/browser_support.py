"""Shared setup of the browser tests: Debian chromium driven by Playwright, offline.

Importing this module skips the calling test module when Playwright or chromium is
missing (CI installs both, and fails on skipped tests).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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
