"""``gridmap load``: areas, households, people and the sample county from files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli._app import CrsOpt, _engine, _errors, _fail, console, err, load_app
from geo.io import prepare, read_table
from geo.store.db import session_scope, upgrade
from geo.store.settings import Settings

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
    counties: Annotated[
        int | None,
        typer.Option(
            help="generate a province (浙江省) of this many counties instead of one "
            "county; loaded county by county with COPY, committed per county"
        ),
    ] = None,
    parquet: Annotated[
        Path | None,
        typer.Option(
            help="with --counties: also write the province as GeoParquet "
            "partitioned by county (<layer>/county=<code>/part-0.parquet)"
        ),
    ] = None,
) -> None:
    """Generate the seeded sample county (or province) and load it (areas, people, households)."""
    if parquet is not None and counties is None:
        raise _fail(
            "--parquet needs --counties (it writes the province partitioned by county)"
        )
    with _errors():
        engine = _engine(Settings())
        upgrade(engine.url.render_as_string(hide_password=False))
        if counties is not None:
            for report in _load_province(engine, households, counties, seed, parquet):
                console.print(str(report))
            return
        for report in _load_sample(engine, households, seed):
            console.print(str(report))


def _load_province(
    engine: Any, n: int, counties: int, seed: int, parquet: Path | None
) -> list[Any]:
    from geo.sample.province import generate_province
    from geo.services import load_province_part

    try:
        province = generate_province(n, counties=counties, seed=seed)
    except ValueError as e:
        raise _fail(f"--households/--counties: {e}") from None
    with session_scope(engine) as session:
        reports = load_province_part(session, province, None, parquet=parquet)
    with _progress() as bar:
        task = bar.add_task("sample province", total=counties)
        for spec in province.counties:
            bar.update(task, description=f"{spec.code} {spec.name}")
            with session_scope(engine) as session:  # one commit per county
                reports += load_province_part(session, province, spec, parquet=parquet)
            bar.advance(task)
    return reports


def _load_sample(engine: Any, n: int, seed: int) -> list[Any]:
    from geo.services import load_sample

    with session_scope(engine) as session:
        return load_sample(session, n, seed=seed)
