"""Every planner notebook runs top to bottom (cells assert results), both on an empty
database and on the one ``gridmap run`` leaves (the 20,000-household sample county,
its published county plan and a year of matters), as planners run them (issue 26)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from sqlalchemy import text

from geo.store.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GRIDMAP = [sys.executable, "-c", "from api.cli import main; main()"]


@pytest.fixture(scope="module", params=["empty", "after_run"])
def notebook_db(request, make_database) -> str:  # type: ignore[no-untyped-def]
    """A fresh database on the test server, empty or as ``gridmap run`` leaves it.

    The notebooks reach it through the environment.
    """
    url = make_database(f"notebooks_{request.param}")
    if request.param == "after_run":
        done = subprocess.run(
            [*GRIDMAP, "run", "--no-serve"],
            cwd=ROOT,
            env={**os.environ, "GRIDMAP_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                n = conn.execute(text("SELECT count(*) FROM households")).scalar_one()
                published = conn.execute(
                    text("SELECT count(*) FROM plans WHERE status = 'published'")
                ).scalar_one()
        finally:
            engine.dispose()
        assert (n, published) == (20_000, 1), "the state gridmap run leaves"
    return url


def test_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_redraw_township.ipynb",
        "03_coverage_audit.ipynb",
        "04_real_data_liechtenstein.ipynb",
        "05_events_audit.ipynb",
        "06_redraw_by_hand.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(
    path: Path, notebook_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is committed with outputs; strip them"
    )
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", notebook_db)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=dict(os.environ))
    last = nb.cells[-1]
    text = "".join(o.get("text", "") for o in last.get("outputs", []))
    assert text.startswith("ok:"), f"{path.name} ended with {text!r}"


def test_a_kernel_in_notebooks_finds_the_projects_database(tmp_path: Path) -> None:
    """With no GRIDMAP_* variable set, a process started in notebooks/ (as Jupyter
    starts kernels) uses the project's .gridmap, where ``gridmap run`` keeps the
    database — not a second, empty one in notebooks/.gridmap."""
    (tmp_path / ".gridmap").mkdir()
    (tmp_path / "notebooks").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDMAP_")}
    env["PYTHONPATH"] = str(ROOT)
    probe = "from geo.store.settings import Settings; print(Settings().data_dir)"
    for cwd in (tmp_path / "notebooks", tmp_path):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        assert Path(out) == tmp_path / ".gridmap"
    assert not (tmp_path / "notebooks" / ".gridmap").exists()
