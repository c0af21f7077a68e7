"""``gridmap events``: import past events from a file, escalate overdue ones, load
the catalogue, show and set routing rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli._app import _engine, _errors, _fail, app, console
from api.cli.load import SheetOpt
from geo.store.db import session_scope, upgrade
from geo.store.settings import Settings

events_app = typer.Typer(
    help="Events (三事分流): import, escalate, catalogue, routing rules.",
    no_args_is_help=True,
)
app.add_typer(events_app, name="events")


def _ready():  # type: ignore[no-untyped-def]
    engine = _engine(Settings())
    upgrade(engine.url.render_as_string(hide_password=False))
    return engine


@events_app.command("import")
def import_cmd(
    file: Path,
    sheet: SheetOpt = None,
    timezone: Annotated[
        str,
        typer.Option(help="zone of times written without one, e.g. Asia/Shanghai"),
    ] = "UTC",
) -> None:
    """Import past events from a CSV (UTF-8 or GB18030) or XLSX file, all or nothing.

    Columns: reported_at and category (required); event_id, description, address,
    lon, lat, reporter, resident_name, resident_phone, tier, status, assignee,
    deadline, settled_at, closed_at, satisfaction, comment. Each event is placed
    by its address (exact) or point in the plan in force when it was reported.
    """
    from geo.events.rows import read_event_rows
    from geo.store.events import import_events

    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(timezone)
    except Exception:
        raise _fail(f"--timezone {timezone!r} is not a known time zone") from None
    with _errors():
        rows = read_event_rows(file, sheet=sheet, timezone=timezone)
        engine = _ready()
        try:
            with session_scope(engine) as session:
                report = import_events(
                    session,
                    rows,
                    source=file.name,
                    actor=f"gridmap events import {file.name}",
                )
        finally:
            engine.dispose()
    console.print(str(report))


@events_app.command("escalate")
def escalate_cmd(
    now: Annotated[
        dt.datetime | None,
        typer.Option(help="escalate as of this time (UTC; default: now)"),
    ] = None,
) -> None:
    """Escalate every open event past its deadline one tier up (grid → village → township)."""
    from geo.store.events import escalate_overdue

    with _errors():
        engine = _ready()
        try:
            with session_scope(engine) as session:
                done = escalate_overdue(
                    session,
                    now=now.replace(tzinfo=dt.UTC)
                    if now and now.tzinfo is None
                    else now,
                    actor="gridmap events escalate",
                )
        finally:
            engine.dispose()
    for e in done:
        console.print(
            f"event {e.event_id}: {e.from_tier} → {e.to_tier}, assigned to "
            f"{e.assignee or 'nobody'}, due {e.deadline:%Y-%m-%d %H:%M} UTC",
            highlight=False,
        )
    console.print(f"{len(done)} event(s) escalated")


@events_app.command("catalogue")
def catalogue_cmd(
    file: Annotated[
        Path | None, typer.Argument(help="a catalogue CSV (default: the shipped one)")
    ] = None,
) -> None:
    """Load (upsert) the event catalogue: code, name, subclass_code, subclass_name,
    class_code, class_name, default_tier, deadline_hours."""
    from geo.events.catalogue import read_catalogue
    from geo.store.events import load_catalogue

    with _errors():
        cats = read_catalogue(file)
        engine = _ready()
        try:
            with session_scope(engine) as session:
                n = load_catalogue(session, cats)
        finally:
            engine.dispose()
    console.print(f"{n} categories loaded")


@events_app.command("rules")
def rules_cmd() -> None:
    """The routing rules: per area (or the default), tier → handler role, deadline."""
    from geo.store.events import list_routing_rules

    engine = _ready()
    try:
        with session_scope(engine) as session:
            rules = list_routing_rules(session)
    finally:
        engine.dispose()
    for r in rules:
        console.print(
            f"{r.area_code or '(default)':14} {r.tier:9} → {r.handler_role:18} "
            f"{r.deadline_hours:5} h  {r.note or ''}",
            highlight=False,
        )


@events_app.command("set-rule")
def set_rule_cmd(
    tier: Annotated[str, typer.Option(help="grid, village or township")],
    handler_role: Annotated[str, typer.Option(help="the role of the handler")],
    deadline_hours: Annotated[int, typer.Option(help="hours to settle")],
    area: Annotated[
        str | None, typer.Option(help="area code (default: the default rule)")
    ] = None,
    note: str | None = None,
) -> None:
    """Add or replace a routing rule (the most specific area's rule wins)."""
    from geo.store.events import set_routing_rule

    with _errors():
        engine = _ready()
        try:
            with session_scope(engine) as session:
                rule_id = set_routing_rule(
                    session,
                    tier=tier,
                    handler_role=handler_role,
                    deadline_hours=deadline_hours,
                    area_code=area,
                    note=note,
                )
        finally:
            engine.dispose()
    console.print(
        f"rule {rule_id}: {area or '(default)'} {tier} → {handler_role}, {deadline_hours} h"
    )


def _load_sample_events(engine: Any, seed: int) -> Any:
    """The main job's step: a seeded year of matters, once (None when events exist)."""
    from geo.services import load_sample_events
    from geo.store.events import event_statistics

    with session_scope(engine) as session:
        if event_statistics(session, group_by="all").total.total:
            return None
        return load_sample_events(session, seed=seed)


def _events_summary(engine: Any) -> None:
    """Matters per township: counts by tier and status, 小事不出格 / 大事不出村, ratings."""
    from rich.table import Table

    from geo.events import TIER_NAMES
    from geo.store.events import event_statistics

    with session_scope(engine) as session:
        stats = event_statistics(session, group_by="township")
    t = stats.total
    if not t.total:
        console.print("no events yet")
        return
    table = Table(title="Matters (三事分流) per township")
    for col in (
        "township",
        "events",
        *(TIER_NAMES[k] for k in t.by_tier),
        "open",
        "overdue",
        "不出格",
        "不出村",
        "rating",
    ):
        table.add_column(col)

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.0f}%"

    for r in [*stats.rows, t]:
        table.add_row(
            r.name or "all",
            str(r.total),
            *(str(v) for v in r.by_tier.values()),
            str(r.open),
            str(r.overdue),
            pct(r.settled_in_grid_share),
            pct(r.settled_in_village_share),
            "–" if r.mean_satisfaction is None else f"{r.mean_satisfaction:.2f}",
        )
    console.print(table)
    statuses = ", ".join(f"{k} {v}" for k, v in t.by_status.items() if v)
    console.print(
        f"events by status: {statuses}; settled inside the grid (小事不出格) "
        f"{pct(t.settled_in_grid_share)}, inside the village (大事不出村) "
        f"{pct(t.settled_in_village_share)}, mean satisfaction "
        f"{t.mean_satisfaction} of 5 ({t.rated} rated); median "
        f"{t.median_hours_to_settle} h to settle",
        highlight=False,
    )


@events_app.command("sample")
def sample_cmd(
    seed: Annotated[int, typer.Option(help="the same seed gives the same matters")] = 0,
) -> None:
    """Load a seeded year of matters at the households in published grids (once:
    nothing is done when events exist), escalate the overdue ones, print a summary."""
    with _errors():
        engine = _ready()
        try:
            done = _load_sample_events(engine, seed)
            console.print(
                str(done) if done else "events exist already: no sample loaded"
            )
            _events_summary(engine)
        finally:
            engine.dispose()
