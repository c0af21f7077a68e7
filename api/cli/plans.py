"""Plans from the command line: assign, generate, rebalance, publish, summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli._app import CrsOpt, _engine, _errors, _fail, app, console
from api.cli.fanout import (
    SchedulerOpt,
    WorkersOpt,
    dask_target,
    fanout_progress,
    print_failed,
)
from geo.errors import EmptyInput
from geo.io import InputError, Problem, read_table
from geo.store.db import session_scope
from geo.store.settings import Settings

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
    from geo.store.queries import database_summary

    with engine.connect() as conn:
        d = database_summary(conn)
    totals = (d.areas, d.households, d.people, d.plans, d.grids)
    rows, grids, sizes = d.townships, d.plan_rows, d.village_sizes
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
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    with_staff: Annotated[
        bool,
        typer.Option(
            "--with-staff",
            help="database mode: give each grid a grid worker and each household "
            "a party member (gridmap publish refuses grids with no worker)",
        ),
    ] = False,
) -> None:
    """Draw grids of MIN–MAX households that tile every area.

    Database mode (--area CODE) stores the result as a new draft plan. File mode
    (--households H --areas A --out DIR) writes grids.geojson, assignments.csv and
    report.json without any database. With --scheduler (or GRIDMAP_DASK_SCHEDULER)
    or --workers N, database mode runs one Dask task per township (per county of a
    province or city); a unit that fails is listed and the draft cannot be
    published until it is re-run (gridmap retry) or excluded.
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
            if scheduler or workers:
                raise _fail(
                    "--scheduler and --workers need database mode (--area CODE): "
                    "workers read their townships from PostGIS"
                )
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

        sched, n = dask_target(scheduler, workers)
        engine = _engine(Settings())
        on_dask = sched is not None or n is not None
        with (
            session_scope(engine) as session,
            fanout_progress(on_dask and not as_json) as step,
        ):
            try:
                saved = generate_and_save(
                    session,
                    area,  # type: ignore[arg-type]
                    created_by="gridmap generate",
                    with_staff=with_staff,
                    scheduler=sched,
                    workers=n,
                    progress=step,
                    **opts,
                )
            except LookupError as exc:
                raise _fail(str(exc)) from None
        _print_plan(saved.plan, as_json)
        if not as_json:
            console.print(f"stored as draft plan {saved.plan_id}")
            if saved.fanout is not None:
                print_failed(saved.fanout.failed, saved.plan_id)


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
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
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
            if scheduler or workers:
                raise _fail(
                    "--scheduler and --workers need database mode (--plan ID): "
                    "workers read their townships from PostGIS"
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

        sched, n = dask_target(scheduler, workers)
        engine = _engine(Settings())
        on_dask = sched is not None or n is not None
        with (
            session_scope(engine) as session,
            fanout_progress(on_dask and not as_json) as step,
        ):
            try:
                saved = rebalance_and_save(
                    session,
                    int(plan),
                    min_households=min_,
                    max_households=max_,
                    locked=lock,
                    created_by="gridmap rebalance",
                    scheduler=sched,
                    workers=n,
                    progress=step,
                )
            except LookupError as exc:
                raise _fail(str(exc)) from None
            except ValueError as exc:
                raise _fail(str(exc)) from None
        _print_rebalance(saved.result, as_json)
        if not as_json:
            console.print(f"stored as draft plan {saved.plan_id} (parent {plan})")
            if saved.fanout is not None:
                print_failed(saved.fanout.failed, saved.plan_id)


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


def _generate_and_publish_roots(engine: Any) -> None:
    """Draw grids for every top-level area, staff and publish them (the main job's step)."""
    from geo.services import generate_and_save, publish
    from geo.store.plans import unstaffed_grids
    from geo.store.queries import top_level_areas

    with engine.connect() as conn:
        roots = top_level_areas(conn)
    for code, name in roots:
        with session_scope(engine) as session:
            console.print(f"drawing grids for {name} ({code}) …")
            try:
                saved = generate_and_save(
                    session, code, with_staff=True, created_by="gridmap run"
                )
            except EmptyInput:  # an area with no households has nothing to draw
                continue
            unstaffed = unstaffed_grids(session, saved.plan_id)
            # the main job publishes what it drew; grids its villages had no free
            # grid worker for are said, not hidden (gridmap publish would refuse)
            publish(
                session,
                saved.plan_id,
                actor="gridmap run",
                allow_unstaffed=True,
            )
        _print_plan(saved.plan, as_json=False)
        _warn_unstaffed(unstaffed)
        console.print(f"published as plan {saved.plan_id}")


def _warn_unstaffed(codes: list[str]) -> None:
    if codes:
        console.print(
            f"[yellow]warning:[/yellow] {len(codes)} grid(s) have no grid worker "
            f"(their villages have no free one): {', '.join(codes[:5])}"
            f"{' …' if len(codes) > 5 else ''}; give each one with assign_worker "
            "on a draft (docs/planners.md#redraw-by-hand)"
        )


@app.command("publish")
def publish_cmd(
    plan: Annotated[int, typer.Option(help="id of a draft plan")],
    exclude: Annotated[
        str | None,
        typer.Option(
            help="comma-separated units (township/county codes) of a draft drawn on "
            "Dask to leave out explicitly"
        ),
    ] = None,
    allow_unstaffed: Annotated[
        bool,
        typer.Option(
            "--allow-unstaffed",
            help="publish even when some grids have no grid worker (refused otherwise)",
        ),
    ] = False,
) -> None:
    """Publish a draft plan; the area's published plan is archived in the same step.

    A plan with grids that have no grid worker is refused (naming them) unless
    --allow-unstaffed."""
    from geo.errors import PlanConflictError, UnstaffedPlanError
    from geo.services import publish
    from geo.store.audit import record_now

    codes = [c.strip() for c in (exclude or "").split(",") if c.strip()]
    engine = _engine(Settings())
    try:
        with _errors(), session_scope(engine) as session:
            try:
                publish(
                    session,
                    plan,
                    exclude=codes,
                    allow_unstaffed=allow_unstaffed,
                    actor="gridmap publish",
                )
            except UnstaffedPlanError as exc:  # the option that sets the parameter
                raise _fail(
                    str(exc).replace("allow_unstaffed", "--allow-unstaffed")
                ) from None
            record_now(
                session,
                "publish",
                endpoint="gridmap publish",
                detail={"plan_id": plan, "exclude": codes},
            )
    except (LookupError, PlanConflictError) as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    console.print(f"plan {plan} published")
