"""The schema built by migrations: constraints that live in the database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo.store.models import Base

SQUARE = "MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)))"
BOWTIE = "MULTIPOLYGON(((0 0, 1 1, 1 0, 0 1, 0 0)))"


def _area(s: Session, code: str, geom: str = SQUARE, level: str = "village") -> int:
    return s.execute(
        text(
            "INSERT INTO admin_areas (code, name, level, geom) "
            "VALUES (:c, :n, :l, ST_GeomFromText(:g, 4326)) RETURNING id"
        ),
        {"c": code, "n": f"area {code}", "g": geom, "l": level},
    ).scalar_one()


def _plan(s: Session, area: int, version: int, status: str = "draft") -> int:
    return s.execute(
        text(
            "INSERT INTO plans (area_id, version, status, valid_from) "
            "VALUES (:a, :v, :s, CASE WHEN :draft THEN NULL ELSE now() END) RETURNING id"
        ),
        {"a": area, "v": version, "s": status, "draft": status == "draft"},
    ).scalar_one()


def _violates(s: Session, sql: str, params: dict, constraint: str) -> None:
    with pytest.raises(IntegrityError) as info, s.begin_nested():
        s.execute(text(sql), params)
    assert constraint in str(info.value)


def test_models_match_migrations(engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": alembic_helpers.include_object}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_extensions_installed(session: Session) -> None:
    names = set(session.execute(text("SELECT extname FROM pg_extension")).scalars())
    assert {"postgis", "pg_trgm"} <= names


def test_invalid_polygon_is_refused(session: Session) -> None:
    with pytest.raises(IntegrityError) as info, session.begin_nested():
        _area(session, "X1", BOWTIE)
    assert "geom_valid" in str(info.value)


def test_one_published_plan_per_area(session: Session) -> None:
    area = _area(session, "A1")
    _plan(session, area, 1, "published")
    _violates(
        session,
        "INSERT INTO plans (area_id, version, status, valid_from) VALUES (:a, 2, 'published', now())",
        {"a": area},
        "uq_plans_one_published_per_area",
    )
    _plan(session, area, 3, "draft")  # drafts are fine


def test_household_assigned_once_per_plan_and_grid_of_same_plan(
    session: Session,
) -> None:
    area = _area(session, "A2")
    p1, p2 = _plan(session, area, 1), _plan(session, area, 2)
    g1 = session.execute(
        text(
            "INSERT INTO grids (plan_id, code, area_id, geom) "
            "VALUES (:p, 'G01', :a, ST_GeomFromText(:g, 4326)) RETURNING id"
        ),
        {"p": p1, "a": area, "g": SQUARE},
    ).scalar_one()
    g2 = session.execute(
        text(
            "INSERT INTO grids (plan_id, code, area_id, geom) "
            "VALUES (:p, 'G01', :a, ST_GeomFromText(:g, 4326)) RETURNING id"
        ),
        {"p": p2, "a": area, "g": SQUARE},
    ).scalar_one()
    hh = session.execute(
        text(
            "INSERT INTO households (external_id, geom, address) "
            "VALUES ('h1', ST_SetSRID(ST_MakePoint(0.5, 0.5), 4326), '湖仁村3组12号') "
            "RETURNING id"
        )
    ).scalar_one()
    ins = "INSERT INTO assignments (plan_id, household_id, grid_id) VALUES (:p, :h, :g)"
    session.execute(text(ins), {"p": p1, "h": hh, "g": g1})
    _violates(session, ins, {"p": p1, "h": hh, "g": g1}, "assignments_pkey")
    # a grid of another plan cannot hold this plan's assignment
    _violates(
        session, ins, {"p": p2, "h": hh, "g": g1}, "fk_assignments_grid_same_plan"
    )
    session.execute(text(ins), {"p": p2, "h": hh, "g": g2})


def test_duplicate_grid_code_in_a_plan(session: Session) -> None:
    area = _area(session, "A3")
    p = _plan(session, area, 1)
    sql = (
        "INSERT INTO grids (plan_id, code, area_id, geom) "
        "VALUES (:p, 'G01', :a, ST_GeomFromText(:g, 4326))"
    )
    session.execute(text(sql), {"p": p, "a": area, "g": SQUARE})
    _violates(session, sql, {"p": p, "a": area, "g": SQUARE}, "uq_grids_plan_code")


def test_household_coordinates_and_people_checked(session: Session) -> None:
    _violates(
        session,
        "INSERT INTO households (external_id, geom) VALUES ('bad', ST_SetSRID(ST_MakePoint(200, 30), 4326))",
        {},
        "geom_lonlat",
    )
    _violates(
        session,
        "INSERT INTO households (external_id, people, geom) VALUES ('neg', -1, ST_SetSRID(ST_MakePoint(1, 1), 4326))",
        {},
        "people_nonnegative",
    )


def test_plan_status_dates(session: Session) -> None:
    area = _area(session, "A4")
    _violates(
        session,
        "INSERT INTO plans (area_id, version, status) VALUES (:a, 1, 'published')",
        {"a": area},
        "published_has_date",
    )
    _violates(
        session,
        "INSERT INTO plans (area_id, version, status, valid_from) VALUES (:a, 1, 'final', now())",
        {"a": area},
        "status_known",
    )
