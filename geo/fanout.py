"""Drawing an area unit by unit on a Dask cluster (a province, not a county).

:func:`geo.services.generate_and_save` calls :func:`generate` when it is given a
scheduler (``tcp://host:8786``) or a number of local workers. The area is split
into independent units (:func:`geo.store.fanout.plan_units`: its townships, or
its counties for a province or a city); each unit is one Dask task that runs
the same algorithm as a single-process run
(:func:`geo.gridding.generate.generate_grids` on the unit's households and
areas, with the whole area's reference latitude, so the grids are identical).
A task reads its own unit from PostGIS by area code (the client sends only the
database URL and the code) and writes its grids and assignments into the draft
with ``COPY`` in one transaction (:func:`geo.store.fanout.write_unit`).

Failures: a task that raises is retried by Dask (``retries``), a task whose
worker dies is rescheduled by Dask; a unit that still fails is recorded in the
draft with its error while the other units finish. Such a draft cannot be
published (:class:`~geo.errors.IncompletePlanError`) until the unit is re-run
(:func:`retry`) or excluded (:func:`geo.store.fanout.exclude_units`).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
from sqlalchemy import Engine

from geo.errors import EmptyInput
from geo.gridding.generate import generate_grids
from geo.plan import GridPlan
from geo.store.db import make_engine, session_scope
from geo.store.fanout import (
    Unit,
    create_draft,
    fanout_state,
    plan_units,
    set_plan_summary,
    set_unit_state,
    write_unit,
)

__all__ = [
    "FanOutRun",
    "Finish",
    "combine_metrics",
    "dask_client",
    "generate",
    "rebalance",
    "retry",
]

#: ``finish(session, plan, households) -> plan`` run on the worker after
#: generation (e.g. :func:`geo.services.staff`); must be importable by workers.
Finish = Callable[[Any, GridPlan, gpd.GeoDataFrame], GridPlan]
Progress = Callable[[str, float], None]

#: Generation options stored with the plan and passed to every unit.
_OPTIONS = (
    "min_households",
    "max_households",
    "target",
    "respect_level",
    "weight",
    "seed",
)


def _quiet(stage: str, fraction: float) -> None:
    """Default progress callback: says nothing."""


@dataclass(frozen=True)
class FanOutRun:
    """What a fan-out run did: the draft, its units and the ones that failed."""

    plan_id: int
    units: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    dashboard: str | None = None


@contextmanager
def dask_client(
    scheduler: str | None = None, workers: int | None = None
) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler``, or to a new local cluster of ``workers``.

    The local cluster has one thread per worker process (generation holds the
    GIL) and is closed when the block ends.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    if not workers or workers < 1:
        raise ValueError(f"workers must be a positive number, got {workers!r}")
    with (
        LocalCluster(
            n_workers=int(workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@functools.lru_cache(maxsize=4)
def _worker_engine(url: str) -> Engine:
    """One engine per worker process and database (its pool is reused by tasks)."""
    return make_engine(url, pool_size=2, max_overflow=2)


def _generate_unit(
    url: str,
    plan_id: int,
    unit_code: str,
    options: Mapping[str, Any],
    extra: Mapping[str, Any],
    barriers: gpd.GeoDataFrame | None,
) -> dict[str, Any]:
    """One task: read the unit from PostGIS, draw its grids, write them in one transaction.

    ``extra`` holds ``ref_latitude`` (the whole area's) and ``finish`` (or None).
    """
    from geo.store.plans import area_frames

    t0 = time.perf_counter()
    finish: Finish | None = extra.get("finish")
    with session_scope(_worker_engine(url)) as session:
        areas, households = area_frames(session, unit_code)
        if households.empty:
            state: dict[str, Any] = {
                "households": 0,
                "grids": 0,
                "metrics": {"grids": 0},
            }
            write_unit(
                session, plan_id, unit_code, areas.iloc[:0], households.iloc[:0], state
            )
            return {"unit": unit_code, **state}
        plan = generate_grids(
            households,
            areas,
            barriers=barriers,
            ref_latitude=extra.get("ref_latitude"),
            **dict(options),
        )
        if finish is not None:
            plan = finish(session, plan, households)
        report = plan.report
        state = {
            "households": len(households),
            "grids": len(plan.grids),
            "metrics": report.get("metrics", {}),
            "exceptions": report.get("exceptions", []),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        write_unit(session, plan_id, unit_code, plan.grids, plan.assignments, state)
    return {
        "unit": unit_code,
        "households": state["households"],
        "grids": state["grids"],
    }


def _rebalance_unit(
    url: str,
    plan_id: int,
    unit_code: str,
    options: Mapping[str, Any],
    extra: Mapping[str, Any],
    barriers: gpd.GeoDataFrame | None,
) -> dict[str, Any]:
    """One task: rebalance the parent plan's grids inside the unit against today's
    households there, and write the result into the new draft in one transaction.

    ``extra`` holds ``parent_id``, ``retired`` (codes never to reuse) and
    ``locked`` (codes of the whole plan; those inside the unit are kept).
    """
    from geo.gridding.rebalance import rebalance
    from geo.store.fanout import unit_plan_frames
    from geo.store.plans import area_frames

    t0 = time.perf_counter()
    with session_scope(_worker_engine(url)) as session:
        grids, assignments = unit_plan_frames(
            session, int(extra["parent_id"]), unit_code
        )
        _, households = area_frames(session, unit_code)
        if grids.empty and households.empty:
            state: dict[str, Any] = {
                "households": 0,
                "grids": 0,
                "metrics": {"grids": 0},
            }
            write_unit(session, plan_id, unit_code, grids, assignments, state)
            return {"unit": unit_code, **state}
        mine = set(grids["grid_code"].astype(str))
        result = rebalance(
            grids,
            assignments,
            households,
            locked=tuple(c for c in extra.get("locked", ()) if c in mine),
            retired_codes=list(extra.get("retired", ())),
            **dict(options),
        )
        r = result.report
        metrics = {k: v for k, v in r["metrics"].items() if k != "retired_codes"}
        state = {
            "households": len(households),
            "grids": len(result.plan.grids),
            "metrics": metrics,
            "exceptions": result.plan.report.get("exceptions", []),
            "rebalance": {
                k: r[k]
                for k in (
                    "moved_households",
                    "new_households",
                    "removed_households",
                    "lower_bound",
                    "grids_touched",
                    "grids_created",
                    "splits",
                    "merges",
                    "retired_codes",
                )
            },
            "seconds": round(time.perf_counter() - t0, 3),
        }
        write_unit(
            session,
            plan_id,
            unit_code,
            result.plan.grids,
            result.plan.assignments,
            state,
        )
    return {
        "unit": unit_code,
        "households": state["households"],
        "grids": state["grids"],
    }


_TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "generate": _generate_unit,
    "rebalance": _rebalance_unit,
}


def _url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def generate(
    engine: Engine,
    area_code: str,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    barriers: gpd.GeoDataFrame | None = None,
    finish: Finish | None = None,
    name: str | None = None,
    created_by: str | None = None,
    retries: int = 1,
    progress: Progress = _quiet,
    **options: Any,
) -> FanOutRun:
    """Draw grids for ``area_code`` unit by unit on Dask into a new draft plan.

    The draft is created and committed first (workers in other processes write
    into it), then each unit commits on its own; the plan becomes visible to
    lookups only when it is published, which needs every unit done or excluded.

    Parameters
    ----------
    engine
        The database; workers connect to the same URL (it must be reachable
        from every worker machine).
    area_code
        The area to divide (a township, county, city or province).
    scheduler, workers
        A Dask scheduler address (``tcp://host:8786``), or the number of worker
        processes of a local cluster started for this run.
    barriers, finish
        Passed to every unit: barrier lines, and a step run on the worker after
        generation (staffing).
    name, created_by
        Recorded with the plan.
    retries
        How often Dask re-runs a unit that raised before it is recorded failed.
    progress
        ``progress(stage, fraction)`` after each unit (and once with the Dask
        dashboard link, fraction 0).
    **options
        ``min_households``, ``max_households``, ``target``, ``respect_level``,
        ``weight``, ``seed`` as for :func:`geo.gridding.generate.generate_grids`.

    Returns
    -------
    FanOutRun
        The draft's id, its units, the failed units with their errors and the
        combined report (``metrics``, ``exceptions``, ``seconds``).
    """
    bad = sorted(set(options) - set(_OPTIONS))
    if bad:
        raise TypeError(f"unknown generation option(s): {', '.join(bad)}")
    with session_scope(engine) as session:
        units, ref_latitude = plan_units(
            session,
            area_code,
            respect_level=str(options.get("respect_level", "village")),
        )
        if sum(u.households for u in units) == 0:
            raise EmptyInput(f"area {area_code} has no households loaded")
        params = {
            **options,
            "barriers": barriers is not None,
            "staffed": finish is not None,
        }
        plan_id = create_draft(
            session,
            area_code,
            units,
            kind="generate",
            params=params,
            ref_latitude=ref_latitude,
            name=name,
            created_by=created_by,
        )
    extra = {"ref_latitude": ref_latitude, "finish": finish}
    return _run(
        engine,
        plan_id,
        "generate",
        units,
        options,
        extra,
        scheduler=scheduler,
        workers=workers,
        barriers=barriers,
        retries=retries,
        progress=progress,
    )


def rebalance(
    engine: Engine,
    plan_id: int,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    min_households: float = 200,
    max_households: float = 300,
    locked: Sequence[str] = (),
    created_by: str | None = None,
    retries: int = 1,
    progress: Progress = _quiet,
) -> FanOutRun:
    """Rebalance a stored plan unit by unit on Dask into a new draft (parent ``plan_id``).

    Each unit (township) is rebalanced by :func:`geo.gridding.rebalance.rebalance`
    on the plan's grids inside it and today's households there: households never
    move between townships (grids only ever exchange households with grids
    covering the same village, so a single-process run does not either). The
    report figures are sums over units: a household that moved to another
    township counts as removed from one and new in the other.

    Parameters
    ----------
    engine
        The database (workers connect to the same URL).
    plan_id
        The plan to rebalance; it becomes the new draft's parent.
    scheduler, workers
        A Dask scheduler address, or the number of local worker processes.
    min_households, max_households
        The band.
    locked
        Grid codes that must not change (each must be a grid of the plan).
    created_by
        Recorded with the new draft.
    retries
        How often Dask re-runs a unit that raised.
    progress
        ``progress(stage, fraction)`` after each unit.

    Returns
    -------
    FanOutRun
        The new draft's id, its units and the failed units with their errors.
    """
    from geo.errors import InputError, NotFound
    from geo.store.fanout import missing_grid_codes, plan_info

    with session_scope(engine) as session:
        info = plan_info(session, plan_id)
        if info is None:
            raise NotFound(f"There is no plan {plan_id}.", what="plan")
        missing = missing_grid_codes(session, plan_id, list(locked))
        if missing:
            raise ValueError(f"locked grid(s) not in the plan: {', '.join(missing)}")
        respect = str((info["params"] or {}).get("respect_level") or "village")
        units, _ = plan_units(session, info["area_code"], respect_level=respect)
        if not units:
            raise InputError.one(f"plan {plan_id}", "the plan's area has no units")
        options = {"min_households": min_households, "max_households": max_households}
        new_id = create_draft(
            session,
            info["area_code"],
            units,
            kind="rebalance",
            params={**options, "locked": sorted(locked), "respect_level": respect},
            created_by=created_by,
            parent_id=plan_id,
        )
    retired = list((info["metrics"] or {}).get("retired_codes", []))
    extra = {"parent_id": plan_id, "retired": retired, "locked": sorted(locked)}
    return _run(
        engine,
        new_id,
        "rebalance",
        units,
        options,
        extra,
        scheduler=scheduler,
        workers=workers,
        barriers=None,
        retries=retries,
        progress=progress,
    )


def retry(
    engine: Engine,
    plan_id: int,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    units: Sequence[str] | None = None,
    barriers: gpd.GeoDataFrame | None = None,
    finish: Finish | None = None,
    retries: int = 1,
    progress: Progress = _quiet,
) -> FanOutRun:
    """Re-run a draft's units that are not done (or ``units``) with the stored options.

    Each re-run unit first deletes whatever it left before, so the draft is
    complete afterwards when they succeed. ``barriers`` and ``finish`` are not
    stored with the plan: give the same ones as the first run.
    """
    from geo.errors import InputError, PlanConflictError
    from geo.store.fanout import plan_info

    with session_scope(engine) as session:
        state = fanout_state(session, plan_id)
        parent = (
            plan_info(session, int(state["parent_id"]))
            if state["parent_id"] is not None
            else None
        )
    if state["status"] != "draft":
        raise PlanConflictError(
            f"plan {plan_id} is {state['status']}; only a draft's units can be re-run"
        )
    fan = state["fanout"]
    kind = str(fan.get("kind", "generate"))
    known = fan.get("units", {})
    excluded = set(fan.get("excluded", []))
    if units is None:
        todo = [
            c
            for c, u in sorted(known.items())
            if u.get("status") != "done" and c not in excluded
        ]
    else:
        todo = [str(c) for c in units]
        unknown = [c for c in todo if c not in known]
        if unknown:
            raise InputError.one(
                f"plan {plan_id}",
                f"not units of the plan: {', '.join(unknown)}",
                field="units",
            )
    params = state["params"]
    extra: dict[str, Any]
    if kind == "rebalance":
        options = {k: params[k] for k in ("min_households", "max_households")}
        extra = {
            "parent_id": state["parent_id"],
            "retired": list(
                ((parent or {}).get("metrics") or {}).get("retired_codes", [])
            ),
            "locked": list(params.get("locked", [])),
        }
    else:
        options = {k: v for k, v in params.items() if k in _OPTIONS}
        extra = {"ref_latitude": fan.get("ref_latitude"), "finish": finish}
    unit_list = [
        Unit(c, str(known[c].get("level", "")), int(known[c].get("households", 0)))
        for c in todo
    ]
    return _run(
        engine,
        plan_id,
        kind,
        unit_list,
        options,
        extra,
        scheduler=scheduler,
        workers=workers,
        barriers=barriers,
        retries=retries,
        progress=progress,
        all_units=sorted(known),
    )


def _run(
    engine: Engine,
    plan_id: int,
    kind: str,
    units: Sequence[Unit],
    options: Mapping[str, Any],
    extra: Mapping[str, Any],
    *,
    scheduler: str | None,
    workers: int | None,
    barriers: gpd.GeoDataFrame | None,
    retries: int,
    progress: Progress,
    all_units: Sequence[str] | None = None,
) -> FanOutRun:
    from distributed import as_completed

    t0 = time.perf_counter()
    url = _url_of(engine)
    task = _TASKS[kind]
    run_id = uuid.uuid4().hex[:8]
    total_hh = sum(u.households for u in units) or 1
    done_hh = 0
    dashboard: str | None = None
    with dask_client(scheduler, workers) as client:
        dashboard = client.dashboard_link
        progress(f"Dask dashboard: {dashboard}", 0.0)
        bar = client.scatter(barriers, broadcast=True) if barriers is not None else None
        futures = {
            client.submit(
                task,
                url,
                plan_id,
                u.code,
                dict(options),
                dict(extra),
                bar,
                key=f"gridmap-{kind}-{plan_id}-{u.code}-{run_id}",
                retries=retries,
                pure=False,
            ): u
            for u in units
        }
        for n, fut in enumerate(as_completed(futures), 1):
            unit = futures[fut]
            if fut.status == "error":
                exc = fut.exception()
                error = f"{type(exc).__name__}: {exc}"
                with session_scope(engine) as session:
                    set_unit_state(
                        session,
                        plan_id,
                        unit.code,
                        {
                            "status": "failed",
                            "level": unit.level,
                            "households": unit.households,
                            "error": error,
                        },
                    )
                what = f"unit {unit.code} failed ({n}/{len(units)})"
            else:
                what = f"unit {unit.code} done ({n}/{len(units)})"
            done_hh += unit.households
            progress(what, done_hh / total_hh)
            fut.release()
    report = _summarise(engine, plan_id, time.perf_counter() - t0)
    return FanOutRun(
        plan_id=plan_id,
        units=list(all_units) if all_units is not None else [u.code for u in units],
        failed=dict(sorted(report["failed_units"].items())),
        report=report,
        dashboard=dashboard,
    )


def _summarise(engine: Engine, plan_id: int, seconds: float) -> dict[str, Any]:
    """Combine the units' figures into plan-level ``metrics`` and store them."""
    with session_scope(engine) as session:
        fan = fanout_state(session, plan_id)["fanout"]
        units = fan.get("units", {})
        excluded = set(fan.get("excluded", []))
        done = [u for u in units.values() if u.get("status") == "done"]
        failed = {
            c: str(u.get("error") or u.get("status"))
            for c, u in units.items()
            if u.get("status") != "done" and c not in excluded
        }
        metrics = combine_metrics([u.get("metrics", {}) for u in done])
        exceptions = [e for u in done for e in u.get("exceptions", [])]
        summary: dict[str, Any] = {
            **metrics,
            "exceptions": exceptions,
            "seconds": round(seconds, 3),
            "failed_units": failed,
        }
        parts = [u["rebalance"] for u in done if "rebalance" in u]
        if parts:
            totals: dict[str, Any] = {
                k: sum(int(p.get(k, 0)) for p in parts)
                for k in (
                    "moved_households",
                    "new_households",
                    "removed_households",
                    "lower_bound",
                )
            }
            lb = totals["lower_bound"]
            totals["moved_to_lower_bound"] = (
                round(totals["moved_households"] / lb, 3) if lb > 0 else None
            )
            for k in ("grids_touched", "grids_created"):
                totals[k] = sorted({c for p in parts for c in p.get(k, [])})
            for k in ("splits", "merges"):
                totals[k] = [x for p in parts for x in p.get(k, [])]
            summary["retired_codes"] = sorted(
                {c for p in parts for c in p.get("retired_codes", [])}
            )
            summary["rebalance"] = totals
        set_plan_summary(session, plan_id, summary)
    return {
        "metrics": metrics,
        "exceptions": exceptions,
        "seconds": summary["seconds"],
        "failed_units": failed,
        **({"rebalance": summary["rebalance"]} if "rebalance" in summary else {}),
    }


def combine_metrics(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Plan metrics of the union of units from each unit's
    :func:`geo.gridding.metrics.plan_metrics` (sums, extremes, grid-weighted means).

    >>> combine_metrics([{"grids": 2, "households": 500, "load": 500.0, "in_band": 2,
    ...   "pp_mean": 0.5, "pp_min": 0.4, "min_load": 240.0, "max_load": 260.0},
    ...   {"grids": 1, "households": 310, "load": 310.0, "in_band": 0,
    ...   "pp_mean": 0.8, "pp_min": 0.8, "min_load": 310.0, "max_load": 310.0}])["in_band_share"]
    0.6667
    """
    parts = [p for p in parts if p.get("grids")]
    if not parts:
        return {"grids": 0}
    n = sum(int(p["grids"]) for p in parts)
    out: dict[str, Any] = {"grids": n}
    for key in ("households", "load", "in_band", "area_line_crossings", "area_m2"):
        if all(key in p for p in parts):
            out[key] = sum(p[key] for p in parts)
    for key in ("min_load", "min_households", "pp_min"):
        if all(key in p for p in parts):
            out[key] = min(p[key] for p in parts)
    for key in ("max_load", "max_households"):
        if all(key in p for p in parts):
            out[key] = max(p[key] for p in parts)
    for key in ("contiguous_share", "pp_mean"):
        if all(key in p for p in parts):
            out[key] = round(sum(p[key] * p["grids"] for p in parts) / n, 4)
    if "in_band" in out:
        out["in_band_share"] = round(out["in_band"] / n, 4)
    if "load" in out:
        out["mean_load"] = round(out["load"] / n, 2)
    return out
