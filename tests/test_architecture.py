"""Dependencies point one way: api → maps → geo, api → geo; geo has no web or map code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "geo": {"api", "maps", "fastapi", "folium", "starlette", "jinja2", "typer", "rich"},
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(f): f
        for pkg in ("geo", "api", "maps")
        for f in sorted((ROOT / pkg).rglob("*.py"))
        if "migrations" not in f.parts
    }


def _module_imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported at module level (function-level imports excluded)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n:
                out.add(n)
    return out


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = {m: _module_imports(p, set(mods)) - {m} for m, p in mods.items()}
    # a package's __init__ importing its own submodules is not a cycle
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("geo.gridding", "geo.store"),
        ("geo.address", "geo.store"),
        ("geo.crs", "geo.store"),
        ("geo.plan", "geo.store"),
        ("geo.gridding", "geo.services"),
        ("geo.store", "geo.services"),
        ("geo.store", "geo.workspace"),
    ],
)
def test_layers_inside_geo(package: str, forbidden: str) -> None:
    mods = _modules()
    bad = {
        m: sorted(d for d in _module_imports(p, set(mods)) if d.startswith(forbidden))
        for m, p in mods.items()
        if m == package or m.startswith(package + ".")
    }
    assert {m: d for m, d in bad.items() if d} == {}


def test_no_sql_in_api_routes() -> None:
    offenders = [
        str(f.relative_to(ROOT))
        for f in sorted((ROOT / "api" / "routes").rglob("*.py"))
        if {"sqlalchemy.text", "sqlalchemy"}
        & {
            f"{n.module}.{a.name}" if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
            if isinstance(n, ast.ImportFrom | ast.Import)
            and getattr(n, "level", 0) == 0
            for a in n.names
        }
    ]
    assert offenders == []


def test_every_module_imports_on_its_own() -> None:
    """Each module in a fresh interpreter: no hidden reliance on import order."""
    import subprocess
    import sys

    names = sorted(_modules())
    code = (
        "import importlib, subprocess, sys\n"
        "bad = []\n"
        "for m in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {m}'],"
        " capture_output=True, text=True)\n"
        "    if r.returncode: bad.append((m, r.stderr.strip().splitlines()[-1]))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *names],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize("package", ["geo/gridding", "geo/store", "geo/io"])
def test_readme_where_things_live_matches_the_tree(package: str) -> None:
    """Each module of the package is named in its README bullet, and no more."""
    import re

    section = _readme_section("Where things live")
    bullet = re.search(rf"^- `{package}/`(.*?)(?=^- |\Z)", section, re.M | re.S)
    assert bullet, f"README's 'Where things live' has no line for {package}/"
    named = set(re.findall(r"`([\w/]+?)/?`", bullet.group(1)))
    on_disk = {
        p.stem
        for p in (ROOT / package).iterdir()
        if (p.suffix == ".py" and p.stem != "__init__")
        or (p.is_dir() and (p / "env.py").exists())
    }
    assert on_disk - named == set(), "modules the README does not mention"
    assert {n for n in named if n.isidentifier()} - on_disk == set(), (
        "the README names modules that do not exist"
    )


def test_readme_names_every_top_level_module_of_geo() -> None:
    section = _readme_section("Where things live")
    for p in sorted((ROOT / "geo").glob("*.py")):
        if p.stem != "__init__":
            assert f"`geo/{p.name}`" in section, p.name
    for d in sorted(
        q for q in (ROOT / "geo").iterdir() if (q / "__init__.py").exists()
    ):
        assert f"`geo/{d.name}/`" in section, d.name
