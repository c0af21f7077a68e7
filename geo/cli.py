"""The ``gridmap`` command line: database, loading, assignment and the main job."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import text

from geo.errors import EmptyInput, GridMapError
from geo.io import InputError, Problem, prepare, read_table
from geo.store.db import database_url, make_engine, session_scope, upgrade
from geo.store.embedded import EmbeddedError, EmbeddedPostgres
from geo.store.settings import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    help="GridMap: grid-governance (网格化管理) maps in PostGIS.", no_args_is_help=True
)
db_app = typer.Typer(
    help="The database: embedded cluster and schema.", no_args_is_help=True
)
load_app = typer.Typer(
    help="Load areas, households or people from files.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(load_app, name="load")

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _errors():  # type: ignore[no-untyped-def]
    try:
        yield
    except InputError as exc:
        raise _fail(f"nothing was written.\n{exc}") from None
    except (EmbeddedError, GridMapError) as exc:
        raise _fail(str(exc)) from None


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    url = database_url(settings, start=True)
    return make_engine(url)


# -- db ----------------------------------------------------------------------


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostGIS (idempotent; recovers from a stale pid file)."""
    settings = Settings()
    if settings.database_url:
        console.print(
            "GRIDMAP_DATABASE_URL is set: GridMap uses that server, no local cluster."
        )
        return
    with _errors():
        st = EmbeddedPostgres(settings).start()
    console.print(f"embedded PostGIS running on port {st.port} (pid {st.pid})")
    console.print(f"  data: {st.data_dir}\n  url:  {st.url}\n  log:  {st.log_file}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostGIS."""
    settings = Settings()
    if settings.database_url:
        console.print("GRIDMAP_DATABASE_URL is set: there is no local cluster to stop.")
        return
    with _errors():
        stopped = EmbeddedPostgres(settings).stop()
    console.print("stopped" if stopped else "was not running")


@db_app.command("status")
def db_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Where the database is and whether it runs."""
    settings = Settings()
    if settings.database_url:
        info: dict[str, Any] = {"mode": "external", "url": _hide(settings.database_url)}
    else:
        st = EmbeddedPostgres(settings).status()
        info = {"mode": "embedded", **st.__dict__}
    if as_json:
        console.print_json(json.dumps(info))
    else:
        for k, v in info.items():
            console.print(f"{k:12} {v}")


def _hide(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the schema migrations (starts the embedded database if needed)."""
    with _errors():
        url = database_url(Settings(), start=True)
        rev = upgrade(url, revision)
    console.print(f"schema at revision {rev}")


# -- load ----------------------------------------------------------------------


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        if "=" not in v:
            raise _fail(f"{flag} {v!r}: expected NAME=VALUE")
        k, _, val = v.partition("=")
        out[k.strip()] = val.strip()
    return out


MapOpt = Annotated[
    list[str] | None,
    typer.Option("--map", help="GRIDMAP_COLUMN=FILE_COLUMN, e.g. household_id=osm_id"),
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="COLUMN=VALUE for a missing column")
]
CrsOpt = Annotated[str | None, typer.Option(help="CRS of a file that declares none")]
ExtraOpt = Annotated[
    str, typer.Option(help="unknown columns: error | attrs (keep as JSON) | ignore")
]
SheetOpt = Annotated[
    str | None, typer.Option(help="sheet of an .xlsx workbook (default: the first)")
]
Bd09Opt = Annotated[
    bool, typer.Option(help="coordinates are BD-09 (Baidu maps); convert to WGS84")
]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _load(kind: str, file: Path, **opts: Any) -> None:
    settings = Settings()
    extra = opts.pop("extra")
    clip = bool(opts.pop("clip", False))
    if extra not in {"error", "attrs", "ignore"}:
        raise _fail("--extra must be error, attrs or ignore")
    with _errors():
        frame = read_table(
            file,
            crs=opts.pop("crs"),
            layer=opts.pop("layer", None),
            sheet=opts.pop("sheet", None),
        )
        engine = _engine(settings)
        upgrade(engine.url.render_as_string(hide_password=False))
        from geo.store.loading import area_bounds, load

        with _progress() as bar, session_scope(engine) as session:
            tasks: dict[str, Any] = {}

            def progress(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = bar.add_task(step, total=total)
                bar.update(tasks[step], completed=done)

            prepared = prepare(
                frame,
                kind,
                source=file.name,
                extra=extra,  # type: ignore[arg-type]
                expected_bounds=area_bounds(session) if kind == "households" else None,
                **opts,
            )
            report = load(session, prepared, progress=progress, clip=clip)
    if prepared.notes:
        console.print(f"{file.name}: read with {', '.join(prepared.notes)}")
    console.print(str(report))


@load_app.command("areas")
def load_areas_cmd(
    file: Path,
    crs: CrsOpt = None,
    layer: str | None = None,
    map_: MapOpt = None,
    set_: SetOpt = None,
    extra: ExtraOpt = "error",
    from_gcj02: bool = False,
    make_valid: bool = False,
    clip: Annotated[
        bool,
        typer.Option(
            help="cut overlaps with sibling areas out of the later area (loaded "
            "areas first, then file order) instead of refusing the file"
        ),
    ] = False,
    sheet: SheetOpt = None,
    from_bd09: Bd09Opt = False,
) -> None:
    """Load admin areas (code, name, level, parent_code, polygon); upsert by code.

    Sibling areas (same parent) must not overlap beyond a sliver along their
    shared edge (0.5 % of the smaller area, or 100 m²): such a file is refused
    naming both areas, unless --clip is given.
    """
    _load(
        "areas",
        file,
        crs=crs,
        layer=layer,
        columns=_pairs(map_, "--map"),
        defaults=_pairs(set_, "--set"),
        extra=extra,
        from_gcj02=from_gcj02,
        make_valid=make_valid,
        clip=clip,
        sheet=sheet,
        from_bd09=from_bd09,
    )


@load_app.command("households")
def load_households_cmd(
    file: Path,
    crs: CrsOpt = None,
    layer: str | None = None,
    map_: MapOpt = None,
    set_: SetOpt = None,
    extra: ExtraOpt = "error",
    from_gcj02: bool = False,
    sheet: SheetOpt = None,
    from_bd09: Bd09Opt = False,
) -> None:
    """Load households (household_id, address, people, building_id, unit, point)."""
    _load(
        "households",
        file,
        crs=crs,
        layer=layer,
        columns=_pairs(map_, "--map"),
        defaults=_pairs(set_, "--set"),
        extra=extra,
        from_gcj02=from_gcj02,
        sheet=sheet,
        from_bd09=from_bd09,
    )


@load_app.command("people")
def load_people_cmd(
    file: Path,
    map_: MapOpt = None,
    set_: SetOpt = None,
    extra: ExtraOpt = "error",
    sheet: SheetOpt = None,
) -> None:
    """Load grid workers, leaders and party members (person_id, name, role, work_phone)."""
    _load(
        "people",
        file,
        crs=None,
        columns=_pairs(map_, "--map"),
        defaults=_pairs(set_, "--set"),
        extra=extra,
        sheet=sheet,
    )


@load_app.command("sample")
def load_sample_cmd(
    households: Annotated[
        int, typer.Option(help="size of the generated county")
    ] = 20_000,
    seed: int = 0,
) -> None:
    """Generate the seeded sample county and load it (areas, people, households)."""
    with _errors():
        engine = _engine(Settings())
        upgrade(engine.url.render_as_string(hide_password=False))
        for report in _load_sample(engine, households, seed):
            console.print(str(report))


def _load_sample(engine: Any, n: int, seed: int) -> list[Any]:
    from geo.sample import generate_county
    from geo.store.loading import load

    county = generate_county(n, seed=seed)
    reports = []
    with session_scope(engine) as session:
        for kind, frame in (
            ("areas", county.areas),
            ("people", county.people),
            ("households", county.households),
        ):
            prepared = prepare(frame, kind, source=f"sample county ({kind})")
            reports.append(load(session, prepared))
    return reports


# -- assignment and summary ----------------------------------------------------------


@app.command("assign")
def assign_cmd(plan: Annotated[int, typer.Option(help="plan id")]) -> None:
    """Assign every household of a plan's area to the grid containing it."""
    from geo.store.assign import assign_plan

    with _errors():
        engine = _engine(Settings())
        with session_scope(engine) as session:
            try:
                rep = assign_plan(session, plan)
            except LookupError as exc:
                raise _fail(str(exc)) from None
    console.print(
        f"plan {plan}: {rep.assigned} households assigned to {len(rep.per_grid)} grids, "
        f"{rep.on_boundary} on a grid boundary, {len(rep.outside)} outside every grid"
    )
    if rep.outside:
        console.print(
            "outside: "
            + ", ".join(rep.outside[:20])
            + (" …" if len(rep.outside) > 20 else "")
        )


def _summary(engine: Any) -> None:
    with engine.connect() as conn:
        totals = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM admin_areas), (SELECT count(*) FROM households), "
                "(SELECT count(*) FROM people), (SELECT count(*) FROM plans), "
                "(SELECT count(*) FROM grids)"
            )
        ).one()
        rows = conn.execute(
            text(
                "SELECT t.code, t.name, count(DISTINCT v.id), count(h.id), "
                "count(*) FILTER (WHERE h.building_id IS NOT NULL) "
                "FROM admin_areas t JOIN admin_areas v ON v.parent_id = t.id "
                "LEFT JOIN households h ON h.area_id = v.id "
                "WHERE t.level = 'township' GROUP BY t.code, t.name ORDER BY t.code"
            )
        ).all()
        grids = conn.execute(
            text(
                "SELECT p.id, p.version, p.status, count(DISTINCT g.id), count(a.household_id) "
                "FROM plans p LEFT JOIN grids g ON g.plan_id = p.id "
                "LEFT JOIN assignments a ON a.grid_id = g.id GROUP BY p.id ORDER BY p.id"
            )
        ).all()
        sizes = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE n < 200), count(*) FILTER (WHERE n BETWEEN 200 AND 300), "
                "count(*) FILTER (WHERE n BETWEEN 301 AND 399), count(*) FILTER (WHERE n >= 400) "
                "FROM (SELECT v.id, count(h.id) AS n FROM admin_areas v "
                "LEFT JOIN households h ON h.area_id = v.id "
                "WHERE v.level IN ('village', 'community') GROUP BY v.id) s"
            )
        ).one()
    console.print(
        f"[bold]{totals[0]}[/] admin areas, [bold]{totals[1]}[/] households, "
        f"[bold]{totals[2]}[/] people, [bold]{totals[3]}[/] plans with [bold]{totals[4]}[/] grids"
    )
    table = Table(title="Households per township")
    for col in ("code", "township", "villages", "households", "in apartment buildings"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(x) for x in r))
    console.print(table)
    console.print(
        f"villages/communities by size: {sizes[0]} under 200 households, {sizes[1]} with "
        f"200–300, {sizes[2]} with 301–399 (cannot split into 200–300 grids), "
        f"{sizes[3]} with 400+"
    )
    if grids:
        gt = Table(title="Plans")
        for col in ("plan", "version", "status", "grids", "households assigned"):
            gt.add_column(col)
        for r in grids:
            gt.add_row(*(str(x) for x in r))
        console.print(gt)


@app.command("generate")
def generate_cmd(
    area: Annotated[
        str | None,
        typer.Option(help="database mode: code of the area to draw grids for"),
    ] = None,
    households: Annotated[
        Path | None, typer.Option(help="file mode: household points (any format)")
    ] = None,
    areas: Annotated[Path | None, typer.Option(help="file mode: area polygons")] = None,
    barriers: Annotated[
        Path | None, typer.Option(help="lines or polygons not to cross (rivers, roads)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="file mode: output folder")] = None,
    min_: Annotated[float, typer.Option("--min", help="smallest grid")] = 200,
    max_: Annotated[float, typer.Option("--max", help="largest grid")] = 300,
    target: Annotated[float | None, typer.Option(help="preferred size")] = None,
    respect_level: Annotated[str, typer.Option(help="village or township")] = "village",
    weight: Annotated[str | None, typer.Option(help="workload column")] = None,
    crs: CrsOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the report as JSON")
    ] = False,
) -> None:
    """Draw grids of MIN–MAX households that tile every area.

    Database mode (--area CODE) stores the result as a new draft plan. File mode
    (--households H --areas A --out DIR) writes grids.geojson, assignments.csv and
    report.json without any database.
    """
    from geo.gridding.generate import generate_grids

    opts: dict[str, Any] = dict(
        min_households=min_,
        max_households=max_,
        target=target,
        respect_level=respect_level,
        weight=weight,
    )
    file_mode = households is not None or areas is not None or out is not None
    if file_mode == (area is not None):
        raise _fail("give either --area CODE, or --households H --areas A --out DIR")
    with _errors():
        if barriers is not None:
            opts["barriers"] = read_table(barriers, crs=crs)
        if file_mode:
            if households is None or areas is None or out is None:
                raise _fail("file mode needs --households, --areas and --out")
            from geo.io import write_plan_files

            hh = _generation_frame(households, "households", crs)
            ar = _generation_frame(areas, "areas", crs)
            try:
                plan = generate_grids(hh, ar, **opts)  # type: ignore[arg-type]
            except ValueError as exc:
                raise _fail(str(exc)) from None
            paths = write_plan_files(plan.grids, plan.assignments, plan.report, out)
            _print_plan(plan, as_json)
            if not as_json:
                console.print("wrote " + ", ".join(str(p) for p in paths.values()))
            return
        from geo.services import generate_and_save

        engine = _engine(Settings())
        with session_scope(engine) as session:
            try:
                saved = generate_and_save(
                    session,
                    area,  # type: ignore[arg-type]
                    created_by="gridmap generate",
                    **opts,
                )
            except LookupError as exc:
                raise _fail(str(exc)) from None
        _print_plan(saved.plan, as_json)
        if not as_json:
            console.print(f"stored as draft plan {saved.plan_id}")


def _generation_frame(path: Path, kind: str, crs: str | None) -> Any:
    """Read a generation input file and check its columns (clear errors, no DB)."""
    frame = read_table(path, crs=crs)
    needed = {"households": ("household_id",), "areas": ("code",)}[kind]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(
            [Problem(path.name, f"missing column(s) {', '.join(missing)} for {kind}")]
        )
    key = needed[0]
    dup = frame[key][frame[key].duplicated()]
    if len(dup):
        raise InputError(
            [Problem(path.name, f"duplicate {key} {dup.iloc[0]!r}", field=key)]
        )
    return frame


def _print_plan(plan: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(plan.report, ensure_ascii=False, default=str))
        return
    m = plan.report["metrics"]
    console.print(
        f"{m['grids']} grids for {m['households']} households in "
        f"{plan.report['seconds']:.1f} s: {m['in_band_share']:.1%} in band "
        f"({m['min_load']:g}–{m['max_load']:g}), {m['contiguous_share']:.1%} contiguous, "
        f"Polsby-Popper mean {m['pp_mean']:.2f} (min {m['pp_min']:.2f})"
    )
    kinds: dict[str, int] = {}
    for e in plan.report["exceptions"]:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    if kinds:
        console.print(
            "exceptions (all listed in the report): "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        )


@app.command("rebalance")
def rebalance_cmd(
    plan: Annotated[
        str, typer.Option(help="plan id (database mode) or a plan folder (file mode)")
    ],
    households: Annotated[
        Path | None, typer.Option(help="file mode: the new state of the households")
    ] = None,
    areas: Annotated[Path | None, typer.Option(help="file mode: area polygons")] = None,
    out: Annotated[Path | None, typer.Option(help="file mode: output folder")] = None,
    locked: Annotated[
        str | None, typer.Option(help="comma-separated grid codes that must not change")
    ] = None,
    min_: Annotated[float, typer.Option("--min", help="smallest grid")] = 200,
    max_: Annotated[float, typer.Option("--max", help="largest grid")] = 300,
    crs: CrsOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the report as JSON")
    ] = False,
) -> None:
    """Restore every grid to MIN–MAX households, moving as few as possible.

    Database mode (--plan ID) reads the plan and today's households and stores a
    new draft whose parent is that plan. File mode (--plan DIR --households H
    --areas A --out DIR2) writes grids.geojson, assignments.csv, report.json and
    changes.csv.
    """
    from geo.gridding.rebalance import rebalance

    lock = tuple(c.strip() for c in (locked or "").split(",") if c.strip())
    opts: dict[str, Any] = dict(min_households=min_, max_households=max_, locked=lock)
    file_mode = not plan.isdigit()
    with _errors():
        if file_mode:
            if households is None or areas is None or out is None:
                raise _fail(
                    "file mode needs --plan DIR, --households, --areas and --out"
                )
            from geo.io import read_plan_files, write_plan_files

            grids, assignments = read_plan_files(plan)
            previous = Path(plan) / "report.json"
            retired: list[str] = []
            if previous.exists():
                prev = json.loads(previous.read_text(encoding="utf-8"))
                retired = list(prev.get("rebalance", {}).get("retired_codes", []))
            hh = _generation_frame(households, "households", crs)
            ar = _generation_frame(areas, "areas", crs)
            _check_inside(hh, ar, households.name)
            try:
                result = rebalance(
                    grids, assignments, hh, retired_codes=retired, **opts
                )  # type: ignore[arg-type]
            except ValueError as exc:
                raise _fail(str(exc)) from None
            paths = write_plan_files(
                result.plan.grids, result.plan.assignments, result.plan.report, out
            )
            result.changes.to_csv(out / "changes.csv", index=False, encoding="utf-8")
            _print_rebalance(result, as_json)
            if not as_json:
                console.print(
                    "wrote "
                    + ", ".join(str(p) for p in [*paths.values(), out / "changes.csv"])
                )
            return
        from geo.services import rebalance_and_save

        engine = _engine(Settings())
        with session_scope(engine) as session:
            try:
                saved = rebalance_and_save(
                    session,
                    int(plan),
                    min_households=min_,
                    max_households=max_,
                    locked=lock,
                    created_by="gridmap rebalance",
                )
            except LookupError as exc:
                raise _fail(str(exc)) from None
            except ValueError as exc:
                raise _fail(str(exc)) from None
        _print_rebalance(saved.result, as_json)
        if not as_json:
            console.print(f"stored as draft plan {saved.plan_id} (parent {plan})")


def _check_inside(hh: Any, areas: Any, source: str) -> None:
    """Households must lie in some area (a clear error naming the rows otherwise)."""
    hits = areas.to_crs(hh.crs).sindex.query(hh.geometry.values, predicate="intersects")
    inside = set(hits[0].tolist())
    rows = [i + 1 for i in range(len(hh)) if i not in inside]
    if rows:
        raise InputError(
            [
                Problem(
                    source, "household lies outside every area", row=r, field="geometry"
                )
                for r in rows[:20]
            ],
            total=len(rows),
        )


def _print_rebalance(result: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(result.report, ensure_ascii=False, default=str))
        return
    r = result.report
    m = r["metrics"]
    console.print(
        f"rebalanced in {r['seconds']:.1f} s: {r['moved_households']} households moved "
        f"(lower bound {r['lower_bound']:g}, ratio {r['moved_to_lower_bound']}), "
        f"{r['new_households']} new, {r['removed_households']} removed; "
        f"{len(r['grids_touched'])} grids touched, {len(r['grids_created'])} created, "
        f"{len(r['merges'])} merged; {m['in_band_share']:.1%} in band"
    )


@app.command("summary")
def summary_cmd() -> None:
    """Counts per area and per plan."""
    with _errors():
        _summary(_engine(Settings()))


@app.command("run")
def run_cmd(
    households: Annotated[int, typer.Option(help="size of the sample county")] = 20_000,
    seed: int = 0,
    reload: Annotated[
        bool, typer.Option(help="load the sample even if data exists")
    ] = False,
) -> None:
    """The main job: start the database, migrate, load the sample county, draw and
    publish its grids, report."""
    settings = Settings()
    t0 = time.perf_counter()
    with _errors():
        url = database_url(settings, start=True)
        console.print(
            "database: "
            + (
                "external (GRIDMAP_DATABASE_URL)"
                if settings.database_url
                else "embedded PostGIS"
            )
        )
        rev = upgrade(url)
        console.print(f"schema at revision {rev}")
        engine = make_engine(url)
        with engine.connect() as conn:
            have = conn.execute(text("SELECT count(*) FROM households")).scalar()
        if have == 0 or reload:
            console.print(
                f"loading the sample county ({households} households, seed {seed}) …"
            )
            for report in _load_sample(engine, households, seed):
                console.print("  " + str(report))
        else:
            console.print(
                f"{have} households already loaded (use --reload to load the sample again)"
            )
        with engine.connect() as conn:
            plans = conn.execute(text("SELECT count(*) FROM plans")).scalar()
        if plans == 0 or reload:
            _generate_and_publish_roots(engine)
        _summary(engine)
    if not settings.database_url:
        st = EmbeddedPostgres(settings).status()
        console.print(f"\ndata lives in {st.data_dir} (log {st.log_file})")
        console.print(
            f"database: {st.url}\n"
            'connect:  psql "$(.venv/bin/gridmap db url)"  '
            "(status: .venv/bin/gridmap db status)",
            markup=False,
            highlight=False,
        )
    console.print(f"done in {time.perf_counter() - t0:.1f} s")


def _generate_and_publish_roots(engine: Any) -> None:
    """Draw grids for every top-level area, staff and publish them (the main job's step)."""
    from geo.services import generate_and_save, publish

    with engine.connect() as conn:
        roots = conn.execute(
            text(
                "SELECT code, name FROM admin_areas WHERE parent_id IS NULL ORDER BY code"
            )
        ).all()
    for code, name in roots:
        with session_scope(engine) as session:
            console.print(f"drawing grids for {name} ({code}) …")
            try:
                saved = generate_and_save(
                    session, code, with_staff=True, created_by="gridmap run"
                )
            except EmptyInput:  # an area with no households has nothing to draw
                continue
            publish(session, saved.plan_id)
        _print_plan(saved.plan, as_json=False)
        console.print(f"published as plan {saved.plan_id}")


@db_app.command("url")
def db_url_cmd() -> None:
    """Print the libpq URL of the database (with its password) for psql."""
    with _errors():
        url = database_url(Settings(), start=False)
    console.print(
        url.replace("postgresql+psycopg://", "postgresql://"),
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    """Entry point of the ``gridmap`` command."""
    app()


if __name__ == "__main__":
    main()
