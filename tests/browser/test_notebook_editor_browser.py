"""The notebook editor in a real JupyterLab (the one ``bash .ci/bootstrap.sh
notebooks`` installs) in a real Chromium: a notebook shows ``GridEditor`` over a
draft; the planner clicks a building on the map, then a second one with shift,
picks the target grid, presses 移入网格 and sees the touched grids' counts, which
are what the database holds; 撤销 puts them back. Offline: any request to another
host fails the test.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import browser_support
import httpx
import nbformat
import pytest
from editor_support import grid_counts, published_sample

from geo.workspace import Workspace

browser = browser_support.browser

CELL = """\
from geo.workspace import Workspace
from maps.editor import GridEditor

ws = Workspace.connect()
draft = ws.draft({plan_id})
ed = GridEditor(draft, area="{area}", height=520)
ed"""


@pytest.fixture(scope="module")
def world(make_database):  # type: ignore[no-untyped-def]
    url = make_database("nb_editor")
    ws, pid, township = published_sample(url)
    yield url, ws, pid, township
    ws.engine.dispose()


@pytest.fixture(scope="module")
def lab(world, tmp_path_factory) -> Iterator[tuple[str, str, Path]]:  # type: ignore[no-untyped-def]
    url, _, _, _ = world
    root = tmp_path_factory.mktemp("lab")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": url,
        "JUPYTER_TOKEN": token,
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-browser",
            "--ServerApp.port_retries=0",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--notebook-dir",
            str(root),
            *(["--allow-root"] if os.getuid() == 0 else []),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a guard against a hung start only
    while True:
        assert proc.poll() is None, "JupyterLab exited"
        assert time.monotonic() < deadline, "JupyterLab did not start in 180 s"
        try:
            if httpx.get(f"{base}/api/status?token={token}", timeout=2).is_success:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    try:
        yield base, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def _pairs(
    ws: Workspace, plan_id: int, township: str
) -> list[tuple[list[str], str, str]]:
    """Pairs of units of one grid that can move together into a neighbour, in band."""
    from maps.editor import GridEditor

    probe = GridEditor(ws.draft(plan_id, new=False), area=township)
    props = {f["properties"]["code"]: f["properties"] for f in probe.grids["features"]}
    out = []
    for a in sorted(props, key=lambda c: -props[c]["households"]):
        for b in probe.draft.neighbours(a):
            if b not in props:
                continue
            units = probe.draft.border(a, b, limit=6)
            for i in range(len(units)):
                for j in range(i + 1, len(units)):
                    n = units[i][1] + units[j][1]
                    if (
                        props[a]["households"] - n >= 200
                        and props[b]["households"] + n <= 300
                    ):
                        out.append(([units[i][0], units[j][0]], a, b))
    assert out, "no two buildings can move in band in this township"
    return out


#: zoom in on the unit (as a planner does to pick one building) and say whether
#: its marker is then the topmost element at its centre (a click hits it)
CLICKABLE = """(id) => {
  const ed = document.querySelector(".gm-editor");
  const m = ed.gmMarkers.get(id);
  if (!m) return false;
  ed.scrollIntoView({ block: "start" });
  ed.gmMap.setView(m.getLatLng(), 18, { animate: false });
  const e = m.getElement();
  const r = e.getBoundingClientRect();
  return document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === e;
}"""


def test_the_editor_in_jupyterlab(browser, world, lab) -> None:  # type: ignore[no-untyped-def]
    _url, ws, pid, township = world
    base, token, root = lab
    draft = ws.draft(pid)  # the notebook opens this draft (new=False below)
    pairs = _pairs(ws, draft.plan_id, township)
    src, dst = pairs[0][1], pairs[0][2]
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                CELL.format(plan_id=draft.plan_id, area=township).replace(
                    f"ws.draft({draft.plan_id})",
                    f"ws.draft({draft.plan_id}, new=False)",
                )
            )
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(nb, root / "editor.ipynb")

    origin = urlsplit(base)
    foreign: list[str] = []
    errors: list[str] = []

    def route(r) -> None:  # type: ignore[no-untyped-def]
        u = urlsplit(r.request.url)
        if r.request.url.startswith(("data:", "blob:")) or u.netloc == origin.netloc:
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{base}/lab/tree/editor.ipynb?token={token}")
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
            timeout=120_000,
        )
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_selector(".gm-editor[data-ready='1']", timeout=120_000)
        assert page.locator("path.gm-ed-building").count() > 10
        # two buildings a click reaches (not under another marker), as a user sees
        units, src, dst = next(
            (u, a, b)
            for u, a, b in pairs
            if page.evaluate(CLICKABLE, u[1]) and page.evaluate(CLICKABLE, u[0])
        )
        before = grid_counts(ws, draft.plan_id, [src, dst])
        page.locator(f"path[data-building='{units[0]}']").click()
        sel = page.locator(".gm-ed-selection")
        page.wait_for_function(
            "() => document.querySelector('.gm-ed-selection').dataset.buildings === '1'"
        )
        assert page.evaluate(CLICKABLE, units[1])
        page.locator(f"path[data-building='{units[1]}']").click(modifiers=["Shift"])
        page.wait_for_function(
            "() => document.querySelector('.gm-ed-selection').dataset.buildings === '2'"
        )
        assert "已选 2 栋" in sel.inner_text()
        page.select_option(".gm-ed-target", dst)
        page.click(".gm-ed-move")
        page.wait_for_selector(f".gm-ed-touched tr[data-grid='{dst}']", timeout=60_000)
        shown = page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll("
            "'.gm-ed-touched tr[data-grid]')].map(r => [r.dataset.grid, "
            "+r.dataset.households]))"
        )
        after = grid_counts(ws, draft.plan_id, [src, dst])
        assert after[src] < before[src] and after[dst] > before[dst]
        assert {k: shown[k] for k in (src, dst)} == after
        # the picture of docs/img/notebook-editor.png
        page.locator(".gm-editor").screenshot(path="/tmp/notebook-editor.png")
        page.click("text=撤销")
        page.wait_for_function(
            f"() => +document.querySelector(\".gm-ed-touched tr[data-grid='{dst}']\")"
            f".dataset.households === {before[dst]}"
        )
        assert grid_counts(ws, draft.plan_id, [src, dst]) == before
    finally:
        page.close()
    assert not foreign, foreign[:5]
    assert not errors, errors[:5]
