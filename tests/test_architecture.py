"""Dependencies point one way: api → maps → geo, api → geo; geo has no web or map code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "geo": {"api", "maps", "fastapi", "folium", "starlette", "jinja2"},
    "maps": {"api", "fastapi", "starlette"},
    "api": set(),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    bad = {
        str(f.relative_to(ROOT)): sorted(_imports(f) & FORBIDDEN[package])
        for f in files
    }
    bad = {k: v for k, v in bad.items() if v}
    assert bad == {}, f"{package}/ imports what it must not: {bad}"


def test_no_import_time_settings_or_engine() -> None:
    """Settings and engines are built in entry points, never at module level."""
    offenders = []
    for f in sorted((ROOT / "geo").rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(
                node.value, ast.Call
            ):
                fn = node.value.func
                name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", "")
                if name in {"Settings", "make_engine", "create_engine"}:
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
