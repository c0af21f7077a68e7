"""Plan versions under concurrency (issue 15, item 4): plans saved at the same time
for one area get distinct versions, and a job that fails says what happened.

These tests need committed data seen by several connections, so they run in a
database of their own (not the rolled-back test session).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.jobs import Job, JobRunner
from geo.io import prepare
from geo.store.db import make_engine, session_scope, upgrade
from geo.store.jobs import get_job
from geo.store.loading import load
from geo.store.plans import save_plan

AREA = "PV-1"


@pytest.fixture(scope="module")
def versions_engine(make_database) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    url = make_database("versions")
    upgrade(url)
    engine = make_engine(url, pool_size=12, max_overflow=4)
    areas = gpd.GeoDataFrame(
        {
            "code": [AREA],
            "name": ["版本村"],
            "level": ["village"],
            "parent_code": [None],
        },
        geometry=[shapely.box(118.0, 29.0, 118.01, 29.01)],
        crs=4326,
    )
    with session_scope(engine) as s:
        load(s, prepare(areas, "areas", source="areas"))
    yield engine
    engine.dispose()


def _grids(tag: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"grid_code": [f"{tag}-1", f"{tag}-2"], "area_code": [AREA, AREA]},
        geometry=[
            shapely.box(118.0, 29.0, 118.005, 29.01),
            shapely.box(118.005, 29.0, 118.01, 29.01),
        ],
        crs=4326,
    )


def _versions(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT p.version FROM plans p JOIN admin_areas a ON a.id = p.area_id "
                    "WHERE a.code = :c ORDER BY p.version"
                ),
                {"c": AREA},
            ).scalars()
        )


def test_plans_saved_at_once_for_one_area_all_get_distinct_versions(
    versions_engine: Engine,
) -> None:
    n = 8
    before = _versions(versions_engine)
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    ids: list[int] = []

    def save(i: int) -> None:
        try:
            with Session(versions_engine) as s, s.begin():
                s.execute(text("SELECT 1"))  # hold a connection before the race
                barrier.wait(30)
                ids.append(save_plan(s, AREA, _grids(f"T{i}"), name=f"thread {i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, [repr(e)[:300] for e in errors]
    assert len(ids) == n
    after = _versions(versions_engine)
    new = after[len(before) :]
    assert len(new) == n and len(set(after)) == len(after)
    assert new == list(range((before[-1] if before else 0) + 1, len(after) + 1))


def _waiting_pids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalars()
        )


def test_a_save_waits_for_an_uncommitted_plan_of_the_same_area(
    versions_engine: Engine,
) -> None:
    """Deterministic interleaving: B saves while A's plan is not yet committed."""
    done: dict[str, object] = {}
    with Session(versions_engine) as a, a.begin():
        first = save_plan(a, AREA, _grids("A"))

        def other() -> None:
            try:
                with Session(versions_engine) as b, b.begin():
                    done["id"] = save_plan(b, AREA, _grids("B"))
            except BaseException as exc:
                done["error"] = exc

        t = threading.Thread(target=other)
        t.start()
        # wait (without a time limit on the outcome) until B is blocked on a lock
        for _ in range(600):
            if _waiting_pids(versions_engine) or not t.is_alive():
                break
            threading.Event().wait(0.05)
        v_first = a.execute(
            text("SELECT version FROM plans WHERE id = :p"), {"p": first}
        ).scalar_one()
    t.join(60)
    assert "error" not in done, repr(done.get("error"))[:300]
    with versions_engine.connect() as conn:
        v_second = conn.execute(
            text("SELECT version FROM plans WHERE id = :p"), {"p": done["id"]}
        ).scalar_one()
    assert v_second == v_first + 1


def test_a_failed_job_says_what_the_database_refused(
    versions_engine: Engine,
) -> None:
    """An integrity error reaches the job's poller as the constraint and the reason."""
    runner = JobRunner(versions_engine, workers=1)

    def clash(job: Job, engine: Engine) -> None:
        with session_scope(engine) as s:
            area = s.execute(
                text("SELECT id FROM admin_areas WHERE code = :c"), {"c": AREA}
            ).scalar_one()
            for _ in range(2):
                s.execute(
                    text(
                        "INSERT INTO plans (area_id, version, status) "
                        "VALUES (:a, 999, 'draft')"
                    ),
                    {"a": area},
                )

    try:
        state = runner.submit("generate", {"area_code": AREA}, clash)
    finally:
        runner.shutdown()
    failed = get_job(versions_engine, state.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None
    detail = failed.error["detail"]
    assert "uq_plans_area_version" in detail, detail
    assert "unexpected error" not in detail
    assert "duplicate" in detail.lower()
