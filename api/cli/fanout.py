"""Plans drawn on a Dask cluster: the shared options, the progress bar and ``retry``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli._app import _engine, _errors, _fail, app, console
from geo.store.db import session_scope
from geo.store.settings import Settings

SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        help="Dask scheduler (tcp://host:8786) to run one task per township/county on; "
        "default GRIDMAP_DASK_SCHEDULER"
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="run on a local Dask cluster of N worker processes instead"
    ),
]


def dask_target(
    scheduler: str | None, workers: int | None
) -> tuple[str | None, int | None]:
    """``(scheduler, workers)`` to use: the options, else ``GRIDMAP_DASK_SCHEDULER``."""
    if scheduler and workers:
        raise _fail("give either --scheduler or --workers, not both")
    if scheduler is None and workers is None:
        scheduler = Settings().dask_scheduler
    return scheduler, workers


@contextmanager
def fanout_progress(enabled: bool) -> Iterator[Callable[[str, float], None]]:
    """A ``progress(stage, fraction)`` callback drawing a bar (and printing the
    Dask dashboard link); a silent one when not ``enabled``."""
    if not enabled:
        yield lambda stage, fraction: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("starting", total=1.0)

        def step(stage: str, fraction: float) -> None:
            if stage.startswith("Dask dashboard:"):
                bar.console.print(stage)
                return
            bar.update(task, completed=fraction, description=stage)

        yield step


def print_failed(failed: dict[str, str], plan_id: int) -> None:
    """Name each failed unit with its error, and what to do next."""
    if not failed:
        return
    console.print(
        f"[bold red]{len(failed)} unit(s) failed[/]; draft {plan_id} cannot be "
        "published until they are re-run (gridmap retry) or excluded "
        "(gridmap publish --exclude):"
    )
    for code, message in failed.items():
        console.print(f"  {code}: {message}", highlight=False)


@app.command("retry")
def retry_cmd(
    plan: Annotated[int, typer.Option(help="id of a draft drawn on Dask")],
    units: Annotated[
        str | None,
        typer.Option(help="comma-separated unit codes (default: those that failed)"),
    ] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Re-run the failed units of a draft drawn on Dask (each replaces its own rows)."""
    from geo.services import retry_units

    sched, n = dask_target(scheduler, workers)
    codes = [c.strip() for c in (units or "").split(",") if c.strip()] or None
    with _errors():
        engine = _engine(Settings())
        with session_scope(engine) as session, fanout_progress(True) as step:
            run = retry_units(
                session, plan, scheduler=sched, workers=n, units=codes, progress=step
            )
    print_failed(run.failed, plan)
    if run.failed:
        raise _fail(f"draft {plan} is still incomplete", code=1)
    console.print(f"draft {plan} is complete: every unit finished")
