"""The README and docs/ say what the code does: commands, options, links, examples.

No database is needed. The conventions the docs follow (README, "Where to go next"):

* every ``gridmap …`` (or ``.venv/bin/gridmap …``) in a shell block or an inline code
  span names commands and options the CLI has, and ``gridmap <command> --help`` runs;
* shell lines of ``gridmap generate`` in file mode whose input files are in the
  repository are run for real (into a temporary folder);
* ``bash .ci/bootstrap.sh X``, ``make X`` and ``bench/X.py --option`` exist;
* paths on ``http://127.0.0.1:8000`` and ``GET /…``/``POST /…`` spans are routes of
  the app;
* every relative link resolves to a file, and its ``#anchor`` to a heading there;
* a fenced block opened with exactly ```` ```python ```` runs as written; one opened
  with ```` ```python db ```` (needs a database) is only checked to compile.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_INFOS = {"", "bash", "sh", "shell", "console"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _blocks(path: Path) -> list[tuple[str, str, int]]:
    """The fenced code blocks of a Markdown file: ``(info string, body, first line)``."""
    blocks, lines = [], path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,})(.*)$", lines[i])
        if m:
            indent, fence, info = m.groups()
            body, start = [], i + 1
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(
                    lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i]
                )
                i += 1
            blocks.append((info.strip(), "\n".join(body), start + 1))
        i += 1
    return blocks


def _prose(path: Path) -> str:
    """The file without its fenced code blocks."""
    kept, fence = [], ""
    for line in path.read_text(encoding="utf-8").split("\n"):
        m = re.match(r"^\s*(`{3,})", line)
        if fence:
            fence = "" if m and line.strip() == fence else fence
        elif m:
            fence = m.group(1)
        else:
            kept.append(line)
    return "\n".join(kept)


def _spans(path: Path) -> list[str]:
    """Inline code spans of the prose (single backticks, may wrap a line)."""
    prose = re.sub(r"````.*?````", "", _prose(path), flags=re.S)
    return [" ".join(s.split()) for s in re.findall(r"(?<!`)`([^`]+)`(?!`)", prose)]


def _shell_lines(path: Path) -> list[str]:
    """Lines of the shell blocks, with continuations joined and comments dropped."""
    out = []
    for info, body, _ in _blocks(path):
        if info.split(" ")[0] not in SHELL_INFOS:
            continue
        for line in body.replace("\\\n", " ").split("\n"):
            line = re.sub(r"(^|\s)#\s.*$", "", line).strip()
            if line:
                out.append(line)
    return out


# -- the two commands ------------------------------------------------------------


def test_readme_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The two commands\n") :]
    block = next(b for info, b, _ in _blocks(ROOT / "README.md") if "bootstrap" in b)
    assert block in section
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    assert commands == ["bash .ci/bootstrap.sh run", "bash .ci/bootstrap.sh test"]
    ci = [
        line.strip()
        for line in (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "exec bash .ci/bootstrap.sh test" in ci, ".ci/run must run the README's test"


def test_bootstrap_modes_and_make_targets_the_docs_name_exist() -> None:
    script = (ROOT / ".ci/bootstrap.sh").read_text(encoding="utf-8")
    modes = set(re.findall(r"^\s*([a-z|-]+)\)", script, re.M))
    modes = {m for alt in modes for m in alt.split("|")}
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for path in DOCS:
        for text in [*_shell_lines(path), *_spans(path)]:
            for mode in re.findall(r"bash \.ci/bootstrap\.sh ([a-z-]+)", text):
                assert mode in modes, f"{_rel(path)}: bootstrap.sh has no mode {mode!r}"
            for target in re.findall(r"^make ([a-z][\w-]*)", text):
                assert target in targets, f"{_rel(path)}: no Makefile target {target!r}"


# -- the gridmap command -----------------------------------------------------------


@cache
def _cli() -> Any:
    """The ``gridmap`` command as Typer builds it (a group of groups and commands)."""
    from api.cli import app

    command = typer.main.get_command(app)
    assert command.commands, "gridmap has sub-commands"  # type: ignore[attr-defined]
    return command


def _invocations(text: str) -> list[list[str]]:
    """The argument lists of every ``gridmap`` call in one line or span."""
    calls = []
    for m in re.finditer(r"(?:^|(?<=[\s(\"'=]))(?:\.venv/bin/)?gridmap(?=\s|$)", text):
        rest = re.split(r"[|;)\"`]|&&|\s#\s", text[m.end() :])[0]
        rest = rest.replace("[", " ").replace("]", " ")
        try:
            words = shlex.split(rest)
        except ValueError:
            words = rest.split()
        calls.append(words)
    return calls


def _resolve(words: list[str]) -> tuple[list[str], Any, list[str]]:
    """The command path, the command, and the ``--options`` given."""
    command = _cli()
    path: list[str] = []
    rest = list(words)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"gridmap {' '.join(path)} has no command {name!r}"
        command, path = sub, [*path, name]
    options = [
        w.split("=", 1)[0] for w in rest if re.fullmatch(r"--[a-z][\w-]*(=.*)?", w)
    ]
    return path, command, options


def _documented_calls() -> list[tuple[str, list[str]]]:
    calls = []
    for path in DOCS:
        for text in [*_shell_lines(path), *_spans(path)]:
            calls += [(_rel(path), words) for words in _invocations(text)]
    return calls


def test_docs_show_many_gridmap_commands() -> None:
    paths = {tuple(_resolve(w)[0]) for _, w in _documented_calls()}
    assert len(paths) >= 25, sorted(paths)  # the parser still finds them


def test_every_documented_gridmap_command_and_option_exists() -> None:
    for where, words in _documented_calls():
        path, command, options = _resolve(words)
        known = {"--help"} | {
            opt for p in command.params for opt in [*p.opts, *p.secondary_opts]
        }
        unknown = [o for o in options if o not in known]
        assert not unknown, (
            f"{where}: `gridmap {' '.join(words)}`: `gridmap {' '.join(path)}` "
            f"has no option {unknown}"
        )


def test_gridmap_help_runs_for_every_documented_command() -> None:
    from api.cli import app

    runner = CliRunner()
    paths = sorted({tuple(_resolve(w)[0]) for _, w in _documented_calls()})
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path


def test_the_file_mode_commands_of_the_docs_run(tmp_path: Path) -> None:
    """``gridmap generate`` lines on files in the repository run as written."""
    from api.cli import app

    runner = CliRunner()
    ran = 0
    for where, words in _documented_calls():
        path, _, _ = _resolve(words)
        if path != ["generate"] or "--out" not in words:
            continue
        args = list(words[1:])
        inputs = [
            args[i + 1] for i, a in enumerate(args) if a in {"--households", "--areas"}
        ]
        if not all((ROOT / p).is_file() for p in inputs):
            continue  # placeholders (H, A)
        out = tmp_path / f"run{ran}"
        args[args.index("--out") + 1] = str(out)
        cwd = Path.cwd()
        os.chdir(ROOT)
        try:
            result = runner.invoke(app, ["generate", *args])
        finally:
            os.chdir(cwd)
        assert result.exit_code == 0, (where, words, result.output)
        for name in ("grids.geojson", "assignments.csv", "report.json"):
            assert (out / name).is_file(), (where, name)
        ran += 1
    assert ran >= 1, "the README's tour draws grids from data/shapes"


# -- bench scripts -----------------------------------------------------------------


def test_documented_bench_scripts_and_options_exist() -> None:
    seen = 0
    for path in DOCS:
        for text in [*_shell_lines(path), *_spans(path)]:
            for m in re.finditer(
                r"bench/(\w+\.py)((?:\s+\[?--[\w-]+[^`]*?)*)(?=$|`)", text
            ):
                script = ROOT / "bench" / m.group(1)
                assert script.is_file(), f"{_rel(path)}: no {script.name} in bench/"
                source = script.read_text(encoding="utf-8")
                for option in re.findall(r"(--[a-z][\w-]*)", m.group(2)):
                    assert f'"{option}"' in source, (
                        f"{_rel(path)}: bench/{script.name} has no option {option}"
                    )
                seen += 1
    assert seen >= 8


# -- HTTP paths --------------------------------------------------------------------


@cache
def _routes() -> list[re.Pattern[str]]:
    from api.app import create_app

    paths = [*create_app().openapi()["paths"], "/docs", "/openapi.json"]
    patterns = []
    for p in paths:
        regex = re.sub(r"\\\{[^/]+?\\\}", r"[^/]+", re.escape(p))
        patterns.append(re.compile(regex + r"/?"))
    return patterns


def _documented_paths() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"https?://127\.0\.0\.1:8000(/[^\s'\"?)>]*)?", text):
            found.append((_rel(path), m.group(1) or "/"))
        for span in _spans(path):
            for m in re.finditer(r"\b(?:GET|POST|PUT|PATCH|DELETE) (/[^\s?`]*)", span):
                found.append((_rel(path), m.group(1)))
    return found


def test_documented_http_paths_are_routes_of_the_app() -> None:
    found = _documented_paths()
    assert len(found) >= 20
    for where, p in found:
        # `POST /events/{id}/sort|accept|…` names several actions of one route
        p = p.split("|")[0]
        assert any(r.fullmatch(p) for r in _routes()), f"{where}: no route for {p}"


# -- links -------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*$", _prose(path), re.M):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return frozenset(anchors)


def _links(path: Path) -> list[str]:
    prose = re.sub(r"(?<!`)`[^`]+`(?!`)", "", _prose(path))
    return re.findall(r"\]\(([^)\s]+)\)", prose)


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    for link in _links(doc):
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:
        target, _, anchor = link.partition("#")
        file = (doc.parent / target).resolve() if target else doc
        assert file.exists(), f"{_rel(doc)}: link {link} points at nothing"
        assert file.is_relative_to(ROOT), f"{_rel(doc)}: {link} leaves the repository"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), (
                f"{_rel(doc)}: {link}: no heading #{anchor} in {_rel(file)}"
            )


def test_readme_links_every_page_of_docs() -> None:
    readme_links = {
        (ROOT / link.partition("#")[0]).resolve() for link in _links(ROOT / "README.md")
    }
    for page in DOCS[1:]:
        assert page.resolve() in readme_links, f"README does not link {_rel(page)}"


def test_readme_is_the_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move reference into docs/"


# -- Python examples ---------------------------------------------------------------


def _python_blocks() -> list[Any]:
    params = []
    for path in DOCS:
        for info, body, line in _blocks(path):
            words = info.split()
            if words and words[0] == "python":
                params.append(pytest.param(body, words[1:], id=f"{_rel(path)}:{line}"))
    return params


@pytest.mark.parametrize(("code", "marks"), _python_blocks())
def test_python_blocks_run(code: str, marks: list[str]) -> None:
    compiled = compile(code, "<docs>", "exec")
    if marks:  # e.g. ```python db: needs a database
        assert marks == ["db"], f"unknown mark {marks}"
        return
    out = io.StringIO()
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compiled, {"__name__": "__docs__"})
    finally:
        os.chdir(cwd)
