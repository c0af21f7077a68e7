"""Dependencies point one way: api → maps → geo, api → geo; geo has no web or map code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


#: Imports FORBIDDEN above that a file makes on purpose, by file and top-level name:
#: the function (qualified name) that makes them, when called and never at import.
#: ``GridPlan.explore`` imports ``maps`` lazily, as geopandas'
#: ``GeoDataFrame.explore()`` imports folium: a convenience for notebooks that keeps
#: ``geo`` free of drawing code.
LAZY_IMPORTS_ALLOWED = {("geo/plan.py", "maps"): "GridPlan.explore"}


def _scoped_imports(path: Path) -> set[tuple[str, str | None]]:
    """Top-level names imported (absolute imports), with the qualified name of the
    function making the import (None at module or class level)."""
    found: set[tuple[str, str | None]] = set()

    def visit(node: ast.AST, scope: list[str], in_function: bool) -> None:
        where = ".".join(scope) if in_function else None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.update((a.name.split(".")[0], where) for a in child.names)
            elif (
                isinstance(child, ast.ImportFrom) and child.module and child.level == 0
            ):
                found.add((child.module.split(".")[0], where))
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, [*scope, child.name], True)
            elif isinstance(child, ast.ClassDef):
                visit(child, [*scope, child.name], in_function)
            else:
                visit(child, scope, in_function)

    visit(ast.parse(path.read_text(encoding="utf-8")), [], False)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    bad: dict[str, list[str]] = {}
    for f in files:
        rel = f.relative_to(ROOT).as_posix()
        names = {
            n
            for n, fn in _scoped_imports(f)
            if n in FORBIDDEN[package]
            and (fn is None or LAZY_IMPORTS_ALLOWED.get((rel, n)) != fn)
        }
        if names:
            bad[rel] = sorted(names)
    assert bad == {}, f"{package}/ imports what it must not: {bad}"


def test_lazy_imports_allowed_are_still_made_where_named() -> None:
    """Each allowance names a function-level import that exists (none goes stale),
    and the file does not also make it at module level."""
    for (rel, name), fn in LAZY_IMPORTS_ALLOWED.items():
        scoped = _scoped_imports(ROOT / rel)
        assert (name, fn) in scoped, f"{rel}: no import of {name} in {fn}"
        assert (name, None) not in scoped, f"{rel} imports {name} at module level"


def test_scoped_imports_see_functions_and_methods(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "import a\n"
        "class C:\n"
        "    import b\n"
        "    def m(self):\n"
        "        import c.x\n"
        "        def inner():\n"
        "            from d import y\n"
        "def f():\n"
        "    if True:\n"
        "        import e\n"
    )
    assert _scoped_imports(src) == {
        ("a", None),
        ("b", None),
        ("c", "C.m"),
        ("d", "C.m.inner"),
        ("e", "f"),
    }


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


#: What ``geo.store`` reads and is never read by: the readers, the algorithms, the
#: rules of matters, addresses, the domain's words and the CRS rules (issue 25).
BELOW_STORE = (
    "geo/io",
    "geo/gridding",
    "geo/events",
    "geo/address",
    "geo/vocabulary.py",
    "geo/crs.py",
)


def _imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports, at any level (functions included), as dotted
    names: ``from a import b`` gives ``a`` and ``a.b``; relative imports resolved
    from ``package`` (by default the file's own, under the repository)."""
    parts = (
        package.split(".")
        if package is not None
        else list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    )
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out.add(module)
            out |= {f"{module}.{a.name}" for a in node.names}
    return out


def test_imported_modules_resolve_from_and_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "from geo import store\ndef f():\n    from ..store import models\n"
        "    from . import tables\n",
        encoding="utf-8",
    )
    assert _imported_modules(src, "geo.io") == {
        "geo",
        "geo.store",
        "geo.store.models",
        "geo.io",
        "geo.io.tables",
    }


@pytest.mark.parametrize("below", BELOW_STORE)
def test_nothing_below_the_store_imports_it(below: str) -> None:
    root = ROOT / below
    files = [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))
    assert files and all(f.exists() for f in files), below
    bad = {
        f.relative_to(ROOT).as_posix(): sorted(
            m
            for m in _imported_modules(f)
            if m == "geo.store" or m.startswith("geo.store.")
        )
        for f in files
    }
    assert {k: v for k, v in bad.items() if v} == {}, (
        f"{below} reaches up into geo/store (move the shared words to geo/vocabulary.py)"
    )


#: The longest a module of geo/ or api/ may grow; past it, split it by concern.
MAX_MODULE_LINES = 1000


def test_no_module_over_a_thousand_lines() -> None:
    long = {
        f.relative_to(ROOT).as_posix(): n
        for pkg in ("geo", "api")
        for f in sorted((ROOT / pkg).rglob("*.py"))
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these by concern (at most {MAX_MODULE_LINES} lines)"


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
    # "Where things live" moved from README.md to docs/architecture.md (issue 25)
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
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


# -- public entry points are documented (issue 12) ---------------------------------

#: Modules whose public functions and methods (``__all__``) are entry points for
#: planners and callers: each has a numpydoc docstring with an Examples section.
DOCUMENTED_MODULES = [
    "geo.workspace",
    "geo.services",
    "geo.plan",
    "geo.gridding.generate",
    "geo.gridding.rebalance",
    "geo.gridding.assign",
    "geo.gridding.edits",
    "geo.gridding.staffing",
    "geo.gridding.diff",
    "geo.gridding.metrics",
    "maps",
]

#: Of those, modules whose docstrings also name every parameter under Parameters.
FULLY_DOCUMENTED_MODULES = [
    "geo.workspace",
    "geo.services",
    "geo.gridding.generate",
    "geo.gridding.assign",
    "geo.gridding.edits",
    "geo.gridding.staffing",
    "geo.gridding.diff",
    "maps",
]


def _entry_points(module_name: str) -> dict[str, object]:
    """Functions in the module's ``__all__`` and the public methods its classes
    define themselves (inherited ones, e.g. folium's, are not ours)."""
    import importlib
    import inspect

    mod = importlib.import_module(module_name)
    out: dict[str, object] = {}
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.isfunction(obj):
            out[name] = obj
        elif inspect.isclass(obj) and obj.__module__.startswith(("geo", "maps")):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                fn = getattr(member, "__func__", member)  # static/class methods
                fn = getattr(fn, "fget", fn)  # properties
                if inspect.isfunction(fn):
                    out[f"{name}.{attr}"] = fn
    return out


def _section(doc: str, title: str) -> str | None:
    """The body of a numpydoc section (``Title`` over a dashed line), or None."""
    import inspect
    import re

    text = inspect.cleandoc(doc)
    m = re.search(
        rf"^{title}\n-{{{len(title)}}}\n(.*?)(?=^\w[\w ]*\n-+\n|\Z)", text, re.M | re.S
    )
    return m.group(1) if m else None


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_public_entry_points_have_examples(module_name: str) -> None:
    entry = _entry_points(module_name)
    assert entry, f"{module_name} has no public function"
    missing = sorted(
        name
        for name, fn in entry.items()
        if not (fn.__doc__ and (_section(fn.__doc__, "Examples") or "").strip())
    )
    assert missing == [], f"{module_name}: no Examples section in {missing}"


@pytest.mark.parametrize("module_name", FULLY_DOCUMENTED_MODULES)
def test_public_entry_points_document_every_parameter(module_name: str) -> None:
    import inspect

    undocumented: dict[str, list[str]] = {}
    for name, fn in _entry_points(module_name).items():
        params = [
            p for p in inspect.signature(fn).parameters if p not in {"self", "cls"}
        ]
        if not params:
            continue
        body = _section(fn.__doc__ or "", "Parameters") or ""
        named = {
            n.strip()
            for line in body.splitlines()
            if line and not line[0].isspace()
            for n in line.split(":")[0].split(",")
        }
        lost = [p for p in params if p not in named]
        if lost:
            undocumented[name] = lost
    assert undocumented == {}, f"{module_name}: parameters not under Parameters"


def test_section_parser_finds_numpydoc_sections() -> None:
    doc = """Summary.

    Parameters
    ----------
    a, b
        Two.
    c : int
        Three.

    Examples
    --------
    >>> 1
    1
    """
    assert _section(doc, "Parameters") == "a, b\n    Two.\nc : int\n    Three.\n\n"
    assert (_section(doc, "Examples") or "").startswith(">>> 1")
    assert _section(doc, "Returns") is None
    assert _section("Summary only.", "Examples") is None


def test_workspace_methods_take_explicit_keywords() -> None:
    """The planners' API names every option: no ``**options`` or ``*args``."""
    import inspect

    loose = {
        name: [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in {p.VAR_KEYWORD, p.VAR_POSITIONAL}
        ]
        for name, fn in _entry_points("geo.workspace").items()
        if name.startswith("Workspace.")
    }
    assert {"Workspace.load", "Workspace.generate", "Workspace.rebalance"} <= set(loose)
    assert {k: v for k, v in loose.items() if v} == {}


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in support modules beside conftest.py, never in a test
    module that others import."""
    offenders = [
        f"{f.relative_to(ROOT)} imports {name}"
        for f in sorted((ROOT / "tests").rglob("test_*.py"))
        for name in _imports(f)
        if name.startswith("test_")
    ]
    assert offenders == []


#: Framework entry points whose parameters are the options a user types (typer
#: commands) or the query parameters a client sends (FastAPI routes): the framework
#: passes them by name.
_FRAMEWORK_DIRS = ("api/cli", "api/routes")
MAX_POSITIONAL = 6


def _positional_counts(path: Path) -> list[tuple[int, str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args]
            names = [n for n in names if n not in ("self", "cls")]
            out.append((node.lineno, node.name, len(names)))
    return out


def test_positional_counter_sees_keyword_only_markers(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "def f(a, b, c, d, e, f, g): ...\n"
        "def k(a, b, c, d, e, f, *, g): ...\n"
        "class C:\n    def m(self, a, b, c, d, e, f): ...\n"
    )
    assert [(n, c) for _, n, c in _positional_counts(src)] == [
        ("f", 7),
        ("k", 6),
        ("m", 6),
    ]


def test_no_function_takes_more_than_six_positional_parameters() -> None:
    long = []
    for pkg in ("geo", "maps", "api"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(_FRAMEWORK_DIRS) or "/migrations/" in rel:
                continue
            long += [
                f"{rel}:{line} {name}() takes {n} positional parameters"
                for line, name, n in _positional_counts(path)
                if n > MAX_POSITIONAL
            ]
    assert not long, (
        "pass a value object (e.g. geo.plan.Band) or make the rest keyword-only:\n"
        + "\n".join(long)
    )
