"""The benches name the files they wrote without crashing on an ``--out`` outside
the repository (issue 25: ``bench/lookup.py --out /elsewhere/x.json``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _paths() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load the helper from its file
    spec = importlib.util.spec_from_file_location(
        "_bench_paths", ROOT / "bench" / "_paths.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_path_inside_the_repository_is_shown_relative() -> None:
    out = ROOT / "bench" / "results" / "lookup-200000.json"
    assert _paths().shown(out, ROOT) == str(Path("bench/results/lookup-200000.json"))


def test_a_path_outside_the_repository_is_shown_in_full(tmp_path: Path) -> None:
    out = tmp_path / "other" / "x.json"
    assert _paths().shown(out, ROOT) == str(out.resolve())


def test_a_relative_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _paths().shown(Path("x.json"), ROOT) == str(tmp_path.resolve() / "x.json")


def test_the_benches_that_write_results_use_it() -> None:
    for script in ("lookup.py", "outage.py"):
        text = (ROOT / "bench" / script).read_text(encoding="utf-8")
        assert "relative_to(ROOT)" not in text, script
        assert "shown(" in text, script
