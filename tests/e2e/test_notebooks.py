"""Every planner notebook runs top to bottom on a database of its own (cells assert results)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def notebook_db(make_database) -> str:  # type: ignore[no-untyped-def]
    """A fresh database on the test server; the notebooks reach it through the env."""
    return make_database("notebooks")


def test_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_redraw_township.ipynb",
        "03_coverage_audit.ipynb",
        "04_real_data_liechtenstein.ipynb",
        "05_events_audit.ipynb",
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
