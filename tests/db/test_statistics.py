"""Planner statistics after bulk writes (issue 15, item 7): a load and a publish
analyse the tables they filled, so lookups need not wait for autovacuum.

The checks work inside the test's rolled-back transaction: ANALYZE sees the
transaction's own rows and writes ``pg_class.reltuples`` (an in-place update,
visible at once) and ``pg_statistic`` rows (visible inside the transaction).
"""

from __future__ import annotations

import pytest
from samples import sample_county
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.gridding.generate import generate_grids
from geo.io import prepare
from geo.sample import SampleCounty
from geo.store.loading import load
from geo.store.plans import publish_plan, save_generated_plan


@pytest.fixture(scope="module")
def county() -> SampleCounty:
    return sample_county(600, seed=11)


def _reltuples(session: Session, table: str) -> float:
    return float(
        session.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
            {"t": table},
        ).scalar_one()
    )


def _count(session: Session, table: str) -> int:
    return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _has_column_stats(session: Session, table: str, column: str) -> bool:
    """pg_stats holds a row for the column."""
    return bool(
        session.execute(
            text(
                "SELECT count(*) FROM pg_stats WHERE schemaname = 'public' "
                "AND tablename = :t AND attname = :c"
            ),
            {"t": table, "c": column},
        ).scalar_one()
    )


def _forget_stats(session: Session, *tables: str) -> None:
    """Make the tables look never analysed (inside the rolled-back transaction).

    Needs a superuser (the embedded cluster's user is one); elsewhere the
    reltuples check alone tells an analysed table from one that was not.
    """
    superuser = session.execute(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if not superuser:
        return
    for t in tables:
        session.execute(
            text("DELETE FROM pg_statistic WHERE starelid = CAST(:t AS regclass)"),
            {"t": t},
        )


def test_a_load_analyses_the_tables_it_filled(
    session: Session, county: SampleCounty
) -> None:
    tables = {"admin_areas": "code", "people": "role", "households": "address_key"}
    _forget_stats(session, *tables)
    load(session, prepare(county.areas, "areas", source="areas"))
    load(session, prepare(county.people, "people", source="people"))
    load(session, prepare(county.households, "households", source="households"))
    for table, column in tables.items():
        n = _count(session, table)
        assert n > 0
        assert _reltuples(session, table) == n, table
        assert _has_column_stats(session, table, column), table


def test_publishing_a_plan_analyses_grids_and_assignments(
    session: Session, county: SampleCounty
) -> None:
    load(session, prepare(county.areas, "areas", source="areas"))
    load(session, prepare(county.households, "households", source="households"))
    root = county.areas.loc[county.areas["parent_code"].isna(), "code"].iloc[0]
    plan = generate_grids(county.households, county.areas)
    plan_id = save_generated_plan(session, root, plan)
    _forget_stats(session, "grids", "assignments")
    publish_plan(session, plan_id)
    for table, column in (("grids", "plan_id"), ("assignments", "grid_id")):
        n = _count(session, table)
        assert n > 0
        assert _reltuples(session, table) == n, table
        assert _has_column_stats(session, table, column), table
