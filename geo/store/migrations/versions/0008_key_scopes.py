"""Keys scoped to an area (and to a person), and row-level security by that area.

Keys get an area (an admin area code or a grid code; NULL: the whole register,
as the keys made before this revision), an expiry and a person. Requests with
a key run as the role ``gridmap_scoped`` (``SET LOCAL ROLE``, not the tables'
owner, so row-level security applies) with the key's areas in the
transaction-local setting ``gridmap.areas`` (admin area ids, comma-separated)
and a grid key's code in ``gridmap.grid``. The policies below keep every row
of the personal tables outside those areas invisible, and refuse writes
outside them; with the settings empty (unscoped keys, the CLI, jobs) they pass.

Revision ID: 0008_key_scopes
Revises: 0007_plan_edits
Create Date: 2026-12-06 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_key_scopes"
down_revision = "0007_plan_edits"
branch_labels = None
depends_on = None

ROLE = "gridmap_scoped"
OLD_ROLES = ("viewer", "planner", "worker")
ROLES = (*OLD_ROLES, "auditor", "admin")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# an area id inside the session's scope (every area when no scope is set)
_FUNCTIONS = (
    "CREATE FUNCTION gridmap_area_ok(a integer) RETURNS boolean LANGUAGE sql STABLE "
    "AS $$ SELECT coalesce(current_setting('gridmap.areas', true), '') = '' "
    "OR a = ANY (string_to_array(current_setting('gridmap.areas', true), ',')"
    "::integer[]) $$",
    # a grid key's households: assigned to a grid of that code in a published
    # plan (SECURITY DEFINER: reads assignments as their owner, without the
    # policies, which would otherwise recurse)
    "CREATE FUNCTION gridmap_household_in_grid(hid bigint) RETURNS boolean "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public "
    "AS $$ SELECT coalesce(current_setting('gridmap.grid', true), '') = '' "
    "OR EXISTS (SELECT 1 FROM assignments a JOIN grids g ON g.id = a.grid_id "
    "JOIN plans p ON p.id = a.plan_id WHERE a.household_id = hid "
    "AND p.status = 'published' "
    "AND g.code = current_setting('gridmap.grid', true)) $$",
    "CREATE FUNCTION gridmap_grid_ok(gid integer) RETURNS boolean "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public "
    "AS $$ SELECT coalesce(current_setting('gridmap.grid', true), '') = '' "
    "OR EXISTS (SELECT 1 FROM grids g WHERE g.id = gid "
    "AND g.code = current_setting('gridmap.grid', true)) $$",
    # a plan whose area lies inside the scope (writes to plans, grids, edits)
    "CREATE FUNCTION gridmap_plan_ok(pid integer) RETURNS boolean "
    "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public "
    "AS $$ SELECT coalesce(current_setting('gridmap.areas', true), '') = '' "
    "OR EXISTS (SELECT 1 FROM plans p WHERE p.id = pid "
    "AND gridmap_area_ok(p.area_id)) $$",
)

_AREA_OF_EVENT = "coalesce(area_id, village_id, township_id)"
_HOUSEHOLD = "EXISTS (SELECT 1 FROM households h WHERE h.id = household_id)"

#: (table, policy name, command, USING) — WITH CHECK is the same expression.
POLICIES: tuple[tuple[str, str, str, str], ...] = (
    (
        "households",
        "scope",
        "ALL",
        "gridmap_area_ok(area_id) AND gridmap_household_in_grid(id)",
    ),
    ("people", "scope", "ALL", "gridmap_area_ok(area_id)"),
    ("assignments", "read", "SELECT", _HOUSEHOLD),
    ("assignments", "add", "INSERT", f"{_HOUSEHOLD} AND gridmap_plan_ok(plan_id)"),
    ("assignments", "change", "UPDATE", f"{_HOUSEHOLD} AND gridmap_plan_ok(plan_id)"),
    ("assignments", "remove", "DELETE", f"{_HOUSEHOLD} AND gridmap_plan_ok(plan_id)"),
    (
        "events",
        "scope",
        "ALL",
        f"gridmap_area_ok({_AREA_OF_EVENT}) AND gridmap_grid_ok(grid_id)",
    ),
    (
        "event_log",
        "scope",
        "ALL",
        "EXISTS (SELECT 1 FROM events e WHERE e.id = event_id)",
    ),
    ("event_rollup", "scope", "ALL", "gridmap_area_ok(nullif(area_id, 0))"),
    ("event_open_deadlines", "scope", "ALL", "gridmap_area_ok(nullif(area_id, 0))"),
    ("event_settle_hist", "scope", "ALL", "gridmap_area_ok(nullif(area_id, 0))"),
    ("plan_edits", "scope", "ALL", "gridmap_plan_ok(plan_id)"),
    # plans and grids are public to read; written only inside the scope
    ("plans", "read", "SELECT", "true"),
    ("plans", "add", "INSERT", "gridmap_area_ok(area_id)"),
    ("plans", "change", "UPDATE", "gridmap_area_ok(area_id)"),
    ("plans", "remove", "DELETE", "gridmap_area_ok(area_id)"),
    ("grids", "read", "SELECT", "true"),
    ("grids", "add", "INSERT", "gridmap_plan_ok(plan_id)"),
    ("grids", "change", "UPDATE", "gridmap_plan_ok(plan_id)"),
    ("grids", "remove", "DELETE", "gridmap_plan_ok(plan_id)"),
)

TABLES = tuple(dict.fromkeys(t for t, *_ in POLICIES))


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("area_code", sa.String(40), nullable=True))
    op.add_column(
        "api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("api_keys", sa.Column("person_id", sa.Integer(), nullable=True))
    op.drop_constraint("role_known", "api_keys", type_="check")
    op.create_check_constraint("role_known", "api_keys", _in("role", ROLES))

    # the role scoped requests run as: no login, no BYPASSRLS, not the owner
    op.execute(
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN "
        f"CREATE ROLE {ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    op.execute(
        "DO $$ BEGIN "
        "IF NOT pg_has_role(current_user, 'gridmap_scoped', 'MEMBER') THEN "
        f"EXECUTE format('GRANT {ROLE} TO %I', current_user); END IF; END $$"
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}"
    )
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {ROLE}"
    )
    op.execute(f"REVOKE ALL ON alembic_version FROM {ROLE}")
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO "
        f"{ROLE}', current_database()); END $$"
    )
    for sql in _FUNCTIONS:
        op.execute(sql)
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    for table, name, command, using in POLICIES:
        check = "" if command in {"SELECT", "DELETE"} else f" WITH CHECK ({using})"
        use = "" if command == "INSERT" else f" USING ({using})"
        op.execute(f"CREATE POLICY {name} ON {table} FOR {command}{use}{check}")


def downgrade() -> None:
    for table, name, _command, _using in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for fn in (
        "gridmap_plan_ok(integer)",
        "gridmap_grid_ok(integer)",
        "gridmap_household_in_grid(bigint)",
        "gridmap_area_ok(integer)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    # the role is the cluster's (other databases may use it): only this
    # database's grants go
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"REVOKE USAGE, SELECT ON SEQUENCES FROM {ROLE}"
    )
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
    op.execute(
        "DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM "
        f"{ROLE}', current_database()); END $$"
    )
    op.execute(f"DELETE FROM api_keys WHERE {_in('role', ('auditor', 'admin'))}")
    op.drop_constraint("role_known", "api_keys", type_="check")
    op.create_check_constraint("role_known", "api_keys", _in("role", OLD_ROLES))
    op.drop_column("api_keys", "person_id")
    op.drop_column("api_keys", "expires_at")
    op.drop_column("api_keys", "area_code")
