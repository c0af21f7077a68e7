"""Initial schema: extensions, admin areas, households, people, plans, grids, assignments.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:54:53.841725
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_geospatial_table(
        "admin_areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "level IN ('province', 'city', 'county', 'township', 'village', 'community')",
            name="level_known",
        ),
        sa.CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        sa.CheckConstraint("parent_id IS DISTINCT FROM id", name="not_own_parent"),
        sa.ForeignKeyConstraint(["parent_id"], ["admin_areas.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_geospatial_index(
        "idx_admin_areas_geom",
        "admin_areas",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_admin_areas_parent_id"), "admin_areas", ["parent_id"], unique=False
    )
    op.create_geospatial_table(
        "households",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("address_norm", sa.Text(), nullable=True),
        sa.Column("address_key", sa.Text(), nullable=True),
        sa.Column("people", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("building_id", sa.Text(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("weight", sa.Double(), server_default=sa.text("1"), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90",
            name="geom_lonlat",
        ),
        sa.CheckConstraint("people >= 0", name="people_nonnegative"),
        sa.ForeignKeyConstraint(["area_id"], ["admin_areas.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_geospatial_index(
        "idx_households_geom",
        "households",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_households_address_key"), "households", ["address_key"], unique=False
    )
    op.create_index(
        "ix_households_address_norm_trgm",
        "households",
        ["address_norm"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"address_norm": "gin_trgm_ops"},
    )
    op.create_index(
        op.f("ix_households_area_id"), "households", ["area_id"], unique=False
    )
    op.create_index(
        op.f("ix_households_building_id"), "households", ["building_id"], unique=False
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("work_phone", sa.Text(), nullable=True),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('grid_worker', 'grid_leader', 'party_member')", name="role_known"
        ),
        sa.ForeignKeyConstraint(["area_id"], ["admin_areas.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_index(op.f("ix_people_area_id"), "people", ["area_id"], unique=False)
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.String(length=16),
            server_default=sa.text("'draft'"),
            nullable=False,
        ),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "lock_version", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.CheckConstraint(
            "(status = 'archived') = (valid_to IS NOT NULL)", name="archived_has_end"
        ),
        sa.CheckConstraint(
            "status = 'draft' OR valid_from IS NOT NULL", name="published_has_date"
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'archived')", name="status_known"
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name="dates_ordered"
        ),
        sa.ForeignKeyConstraint(["area_id"], ["admin_areas.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["parent_id"], ["plans.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("area_id", "version", name="uq_plans_area_version"),
    )
    op.create_index(op.f("ix_plans_area_id"), "plans", ["area_id"], unique=False)
    op.create_index(
        "uq_plans_one_published_per_area",
        "plans",
        ["area_id"],
        unique=True,
        postgresql_where=sa.text("status = 'published'"),
    )
    op.create_geospatial_table(
        "grids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "kind",
            sa.String(length=16),
            server_default=sa.text("'comprehensive'"),
            nullable=False,
        ),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "attrs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('comprehensive', 'dedicated')", name="kind_known"),
        sa.CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        sa.ForeignKeyConstraint(["area_id"], ["admin_areas.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["worker_id"], ["people.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("id", "plan_id", name="uq_grids_id_plan"),
        sa.UniqueConstraint("plan_id", "code", name="uq_grids_plan_code"),
    )
    op.create_geospatial_index(
        "idx_grids_geom",
        "grids",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_grids_plan_id"), "grids", ["plan_id"], unique=False)
    op.create_table(
        "assignments",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.BigInteger(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column(
            "on_boundary", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["grid_id", "plan_id"],
            ["grids.id", "grids.plan_id"],
            name="fk_assignments_grid_same_plan",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["member_id"], ["people.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("plan_id", "household_id"),
    )
    op.create_index("ix_assignments_grid", "assignments", ["grid_id"], unique=False)
    op.create_index(
        "ix_assignments_household", "assignments", ["household_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_assignments_household", table_name="assignments")
    op.drop_index("ix_assignments_grid", table_name="assignments")
    op.drop_table("assignments")
    op.drop_index(op.f("ix_grids_plan_id"), table_name="grids")
    op.drop_geospatial_index(
        "idx_grids_geom",
        table_name="grids",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("grids")
    op.drop_index(
        "uq_plans_one_published_per_area",
        table_name="plans",
        postgresql_where=sa.text("status = 'published'"),
    )
    op.drop_index(op.f("ix_plans_area_id"), table_name="plans")
    op.drop_table("plans")
    op.drop_index(op.f("ix_people_area_id"), table_name="people")
    op.drop_table("people")
    op.drop_index(op.f("ix_households_building_id"), table_name="households")
    op.drop_index(op.f("ix_households_area_id"), table_name="households")
    op.drop_index(
        "ix_households_address_norm_trgm",
        table_name="households",
        postgresql_using="gin",
        postgresql_ops={"address_norm": "gin_trgm_ops"},
    )
    op.drop_index(op.f("ix_households_address_key"), table_name="households")
    op.drop_geospatial_index(
        "idx_households_geom",
        table_name="households",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("households")
    op.drop_index(op.f("ix_admin_areas_parent_id"), table_name="admin_areas")
    op.drop_geospatial_index(
        "idx_admin_areas_geom",
        table_name="admin_areas",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("admin_areas")
